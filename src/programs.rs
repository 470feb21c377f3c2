//! The tools' BPF programs by name, in one table: each program set of bpf/programs.bpf.h
//! (a tracepoint's main program and catcher per hook, and the catchers' state map), read
//! from the skeletons' generated fields, so that a rename in C fails this build.

use std::os::fd::{AsRawFd, BorrowedFd};

use libbpf_rs::{MapMut, OpenProgramMut, ProgramMut};

use crate::attach::{Hook, SkelOf};

/// One program of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    /// The program's name without its hook: `set_state`, `catch_state`, ... (the exporter's
    /// `program` label).
    pub name: &'static str,
    pub hook: Hook,
    /// Whether it is the catcher of its set (bpf/nested.bpf.h, src/nested.rs).
    pub catcher: bool,
}

/// A tool's skeleton, as `attach::load` sees it: its programs and its catchers' state
/// maps. Implemented by [`program_sets!`](crate::program_sets).
pub trait ProgramSets: libbpf_rs::skel::SkelBuilder<'static> {
    /// Every program of the open skeleton, to choose the hook's before load.
    fn open_programs(open: &mut Self::Output) -> Vec<(Program, &mut OpenProgramMut<'static>)>;
    /// Every program of the loaded skeleton.
    fn programs(skel: &mut SkelOf<Self>) -> Vec<(Program, &mut ProgramMut<'static>)>;
    /// The catchers' per-CPU `struct nested_state` maps, one per set.
    fn nested_maps(skel: &SkelOf<Self>) -> Vec<&MapMut<'static>>;
}

/// Implements [`ProgramSets`] for a skeleton builder whose BPF side defines the program
/// sets named (`set_state`: SET_STATE_PROGRAMS, `tcp_probe`: TCP_PROBE_PROGRAMS). The
/// `@set` rules are the table: each set's label, programs and state map.
#[macro_export]
macro_rules! program_sets {
    ($builder:ty: $($set:ident),+) => {
        impl $crate::programs::ProgramSets for $builder {
            fn open_programs<'a>(
                open: &'a mut <$builder as libbpf_rs::skel::SkelBuilder<'static>>::Output,
            ) -> Vec<($crate::programs::Program, &'a mut libbpf_rs::OpenProgramMut<'static>)> {
                let mut all = Vec::new();
                $( all.extend($crate::program_sets!(@set $set, open.progs)); )+
                all
            }

            fn programs(
                skel: &mut $crate::attach::SkelOf<$builder>,
            ) -> Vec<($crate::programs::Program, &mut libbpf_rs::ProgramMut<'static>)> {
                let mut all = Vec::new();
                $( all.extend($crate::program_sets!(@set $set, skel.progs)); )+
                all
            }

            fn nested_maps(
                skel: &$crate::attach::SkelOf<$builder>,
            ) -> Vec<&libbpf_rs::MapMut<'static>> {
                vec![$( $crate::program_sets!(@nested $set, skel.maps) ),+]
            }
        }
    };
    (@set set_state, $progs:expr) => {
        $crate::program_sets!(@pairs $progs, "set_state", "catch_state",
            set_state_btf, catch_state_btf, set_state_raw, catch_state_raw)
    };
    (@set tcp_probe, $progs:expr) => {
        $crate::program_sets!(@pairs $progs, "tcp_probe", "catch_probe",
            tcp_probe_btf, catch_probe_btf, tcp_probe_raw, catch_probe_raw)
    };
    (@nested set_state, $maps:expr) => { &$maps.nested_set_state };
    (@nested tcp_probe, $maps:expr) => { &$maps.nested_tcp_probe };
    (@pairs $progs:expr, $main:literal, $catcher:literal,
        $btf:ident, $catch_btf:ident, $raw:ident, $catch_raw:ident) => {{
        use $crate::attach::Hook::{RawTp, TpBtf};
        use $crate::programs::Program;
        let program = |name, hook, catcher| Program { name, hook, catcher };
        [
            (program($main, TpBtf, false), &mut $progs.$btf),
            (program($catcher, TpBtf, true), &mut $progs.$catch_btf),
            (program($main, RawTp, false), &mut $progs.$raw),
            (program($catcher, RawTp, true), &mut $progs.$catch_raw),
        ]
    }};
}

// The table: the program sets each tool's BPF side defines (SET_STATE_PROGRAMS and
// TCP_PROBE_PROGRAMS in bpf/NAME.bpf.c).
crate::program_sets!(crate::skel::tcpstates::TcpstatesSkelBuilder: set_state);
crate::program_sets!(crate::skel::tcpconnlat::TcpconnlatSkelBuilder: set_state);
crate::program_sets!(crate::skel::tcprtt::TcprttSkelBuilder: tcp_probe);
crate::program_sets!(crate::skel::exporter::ExporterSkelBuilder: set_state, tcp_probe);

/// The kernel's information on `prog` (run statistics, recursion misses).
pub fn prog_info(prog: BorrowedFd<'_>) -> Option<libbpf_rs::libbpf_sys::bpf_prog_info> {
    let mut info = libbpf_rs::libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: info is a properly sized, writable bpf_prog_info and len says its size.
    let ret = unsafe {
        libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info, &mut len)
    };
    (ret == 0).then_some(info)
}
