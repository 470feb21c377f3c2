//! Loading and attaching a tool's BPF programs on kernel tracepoints: `tp_btf` first,
//! `raw_tp` when the kernel refuses `tp_btf` (no BTF-typed tracepoints before 5.5, or a
//! program the verifier refuses).

use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, OpenObject, PrintLevel};

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

/// Set to anything but `0` or empty, attaches the catchers without their main programs, so
/// that every event goes through the catchers (to test their path, which runs only for the
/// rare events the kernel skips a main program for).
pub const CATCHERS_ONLY_ENV: &str = "TCPTOOLS_CATCHERS_ONLY";

/// The name prefix of catcher programs (bpf/nested.bpf.h): each runs the handler of the
/// main program on its tracepoint for the events the kernel skipped that program for.
const CATCHER_PREFIX: &str = "catch_";
/// The name prefix of the catchers' per-CPU state maps, whose `catches` user space reads.
const NESTED_MAP_PREFIX: &str = "nested_";

/// A loaded and attached skeleton, the hook its programs use, and those programs.
pub struct Attached<S> {
    /// Dropped first: the programs are detached before the skeleton closes its object.
    _links: Vec<libbpf_rs::Link>,
    pub skel: S,
    pub hook: Hook,
    /// Whether the programs keep per-socket state in socket storage (so, for tcpstates,
    /// know sockets' owners).
    pub sk_storage: bool,
    /// The attached main programs (duplicated descriptors), for their run statistics.
    programs: Vec<OwnedFd>,
    /// The attached catcher programs.
    catchers: Vec<OwnedFd>,
    /// The catchers' per-CPU state maps (`nested_*`).
    nested: Vec<libbpf_rs::MapHandle>,
}

impl<S> Attached<S> {
    /// The main programs: every event of their tracepoints, but those the kernel skipped.
    pub fn programs(&self) -> Vec<BorrowedFd<'_>> {
        self.programs.iter().map(|fd| fd.as_fd()).collect()
    }

    /// The catcher programs: they run for every event too, and do work for skipped ones.
    pub fn catchers(&self) -> Vec<BorrowedFd<'_>> {
        self.catchers.iter().map(|fd| fd.as_fd()).collect()
    }

    /// Where the kernel's skipped runs and the catchers' catches are counted.
    pub fn skip_counters(&self) -> crate::stream::SkipCounters<'_> {
        crate::stream::SkipCounters {
            programs: self.programs(),
            nested: self.nested.iter().map(|map| map.as_fd()).collect(),
        }
    }

    /// Events the kernel skipped the main programs for and no catcher caught.
    pub fn kernel_skips(&self) -> u64 {
        crate::stream::kernel_skips(&self.skip_counters())
    }
}

/// One way to load a tool's programs: the hook, and whether the programs keep per-socket
/// state in socket storage (tp_btf programs from Linux 5.11) or in a fixed table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    pub hook: Hook,
    pub sk_storage: bool,
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hook)?;
        if self.sk_storage {
            f.write_str(" and socket storage")?;
        }
        Ok(())
    }
}

/// Set to anything but `0` or empty, keeps per-socket state in the fixed table even where
/// socket storage works (to test and measure what Linux 5.10 runs).
pub const FORCE_TABLE_ENV: &str = "TCPTOOLS_NO_SK_STORAGE";

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The setups to try, best first (socket storage only for a tool that uses it), and what
/// an environment override made it skip.
fn setups(uses_sk_storage: bool) -> (Vec<Setup>, Option<String>) {
    let tp_btf = |sk_storage| Setup {
        hook: Hook::TpBtf,
        sk_storage,
    };
    let raw_tp = Setup {
        hook: Hook::RawTp,
        sk_storage: false,
    };
    if env_set(FORCE_RAW_TP_ENV) {
        let why = format!("tp_btf skipped ({FORCE_RAW_TP_ENV} is set)");
        return (vec![raw_tp], Some(why));
    }
    if !uses_sk_storage {
        return (vec![tp_btf(false), raw_tp], None);
    }
    if env_set(FORCE_TABLE_ENV) {
        let why = format!("socket storage skipped ({FORCE_TABLE_ENV} is set)");
        return (vec![tp_btf(false), raw_tp], Some(why));
    }
    (vec![tp_btf(true), tp_btf(false), raw_tp], None)
}

/// Opens the skeleton `builder` makes, lets `configure` set its read-only data and maps
/// for the setup, then loads and attaches: `tp_btf` programs (with socket storage where
/// the tool uses it and the kernel allows it), else `raw_tp` programs. With `-v` it says
/// which attached and why better setups did not; if none loads, the error names every
/// reason.
pub fn load<B, F>(
    builder: impl Fn() -> B,
    uses_sk_storage: bool,
    configure: F,
) -> Result<Attached<SkelOf<B>>>
where
    B: SkelBuilder<'static>,
    F: Fn(&mut B::Output, Setup) -> Result<()>,
{
    let (setups, skipped) = setups(uses_sk_storage);
    let mut refused: Vec<String> = skipped.into_iter().collect();
    for setup in setups {
        match load_with(setup, builder(), &configure) {
            Ok(attached) => {
                let without = if setup.hook == Hook::TpBtf && uses_sk_storage && !setup.sk_storage {
                    " without socket storage"
                } else {
                    ""
                };
                refused.push(format!("attached with {}{without}", setup.hook));
                report_hook(&refused.join("; "));
                return Ok(attached);
            }
            Err(err) => refused.push(format!("{setup} refused ({err:#})")),
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

/// The loaded skeleton type of a skeleton builder.
pub type SkelOf<B> = <<B as SkelBuilder<'static>>::Output as OpenSkel<'static>>::Output;

fn load_with<B: SkelBuilder<'static>>(
    setup: Setup,
    builder: B,
    configure: &impl Fn(&mut B::Output, Setup) -> Result<()>,
) -> Result<Attached<SkelOf<B>>> {
    let hook = setup.hook;
    // A skeleton borrows the storage of its object for as long as it lives, and the tools
    // keep theirs until they exit: one small allocation per attempt, never freed.
    let object: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = builder.open(object).context("failed to open BPF object")?;
    let names: Vec<String> = open
        .open_object_mut()
        .progs_mut()
        .map(|prog| prog.name().to_string_lossy().into_owned())
        .collect();
    for mut prog in open.open_object_mut().progs_mut() {
        let name = prog.name().to_string_lossy().into_owned();
        let section = prog.section().to_string_lossy().into_owned();
        prog.set_autoload(in_setup(&name, &section, setup, &names));
    }
    configure(&mut open, setup)?;
    let skel = open.load().context("failed to load BPF object")?;
    // Main programs first: on every event the kernel runs the programs of a tracepoint in
    // the order they were attached, and a catcher must come after its main program.
    let (catchers, mains): (Vec<_>, Vec<_>) = skel
        .object()
        .progs_mut()
        .filter(|prog| prog.autoload())
        .partition(|prog| prog.name().to_string_lossy().starts_with(CATCHER_PREFIX));
    let mut links = Vec::new();
    let mut names = Vec::new();
    let attached_mains = if env_set(CATCHERS_ONLY_ENV) {
        &[][..]
    } else {
        &mains[..]
    };
    for prog in attached_mains.iter().chain(&catchers) {
        let name = prog.name().to_string_lossy().into_owned();
        links.push(
            prog.attach()
                .with_context(|| format!("failed to attach BPF program {name}"))?,
        );
        names.push(name);
    }
    let dup = |progs: &[libbpf_rs::ProgramMut]| {
        progs
            .iter()
            .map(|prog| prog.as_fd().try_clone_to_owned())
            .collect::<std::io::Result<Vec<_>>>()
            .context("failed to duplicate a program descriptor")
    };
    let (programs, catchers) = (dup(&mains)?, dup(&catchers)?);
    let nested = skel
        .object()
        .maps()
        .filter(|map| map.name().to_string_lossy().starts_with(NESTED_MAP_PREFIX))
        .map(|map| libbpf_rs::MapHandle::try_from(&map))
        .collect::<libbpf_rs::Result<_>>()
        .context("failed to duplicate a map descriptor")?;
    report_hook(&format!("programs: {}", names.join(", ")));
    Ok(Attached {
        _links: links,
        skel,
        hook,
        sk_storage: setup.sk_storage,
        programs,
        catchers,
        nested,
    })
}

/// The name suffix of the tp_btf programs built for loading without socket storage.
const TABLE_BUILD_SUFFIX: &str = "_tbl";

/// Whether program `name` in `section` is one `setup` loads: its section names the hook,
/// and of a program built twice for tp_btf (`NAME_btf` with socket storage, `NAME_tbl`
/// without: bpf/sock.bpf.h) the build for the setup. Kernels before 5.12 refuse an
/// instruction of the socket-storage build that they would never reach.
fn in_setup(name: &str, section: &str, setup: Setup, names: &[String]) -> bool {
    if !section.starts_with(setup.hook.section_prefix()) {
        return false;
    }
    if setup.hook != Hook::TpBtf {
        return true;
    }
    if name.ends_with(TABLE_BUILD_SUFFIX) {
        return !setup.sk_storage;
    }
    let twin = name
        .strip_suffix("_btf")
        .map(|base| format!("{base}{TABLE_BUILD_SUFFIX}"));
    match twin {
        Some(twin) if names.contains(&twin) => setup.sk_storage,
        _ => true,
    }
}

/// Shrinks a map the loaded hook does not use to one entry (`unused`), so that, say, the
/// raw_tp programs' fixed socket table costs no memory while the tp_btf programs run.
pub fn unused_map(map: &mut libbpf_rs::OpenMapMut, unused: bool) -> Result<()> {
    if unused {
        map.set_max_entries(1)
            .context("failed to size an unused map")?;
    }
    Ok(())
}

/// Keys per bucket of a slot table, as `SLOT_WAYS` in bpf/slots.bpf.h.
const SLOT_WAYS: u32 = 8;

/// Set to a number from 1 to 20, gives every slot table (bpf/slots.bpf.h) 2^N buckets
/// instead of the tool's own size: tests make it tiny, so that sockets go to socket storage.
pub const SLOT_BITS_ENV: &str = "TCPTOOLS_SLOT_BITS";

/// Sizes a slot table before load: 2^`tool_bits` buckets (or what SLOT_BITS_ENV says) of
/// SLOT_WAYS sockets, its `keys` and `values` maps, and the programs' `slot_bucket_bits`.
/// One entry each where the loaded setup does not use the table (no socket storage).
pub fn size_slots(
    bits: &mut u32,
    keys: &mut libbpf_rs::OpenMapMut,
    values: &mut libbpf_rs::OpenMapMut,
    tool_bits: u32,
    used: bool,
) -> Result<()> {
    *bits = std::env::var(SLOT_BITS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|b| (1..=20).contains(b))
        .unwrap_or(tool_bits);
    let buckets = if used { 1u32 << *bits } else { 1 };
    keys.set_max_entries(buckets)
        .and_then(|()| values.set_max_entries(buckets * SLOT_WAYS))
        .context("failed to size the slot table")
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
