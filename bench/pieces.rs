//! Lab: attaches bpf/pieces.bpf.c's programs, drains its ring buffers, until SIGINT.
use std::mem::MaybeUninit;
use std::time::Duration;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::RingBufferBuilder;
use tcptools::skel::pieces::PiecesSkelBuilder;
use tcptools::{cli, signal};

fn main() {
    cli::run("pieces", hold)
}

fn hold() -> Result<()> {
    signal::install()?;
    let mut object = MaybeUninit::uninit();
    let open = PiecesSkelBuilder::default()
        .open(&mut object)
        .context("open")?;
    let mut skel = open.load().context("load")?;
    skel.attach().context("attach")?;
    let mut rb = RingBufferBuilder::new();
    rb.add(&skel.maps.rb_out, |_| 0)?;
    rb.add(&skel.maps.rb_res, |_| 0)?;
    let rb = rb.build()?;
    println!("ready");
    while !signal::stop_requested() {
        rb.poll(Duration::from_millis(5))?;
    }
    Ok(())
}
