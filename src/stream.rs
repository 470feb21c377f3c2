//! Events from BPF to user space: a BPF ring buffer per CPU, one ring buffer shared by
//! every CPU where the kernel cannot hold ring buffers in a map of maps, or a per-CPU perf
//! buffer where it has no ring buffer; printed in time order whichever carries them, with
//! every lost or skipped event reported on stderr.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::nested::{SkipCounters, Skips};
use crate::out::Output;
use crate::reorder::Reorder;
use crate::time::monotonic_us;
use libbpf_rs::{
    MapCore, MapFlags, MapHandle, MapMut, MapType, OpenMapMut, PerfBuffer, PerfBufferBuilder,
    RingBuffer, RingBufferBuilder,
};

/// Set to anything but `0` or empty, forces the perf buffer even where a ring buffer works.
pub const FORCE_PERF_ENV: &str = "TCPTOOLS_PERF_BUFFER";
/// Set to anything but `0` or empty, forces one shared ring buffer where per-CPU rings work.
pub const FORCE_SHARED_RING_ENV: &str = "TCPTOOLS_SHARED_RING";
/// Size of the shared ring buffer, and what the per-CPU rings share out (each at least
/// [`MIN_CPU_RING_BYTES`]); bpf/stream.bpf.h declares no size of its own, this is the one.
/// A ring's pages count twice in the reader's resident memory (libbpf maps the data twice,
/// so a record never wraps), and the kernel's memory is locked: the rings of all CPUs
/// together are as large as the shared ring until the minimum below takes over.
pub const RINGBUF_BYTES: u32 = 4 << 20;
/// The smallest ring of one CPU: what bcc's perf buffer gives each CPU (64 pages). On 2
/// CPUs each ring is 2 MiB, on 16 or more 256 KiB.
pub const MIN_CPU_RING_BYTES: u32 = 256 << 10;
/// Size of each CPU's perf buffer, in pages.
pub const PERF_PAGES_PER_CPU: usize = 64;
/// How long one poll waits for events when none is held for ordering.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a record is held for records of other CPUs that are older to be read first:
/// far more than a BPF program takes from stamping a record to committing it, even on a
/// busy virtual machine. No line is printed later than this after its event.
pub const REORDER_WINDOW: Duration = Duration::from_millis(20);
/// How often lost and skipped events are checked while running.
const LOSS_CHECK_EVERY: Duration = Duration::from_secs(1);
/// The BPF side's map of per-CPU rings (bpf/stream.bpf.h).
const CPU_RINGS_MAP: &str = "cpu_rings";

/// Which kind of buffer carries the events; chosen before the BPF object is loaded.
#[derive(Debug)]
pub enum Transport {
    /// A ring buffer per CPU (Linux 5.10 here: ring buffers in a map of maps), made and
    /// being put in their map while the object loads.
    CpuRings(CpuRings),
    /// One ring buffer for every CPU (Linux 5.8).
    RingBuffer,
    PerfBuffer,
}

impl Transport {
    /// Per-CPU rings where the kernel takes them, else the shared ring buffer where it has
    /// one (5.8+), else the perf buffer; the environment may force the latter two. With
    /// `-v`, says which and why. Making the rings is the probe for them, and they are put
    /// in their map from here on, while the object loads ([`CpuRings`]).
    pub fn choose() -> Transport {
        let (transport, why) = if crate::attach::env_set(FORCE_PERF_ENV) {
            (Transport::PerfBuffer, format!("{FORCE_PERF_ENV} is set"))
        } else {
            match ring_template() {
                Err(err) => (Transport::PerfBuffer, format!("no BPF ring buffer: {err}")),
                Ok(_) if crate::attach::env_set(FORCE_SHARED_RING_ENV) => (
                    Transport::RingBuffer,
                    format!("{FORCE_SHARED_RING_ENV} is set"),
                ),
                Ok(template) => match CpuRings::start(&template) {
                    Ok(rings) => (Transport::CpuRings(rings), "one per CPU".to_owned()),
                    Err(err) => (Transport::RingBuffer, format!("{err:#}")),
                },
            }
        };
        if crate::attach::verbose() {
            eprintln!("events: {} ({why})", transport.name());
        }
        transport
    }

    fn name(&self) -> &'static str {
        match self {
            Transport::CpuRings(_) => "per-CPU ring buffers, merged in time order",
            Transport::RingBuffer => "one shared ring buffer",
            Transport::PerfBuffer => "perf buffer",
        }
    }

    /// Shapes the open `events` and `cpu_rings` maps for this transport and tells the BPF
    /// side through its `use_ringbuf` and `ring_per_cpu` constants (bpf/stream.bpf.h): they
    /// must always agree. Used through [`prepare_stream!`](crate::prepare_stream).
    pub fn prepare(
        &self,
        events: &mut OpenMapMut,
        cpu_rings: &mut OpenMapMut,
        use_ringbuf: &mut u8,
        ring_per_cpu: &mut u8,
    ) -> Result<()> {
        *use_ringbuf = u8::from(!matches!(self, Transport::PerfBuffer));
        *ring_per_cpu = u8::from(matches!(self, Transport::CpuRings(_)));
        match self {
            Transport::CpuRings(rings) => {
                // The object takes the map of rings made at start: `events` stays, unused,
                // as small as a ring can be.
                events.set_max_entries(page_size())?;
                cpu_rings.reuse_fd(rings.outer.as_fd())
            }
            Transport::RingBuffer => {
                events.set_max_entries(RINGBUF_BYTES)?;
                placeholder(cpu_rings)
            }
            Transport::PerfBuffer => {
                events.set_type(MapType::PerfEventArray)?;
                events.set_key_size(4)?;
                events.set_value_size(4)?;
                // 0 lets libbpf size it to the number of possible CPUs.
                events.set_max_entries(0)?;
                placeholder(cpu_rings)
            }
        }
        .context("failed to set up the event buffer map")
    }

    /// Waits until every CPU's ring is in its map, where there are per-CPU rings: to be
    /// called before any program is attached, so none finds its CPU's slot empty.
    pub fn wait_ready(&self) -> Result<()> {
        match self {
            Transport::CpuRings(rings) => rings.wait_filled(),
            _ => Ok(()),
        }
    }

    /// The per-CPU rings, one per possible CPU; none with another transport.
    pub fn cpu_rings(&self) -> &[MapHandle] {
        match self {
            Transport::CpuRings(rings) => rings.rings(),
            _ => &[],
        }
    }
}

/// A ring per possible CPU and the map of maps (`cpu_rings`, bpf/stream.bpf.h) that holds
/// them. The kernel waits for an RCU grace period after every update of a map of maps from
/// user space (milliseconds: it was most of a tool's start-up): the rings are made and
/// put in their map on a thread of their own, started before the object is opened, so that
/// wait (and the rings' allocation) overlaps the object's load (BTF, relocations,
/// verification) instead of following it.
pub struct CpuRings {
    /// Handed to the object in place of the map it declares ([`Transport::prepare`]).
    outer: MapHandle,
    filling: Mutex<Filling>,
    /// The rings, once in their map.
    rings: OnceLock<Vec<MapHandle>>,
}

enum Filling {
    /// The thread making the rings and putting them in the map; it holds the map's raw
    /// descriptor, so it is joined before the map is closed (Drop).
    Running(JoinHandle<Result<Vec<MapHandle>>>),
    Done,
    Failed(String),
}

impl std::fmt::Debug for CpuRings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuRings")
            .field("rings", &self.rings.get().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl CpuRings {
    /// Makes the map of maps, whose inner maps are like `template` (the kernel refuses
    /// ring buffers in one before 5.10: that error says so), and starts making a ring for
    /// every possible CPU and putting them in it.
    fn start(template: &MapHandle) -> Result<CpuRings> {
        let mut opts = create_opts();
        opts.inner_map_fd = template.as_fd().as_raw_fd() as u32;
        let cpus = possible_cpus().context("failed to count the possible CPUs")?;
        // Named as the object's map: libbpf takes the name of a map it reuses.
        let outer = MapHandle::create(MapType::ArrayOfMaps, Some(CPU_RINGS_MAP), 4, 4, cpus, &opts)
            .context("no ring buffers in a map of maps")?;
        let outer_fd = outer.as_fd().as_raw_fd();
        let thread = std::thread::Builder::new()
            .name("cpu-rings".into())
            .spawn(move || fill(outer_fd, cpus))
            .context("failed to start the thread that fills the per-CPU rings' map")?;
        Ok(CpuRings {
            outer,
            filling: Mutex::new(Filling::Running(thread)),
            rings: OnceLock::new(),
        })
    }

    /// Joins the filling thread once; its error is returned to every caller (a retry
    /// with other programs meets it again).
    fn wait_filled(&self) -> Result<()> {
        let mut filling = self.filling.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rings) = filling.finish() {
            let _ = self.rings.set(rings);
        }
        match &*filling {
            Filling::Failed(err) => Err(anyhow::anyhow!("{err}")),
            _ => Ok(()),
        }
    }

    /// The rings, in CPU order; none before [`CpuRings::wait_filled`].
    fn rings(&self) -> &[MapHandle] {
        self.rings.get().map_or(&[], Vec::as_slice)
    }
}

impl Drop for CpuRings {
    fn drop(&mut self) {
        self.filling
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .finish();
    }
}

impl Filling {
    /// Joins the thread if it still runs, keeping its outcome; returns its rings.
    fn finish(&mut self) -> Option<Vec<MapHandle>> {
        let Filling::Running(thread) = std::mem::replace(self, Filling::Done) else {
            return None;
        };
        let outcome = thread
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the thread filling the map panicked")));
        match outcome {
            Ok(rings) => Some(rings),
            Err(err) => {
                *self = Filling::Failed(format!("{err:#}"));
                None
            }
        }
    }
}

/// Makes `cpus` rings and puts ring `i` at key `i` of the map `outer`.
fn fill(outer: RawFd, cpus: u32) -> Result<Vec<MapHandle>> {
    let bytes = cpu_ring_bytes(cpus);
    let rings = (0..cpus)
        .map(|_| {
            MapHandle::create(
                MapType::RingBuf,
                Some("cpu_ring"),
                0,
                0,
                bytes,
                &create_opts(),
            )
        })
        .collect::<libbpf_rs::Result<Vec<_>>>()
        .context("failed to make the per-CPU ring buffers")?;
    let fds: Vec<RawFd> = rings.iter().map(|ring| ring.as_fd().as_raw_fd()).collect();
    insert_rings(outer, &fds).context("failed to put the per-CPU rings in their map")?;
    Ok(rings)
}

/// `prepare_stream!(transport, open, rodata)`: [`Transport::prepare`] on the maps and
/// constants of an open skeleton whose BPF side includes bpf/stream.bpf.h.
#[macro_export]
macro_rules! prepare_stream {
    ($transport:expr, $open:expr, $rodata:expr) => {
        $transport.prepare(
            &mut $open.maps.events,
            &mut $open.maps.cpu_rings,
            &mut $rodata.use_ringbuf,
            &mut $rodata.ring_per_cpu,
        )
    };
}

/// Where per-CPU rings are not used, `cpu_rings` is a one-entry array: the kernel then
/// never sees a ring buffer in a map of maps, which it may refuse.
fn placeholder(cpu_rings: &mut OpenMapMut) -> libbpf_rs::Result<()> {
    let array = MapHandle::create(MapType::Array, Some(CPU_RINGS_MAP), 4, 4, 1, &create_opts())?;
    cpu_rings.reuse_fd(array.as_fd())
}

/// Puts ring `i` at key `i`. The kernel waits for an RCU grace period after every update
/// of a map of maps from user space: one batch update waits once; where the kernel has no
/// batch for it, the updates run side by side and share their grace periods.
fn insert_rings(outer: RawFd, fds: &[RawFd]) -> io::Result<()> {
    use libbpf_rs::libbpf_sys::{bpf_map_update_batch, bpf_map_update_elem};
    let keys: Vec<u32> = (0..fds.len() as u32).collect();
    let mut count = keys.len() as u32;
    // SAFETY: keys and fds hold `count` elements of the map's key and value size (4 bytes);
    // a null opts pointer is allowed.
    let batch = unsafe {
        bpf_map_update_batch(
            outer,
            keys.as_ptr().cast(),
            fds.as_ptr().cast(),
            &mut count,
            std::ptr::null(),
        )
    };
    if batch == 0 {
        return Ok(());
    }
    std::thread::scope(|scope| {
        let updates: Vec<_> = keys
            .iter()
            .zip(fds)
            .map(|(key, fd)| {
                scope.spawn(move || {
                    // SAFETY: key and fd are 4-byte values, the map's key and value size.
                    let ret = unsafe {
                        bpf_map_update_elem(
                            outer,
                            (key as *const u32).cast(),
                            (fd as *const i32).cast(),
                            0,
                        )
                    };
                    if ret == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::last_os_error())
                    }
                })
            })
            .collect();
        updates.into_iter().try_for_each(|update| {
            update
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("update thread panicked")))
        })
    })
}

/// Each CPU's share of [`RINGBUF_BYTES`], a power of two (as ring sizes must be) no
/// smaller than [`MIN_CPU_RING_BYTES`].
pub fn cpu_ring_bytes(cpus: u32) -> u32 {
    (RINGBUF_BYTES / cpus.max(1))
        .next_power_of_two()
        .max(MIN_CPU_RING_BYTES)
}

/// A ring buffer as small as one can be: the probe for ring buffers, and the template of
/// the per-CPU rings' map (the kernel's check of an inner ring buffer compares no size).
fn ring_template() -> libbpf_rs::Result<MapHandle> {
    MapHandle::create(
        MapType::RingBuf,
        None::<&str>,
        0,
        0,
        page_size(),
        &create_opts(),
    )
}

fn create_opts() -> libbpf_rs::libbpf_sys::bpf_map_create_opts {
    libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    }
}

fn page_size() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u32::try_from(size).ok())
        .unwrap_or(4096)
}

fn possible_cpus() -> libbpf_rs::Result<u32> {
    let cpus = libbpf_rs::num_possible_cpus()?;
    Ok(u32::try_from(cpus).unwrap_or(u32::MAX))
}

enum Buffer<'a> {
    Ring(RingBuffer<'a>),
    Perf(PerfBuffer<'a>),
}

/// Where a tool's events come from: its `events`, `ringbuf_drops` maps (bpf/stream.bpf.h),
/// the transport it was loaded for (with its per-CPU rings), and what else is
/// reported: its `table_full` map (bpf/sk_store.bpf.h) and the counters of the runs the
/// kernel skipped (src/nested.rs).
pub struct EventSource<'a> {
    pub transport: &'a Transport,
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
            transport: &$transport,
            events: &$attached.skel.maps.events,
            ringbuf_drops: &$attached.skel.maps.ringbuf_drops,
            table_full: &$attached.skel.maps.table_full,
            skips: $attached.skip_counters(),
        }
    };
}

/// A stream of raw event records, handed one at a time to a callback in the order the
/// buffers hold them, with the buffer each came from (a CPU's ring or perf buffer; 0 for
/// the shared ring).
pub struct EventStream<'a> {
    buffer: Buffer<'a>,
    losses: Losses<'a>,
}

impl<'a> EventStream<'a> {
    /// Opens the stream over a loaded tool's event buffers.
    pub fn open(source: EventSource<'a>, on_event: impl FnMut(usize, &[u8]) + 'a) -> Result<Self> {
        let buffer = match source.transport {
            Transport::CpuRings(_) => {
                let maps = source
                    .transport
                    .cpu_rings()
                    .iter()
                    .map(|ring| ring as &dyn MapCore);
                Buffer::Ring(rings(maps.collect(), on_event)?)
            }
            Transport::RingBuffer => Buffer::Ring(rings(vec![source.events], on_event)?),
            Transport::PerfBuffer => {
                let on_event = RefCell::new(on_event);
                Buffer::Perf(
                    PerfBufferBuilder::new(source.events)
                        .pages(PERF_PAGES_PER_CPU)
                        .sample_cb(move |cpu: i32, data: &[u8]| {
                            (on_event.borrow_mut())(cpu.max(0) as usize, data)
                        })
                        .lost_cb(|cpu: i32, count: u64| {
                            eprintln!("lost {count} events on CPU #{cpu}")
                        })
                        .build()
                        .context("failed to open perf buffer")?,
                )
            }
        };
        Ok(EventStream {
            buffer,
            losses: Losses::new(&source),
        })
    }

    /// Waits up to `timeout` for events, then reads every buffer to its end, handing each
    /// record to the callback. A signal that interrupts the wait is not an error.
    pub fn poll(&self, timeout: Duration) -> Result<()> {
        self.wait(timeout)?;
        self.drain()
    }

    /// Waits up to `timeout` for a buffer's wakeup (reading the buffers that woke).
    fn wait(&self, timeout: Duration) -> Result<()> {
        let result = match &self.buffer {
            Buffer::Ring(ring) => ring.poll(timeout),
            Buffer::Perf(perf) => perf.poll(timeout),
        };
        interrupted_is_ok(result)
    }

    /// Reads every buffer to its end, woken or not: the BPF side skips most wakeups
    /// (bpf/stream.bpf.h).
    fn drain(&self) -> Result<()> {
        let result = match &self.buffer {
            Buffer::Ring(ring) => ring.consume(),
            Buffer::Perf(perf) => perf.consume(),
        };
        interrupted_is_ok(result)
    }
}

fn interrupted_is_ok(result: libbpf_rs::Result<()>) -> Result<()> {
    match result {
        Err(err) if err.kind() == libbpf_rs::ErrorKind::Interrupted => Ok(()),
        other => other.context("error polling the event buffer"),
    }
}

/// One reader over `maps`' rings, all handing their records to `on_event` with the index
/// of their ring.
fn rings<'a>(
    maps: Vec<&'a dyn MapCore>,
    on_event: impl FnMut(usize, &[u8]) + 'a,
) -> Result<RingBuffer<'a>> {
    let on_event = Rc::new(RefCell::new(on_event));
    let mut builder = RingBufferBuilder::new();
    for (ring, map) in maps.into_iter().enumerate() {
        let on_event = Rc::clone(&on_event);
        builder.add(map, move |data: &[u8]| {
            (on_event.borrow_mut())(ring, data);
            0
        })?;
    }
    builder.build().context("failed to open ring buffer")
}

/// A record's own time, as the kernel stamped it: what lines are ordered by.
pub trait KernelTime {
    /// Kernel monotonic time (CLOCK_MONOTONIC), in microseconds.
    fn kernel_time_us(&self) -> u64;
}

/// The event tools' loop: prints `header` once the event buffer is open (a perf buffer
/// drops what the kernel sends before that, so the header promises nothing is missed),
/// then `line` for each record `decode` makes of the raw bytes, in the order of the
/// records' kernel times across every CPU (held at most [`REORDER_WINDOW`]), flushing
/// after each batch, until SIGINT, SIGTERM or a closed stdout. A write error ends the loop
/// and is returned.
pub fn print_events<'a, R: KernelTime + 'a>(
    source: EventSource<'a>,
    header: &[u8],
    decode: fn(&[u8]) -> Option<R>,
    mut line: impl FnMut(R, &mut dyn Write) -> io::Result<()> + 'a,
) -> Result<()> {
    let held = Rc::new(RefCell::new(Reorder::new(REORDER_WINDOW)));
    let arrivals = Rc::clone(&held);
    let stream = EventStream::open(source, move |buffer, data| match decode(data) {
        Some(record) => arrivals
            .borrow_mut()
            .push(buffer, record.kernel_time_us(), record),
        // bcc's words for a record shorter than its struct.
        None => eprintln!("Error: packet too small"),
    })?;
    let mut out = Output::stdout();
    out.emit(|w| w.write_all(header))?;
    out.flush()?;
    let mut failure = None;
    let mut print = |record: R, out: &mut Output, failure: &mut Option<io::Error>| {
        if let Err(err) = out.emit(|w| line(record, w)) {
            failure.get_or_insert(err);
        }
    };
    while !crate::signal::stop_requested() {
        // A statement of its own: the wait hands records to `held`, which must not be
        // borrowed then.
        let timeout = poll_timeout(&held.borrow());
        stream.wait(timeout)?;
        let drained_us = monotonic_us();
        stream.drain()?;
        held.borrow_mut()
            .release(drained_us, |r| print(r, &mut out, &mut failure));
        if let Err(err) = out.flush() {
            failure.get_or_insert(err);
        }
        if failure.is_some() || out.is_closed() {
            break;
        }
        stream.losses.report_if_due();
    }
    // Whatever is already in the buffers still reaches the output.
    stream.drain()?;
    held.borrow_mut()
        .release_all(|r| print(r, &mut out, &mut failure));
    if let Err(err) = out.flush() {
        failure.get_or_insert(err);
    }
    stream.losses.report();
    let late = held.borrow().late();
    if late > 0 && crate::attach::verbose() {
        eprintln!("{late} events came later than the reorder window: printed out of time order");
    }
    match failure {
        Some(err) => Err(err).context("failed to write output"),
        None => Ok(()),
    }
}

/// How long to wait for the buffers: until the oldest record held is due, at most
/// [`POLL_TIMEOUT`]. Polls wait whole milliseconds: rounded up, a record due soon is not
/// spun for.
fn poll_timeout<R>(held: &Reorder<R>) -> Duration {
    held.due_in(monotonic_us()).map_or(POLL_TIMEOUT, |due| {
        Duration::from_millis(due.as_micros().div_ceil(1000) as u64).min(POLL_TIMEOUT)
    })
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
