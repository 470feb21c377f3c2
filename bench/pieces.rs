//! Lab: attaches bench/bpf/pieces.bpf.c's programs, drains its ring buffers, until SIGINT.
use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::RingBufferBuilder;
use skel::pieces::PiecesSkelBuilder;
use tcptools::{attach, sk_store};
use tcptools::{cli, signal};

#[path = "drain.rs"]
mod drain;
#[path = "skel.rs"]
mod skel;

/// The slot table's size, as the exporter's (src/exporter/collect.rs): room for every
/// socket of a storm, so p_slot claims and frees as a tool's table does rather than
/// finding its buckets full of listeners.
const SLOT_BITS: u32 = 13;

fn main() {
    cli::run("pieces", hold)
}

fn hold() -> Result<()> {
    signal::install()?;
    let mut object = MaybeUninit::uninit();
    let mut open = PiecesSkelBuilder::default()
        .open(&mut object)
        .context("open")?;
    let rodata = attach::rodata(&mut open.maps.rodata_data)?;
    sk_store::size_slots(
        &mut rodata.slot_bucket_bits,
        &mut open.maps.piece_slots,
        &mut open.maps.piece_slot_values,
        sk_store::Slots::Buckets(SLOT_BITS),
    )?;
    let mut skel = open.load().context("load")?;
    skel.attach().context("attach")?;
    let mut rb = RingBufferBuilder::new();
    rb.add(&skel.maps.rb_out, |_| 0)?;
    rb.add(&skel.maps.rb_res, |_| 0)?;
    rb.add(&skel.maps.rb_cpu0, |_| 0)?;
    rb.add(&skel.maps.rb_cpu1, |_| 0)?;
    drain::until_stopped(&rb.build()?)
}
