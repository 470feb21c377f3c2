//! The benchmarks' floor and reference: attaches empty tp_btf programs to the tools'
//! tracepoints (`inet_sock_set_state`, `tcp_probe`), or with `bcc-tcprtt` /
//! `bcc-tcpconnlat` the program that does what bcc's handler does (bench/bpf/bench_bcc.bpf.c),
//! prints `ready`, and holds them until SIGINT or SIGTERM. The floor's per-run cost is what
//! being attached costs any tracer. With `contention`, the floor and the lock contention
//! counter (bench/bpf/contention.bpf.c): at the stop it prints one line,
//! `contention ALL SPINS SPIN_NS NESTED RING RING_NS`, the sums over the CPUs since it was
//! loaded (RING and RING_NS `-` where /proc/kallsyms has no `__bpf_ringbuf_reserve`); with
//! `bcc-tcpconnlat`, `records N`, the records it drained from the reference's ring.

use std::mem::MaybeUninit;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, RingBufferBuilder};
use skel::bench_bcc::BenchBccSkelBuilder;
use skel::contention::ContentionSkelBuilder;
use skel::floor::FloorSkelBuilder;
use tcptools::{cli, privilege, signal};

#[path = "drain.rs"]
mod drain;
#[path = "skel.rs"]
mod skel;

/// bench/bpf/contention.bpf.c's slots: all, spinning, ns spun, nested, ring, ns ring.
const CONTENTION_SLOTS: u32 = 6;
/// The kernel function that takes a BPF ring buffer's spinlock (kernel/bpf/ringbuf.c).
const RING_RESERVE: &str = "__bpf_ringbuf_reserve";

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
            let _floor = load_floor(&mut object)?;
            hold()
        }
        "contention" => {
            let mut object = MaybeUninit::uninit();
            let _floor = load_floor(&mut object)?;
            let mut object = MaybeUninit::uninit();
            let mut open = ContentionSkelBuilder::default()
                .open(&mut object)
                .context("failed to open BPF object")?;
            let ring_reserve = kernel_function(RING_RESERVE)?;
            if let Some((lo, hi)) = ring_reserve {
                let rodata = tcptools::attach::rodata(&mut open.maps.rodata_data)?;
                rodata.ring_reserve_lo = lo;
                rodata.ring_reserve_hi = hi;
            }
            let mut skel = open.load().context("failed to load BPF object")?;
            skel.attach().context("failed to attach BPF programs")?;
            hold()?;
            let sums = (0..CONTENTION_SLOTS)
                .map(|slot| percpu_sum(&skel.maps.contention, slot))
                .collect::<Result<Vec<_>>>()?;
            let mut sums: Vec<String> = sums.iter().map(u64::to_string).collect();
            if ring_reserve.is_none() {
                sums.truncate(sums.len() - 2);
                sums.extend(["-".to_owned(), "-".to_owned()]);
            }
            println!("contention {}", sums.join(" "));
            Ok(())
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
            let records = std::rc::Rc::new(std::cell::Cell::new(0u64));
            let seen = records.clone();
            let mut rb = RingBufferBuilder::new();
            rb.add(&skel.maps.bcc_connlat_events, move |_| {
                seen.set(seen.get() + 1);
                0
            })?;
            drain::until_stopped(&rb.build()?)?;
            println!("records {}", records.get());
            Ok(())
        }
        other => {
            bail!("unknown program set {other:?} (none, contention, bcc-tcprtt or bcc-tcpconnlat)")
        }
    }
}

fn load_floor(
    object: &mut MaybeUninit<libbpf_rs::OpenObject>,
) -> Result<skel::floor::FloorSkel<'_>> {
    let open = FloorSkelBuilder::default()
        .open(object)
        .context("failed to open BPF object")?;
    let mut skel = open.load().context("failed to load BPF object")?;
    skel.attach().context("failed to attach BPF programs")?;
    Ok(skel)
}

/// Says `ready`, then holds what is attached until SIGINT or SIGTERM.
fn hold() -> Result<()> {
    println!("ready");
    while signal::sleep_unless_stopped(Duration::from_secs(3600)) {}
    Ok(())
}

/// The sum over the CPUs of a per-CPU array's u64 at `slot`.
fn percpu_sum(map: &impl MapCore, slot: u32) -> Result<u64> {
    let values = map
        .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
        .context("failed to read the contention counters")?
        .unwrap_or_default();
    Ok(values
        .iter()
        .filter_map(|v| v.get(..8)?.try_into().ok().map(u64::from_ne_bytes))
        .sum())
}

/// Where a kernel function's text lies, [start, next symbol's start), from /proc/kallsyms;
/// None where it has no such symbol (inlined, or addresses hidden).
fn kernel_function(name: &str) -> Result<Option<(u64, u64)>> {
    let text =
        std::fs::read_to_string("/proc/kallsyms").context("failed to read /proc/kallsyms")?;
    let symbols: Vec<(u64, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = u64::from_str_radix(fields.next()?, 16).ok()?;
            Some((addr, fields.nth(1)?))
        })
        .collect();
    let Some(&(start, _)) = symbols.iter().find(|(a, n)| *n == name && *a != 0) else {
        return Ok(None);
    };
    let end = symbols.iter().map(|&(a, _)| a).filter(|&a| a > start).min();
    Ok(end.map(|end| (start, end)))
}
