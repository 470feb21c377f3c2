//! Events from BPF to user space: a BPF ring buffer, or a per-CPU perf buffer where the
//! kernel has none, with every lost or skipped event reported on stderr.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::nested::{SkipCounters, Skips};
use crate::out::Output;
use libbpf_rs::{
    MapCore, MapFlags, MapMut, MapType, OpenMapMut, PerfBuffer, PerfBufferBuilder, RingBuffer,
    RingBufferBuilder,
};

/// Set to anything but `0` or empty, forces the perf buffer even where a ring buffer works.
pub const FORCE_PERF_ENV: &str = "TCPTOOLS_PERF_BUFFER";
/// Size of the ring buffer (all CPUs share it); bpf/stream.bpf.h declares no size of its
/// own, this is the one.
pub const RINGBUF_BYTES: u32 = 4 << 20;
/// Size of each CPU's perf buffer, in pages.
pub const PERF_PAGES_PER_CPU: usize = 64;
/// How long one poll waits for events.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// How often lost and skipped events are checked while running.
const LOSS_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Which kind of buffer carries the events; chosen before the BPF object is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    RingBuffer,
    PerfBuffer,
}

impl Transport {
    /// The ring buffer when the kernel has one (5.8+) and the environment does not force
    /// the perf buffer.
    pub fn choose() -> Transport {
        let forced = std::env::var(FORCE_PERF_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        // SAFETY: a plain probe call; a null opts pointer is allowed.
        let has_ringbuf = unsafe {
            libbpf_rs::libbpf_sys::libbpf_probe_bpf_map_type(
                libbpf_rs::libbpf_sys::BPF_MAP_TYPE_RINGBUF,
                std::ptr::null(),
            )
        } == 1;
        if forced || !has_ringbuf {
            Transport::PerfBuffer
        } else {
            Transport::RingBuffer
        }
    }

    /// Shapes the open `events` map for this transport and tells the BPF side through its
    /// `use_ringbuf` constant (bpf/stream.bpf.h): the two must always agree.
    pub fn prepare(self, events: &mut OpenMapMut, use_ringbuf: &mut u8) -> Result<()> {
        *use_ringbuf = u8::from(self == Transport::RingBuffer);
        match self {
            Transport::RingBuffer => events.set_max_entries(RINGBUF_BYTES),
            Transport::PerfBuffer => {
                events.set_type(MapType::PerfEventArray)?;
                events.set_key_size(4)?;
                events.set_value_size(4)?;
                // 0 lets libbpf size it to the number of possible CPUs.
                events.set_max_entries(0)
            }
        }
        .context("failed to set up the event buffer map")
    }
}

enum Buffer<'a> {
    Ring(RingBuffer<'a>),
    Perf(PerfBuffer<'a>),
}

/// Where a tool's events come from: its `events` and `ringbuf_drops` maps
/// (bpf/stream.bpf.h), the kind of buffer `events` was shaped as, and what else is
/// reported: its `table_full` map (bpf/sk_store.bpf.h) and the counters of the runs the
/// kernel skipped (src/nested.rs).
pub struct EventSource<'a> {
    pub transport: Transport,
    pub events: &'a MapMut<'a>,
    pub ringbuf_drops: &'a MapMut<'a>,
    pub table_full: &'a MapMut<'a>,
    pub skips: SkipCounters<'a>,
}

/// The [`EventSource`] of an attached tool (`crate::attach::Attached`) whose BPF side
/// includes bpf/stream.bpf.h and bpf/sk_store.bpf.h, and so has the maps `events`,
/// `ringbuf_drops` and `table_full`.
#[macro_export]
macro_rules! event_source {
    ($transport:expr, $attached:expr) => {
        $crate::stream::EventSource {
            transport: $transport,
            events: &$attached.skel.maps.events,
            ringbuf_drops: &$attached.skel.maps.ringbuf_drops,
            table_full: &$attached.skel.maps.table_full,
            skips: $attached.skip_counters(),
        }
    };
}

/// A stream of raw event records, handed one at a time to a callback.
pub struct EventStream<'a> {
    buffer: Buffer<'a>,
    losses: Losses<'a>,
}

impl<'a> EventStream<'a> {
    /// Opens the stream over a loaded tool's event buffer.
    pub fn open(source: EventSource<'a>, mut on_event: impl FnMut(&[u8]) + 'a) -> Result<Self> {
        let events = source.events;
        let buffer = match source.transport {
            Transport::RingBuffer => {
                let mut builder = RingBufferBuilder::new();
                builder.add(events, move |data: &[u8]| {
                    on_event(data);
                    0
                })?;
                Buffer::Ring(builder.build().context("failed to open ring buffer")?)
            }
            Transport::PerfBuffer => Buffer::Perf(
                PerfBufferBuilder::new(events)
                    .pages(PERF_PAGES_PER_CPU)
                    .sample_cb(move |_cpu: i32, data: &[u8]| on_event(data))
                    .lost_cb(|cpu: i32, count: u64| eprintln!("lost {count} events on CPU #{cpu}"))
                    .build()
                    .context("failed to open perf buffer")?,
            ),
        };
        Ok(EventStream {
            buffer,
            losses: Losses::new(&source),
        })
    }

    /// Waits up to `timeout` for events and hands each to the callback. A signal that
    /// interrupts the wait is not an error.
    pub fn poll(&self, timeout: Duration) -> Result<()> {
        let result = match &self.buffer {
            // The BPF side skips most wakeups (bpf/stream.bpf.h): after the wait, read
            // whatever is there, woken or not.
            Buffer::Ring(ring) => ring.poll(timeout).and_then(|()| ring.consume()),
            Buffer::Perf(perf) => perf.poll(timeout),
        };
        match result {
            Err(err) if err.kind() == libbpf_rs::ErrorKind::Interrupted => Ok(()),
            other => other.context("error polling the event buffer"),
        }
    }

    /// Polls until `after_batch` returns false or a stop is requested, calling it after
    /// every poll (to flush output), and reports losses as they happen and at the end.
    pub fn run(&self, mut after_batch: impl FnMut() -> bool) -> Result<()> {
        while !crate::signal::stop_requested() {
            self.poll(POLL_TIMEOUT)?;
            if !after_batch() {
                break;
            }
            self.losses.report_if_due();
        }
        // Whatever is already in the buffer still reaches the output.
        self.poll(Duration::ZERO)?;
        after_batch();
        self.losses.report();
        Ok(())
    }
}

/// The event tools' loop: prints `header` once the event buffer is open (a perf buffer
/// drops what the kernel sends before that, so the header promises nothing is missed),
/// then `line` for each record `decode` makes of the raw bytes, flushing after each batch,
/// until SIGINT, SIGTERM or a closed stdout. A write error ends the loop and is returned.
pub fn print_events<'a, R>(
    source: EventSource<'a>,
    header: &[u8],
    decode: fn(&[u8]) -> Option<R>,
    mut line: impl FnMut(R, &mut dyn Write) -> io::Result<()> + 'a,
) -> Result<()> {
    let out = RefCell::new(Output::stdout());
    let failure = RefCell::new(None);
    let stream = EventStream::open(source, |data| {
        let Some(record) = decode(data) else {
            // bcc's words for a record shorter than its struct.
            eprintln!("Error: packet too small");
            return;
        };
        if let Err(err) = out.borrow_mut().emit(|w| line(record, w)) {
            failure.borrow_mut().get_or_insert(err);
        }
    })?;
    {
        let mut out = out.borrow_mut();
        out.emit(|w| w.write_all(header))?;
        out.flush()?;
    }
    stream.run(|| {
        let mut out = out.borrow_mut();
        if let Err(err) = out.flush() {
            failure.borrow_mut().get_or_insert(err);
        }
        failure.borrow().is_none() && !out.is_closed()
    })?;
    drop(stream);
    match failure.into_inner() {
        Some(err) => Err(err).context("failed to write output"),
        None => Ok(()),
    }
}

/// Counts of events that never reached user space, and of sockets the raw_tp programs
/// could not track, reported on stderr as they grow.
pub struct Losses<'a> {
    ringbuf_drops: &'a MapMut<'a>,
    table_full: &'a MapMut<'a>,
    skip_counters: SkipCounters<'a>,
    reported_drops: Cell<u64>,
    reported_untracked: Cell<u64>,
    skips: Skips,
    last_check: Cell<Instant>,
}

impl<'a> Losses<'a> {
    fn new(source: &EventSource<'a>) -> Self {
        Losses {
            ringbuf_drops: source.ringbuf_drops,
            table_full: source.table_full,
            skip_counters: source.skips.clone(),
            reported_drops: Cell::new(0),
            reported_untracked: Cell::new(0),
            skips: Skips::default(),
            last_check: Cell::new(Instant::now()),
        }
    }

    fn report_if_due(&self) {
        if self.last_check.get().elapsed() >= LOSS_CHECK_EVERY {
            self.report();
        }
    }

    /// Prints the events lost or skipped since the last report.
    pub fn report(&self) {
        self.last_check.set(Instant::now());
        let drops = per_cpu_sum(self.ringbuf_drops);
        if drops > self.reported_drops.get() {
            eprintln!("lost {} events", drops - self.reported_drops.get());
            self.reported_drops.set(drops);
        }
        let untracked = crate::sk_store::untracked(self.table_full);
        if untracked > self.reported_untracked.get() {
            let new = untracked - self.reported_untracked.get();
            eprintln!(
                "socket table full: {new} sockets not tracked (their next change has no start)"
            );
            self.reported_untracked.set(untracked);
        }
        self.skips.report(&self.skip_counters);
    }
}

/// The sum over CPUs of a one-entry per-CPU array of u64 counters.
pub(crate) fn per_cpu_sum(map: &MapMut) -> u64 {
    let per_cpu = map
        .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
        .ok()
        .flatten()
        .unwrap_or_default();
    per_cpu
        .iter()
        .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()))
        .map(u64::from_ne_bytes)
        .sum()
}
