//! The benchmarks' floor and reference: attaches empty tp_btf programs to the tools'
//! tracepoints (`inet_sock_set_state`, `tcp_probe`), or with `bcc-tcprtt` /
//! `bcc-tcpconnlat` the program that does what bcc's handler does (bench/bpf/bench_bcc.bpf.c),
//! prints `ready`, and holds them until SIGINT or SIGTERM. The floor's per-run cost is what
//! being attached costs any tracer.

use std::mem::MaybeUninit;

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use skel::bench_bcc::BenchBccSkelBuilder;
use skel::floor::FloorSkelBuilder;
use tcptools::{cli, privilege, signal};

#[path = "skel.rs"]
mod skel;

fn main() {
    cli::run("floor", hold_floor)
}

fn hold_floor() -> Result<()> {
    privilege::require_bpf()?;
    signal::install()?;
    let which = std::env::args().nth(1).unwrap_or_default();
    match which.as_str() {
        "" => {
            let mut object = MaybeUninit::uninit();
            let open = FloorSkelBuilder::default()
                .open(&mut object)
                .context("failed to open BPF object")?;
            let mut skel = open.load().context("failed to load BPF object")?;
            skel.attach().context("failed to attach BPF programs")?;
            hold()
        }
        "bcc-tcprtt" | "bcc-tcpconnlat" => {
            let mut object = MaybeUninit::uninit();
            let mut open = BenchBccSkelBuilder::default()
                .open(&mut object)
                .context("failed to open BPF object")?;
            let wanted = which.replace('-', "_");
            for mut prog in open.open_object_mut().progs_mut() {
                let ours = prog.name().to_string_lossy() == wanted;
                prog.set_autoload(ours);
            }
            let mut skel = open.load().context("failed to load BPF object")?;
            skel.attach().context("failed to attach BPF programs")?;
            hold()
        }
        other => bail!("unknown program set {other:?} (none, bcc-tcprtt or bcc-tcpconnlat)"),
    }
}

/// Says `ready`, then holds what is attached until SIGINT or SIGTERM.
fn hold() -> Result<()> {
    println!("ready");
    while signal::sleep_unless_stopped(std::time::Duration::from_secs(3600)) {}
    Ok(())
}
