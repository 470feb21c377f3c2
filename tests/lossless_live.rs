//! Nothing skipped (issue 11): storms of thousands of loopback connections closed from
//! several threads at once, so that softirqs interrupt the tools' programs, and every
//! state change, connect and tcp_probe run printed or counted; the kernel's skips of the
//! main programs all caught by the catcher programs (bpf/nested.bpf.h). Needs root.
//! Ports 45500-45599 are this file's.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    connection_on, skip_account, transitions_of, Finished, Netns, SkipAccount, TraceCount,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const TCPSTATES: &str = env!("CARGO_BIN_EXE_tcpstates");
const TCPCONNLAT: &str = env!("CARGO_BIN_EXE_tcpconnlat");
const TCPRTT: &str = env!("CARGO_BIN_EXE_tcprtt");

/// Attaches the catchers alone, so that they handle every event: their path (the
/// handlers' `catcher` copies) is otherwise taken only by the rare events the kernel skips.
/// Alone, a catcher's own skips (`catcher_misses`) are lost: nothing catches them.
const CATCHERS_ONLY: (&str, &str) = ("TCPTOOLS_CATCHERS_ONLY", "1");
/// How the tests name a tool run with `CATCHERS_ONLY`.
const CATCHERS_ONLY_SUFFIX: &str = "catchers only";

/// Client threads at once: more than the CPUs, so every CPU runs tasks closing sockets
/// while softirqs deliver the other ends' segments.
const WORKERS: usize = 4;

/// `WORKERS` threads in `ns`, each with a listener on `port` of an address of its own
/// (127.0.0.10 and up) that it hands to `work`; the listeners close at the end.
fn on_workers(ns: &Netns, port: u16, work: impl Fn(&TcpListener) + Copy + Send + 'static) {
    ns.run("lossless", move || {
        let workers: Vec<_> = (0..WORKERS)
            .map(|i| {
                thread::spawn(move || {
                    let listen: SocketAddr = format!("127.0.0.{}:{port}", 10 + i)
                        .parse()
                        .expect("address");
                    let listener = TcpListener::bind(listen).expect("bind listener");
                    work(&listener);
                })
            })
            .collect();
        for w in workers {
            w.join().expect("traffic thread");
        }
    });
}

/// Each worker makes `conns` connections one after the other with `rounds` one-byte
/// exchanges; the client closes first, then the server reads EOF and closes. Every read
/// has a timeout.
fn storm(ns: &Netns, port: u16, conns: usize, rounds: usize) {
    on_workers(ns, port, move |listener| {
        for _ in 0..conns {
            connection_on(listener, rounds);
        }
    });
}

/// As `storm`, but each worker opens all its `conns` connections first and then closes
/// them in a burst, clients first: the closes' FIN_WAIT2 and CLOSE changes arrive in
/// softirqs while the other clients' closes run, which interrupts the tools' programs
/// most.
fn burst(ns: &Netns, port: u16, conns: usize) {
    on_workers(ns, port, move |listener| {
        let listen = listener.local_addr().expect("listener address");
        let pairs: Vec<(TcpStream, TcpStream)> = (0..conns)
            .map(|_| {
                let client = TcpStream::connect(listen).expect("connect");
                let (server, _) = listener.accept().expect("accept");
                server
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                (client, server)
            })
            .collect();
        let (clients, servers): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        drop(clients);
        for mut server in servers {
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).expect("server reads EOF");
        }
    });
}

/// The N of the tool's `kernel skipped N events` lines on stderr.
fn skipped(done: &Finished) -> u64 {
    done.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("kernel skipped "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// What a catchers-only run printed, `printed`, against `expected`: never more, and short
/// by no more than the catcher's own skips.
fn assert_short_by_catcher_skips(what: &str, printed: u64, expected: u64, account: &SkipAccount) {
    assert!(
        printed <= expected && expected - printed <= account.catcher_misses,
        "{what}: {printed} of {expected}; {account:?}"
    );
}

/// The tool caught everything the kernel skipped: its report says nothing was skipped or
/// lost, and bpftool's counts agree (every miss of a main program was caught). With its
/// main programs attached, the catcher caught no more than they missed: an event both ran
/// the handler for would be printed twice.
fn assert_nothing_skipped(what: &str, done: &Finished, account: SkipAccount) {
    eprintln!("{what}: {account:?}");
    assert_eq!(account.catchers, 1, "{what}: one catcher attached");
    if !what.ends_with(CATCHERS_ONLY_SUFFIX) {
        assert!(
            account.catches <= account.main_misses,
            "{what}: caught more than the main programs missed: {account:?}"
        );
    }
    assert!(!done.stderr.contains("lost"), "{what}: {}", done.stderr);
    assert_eq!(
        (skipped(done), account.lost()),
        (0, 0),
        "{what}: (reported skips, main misses - catches); {account:?}; stderr: {}",
        done.stderr
    );
}

/// A tool writing to a file (a pipe read by this test would fall behind the storm and
/// make the ring buffer overflow), and its stderr. Killed and its files removed on drop.
struct FileTool {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl FileTool {
    /// Starts `bin`, waits until its header is in the file and its programs are attached.
    fn start(bin: &str, args: &[&str], env: &[(&str, &str)], name: &str) -> FileTool {
        let dir = std::env::temp_dir();
        let out = dir.join(format!("tcpt-lossless-{}-{name}.out", std::process::id()));
        let err = dir.join(format!("tcpt-lossless-{}-{name}.err", std::process::id()));
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("output file"))
            .stderr(File::create(&err).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let tool = FileTool { child, out, err };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read(&tool.out).is_ok_and(|t| t.contains(&b'\n')) {
            assert!(
                Instant::now() < deadline,
                "{bin} {args:?} printed no header"
            );
            thread::sleep(Duration::from_millis(20));
        }
        // A main program and its catcher, or the catcher alone.
        let links = if env.iter().any(|(k, _)| *k == CATCHERS_ONLY.0) {
            1
        } else {
            2
        };
        assert!(
            common::wait_for_bpf_links(tool.child.id(), links),
            "{bin} {args:?} did not attach"
        );
        tool
    }

    /// Waits until its output stops growing (at most 2 s: other tests' traffic may keep it
    /// growing, and the storm's events are out within a poll of 100 ms), reads bpftool's
    /// account of its skips, then ends it with SIGINT and returns what it printed.
    fn stop(mut self) -> (SkipAccount, Finished) {
        let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut last = size(&self.out);
        for _ in 0..10 {
            thread::sleep(Duration::from_millis(200));
            let now = size(&self.out);
            if now == last {
                break;
            }
            last = now;
        }
        let account = skip_account(self.child.id());
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "tool did not end within 20 s");
            thread::sleep(Duration::from_millis(20));
        };
        let read = |p: &PathBuf| {
            String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
        };
        let done = Finished {
            stdout: read(&self.out).lines().map(str::to_owned).collect(),
            stderr: read(&self.err),
            status,
        };
        assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
        (account, done)
    }
}

impl Drop for FileTool {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.out);
        let _ = std::fs::remove_file(&self.err);
    }
}

/// Transitions of the storm's sockets ("OLD -> NEW"), counted, from tcpstates' columns
/// (`... LPORT RADDR RPORT OLDSTATE -> NEWSTATE MS`).
fn census(done: &Finished, port: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in done.stdout.iter().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 8 && (f[f.len() - 7] == port || f[f.len() - 5] == port) {
            let t = format!("{} -> {}", f[f.len() - 4], f[f.len() - 2]);
            *counts.entry(t).or_insert(0) += 1;
        }
    }
    counts
}

/// 8,000 connections made and closed one after the other in four threads, then 6,000
/// opened and closed in a burst: tcpstates prints every one of their state changes (and
/// the listeners') exactly once, with tp_btf and with raw_tp, and tcpconnlat every
/// connect; none skipped. The same with the catchers alone, which then handle them all.
#[test]
fn every_change_and_connect_of_eight_thousand_closes() {
    const N: usize = 8_000;
    const PORT: u16 = 45501;
    const BURST: usize = 6_000;
    const BURST_PORT: u16 = 45503;
    let ns = Netns::new("lossless");
    ns.exec(
        "sysctl",
        &["-qw", "net.ipv4.ip_local_port_range=50000 65535"],
    );
    let port = PORT.to_string();
    let states = FileTool::start(TCPSTATES, &[], &[], "states");
    let raw = FileTool::start(TCPSTATES, &[], &[("TCPTOOLS_RAW_TP", "1")], "raw");
    let connects = FileTool::start(TCPCONNLAT, &[], &[], "connects");
    let caught = FileTool::start(TCPSTATES, &[], &[CATCHERS_ONLY], "caught");
    let caught_connects = FileTool::start(TCPCONNLAT, &[], &[CATCHERS_ONLY], "caughtc");
    let started = Instant::now();
    storm(&ns, PORT, N / WORKERS, 0);
    eprintln!("8,000 connections in {:?}", started.elapsed());
    burst(&ns, BURST_PORT, BURST / WORKERS);
    eprintln!("and a burst of 6,000 by {:?}", started.elapsed());

    let (states_account, states) = states.stop();
    let (raw_account, raw) = raw.stop();
    let (connects_account, connects) = connects.stop();
    let (caught_account, caught) = caught.stop();
    let (caught_connects_account, caught_connects) = caught_connects.stop();
    let expected = transitions_of(N, true, WORKERS);
    assert_eq!(
        census(&states, &port),
        expected,
        "tp_btf; stderr: {}",
        states.stderr
    );
    assert_eq!(
        census(&raw, &port),
        expected,
        "raw_tp; stderr: {}",
        raw.stderr
    );
    let caught_census = census(&caught, &port);
    assert!(
        caught_census
            .iter()
            .all(|(t, n)| expected.get(t).is_some_and(|e| n <= e)),
        "catchers only: {caught_census:?}"
    );
    let changes: usize = expected.values().sum();
    assert_short_by_catcher_skips(
        "tcpstates catchers only",
        caught_census.values().sum::<usize>() as u64,
        changes as u64,
        &caught_account,
    );
    assert!(
        caught_account.catches + caught_account.catcher_misses >= changes as u64,
        "the catcher handled every change: {caught_account:?}"
    );
    assert_nothing_skipped("tcpstates tp_btf", &states, states_account);
    assert_nothing_skipped("tcpstates raw_tp", &raw, raw_account);
    assert_nothing_skipped("tcpstates catchers only", &caught, caught_account);
    // PID COMM IP SADDR DADDR DPORT LAT(ms)
    let printed = |done: &Finished, port: u16| {
        done.stdout
            .iter()
            .filter(|l| l.split_whitespace().rev().nth(1) == Some(port.to_string().as_str()))
            .count()
    };
    assert_eq!(
        (printed(&connects, PORT), printed(&connects, BURST_PORT)),
        (N, BURST),
        "tcpconnlat; stderr: {}",
        connects.stderr
    );
    assert_nothing_skipped("tcpconnlat", &connects, connects_account);
    assert_short_by_catcher_skips(
        "tcpconnlat catchers only",
        (printed(&caught_connects, PORT) + printed(&caught_connects, BURST_PORT)) as u64,
        (N + BURST) as u64,
        &caught_connects_account,
    );
    assert_nothing_skipped(
        "tcpconnlat catchers only",
        &caught_connects,
        caught_connects_account,
    );
    assert!(
        caught_connects_account.catches + caught_connects_account.catcher_misses
            >= (N + BURST) as u64,
        "the catcher handled every connect: {caught_connects_account:?}"
    );
}

/// 1,000 connections of 20 round trips from four threads: tcprtt's histograms count
/// every tcp_probe run of their sockets, as the kernel's own trace event counts them
/// (server side with -p, client side with -P), tp_btf and raw_tp alike, and the catchers
/// alone; none skipped.
#[test]
fn every_tcp_probe_run_of_a_thousand_busy_connections() {
    const N: usize = 1_000;
    const ROUNDS: usize = 20;
    const PORT: u16 = 45502;
    let ns = Netns::new("lossrtt");
    let port = PORT.to_string();
    let tools = [
        ("server tp_btf", vec!["-p", port.as_str()], vec![]),
        ("client tp_btf", vec!["-P", port.as_str()], vec![]),
        (
            "server raw_tp",
            vec!["-p", port.as_str()],
            vec![("TCPTOOLS_RAW_TP", "1")],
        ),
        (
            "client raw_tp",
            vec!["-P", port.as_str()],
            vec![("TCPTOOLS_RAW_TP", "1")],
        ),
        (
            "server catchers only",
            vec!["-p", port.as_str()],
            vec![CATCHERS_ONLY],
        ),
        (
            "client catchers only",
            vec!["-P", port.as_str()],
            vec![CATCHERS_ONLY],
        ),
    ];
    let running: Vec<FileTool> = tools
        .iter()
        .enumerate()
        .map(|(i, (_, args, env))| FileTool::start(TCPRTT, args, env, &format!("rtt{i}")))
        .collect();
    let trace = TraceCount::start(
        "lossrtt",
        "tcp/tcp_probe",
        &format!("sport == {PORT} || dport == {PORT}"),
    );
    storm(&ns, PORT, N / WORKERS, ROUNDS);
    let probes = trace.finish();
    let mut totals = Vec::new();
    let mut accounts = Vec::new();
    for ((what, _, _), tool) in tools.iter().zip(running) {
        let (account, done) = tool.stop();
        assert_nothing_skipped(what, &done, account);
        totals.push(samples(&done));
        accounts.push(account);
    }
    eprintln!("tcp_probe ran {probes} times; tcprtt counted {totals:?}");
    assert!(probes >= (2 * N * ROUNDS) as u64, "{probes} tcp_probe runs");
    assert_eq!(
        totals[0] + totals[1],
        probes,
        "tp_btf: server + client samples"
    );
    assert_eq!(
        totals[2] + totals[3],
        probes,
        "raw_tp: server + client samples"
    );
    let both = SkipAccount {
        catcher_misses: accounts[4].catcher_misses + accounts[5].catcher_misses,
        ..accounts[4]
    };
    assert_short_by_catcher_skips(
        "catchers only: server + client samples",
        totals[4] + totals[5],
        probes,
        &both,
    );
}

/// The samples of a tcprtt histogram (the rows' counts, summed).
fn samples(done: &Finished) -> u64 {
    done.stdout
        .iter()
        .filter_map(|l| {
            let (range, rest) = l.split_once(':')?;
            if !range.contains("->") {
                return None;
            }
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}
