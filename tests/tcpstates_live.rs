//! tcpstates on real loopback traffic in private network namespaces (needs root).
//! Ports 23000-23099 are this file's: below the ephemeral range, so no other socket on
//! the machine can show up with them by chance.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{connection, Finished, Netns, Tool};
use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_tcpstates");
const HEADER: &str = "SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS";

/// One parsed line of the default layout.
#[derive(Clone, Debug, PartialEq)]
struct Line {
    skaddr: String,
    pid: u32,
    comm: String,
    laddr: String,
    lport: u16,
    raddr: String,
    rport: u16,
    old: String,
    new: String,
    ms: f64,
}

fn parse(line: &str) -> Option<Line> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 10 || f[8] != "->" {
        return None;
    }
    Some(Line {
        skaddr: f[0].to_owned(),
        pid: f[1].parse().ok()?,
        comm: f[2].to_owned(),
        laddr: f[3].to_owned(),
        lport: f[4].parse().ok()?,
        raddr: f[5].to_owned(),
        rport: f[6].parse().ok()?,
        old: f[7].to_owned(),
        new: f[9].to_owned(),
        ms: f.get(10).and_then(|m| m.parse().ok()).unwrap_or(-1.0),
    })
}

fn parse_default(line: &str) -> Option<Line> {
    // SKADDR PID COMM LADDR LPORT RADDR RPORT OLD -> NEW MS: 11 fields.
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 11 {
        return None;
    }
    let mut l = parse(&f[..10].join(" "))?;
    l.ms = f[10].parse().ok()?;
    Some(l)
}

/// The event lines that concern `port` (as local or remote port).
fn lines_for(done: &Finished, port: u16) -> Vec<Line> {
    done.stdout
        .iter()
        .filter_map(|l| parse_default(l))
        .filter(|l| l.lport == port || l.rport == port)
        .collect()
}

fn transitions(lines: &[Line], skaddr: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.skaddr == skaddr)
        .map(|l| format!("{} -> {}", l.old, l.new))
        .collect()
}

fn start(args: &[&str], env: &[(&str, &str)]) -> Tool {
    Tool::start(BIN, args, env, 1)
}

/// Waits until `count` event lines for `port` arrived (at most 10 s), then stops the tool
/// with SIGINT and checks it ended cleanly.
fn stop_after(mut tool: Tool, port: u16, count: usize) -> Finished {
    tool.wait_for_count(Duration::from_secs(10), count, |l| {
        parse_default(l).is_some_and(|l| l.lport == port || l.rport == port)
    });
    let done = tool.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    done
}

/// Checks one complete loopback connection to `port`: client, listener and accepted socket
/// each go through their full sequence with the right ports, addresses, pid and comm.
fn assert_full_connection(lines: &[Line], port: u16, addr: &str, client_port: u16, comm: &str) {
    let me = std::process::id();
    let listener = lines
        .iter()
        .find(|l| l.old == "CLOSE" && l.new == "LISTEN")
        .unwrap_or_else(|| panic!("no CLOSE -> LISTEN in {lines:#?}"));
    let client = lines
        .iter()
        .find(|l| l.old == "CLOSE" && l.new == "SYN_SENT")
        .unwrap_or_else(|| panic!("no CLOSE -> SYN_SENT in {lines:#?}"));
    let accepted = lines
        .iter()
        .find(|l| l.old == "LISTEN" && l.new == "SYN_RECV")
        .unwrap_or_else(|| panic!("no LISTEN -> SYN_RECV in {lines:#?}"));

    assert_eq!(
        transitions(lines, &listener.skaddr),
        ["CLOSE -> LISTEN", "LISTEN -> CLOSE"]
    );
    assert_eq!(
        transitions(lines, &client.skaddr),
        [
            "CLOSE -> SYN_SENT",
            "SYN_SENT -> ESTABLISHED",
            "ESTABLISHED -> FIN_WAIT1",
            "FIN_WAIT1 -> FIN_WAIT2",
            "FIN_WAIT2 -> CLOSE"
        ]
    );
    assert_eq!(
        transitions(lines, &accepted.skaddr),
        [
            "LISTEN -> SYN_RECV",
            "SYN_RECV -> ESTABLISHED",
            "ESTABLISHED -> CLOSE_WAIT",
            "CLOSE_WAIT -> LAST_ACK",
            "LAST_ACK -> CLOSE"
        ]
    );
    assert_eq!(lines.len(), 12, "{lines:#?}");

    // Addresses and ports, as bcc prints them.
    assert_eq!(
        (listener.laddr.as_str(), listener.lport, listener.rport),
        (addr, port, 0)
    );
    for l in lines.iter().filter(|l| l.skaddr == client.skaddr) {
        assert_eq!(
            (l.laddr.as_str(), l.raddr.as_str(), l.rport),
            (addr, addr, port),
            "{l:?}"
        );
        // The ephemeral port is assigned after CLOSE -> SYN_SENT.
        let expected = if l.new == "SYN_SENT" { 0 } else { client_port };
        assert_eq!(l.lport, expected, "{l:?}");
    }
    for l in lines.iter().filter(|l| l.skaddr == accepted.skaddr) {
        assert_eq!(
            (l.laddr.as_str(), l.lport, l.raddr.as_str(), l.rport),
            (addr, port, addr, client_port),
            "{l:?}"
        );
    }
    // listen() and connect() run in the traffic thread, so their changes carry its pid and
    // name. Not the closes: a socket is released with its last file reference, and a
    // process another test forks at that moment holds one until it execs.
    for (old, new) in [("CLOSE", "LISTEN"), ("CLOSE", "SYN_SENT")] {
        let l = lines.iter().find(|l| l.old == old && l.new == new).unwrap();
        assert_eq!((l.pid, l.comm.as_str()), (me, comm), "{l:?}");
    }
    // The first change a socket makes has no earlier state to time; the others do.
    assert_eq!(client.ms, 0.0);
    assert!(
        lines.iter().all(|l| (0.0..10_000.0).contains(&l.ms)),
        "{lines:#?}"
    );
}

fn run_connection(ns: &Netns, comm: &str, addr: SocketAddr) -> u16 {
    ns.run(comm, move || connection(addr, 1)).port()
}

#[test]
fn ipv4_connection_full_sequence() {
    let ns = Netns::new("st4");
    let tool = start(&[], &[]);
    assert_eq!(tool.lines(), [HEADER]);
    let client_port = run_connection(&ns, "tcpst-v4", "127.0.0.1:23001".parse().unwrap());
    let done = stop_after(tool, 23001, 12);
    assert_full_connection(
        &lines_for(&done, 23001),
        23001,
        "127.0.0.1",
        client_port,
        "tcpst-v4",
    );
}

#[test]
fn ipv6_connection_full_sequence() {
    let ns = Netns::new("st6");
    let tool = start(&["-6"], &[]);
    let client_port = run_connection(&ns, "tcpst-v6", "[::1]:23002".parse().unwrap());
    let done = stop_after(tool, 23002, 12);
    assert_full_connection(
        &lines_for(&done, 23002),
        23002,
        "::1",
        client_port,
        "tcpst-v6",
    );
}

#[test]
fn local_and_remote_port_lists_filter_in_the_kernel() {
    let ns = Netns::new("stports");
    let by_local = start(&["-L", "23010,23011"], &[]);
    let by_remote = start(&["--remoteport=23020,,23021"], &[]);
    ns.run("tcpst-ports", || {
        for port in [23010, 23011, 23012, 23020, 23021, 23022] {
            connection(SocketAddr::from(([127, 0, 0, 1], port)), 0);
        }
    });
    // Local ports: the listener (2 events) and the accepted socket (5) of 23010 and 23011.
    let done = stop_after(by_local, 23011, 7);
    let lines: Vec<Line> = done.stdout[1..]
        .iter()
        .map(|l| parse_default(l).expect(l))
        .collect();
    for port in [23010, 23011] {
        let mine: Vec<&Line> = lines.iter().filter(|l| l.lport == port).collect();
        assert_eq!(mine.len(), 7, "{port}: {mine:#?}");
        assert!(mine.iter().all(|l| l.rport == 0 || l.raddr == "127.0.0.1"));
    }
    assert!(
        lines.iter().all(|l| l.lport == 23010 || l.lport == 23011),
        "{lines:#?}"
    );

    // Remote ports: the client socket (5 events) of 23020 and 23021, including its
    // CLOSE -> SYN_SENT with local port 0.
    let done = stop_after(by_remote, 23021, 5);
    let lines: Vec<Line> = done.stdout[1..]
        .iter()
        .map(|l| parse_default(l).expect(l))
        .collect();
    for port in [23020, 23021] {
        let mine: Vec<&Line> = lines.iter().filter(|l| l.rport == port).collect();
        assert_eq!(mine.len(), 5, "{port}: {mine:#?}");
        assert_eq!(
            format!("{} -> {} {}", mine[0].old, mine[0].new, mine[0].lport),
            "CLOSE -> SYN_SENT 0"
        );
    }
    assert!(
        lines.iter().all(|l| l.rport == 23020 || l.rport == 23021),
        "{lines:#?}"
    );
}

#[test]
fn family_filters_and_the_last_one_wins() {
    let ns = Netns::new("stfam");
    let v4_only = start(&["-6", "-4", "-D", "23030,23031"], &[]);
    let v6_only = start(&["-4", "--ipv6", "-D", "23030,23031"], &[]);
    ns.run("tcpst-fam", || {
        connection(SocketAddr::from(([127, 0, 0, 1], 23030)), 0);
        connection("[::1]:23031".parse().unwrap(), 0);
    });
    let v4 = stop_after(v4_only, 23030, 5);
    let v6 = stop_after(v6_only, 23031, 5);
    let ports = |done: &Finished| -> Vec<u16> {
        done.stdout[1..]
            .iter()
            .map(|l| parse_default(l).expect(l).rport)
            .collect()
    };
    assert_eq!(ports(&v4), [23030; 5]);
    assert_eq!(ports(&v6), [23031; 5]);
}

/// Lines without the MS column, sorted (buffers may deliver CPUs in a different order).
fn comparable(lines: &[Line]) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "{} {} {} {} {} {} {} {} -> {}",
                l.skaddr, l.pid, l.comm, l.laddr, l.lport, l.raddr, l.rport, l.old, l.new
            )
        })
        .collect();
    out.sort();
    out
}

fn assert_same_events(a: &[Line], b: &[Line], ms_tolerance: f64) {
    assert_eq!(comparable(a), comparable(b));
    for l in a {
        // The same socket address can serve several connections: match every column.
        let without_ms = |x: &Line| Line {
            ms: 0.0,
            ..x.clone()
        };
        let twin = b.iter().find(|m| without_ms(m) == without_ms(l)).unwrap();
        assert!((l.ms - twin.ms).abs() <= ms_tolerance, "{l:?} vs {twin:?}");
    }
}

#[test]
fn perf_buffer_and_raw_tracepoint_paths_print_the_same_lines() {
    let ns = Netns::new("stpaths");
    let ring = start(&[], &[]);
    let perf = start(&[], &[("TCPTOOLS_PERF_BUFFER", "1")]);
    let raw = start(&[], &[("TCPTOOLS_RAW_TP", "1")]);
    let raw_perf = start(
        &[],
        &[("TCPTOOLS_RAW_TP", "1"), ("TCPTOOLS_PERF_BUFFER", "1")],
    );
    ns.run("tcpst-paths", || {
        connection(SocketAddr::from(([127, 0, 0, 1], 23040)), 2);
        connection("[::1]:23040".parse().unwrap(), 2);
    });
    let ring = lines_for(&stop_after(ring, 23040, 24), 23040);
    assert_eq!(ring.len(), 24, "{ring:#?}");
    for other in [perf, raw, raw_perf] {
        let other = lines_for(&stop_after(other, 23040, 24), 23040);
        // Each tracer times states with its own clock reads, made one program after the
        // other on the same tracepoint, so MS may differ by some microseconds.
        assert_same_events(&ring, &other, 1.0);
    }
}

#[test]
fn same_lines_as_debian_libbpf_tools_tcpstates() {
    let peer = "/usr/sbin/tcpstates";
    assert!(
        std::path::Path::new(peer).exists(),
        "the peer {peer} is missing: run `make deps`"
    );
    // The peer attaches a classic tracepoint, which needs tracefs.
    if !std::path::Path::new("/sys/kernel/tracing/events").exists() {
        common::sh(
            "mount",
            &["-t", "tracefs", "tracefs", "/sys/kernel/tracing"],
        );
    }
    let ns = Netns::new("stpeer");
    // stdbuf: the peer's stdio would hold its header back until it exits.
    let theirs = Tool::start("stdbuf", &["-oL", peer, "-D", "23050"], &[], 1);
    let ours = start(&["-D", "23050"], &[]);
    ns.run("tcpst-peer", || {
        for _ in 0..3 {
            connection(SocketAddr::from(([127, 0, 0, 1], 23050)), 1);
        }
        connection("[::1]:23050".parse().unwrap(), 1);
    });
    let ours = stop_after(ours, 23050, 20);
    let theirs = stop_after(theirs, 23050, 20);
    assert_eq!(ours.stdout[0], theirs.stdout[0]);
    let ours = lines_for(&ours, 23050);
    let theirs = lines_for(&theirs, 23050);
    assert_eq!(ours.len(), 20, "{ours:#?}");
    assert_same_events(&ours, &theirs, 1.0);
}

#[test]
fn json_lines_carry_the_same_event() {
    let ns = Netns::new("stjson");
    // JSON has no header to say the tool is ready: connect until events show up.
    let mut tool = Tool::start(BIN, &["--json", "-t", "-D", "23060"], &[], 0);
    let mut seen = false;
    for _ in 0..40 {
        ns.run("tcpst-json", || {
            connection(SocketAddr::from(([127, 0, 0, 1], 23060)), 0)
        });
        if tool.wait_for_count(Duration::from_millis(500), 5, |l| {
            l.contains("\"rport\":23060")
        }) {
            seen = true;
            break;
        }
    }
    assert!(seen, "no JSON events: {:?}", tool.lines());
    let done = tool.stop_with(Signal::SIGINT);
    let events: Vec<serde_json::Value> = done
        .stdout
        .iter()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    // The last client socket that went through its whole life.
    let last = events
        .iter()
        .rev()
        .find(|e| e["oldstate"] == "FIN_WAIT2")
        .expect("a closed client");
    let socket: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["skaddr"] == last["skaddr"])
        .collect();
    let names: Vec<String> = socket
        .iter()
        .map(|e| {
            format!(
                "{} -> {}",
                e["oldstate"].as_str().unwrap(),
                e["newstate"].as_str().unwrap()
            )
        })
        .collect();
    let tail = &names[names.len() - 5..];
    assert_eq!(
        tail,
        [
            "CLOSE -> SYN_SENT",
            "SYN_SENT -> ESTABLISHED",
            "ESTABLISHED -> FIN_WAIT1",
            "FIN_WAIT1 -> FIN_WAIT2",
            "FIN_WAIT2 -> CLOSE"
        ]
    );
    let connect = socket[socket.len() - 5];
    assert_eq!(connect["pid"], std::process::id());
    assert_eq!(connect["comm"], "tcpst-json");
    assert_eq!(connect["ip"], 4);
    assert_eq!(
        (connect["laddr"].as_str(), connect["lport"].as_u64()),
        (Some("127.0.0.1"), Some(0))
    );
    assert_eq!(
        (connect["raddr"].as_str(), connect["rport"].as_u64()),
        (Some("127.0.0.1"), Some(23060))
    );
    assert_eq!(connect["ms"], 0.0);
    assert_eq!(events[0]["seconds"], 0.0);
    assert!(socket.last().unwrap()["seconds"].as_f64().unwrap() >= 0.0);
    assert!(chrono::DateTime::parse_from_rfc3339(connect["time"].as_str().unwrap()).is_ok());
}

#[test]
fn sigterm_ends_cleanly() {
    let tool = start(&["-T"], &[]);
    let done = tool.stop_with(Signal::SIGTERM);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout[0], format!("TIME(s)  {HEADER}"));
    // Only loss reports may appear (other tests' traffic runs through the tracepoint too).
    assert!(
        done.stderr
            .lines()
            .all(|l| l.starts_with("kernel skipped ") || l.starts_with("lost ")),
        "{}",
        done.stderr
    );
}

#[test]
fn a_closed_pipe_ends_the_tool_quietly() {
    let script = format!("{BIN} | head -n 1");
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "tcpstates kept running after head exited"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{HEADER}\n"));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn attaches_with_tp_btf() {
    common::assert_attaches_with_tp_btf(BIN, &[], 1);
}
