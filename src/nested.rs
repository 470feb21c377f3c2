//! The catchers (bpf/nested.bpf.h), user-space half: which programs attach in what order,
//! and the accounting of the events the kernel skipped a main program for: caught by its
//! catcher, or lost (reported as skipped).

use std::cell::Cell;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::programs::{prog_info, Program};

/// `struct nested_state` of bpf/nested.bpf.h, the same in every tool's skeleton: what one
/// tracepoint's main program and catcher share per CPU.
pub type NestedState = crate::skel::tcprtt::types::nested_state;

/// Set to anything but `0` or empty, attaches the catchers without their main programs, so
/// that every event goes through the catchers (to test their path, which runs only for the
/// rare events the kernel skips a main program for).
pub const CATCHERS_ONLY_ENV: &str = "TCPTOOLS_CATCHERS_ONLY";

/// Orders loaded programs for attaching, main programs first: on every event the kernel
/// runs the programs of a tracepoint in the order they were attached, and a catcher must
/// come after its main program.
pub fn attach_order<P>(programs: &mut [(Program, P)]) {
    programs.sort_by_key(|(program, _)| program.catcher);
}

/// Whether `program` is attached (all are, but the main programs with CATCHERS_ONLY_ENV).
pub fn attaches(program: &Program) -> bool {
    program.catcher || !crate::attach::env_set(CATCHERS_ONLY_ENV)
}

/// Where the kernel's skips of a tool's programs are counted.
#[derive(Clone)]
pub struct SkipCounters<'a> {
    /// The main programs: their `recursion_misses` are the runs the kernel skipped.
    pub programs: Vec<BorrowedFd<'a>>,
    /// The catchers' per-CPU `nested_*` maps: their `catches` are the skipped runs a
    /// catcher ran the handler for.
    pub nested: Vec<BorrowedFd<'a>>,
}

impl SkipCounters<'_> {
    /// The skipped events the catchers counted, and those lost, from one read of each
    /// counter. Every miss of a main program is either caught or lost, so lost = misses −
    /// catches, exactly. The misses are read first: a catch always follows its miss, so a
    /// report can lag behind, never run ahead (what is printed is never taken back).
    pub fn totals(&self) -> (u64, u64) {
        let misses: u64 = self.programs.iter().map(|fd| recursion_misses(*fd)).sum();
        let caught = self.catches();
        (caught, misses.saturating_sub(caught))
    }

    /// The events the kernel skipped the main programs for and no catcher caught.
    pub fn lost(&self) -> u64 {
        self.totals().1
    }

    /// The skipped runs the catcher programs ran the handler for, all CPUs together.
    pub fn catches(&self) -> u64 {
        self.nested.iter().map(|fd| nested_catches(*fd)).sum()
    }
}

/// Events a tool never saw because the kernel skipped its program: a BPF program is not
/// re-entered on a CPU where it is already running (`recursion_misses`), and a catcher
/// program ran the handler for most of those. Reported on stderr as they grow
/// (`kernel skipped N events`).
#[derive(Default)]
pub struct Skips {
    reported: Cell<u64>,
}

impl Skips {
    /// Prints the events skipped since the last report.
    pub fn report(&self, counters: &SkipCounters<'_>) {
        let skips = counters.lost();
        if skips > self.reported.get() {
            eprintln!("kernel skipped {} events", skips - self.reported.get());
            self.reported.set(skips);
        }
    }
}

/// The `catches` of one per-CPU `struct nested_state` map, summed over CPUs; 0 when the
/// map cannot be read.
fn nested_catches(map: BorrowedFd<'_>) -> u64 {
    const VALUE_SIZE: usize = std::mem::size_of::<NestedState>();
    const CATCHES: usize = std::mem::offset_of!(NestedState, catches);
    let Ok(cpus) = libbpf_rs::num_possible_cpus() else {
        return 0;
    };
    let mut values = vec![0u8; cpus * VALUE_SIZE];
    let key = 0u32;
    // SAFETY: key is a valid u32, and values has room for one value per possible CPU.
    let ret = unsafe {
        libbpf_rs::libbpf_sys::bpf_map_lookup_elem(
            map.as_raw_fd(),
            (&key as *const u32).cast(),
            values.as_mut_ptr().cast(),
        )
    };
    if ret != 0 {
        return 0;
    }
    values
        .chunks_exact(VALUE_SIZE)
        .filter_map(|v| v[CATCHES..CATCHES + 8].try_into().ok())
        .map(u64::from_ne_bytes)
        .sum()
}

/// How many times the kernel skipped `prog` because a BPF program was already running on
/// that CPU; 0 when the kernel cannot tell.
pub fn recursion_misses(prog: BorrowedFd<'_>) -> u64 {
    prog_info(prog).map_or(0, |info| info.recursion_misses)
}
