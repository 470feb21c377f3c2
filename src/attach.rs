//! Loading and attaching a tool's BPF programs on kernel tracepoints: `tp_btf` first,
//! `raw_tp` when the kernel refuses `tp_btf` (no BTF-typed tracepoints before 5.5; a
//! stateful tool's tp_btf programs need Linux 5.12: bpf/sk_store.bpf.h).

use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{OpenObject, PrintLevel};

use crate::nested::{self, SkipCounters};
use crate::programs::{Program, ProgramSets};
use crate::stream::Transport;

/// How a program is attached to its tracepoint (bpf/hook.bpf.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// BTF-typed tracepoint: arguments are typed kernel pointers read with plain loads.
    TpBtf,
    /// Raw tracepoint: arguments are plain numbers, kernel memory is read with probe reads.
    RawTp,
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

/// Set to anything but `0` or empty, skips `tp_btf` (to test the `raw_tp` programs, which
/// Linux 5.10 runs).
pub const FORCE_RAW_TP_ENV: &str = "TCPTOOLS_RAW_TP";

/// A loaded and attached skeleton, the hook its programs use, and those programs.
pub struct Attached<S> {
    /// Dropped first: the programs are detached before the skeleton closes its object.
    _links: Vec<libbpf_rs::Link>,
    pub skel: S,
    pub hook: Hook,
    /// The loaded programs (duplicated descriptors), main programs first, for their run
    /// statistics.
    programs: Vec<(Program, OwnedFd)>,
    /// The catchers' per-CPU state maps (`nested_*`).
    nested: Vec<libbpf_rs::MapHandle>,
}

impl<S> Attached<S> {
    /// The loaded programs, main programs first, then the catchers.
    pub fn programs(&self) -> Vec<(Program, BorrowedFd<'_>)> {
        self.programs
            .iter()
            .map(|(program, fd)| (*program, fd.as_fd()))
            .collect()
    }

    /// Where the kernel's skipped runs and the catchers' catches are counted.
    pub fn skip_counters(&self) -> SkipCounters<'_> {
        SkipCounters {
            programs: self
                .programs
                .iter()
                .filter(|(program, _)| !program.catcher)
                .map(|(_, fd)| fd.as_fd())
                .collect(),
            nested: self.nested.iter().map(|map| map.as_fd()).collect(),
        }
    }
}

pub(crate) fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Opens the skeleton `builder` makes, lets `configure` set its read-only data and maps
/// for the hook, then loads and attaches: `tp_btf` programs, else `raw_tp` programs. With
/// `-v` it says which attached and why `tp_btf` did not; if none loads, the error names
/// every reason.
pub fn load<B, F>(builder: impl Fn() -> B, configure: F) -> Result<Attached<SkelOf<B>>>
where
    B: ProgramSets,
    F: Fn(&mut B::Output, Hook) -> Result<()>,
{
    load_then(builder, configure, |_| Ok(())).map(|(attached, ())| attached)
}

/// [`load`], with `prepare` run on the loaded skeleton before any of its programs is
/// attached (to fill the maps they filter on, say); what it returns is handed back with the
/// attached skeleton.
pub fn load_then<B, F, P, T>(
    builder: impl Fn() -> B,
    configure: F,
    prepare: P,
) -> Result<(Attached<SkelOf<B>>, T)>
where
    B: ProgramSets,
    F: Fn(&mut B::Output, Hook) -> Result<()>,
    P: Fn(&SkelOf<B>) -> Result<T>,
{
    let mut refused = Vec::new();
    let hooks = if env_set(FORCE_RAW_TP_ENV) {
        refused.push(format!("tp_btf skipped ({FORCE_RAW_TP_ENV} is set)"));
        vec![Hook::RawTp]
    } else {
        vec![Hook::TpBtf, Hook::RawTp]
    };
    for hook in hooks {
        match load_with(hook, builder(), &configure, &prepare) {
            Ok(loaded) => {
                refused.push(format!("attached with {hook}"));
                report_hook(&refused.join("; "));
                return Ok(loaded);
            }
            Err(err) => refused.push(format!("{hook} refused ({err:#})")),
        }
    }
    // Without the kernel's BTF every CO-RE relocation fails, with a bare ESRCH.
    if !Path::new(VMLINUX_BTF).exists() {
        bail!(
            "this kernel has no BTF ({VMLINUX_BTF} is missing; it needs CONFIG_DEBUG_INFO_BTF=y)"
        );
    }
    bail!(
        "failed to load and attach BPF programs: {} (run with -v for libbpf's log)",
        refused.join("; ")
    )
}

/// [`load_then`] for a tool whose events `transport` carries (src/stream.rs): where it has
/// per-CPU rings, they are in their map (which took the kernel's grace period while the
/// object loaded) before any program is attached, at every attempt.
pub fn load_events<B, F, P, T>(
    builder: impl Fn() -> B,
    transport: &Transport,
    configure: F,
    prepare: P,
) -> Result<(Attached<SkelOf<B>>, T)>
where
    B: ProgramSets,
    F: Fn(&mut B::Output, Hook) -> Result<()>,
    P: Fn(&SkelOf<B>) -> Result<T>,
{
    load_then(builder, configure, |skel| {
        transport.wait_ready()?;
        prepare(skel)
    })
}

/// The loaded skeleton type of a skeleton builder.
pub type SkelOf<B> = <<B as SkelBuilder<'static>>::Output as OpenSkel<'static>>::Output;

fn load_with<B: ProgramSets, T>(
    hook: Hook,
    builder: B,
    configure: &impl Fn(&mut B::Output, Hook) -> Result<()>,
    prepare: &impl Fn(&SkelOf<B>) -> Result<T>,
) -> Result<(Attached<SkelOf<B>>, T)> {
    // A skeleton borrows the storage of its object for as long as it lives, and the tools
    // keep theirs until they exit: one small allocation per attempt, never freed.
    let object: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = builder.open(object).context("failed to open BPF object")?;
    for (program, prog) in B::open_programs(&mut open) {
        prog.set_autoload(program.hook == hook);
    }
    configure(&mut open, hook)?;
    let mut skel = open.load().context("failed to load BPF object")?;
    let prepared = prepare(&skel)?;
    let (links, programs) = attach_programs::<B>(&mut skel, hook)?;
    let nested = B::nested_maps(&skel)
        .into_iter()
        .map(libbpf_rs::MapHandle::try_from)
        .collect::<libbpf_rs::Result<_>>()
        .context("failed to duplicate a map descriptor")?;
    let attached = Attached {
        _links: links,
        skel,
        hook,
        programs,
        nested,
    };
    Ok((attached, prepared))
}

/// The links of attached programs, and a descriptor of every loaded program.
type Loaded = (Vec<libbpf_rs::Link>, Vec<(Program, OwnedFd)>);

/// Attaches the loaded programs of `hook` in the catchers' order (src/nested.rs), and
/// keeps a descriptor of each. With `-v` it names the attached programs.
fn attach_programs<B: ProgramSets>(skel: &mut SkelOf<B>, hook: Hook) -> Result<Loaded> {
    let mut loaded: Vec<_> = B::programs(skel)
        .into_iter()
        .filter(|(program, _)| program.hook == hook)
        .collect();
    nested::attach_order(&mut loaded);
    let (mut links, mut programs, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for (program, prog) in loaded {
        let name = prog.name().to_string_lossy().into_owned();
        if nested::attaches(&program) {
            let link = prog.attach();
            links.push(link.with_context(|| format!("failed to attach BPF program {name}"))?);
            names.push(name);
        }
        let fd = prog.as_fd().try_clone_to_owned();
        programs.push((
            program,
            fd.context("failed to duplicate a program descriptor")?,
        ));
    }
    report_hook(&format!("programs: {}", names.join(", ")));
    Ok((links, programs))
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

/// Whether `-v` was given (set by [`libbpf_logging`]).
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
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
