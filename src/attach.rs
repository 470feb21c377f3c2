//! Loading a tool's BPF programs on kernel tracepoints: `tp_btf` first, `raw_tp` when the
//! kernel refuses `tp_btf` (no BTF-typed tracepoints before 5.5, or a refused load).

use std::fmt;
use std::mem::MaybeUninit;
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

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::TpBtf => "tp_btf",
            Hook::RawTp => "raw_tp",
        })
    }
}

/// Set to anything but `0` or empty, skips `tp_btf` (to test the `raw_tp` programs).
pub const FORCE_RAW_TP_ENV: &str = "TCPTOOLS_RAW_TP";

/// Storage for the BPF object of each attempt (a failed attempt keeps its own).
pub type ObjectStorage = [MaybeUninit<OpenObject>; 2];

pub fn object_storage() -> ObjectStorage {
    [MaybeUninit::uninit(), MaybeUninit::uninit()]
}

/// Runs `open_load_attach` with `tp_btf`, then with `raw_tp` if that failed. The closure
/// opens the skeleton, enables only the programs of the given hook, loads and attaches.
pub fn with_fallback<'obj, T>(
    storage: &'obj mut ObjectStorage,
    open_load_attach: impl Fn(Hook, &'obj mut MaybeUninit<OpenObject>) -> Result<T>,
) -> Result<(T, Hook)> {
    let [first, second] = storage;
    let force_raw = std::env::var(FORCE_RAW_TP_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    let btf_err = if force_raw {
        anyhow!("skipped ({FORCE_RAW_TP_ENV} is set)")
    } else {
        match open_load_attach(Hook::TpBtf, first) {
            Ok(loaded) => {
                report_hook("attached with tp_btf");
                return Ok((loaded, Hook::TpBtf));
            }
            Err(err) => err,
        }
    };
    match open_load_attach(Hook::RawTp, second) {
        Ok(loaded) => {
            report_hook(&format!("tp_btf refused ({btf_err:#}); attached with raw_tp"));
            Ok((loaded, Hook::RawTp))
        }
        Err(raw_err) => Err(anyhow!(
            "failed to load and attach BPF programs: with tp_btf: {btf_err:#}; with raw_tp: {raw_err:#} (run with -v for libbpf's log)"
        )),
    }
}

/// One attempt of [`with_fallback`]: opens the skeleton, lets `configure` enable the
/// hook's programs and set the read-only data and maps, then loads and attaches.
pub fn open_load_attach<'obj, B: SkelBuilder<'obj>>(
    builder: B,
    object: &'obj mut MaybeUninit<OpenObject>,
    configure: impl FnOnce(&mut B::Output) -> Result<()>,
) -> Result<<B::Output as OpenSkel<'obj>>::Output> {
    let mut open = builder.open(object).context("failed to open BPF object")?;
    configure(&mut open)?;
    let mut skel = open.load().context("failed to load BPF object")?;
    skel.attach().context("failed to attach BPF programs")?;
    Ok(skel)
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
