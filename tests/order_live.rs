//! Lines in time order across CPUs (needs root): tcpstates and tcpconnlat with traffic pinned
//! to CPU 0 and CPU 1 at once print every event once, in non-decreasing time, whichever
//! buffer carries them (per-CPU rings, the shared ring, the perf buffer); and a line held
//! for ordering is printed within the reorder window when the traffic stops.
//! Ports 46600-46699 are this file's.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, FixedOffset};
use common::{
    connection_on, run_in_netns, transitions_of, wait_for_bpf_links, Finished, Netns, Tool,
};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;

const TCPSTATES: &str = env!("CARGO_BIN_EXE_tcpstates");
const TCPCONNLAT: &str = env!("CARGO_BIN_EXE_tcpconnlat");
/// Connections each CPU's load generator makes.
const PER_CPU: usize = 1500;
/// The tools' reorder window (src/stream.rs).
const WINDOW: Duration = Duration::from_millis(20);

/// The buffers the tools can use, as the environment selects them.
const PER_CPU_RINGS: &[(&str, &str)] = &[];
const SHARED_RING: &[(&str, &str)] = &[("TCPTOOLS_SHARED_RING", "1")];
const PERF_BUFFER: &[(&str, &str)] = &[("TCPTOOLS_PERF_BUFFER", "1")];

/// `bin --json -v --netns NS`, attached and reading (JSON has no header to wait for: a
/// perf buffer opened after the programs attach drops what comes before it).
fn start(bin: &str, ns: &Netns, env: &[(&str, &str)]) -> Tool {
    let netns = format!("/run/netns/{}", ns.name);
    let tool = Tool::start(bin, &["--json", "-v", "--netns", &netns], env, 0);
    assert!(wait_for_bpf_links(tool.pid(), 1), "{bin} did not attach");
    thread::sleep(Duration::from_millis(300));
    tool
}

/// `PER_CPU` connections from a thread pinned to `cpu`, to a listener of its own on
/// `port` (client closes first, then the server), in namespace `ns`.
fn load_on_cpu(ns: &Netns, cpu: usize, port: u16) -> thread::JoinHandle<()> {
    let path = format!("/run/netns/{}", ns.name);
    thread::spawn(move || {
        run_in_netns(&path, &format!("cpu{cpu}load"), move || {
            let mut cpus = CpuSet::new();
            cpus.set(cpu).expect("CPU number");
            sched_setaffinity(Pid::from_raw(0), &cpus).expect("pin the load generator");
            let listener =
                TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).expect("bind listener");
            for n in 0..PER_CPU {
                let (_, accepted) = connection_on(&listener, 1);
                drop(accepted);
                // Bursts of 10 connections: the perf buffer (256 KiB a CPU) never fills on
                // a busy machine; the CPUs' records still interleave within each burst.
                if n % 10 == 9 {
                    thread::sleep(Duration::from_millis(2));
                }
            }
            // The clients' FIN_WAIT2 -> CLOSE follows the servers' FINs.
            thread::sleep(Duration::from_millis(100));
        })
    })
}

/// Traffic on CPU 0 and CPU 1 at the same time, on ports `base` and `base + 1`.
fn traffic_on_both_cpus(ns: &Netns, base: u16) {
    assert!(
        thread::available_parallelism().map_or(1, usize::from) >= 2,
        "this test needs two CPUs"
    );
    let loads = [load_on_cpu(ns, 0, base), load_on_cpu(ns, 1, base + 1)];
    for load in loads {
        load.join().expect("load generator");
    }
}

/// The `-v` line naming the buffer, and the JSON objects of a finished tool.
fn events(done: &Finished) -> Vec<Value> {
    done.stdout
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

fn time_of(event: &Value) -> DateTime<FixedOffset> {
    let text = event["time"].as_str().expect("a time");
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Every line's time is at least the one before it.
fn assert_time_order(what: &str, events: &[Value]) {
    for pair in events.windows(2) {
        assert!(
            time_of(&pair[0]) <= time_of(&pair[1]),
            "{what}: out of time order:\n{}\n{}",
            pair[0],
            pair[1]
        );
    }
}

fn transition(event: &Value) -> String {
    format!(
        "{} -> {}",
        event["oldstate"].as_str().unwrap_or("?"),
        event["newstate"].as_str().unwrap_or("?")
    )
}

/// Stops a tool once `count` lines came (at most 60 s), and checks what it said on stderr.
fn collect(mut tool: Tool, count: usize, buffer: &str) -> Finished {
    tool.wait_for_count(Duration::from_secs(60), count, |_| true);
    thread::sleep(Duration::from_millis(200));
    let done = tool.stop_with(Signal::SIGINT);
    assert!(done.status.success(), "{}", done.stderr);
    assert!(
        done.stderr.lines().any(|l| l.starts_with(buffer)),
        "expected `{buffer}` in: {}",
        done.stderr
    );
    assert!(
        !done.stderr.contains("lost") && !done.stderr.contains("out of time order"),
        "{}",
        done.stderr
    );
    done
}

/// tcpstates and tcpconnlat on `PER_CPU` connections from each CPU at once, with the
/// buffer `env` selects (`buffer`: the start of its `-v` line).
fn both_cpus_in_order(tag: &str, base: u16, env: &[(&str, &str)], buffer: &str) {
    let ns = Netns::new(tag);
    let states = start(TCPSTATES, &ns, env);
    let connects = start(TCPCONNLAT, &ns, env);
    traffic_on_both_cpus(&ns, base);

    let expected = transitions_of(2 * PER_CPU, true, 2);
    let states = events(&collect(states, expected.values().sum(), buffer));
    let mut census = BTreeMap::new();
    for event in &states {
        *census.entry(transition(event)).or_insert(0) += 1;
    }
    assert_eq!(census, expected, "tcpstates with {buffer}");
    // None doubled: no line twice (a line has its event's time, to the microsecond; a
    // client's port may come back, loopback reuses TIME_WAIT ports).
    let lines: BTreeSet<_> = states.iter().map(Value::to_string).collect();
    assert_eq!(lines.len(), states.len(), "tcpstates printed a line twice");
    assert_time_order(&format!("tcpstates with {buffer}"), &states);

    let connects = events(&collect(connects, 2 * PER_CPU, buffer));
    assert_eq!(connects.len(), 2 * PER_CPU, "tcpconnlat with {buffer}");
    // Not by ports alone: loopback reuses a client port in TIME_WAIT (tcp_tw_reuse).
    let lines: BTreeSet<_> = connects.iter().map(Value::to_string).collect();
    assert_eq!(
        lines.len(),
        2 * PER_CPU,
        "tcpconnlat printed a connect twice"
    );
    assert_time_order(&format!("tcpconnlat with {buffer}"), &connects);
}

#[test]
fn per_cpu_rings_print_both_cpus_in_time_order() {
    both_cpus_in_order(
        "ordcpu",
        46601,
        PER_CPU_RINGS,
        "events: per-CPU ring buffers",
    );
}

#[test]
fn the_shared_ring_prints_both_cpus_in_time_order() {
    both_cpus_in_order(
        "ordshared",
        46611,
        SHARED_RING,
        "events: one shared ring buffer",
    );
}

#[test]
fn the_perf_buffer_prints_both_cpus_in_time_order() {
    both_cpus_in_order("ordperf", 46621, PERF_BUFFER, "events: perf buffer");
}

/// Refused connects one at a time, each followed by silence: each of its two lines is
/// printed within the window (and a little scheduling) of its own time, not held until
/// more events come or a poll times out (100 ms).
#[test]
fn a_held_line_is_printed_within_the_window_when_the_rings_go_idle() {
    const REFUSED: u16 = 46631;
    // The window, and room for a loaded machine's scheduling: well below the 100 ms after
    // which a poll would have ended anyway.
    let bound = WINDOW + Duration::from_millis(45);
    let ns = Netns::new("ordidle");
    let mut tool = start(TCPSTATES, &ns, PER_CPU_RINGS);
    let path = format!("/run/netns/{}", ns.name);
    let mut arrivals = Vec::new();
    for round in 1..=5 {
        run_in_netns(&path, "refused", || {
            let to = SocketAddr::from(([127, 0, 0, 1], REFUSED));
            assert!(std::net::TcpStream::connect(to).is_err());
        });
        // Each line's arrival, as close to its printing as this thread sees it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while arrivals.len() < 2 * round && Instant::now() < deadline {
            tool.wait_for_count(Duration::from_millis(1), arrivals.len() + 1, |_| true);
            let now = SystemTime::now();
            arrivals.resize(tool.lines().len(), now);
        }
        assert_eq!(
            arrivals.len(),
            2 * round,
            "round {round}: {:?}",
            tool.lines()
        );
        thread::sleep(Duration::from_millis(300));
    }
    let done = tool.stop_with(Signal::SIGINT);
    assert!(done.status.success(), "{}", done.stderr);
    for (line, arrived) in done.stdout.iter().zip(&arrivals) {
        let event: Value = serde_json::from_str(line).expect("JSON line");
        let at = SystemTime::from(time_of(&event));
        let delay = arrived.duration_since(at).unwrap_or_default();
        assert!(
            delay <= bound,
            "printed {delay:?} after its event (at most {bound:?}): {line}"
        );
    }
}
