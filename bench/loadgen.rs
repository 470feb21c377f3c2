//! Loopback TCP connection storm: the load generator for tcptools' benchmarks.
//!
//! Client workers open connections round-robin over `--ports` listening ports on a
//! loopback address, optionally exchange `--rounds` one-byte request/response pairs,
//! and close first with a normal FIN. A few server threads accept on nonblocking
//! listeners, echo whatever arrives, read to EOF and close. Every connection
//! therefore walks the full state sequence on both ends: exactly 10
//! `sock:inet_sock_set_state` events per connection, plus 2 per listener.
//!
//! The run is bounded by `--conns` and `--max-seconds`; the summary goes to stdout
//! as `conns=N errors=E seconds=S rate=R` (or one JSON line with `--json`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::raw::c_int;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// How long a server thread sleeps in poll() before it looks at the stop flag again.
const SERVER_POLL_MS: u16 = 10;
/// Connections a server thread accepts from one listener before it serves others.
const ACCEPT_BATCH: usize = 64;
/// Time the servers get after the clients finish to serve the last connections.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Accept queue length asked for on every listener; the kernel caps it at
/// net.core.somaxconn. std listens with 128, which a storm can overflow while the
/// servers are starved of CPU, and an overflow costs the client a 1 s SYN retransmit.
const LISTEN_BACKLOG: c_int = 4096;
/// A paced worker that falls further behind its schedule than this drops the missed
/// slots instead of catching up in a burst. It is wide enough to absorb ordinary
/// scheduling delays on a busy 2-CPU machine (so the offered rate holds) and small
/// enough that a catch-up burst stays short.
const MAX_PACING_LAG: Duration = Duration::from_millis(20);

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Loopback TCP connection storm for benchmarking TCP tracers"
)]
struct Args {
    /// Loopback address to listen on and connect to (127.0.0.0/8 or ::1)
    #[arg(long, default_value = "127.0.0.1")]
    addr: IpAddr,

    /// First listening port
    #[arg(long, default_value_t = 40000)]
    base_port: u16,

    /// Number of listening ports (base-port .. base-port+ports-1), used round-robin
    #[arg(long, default_value_t = 16)]
    ports: u16,

    /// Client worker threads
    #[arg(long, default_value_t = 4)]
    workers: u32,

    /// Server threads sharing the listeners
    #[arg(long, default_value_t = 2)]
    server_threads: u32,

    /// Total connections to make
    #[arg(long)]
    conns: u64,

    /// Target connections per second over all workers (0 = as fast as possible)
    #[arg(long, default_value_t = 0)]
    rate: u64,

    /// One-byte request/response round trips per connection
    #[arg(long, default_value_t = 0)]
    rounds: u32,

    /// Hard time bound in seconds; the run stops early and reports when it is hit
    #[arg(long, default_value_t = 60.0)]
    max_seconds: f64,

    /// Print the summary as one JSON line
    #[arg(long)]
    json: bool,
}

/// Validated run settings.
struct Plan {
    targets: Vec<SocketAddr>,
    workers: u32,
    server_threads: usize,
    conns: u64,
    rate: u64,
    rounds: u32,
    max_duration: Duration,
    json: bool,
}

/// Counters shared by the server threads and the main thread.
#[derive(Default)]
struct ServerStats {
    /// Accepted connections that were read to EOF and closed.
    served: AtomicU64,
    /// Failed accepts, reads and echo writes.
    errors: AtomicU64,
}

/// What one client worker did.
#[derive(Default, Clone, Copy)]
struct WorkerTally {
    /// connect() succeeded.
    connected: u64,
    /// Connected, did all rounds and closed.
    completed: u64,
    /// Failed connects and failed rounds.
    errors: u64,
}

/// Everything a client worker needs.
struct WorkerContext {
    targets: Arc<Vec<SocketAddr>>,
    next_ticket: Arc<AtomicU64>,
    conns: u64,
    rounds: u32,
    /// Time between two connections of this worker; None means unpaced.
    interval: Option<Duration>,
    start: Instant,
    deadline: Instant,
}

/// Final figures of a run.
struct Summary {
    conns: u64,
    errors: u64,
    seconds: f64,
}

impl Summary {
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.conns as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn render(&self, json: bool) -> String {
        if json {
            format!(
                "{{\"conns\":{},\"errors\":{},\"seconds\":{:.3},\"rate\":{:.1}}}",
                self.conns,
                self.errors,
                self.seconds,
                self.rate()
            )
        } else {
            format!(
                "conns={} errors={} seconds={:.3} rate={:.1}",
                self.conns,
                self.errors,
                self.seconds,
                self.rate()
            )
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            // One line, like every other setup failure, instead of clap's usage block.
            let rendered = err.render().to_string();
            let message = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("loadgen: {message}");
            return ExitCode::FAILURE;
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loadgen: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let plan = make_plan(args)?;
    let listeners = open_listeners(&plan.targets)?;
    let summary = storm(&plan, listeners)?;
    println!("{}", summary.render(plan.json));
    Ok(())
}

/// Checks the arguments and turns them into a plan; refuses non-loopback addresses.
fn make_plan(args: Args) -> Result<Plan> {
    if !args.addr.is_loopback() {
        bail!(
            "--addr {} is not a loopback address (use 127.0.0.1 or ::1)",
            args.addr
        );
    }
    if args.ports == 0 {
        bail!("--ports must be at least 1");
    }
    if args.base_port == 0 {
        bail!("--base-port must be at least 1");
    }
    let last_port = u32::from(args.base_port) + u32::from(args.ports) - 1;
    if last_port > u32::from(u16::MAX) {
        bail!(
            "--base-port {} with --ports {} runs past port 65535",
            args.base_port,
            args.ports
        );
    }
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if args.server_threads == 0 {
        bail!("--server-threads must be at least 1");
    }
    if !(args.max_seconds.is_finite() && args.max_seconds > 0.0) {
        bail!("--max-seconds must be a positive number of seconds");
    }
    let max_duration =
        Duration::try_from_secs_f64(args.max_seconds).context("--max-seconds is out of range")?;
    let targets = (args.base_port..=last_port as u16)
        .map(|port| SocketAddr::new(args.addr, port))
        .collect::<Vec<_>>();
    let server_threads = (args.server_threads as usize).min(targets.len());
    Ok(Plan {
        targets,
        workers: args.workers,
        server_threads,
        conns: args.conns,
        rate: args.rate,
        rounds: args.rounds,
        max_duration,
        json: args.json,
    })
}

extern "C" {
    /// listen(2) from the C library std already links; nix's socket module is not
    /// enabled in this crate.
    fn listen(fd: c_int, backlog: c_int) -> c_int;
}

/// Raises the accept queue length of a listening socket (listen(2) may be called again).
fn widen_backlog(listener: &TcpListener) -> io::Result<()> {
    // SAFETY: listen() only reads its two integer arguments; the descriptor is a
    // valid listening socket owned by `listener` for the duration of the call.
    let rc = unsafe { listen(listener.as_raw_fd(), LISTEN_BACKLOG) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The kernel's ephemeral port range, if it can be read.
fn ephemeral_port_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = text.split_whitespace().map(str::parse::<u16>);
    Some((bounds.next()?.ok()?, bounds.next()?.ok()?))
}

/// Explains a failed bind when the port is one the kernel hands out to clients: a
/// TIME_WAIT socket of an earlier storm may still hold it.
fn bind_hint(target: &SocketAddr) -> String {
    match ephemeral_port_range() {
        Some((low, high)) if (low..=high).contains(&target.port()) => format!(
            " (port {} is inside net.ipv4.ip_local_port_range {low}-{high}, so a client \
             socket in TIME_WAIT may hold it for up to 60 s; wait, or pick a --base-port \
             outside that range)",
            target.port()
        ),
        _ => String::new(),
    }
}

/// Binds one nonblocking listener per target (std sets SO_REUSEADDR on Unix).
fn open_listeners(targets: &[SocketAddr]) -> Result<Vec<TcpListener>> {
    targets
        .iter()
        .map(|target| {
            let listener = TcpListener::bind(target)
                .with_context(|| format!("cannot listen on {target}{}", bind_hint(target)))?;
            widen_backlog(&listener)
                .with_context(|| format!("cannot widen the accept queue on {target}"))?;
            listener
                .set_nonblocking(true)
                .with_context(|| format!("cannot make the listener on {target} nonblocking"))?;
            Ok(listener)
        })
        .collect()
}

/// Runs servers and clients, waits for both, closes the listeners and sums up.
fn storm(plan: &Plan, listeners: Vec<TcpListener>) -> Result<Summary> {
    let stats = Arc::new(ServerStats::default());
    let stop = Arc::new(AtomicBool::new(false));

    // Deal the listeners out to the server threads, round-robin.
    let mut shares: Vec<Vec<TcpListener>> = (0..plan.server_threads).map(|_| Vec::new()).collect();
    for (index, listener) in listeners.into_iter().enumerate() {
        shares[index % plan.server_threads].push(listener);
    }
    let mut servers = Vec::with_capacity(shares.len());
    for (index, share) in shares.into_iter().enumerate() {
        let server_stats = Arc::clone(&stats);
        let server_stop = Arc::clone(&stop);
        let spawned = thread::Builder::new()
            .name(format!("server{index}"))
            .spawn(move || serve(share, &server_stats, &server_stop));
        match spawned {
            Ok(handle) => servers.push(handle),
            Err(err) => {
                stop_servers(&stop, servers);
                return Err(err).context("cannot start a server thread");
            }
        }
    }

    let start = Instant::now();
    let deadline = start + plan.max_duration;
    let interval = pacing_interval(plan.rate, plan.workers);
    let targets = Arc::new(plan.targets.clone());
    let next_ticket = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(plan.workers as usize);
    let mut tally = WorkerTally::default();
    let mut spawn_error = None;
    for index in 0..plan.workers {
        let context = WorkerContext {
            targets: Arc::clone(&targets),
            next_ticket: Arc::clone(&next_ticket),
            conns: plan.conns,
            rounds: plan.rounds,
            interval,
            start,
            deadline,
        };
        match thread::Builder::new()
            .name(format!("client{index}"))
            .spawn(move || run_worker(&context))
        {
            Ok(handle) => workers.push(handle),
            Err(err) => {
                // Let the running workers finish, then fail.
                spawn_error = Some(err);
                break;
            }
        }
    }
    for worker in workers {
        match worker.join() {
            Ok(part) => {
                tally.connected += part.connected;
                tally.completed += part.completed;
                tally.errors += part.errors;
            }
            Err(_) => tally.errors += 1,
        }
    }

    // Wait until the servers have closed every connection the clients made.
    let drain_deadline = Instant::now().min(deadline) + DRAIN_GRACE;
    while stats.served.load(Ordering::Relaxed) < tally.connected && Instant::now() < drain_deadline
    {
        thread::sleep(Duration::from_millis(1));
    }
    let seconds = start.elapsed().as_secs_f64();
    let served = stats.served.load(Ordering::Relaxed);
    let server_panics = stop_servers(&stop, servers);
    if let Some(err) = spawn_error {
        return Err(err).context("cannot start a client worker thread");
    }

    let unserved = tally.connected.saturating_sub(served);
    if unserved > 0 {
        eprintln!("loadgen: warning: {unserved} connections were not served to the end");
    }
    let attempted = next_ticket.load(Ordering::Relaxed).min(plan.conns);
    if attempted < plan.conns {
        eprintln!(
            "loadgen: warning: time bound reached after {attempted} of {} connections",
            plan.conns
        );
    }
    Ok(Summary {
        conns: tally.completed,
        errors: tally.errors + stats.errors.load(Ordering::Relaxed) + unserved + server_panics,
        seconds,
    })
}

/// Tells the servers to stop and joins them (their listeners close on exit);
/// returns how many of them had panicked.
fn stop_servers(stop: &AtomicBool, servers: Vec<thread::JoinHandle<()>>) -> u64 {
    stop.store(true, Ordering::Relaxed);
    servers
        .into_iter()
        .map(|server| u64::from(server.join().is_err()))
        .sum()
}

/// Time between two connections of one worker, or None when unpaced.
fn pacing_interval(rate: u64, workers: u32) -> Option<Duration> {
    if rate == 0 {
        return None;
    }
    let nanos = u64::from(workers).saturating_mul(1_000_000_000) / rate;
    Some(Duration::from_nanos(nanos.max(1)))
}

/// One client worker: claims connection tickets until they or the time run out.
fn run_worker(context: &WorkerContext) -> WorkerTally {
    let mut tally = WorkerTally::default();
    let mut next_slot = context.start;
    loop {
        let mut now = Instant::now();
        if let Some(interval) = context.interval {
            if next_slot > now {
                thread::sleep(
                    next_slot
                        .min(context.deadline)
                        .saturating_duration_since(now),
                );
                now = Instant::now();
            } else if now - next_slot > MAX_PACING_LAG {
                // Too far behind: forget the missed slots rather than burst.
                next_slot = now;
            }
            next_slot += interval;
        }
        if now >= context.deadline {
            break;
        }
        let ticket = context.next_ticket.fetch_add(1, Ordering::Relaxed);
        if ticket >= context.conns {
            break;
        }
        let target = context.targets[(ticket % context.targets.len() as u64) as usize];
        // Bound the connect by the deadline too: a dropped SYN would otherwise
        // block it for a 1 s, 3 s, 7 s, ... retransmit series.
        let remaining = context.deadline.saturating_duration_since(now);
        let stream = match TcpStream::connect_timeout(&target, remaining) {
            Ok(stream) => stream,
            Err(_) => {
                tally.errors += 1;
                continue;
            }
        };
        tally.connected += 1;
        match exchange(&stream, context.rounds, context.deadline) {
            Ok(()) => tally.completed += 1,
            Err(_) => tally.errors += 1,
        }
        // Dropping the stream closes it: the client sends the first FIN.
        drop(stream);
    }
    tally
}

/// Does `rounds` one-byte request/response round trips on a connected stream.
fn exchange(mut stream: &TcpStream, rounds: u32, deadline: Instant) -> io::Result<()> {
    if rounds == 0 {
        return Ok(());
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(remaining))?;
    let mut reply = [0u8; 1];
    for _ in 0..rounds {
        stream.write_all(b"x")?;
        stream.read_exact(&mut reply)?;
    }
    Ok(())
}

/// Readiness of one polled descriptor.
fn is_ready(fd: &PollFd) -> bool {
    fd.revents().is_some_and(|events| !events.is_empty())
}

/// One server thread: accepts on its listeners, echoes, reads to EOF and closes,
/// until told to stop. Its listeners close when it returns.
fn serve(listeners: Vec<TcpListener>, stats: &ServerStats, stop: &AtomicBool) {
    // Accepted sockets stay blocking; they are only read after poll() says so.
    let mut open: Vec<TcpStream> = Vec::new();
    let mut ready_listeners: Vec<usize> = Vec::with_capacity(listeners.len());
    let mut ready_conns: Vec<usize> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        ready_listeners.clear();
        ready_conns.clear();
        {
            let mut fds: Vec<PollFd> = listeners
                .iter()
                .map(|listener| PollFd::new(listener.as_fd(), PollFlags::POLLIN))
                .chain(
                    open.iter()
                        .map(|stream| PollFd::new(stream.as_fd(), PollFlags::POLLIN)),
                )
                .collect();
            match poll(&mut fds, PollTimeout::from(SERVER_POLL_MS)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(u64::from(SERVER_POLL_MS)));
                    continue;
                }
            }
            let (listener_fds, conn_fds) = fds.split_at(listeners.len());
            ready_listeners.extend((0..listener_fds.len()).filter(|&i| is_ready(&listener_fds[i])));
            ready_conns.extend((0..conn_fds.len()).filter(|&i| is_ready(&conn_fds[i])));
        }
        // Highest index first, so swap_remove only moves already handled entries.
        for &index in ready_conns.iter().rev() {
            if !serve_ready(&open[index], stats) {
                stats.served.fetch_add(1, Ordering::Relaxed);
                open.swap_remove(index);
            }
        }
        for &index in &ready_listeners {
            accept_batch(&listeners[index], &mut open, stats);
        }
    }
}

/// Accepts up to ACCEPT_BATCH pending connections from one listener.
fn accept_batch(listener: &TcpListener, open: &mut Vec<TcpStream>, stats: &ServerStats) {
    for _ in 0..ACCEPT_BATCH {
        match listener.accept() {
            Ok((stream, _peer)) => open.push(stream),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// Serves one readable connection: echoes what arrived. Returns false when the
/// connection is finished (EOF or error) and should be closed.
fn serve_ready(mut stream: &TcpStream, stats: &ServerStats) -> bool {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => false,
        Ok(n) => match stream.write_all(&buf[..n]) {
            Ok(()) => true,
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                false
            }
        },
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            true
        }
        Err(_) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}
