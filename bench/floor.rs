//! The benchmarks' floor: attaches empty tp_btf programs to the tools' tracepoints
//! (`inet_sock_set_state`, `tcp_probe`), prints `ready`, and holds them until SIGINT or
//! SIGTERM. Their per-run cost is what being attached costs any tracer.

use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use tcptools::skel::floor::FloorSkelBuilder;
use tcptools::{cli, privilege, signal};

fn main() {
    cli::run("floor", hold_floor)
}

fn hold_floor() -> Result<()> {
    privilege::require_bpf()?;
    signal::install()?;
    let mut object = MaybeUninit::uninit();
    let open = FloorSkelBuilder::default()
        .open(&mut object)
        .context("failed to open BPF object")?;
    let mut skel = open.load().context("failed to load BPF object")?;
    skel.attach().context("failed to attach BPF programs")?;
    println!("ready");
    while signal::sleep_unless_stopped(std::time::Duration::from_secs(3600)) {}
    Ok(())
}
