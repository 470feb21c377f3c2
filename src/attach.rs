//! Loading and attaching a tool's BPF programs on kernel tracepoints: `tp_btf` first,
//! `raw_tp` when the kernel refuses `tp_btf` (no BTF-typed tracepoints before 5.5, or a
//! program the verifier refuses).

use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{OpenObject, PrintLevel};

/// How a program is attached to its tracepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// BTF-typed tracepoint: arguments are typed kernel pointers read with plain loads.
    TpBtf,
    /// Raw tracepoint: arguments are plain numbers, kernel memory is read with probe reads.
    RawTp,
}

impl Hook {
    /// The ELF section prefix of this hook's programs (`SEC("tp_btf/...")`): every tool
    /// defines each program once per hook, and only one set is loaded.
    fn section_prefix(self) -> &'static str {
        match self {
            Hook::TpBtf => "tp_btf/",
            Hook::RawTp => "raw_tp/",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::TpBtf => "tp_btf",
            Hook::RawTp => "raw_tp",
        })
    }
}

/// The kernel's own BTF, which every program's CO-RE relocations need.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Set to anything but `0` or empty, skips `tp_btf` (to test the `raw_tp` programs).
pub const FORCE_RAW_TP_ENV: &str = "TCPTOOLS_RAW_TP";

/// A loaded and attached skeleton, the hook its programs use, and those programs.
pub struct Attached<S> {
    pub skel: S,
    pub hook: Hook,
    /// The attached programs (duplicated descriptors), for their run statistics.
    programs: Vec<OwnedFd>,
}

impl<S> Attached<S> {
    pub fn programs(&self) -> Vec<BorrowedFd<'_>> {
        self.programs.iter().map(|fd| fd.as_fd()).collect()
    }

    /// Runs of the programs the kernel skipped (`recursion_misses`), all together.
    pub fn kernel_skips(&self) -> u64 {
        self.programs
            .iter()
            .map(|fd| crate::stream::recursion_misses(fd.as_fd()))
            .sum()
    }
}

/// Opens the skeleton `builder` makes, lets `configure` set its read-only data and maps,
/// then loads and attaches the `tp_btf` programs, or the `raw_tp` ones where the kernel
/// refuses those. With `-v` it says which attached and why `tp_btf` did not; if neither
/// loads, the error names both reasons.
pub fn load<B, F>(builder: impl Fn() -> B, configure: F) -> Result<Attached<SkelOf<B>>>
where
    B: SkelBuilder<'static>,
    F: Fn(&mut B::Output) -> Result<()>,
{
    let force_raw = std::env::var(FORCE_RAW_TP_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    let btf_err = if force_raw {
        anyhow!("skipped ({FORCE_RAW_TP_ENV} is set)")
    } else {
        match load_with(Hook::TpBtf, builder(), &configure) {
            Ok(attached) => {
                report_hook("attached with tp_btf");
                return Ok(attached);
            }
            Err(err) => err,
        }
    };
    match load_with(Hook::RawTp, builder(), &configure) {
        Ok(attached) => {
            report_hook(&format!("tp_btf refused ({btf_err:#}); attached with raw_tp"));
            Ok(attached)
        }
        // Without the kernel's BTF every CO-RE relocation fails, with a bare ESRCH.
        Err(_) if !Path::new(VMLINUX_BTF).exists() => Err(anyhow!(
            "this kernel has no BTF ({VMLINUX_BTF} is missing; it needs CONFIG_DEBUG_INFO_BTF=y)"
        )),
        Err(raw_err) => Err(anyhow!(
            "failed to load and attach BPF programs: with tp_btf: {btf_err:#}; with raw_tp: {raw_err:#} (run with -v for libbpf's log)"
        )),
    }
}

/// The loaded skeleton type of a skeleton builder.
pub type SkelOf<B> = <<B as SkelBuilder<'static>>::Output as OpenSkel<'static>>::Output;

fn load_with<B: SkelBuilder<'static>>(
    hook: Hook,
    builder: B,
    configure: &impl Fn(&mut B::Output) -> Result<()>,
) -> Result<Attached<SkelOf<B>>> {
    // A skeleton borrows the storage of its object for as long as it lives, and the tools
    // keep theirs until they exit: one small allocation per attempt, never freed.
    let object: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = builder.open(object).context("failed to open BPF object")?;
    for mut prog in open.open_object_mut().progs_mut() {
        let ours = prog
            .section()
            .to_string_lossy()
            .starts_with(hook.section_prefix());
        prog.set_autoload(ours);
    }
    configure(&mut open)?;
    let mut skel = open.load().context("failed to load BPF object")?;
    skel.attach().context("failed to attach BPF programs")?;
    let programs = skel
        .object()
        .progs()
        .filter(|prog| prog.autoload())
        .map(|prog| prog.as_fd().try_clone_to_owned())
        .collect::<std::io::Result<_>>()
        .context("failed to duplicate a program descriptor")?;
    Ok(Attached {
        skel,
        hook,
        programs,
    })
}

/// The skeleton's read-only data (`const volatile` globals), to set before load.
pub fn rodata<'a, T>(data: &'a mut Option<&mut T>) -> Result<&'a mut T> {
    data.as_deref_mut()
        .context("BPF object has no read-only data")
}

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// With `-v`, says which kind of program is attached: a silent fallback would hide a
/// `tp_btf` program the kernel refuses.
fn report_hook(message: &str) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("{message}");
    }
}

fn print_to_stderr(_level: PrintLevel, message: String) {
    eprint!("{message}");
}

/// Routes libbpf's messages: all of them to stderr with `-v`, none otherwise (a refused
/// `tp_btf` load would print a verifier log although the `raw_tp` fallback works).
pub fn libbpf_logging(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
    if verbose {
        libbpf_rs::set_print(Some((PrintLevel::Debug, print_to_stderr)));
    } else {
        libbpf_rs::set_print(None);
    }
}
