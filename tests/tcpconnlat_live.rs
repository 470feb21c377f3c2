//! tcpconnlat traced live: real connects in private network namespaces (needs root).

mod common;

use std::cell::Cell;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{bpftool_json, connection, map_named, value_bytes, Finished, Netns, Tool};
use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_tcpconnlat");
const WAIT: Duration = Duration::from_secs(10);

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

/// One event line, split into its columns.
#[derive(Debug)]
struct Connect {
    pid: u32,
    comm: String,
    ip: u8,
    saddr: String,
    lport: Option<u16>,
    daddr: String,
    dport: u16,
    lat_ms: f64,
}

/// Parses an event line of the default layout, or of the `-L` layout.
fn parse(line: &str, with_lport: bool) -> Option<Connect> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (lport, rest) = if with_lport {
        if f.len() != 8 {
            return None;
        }
        (Some(f[4].parse().ok()?), &f[5..])
    } else {
        if f.len() != 7 {
            return None;
        }
        (None, &f[4..])
    };
    Some(Connect {
        pid: f[0].parse().ok()?,
        comm: f[1].to_owned(),
        ip: f[2].parse().ok()?,
        saddr: f[3].to_owned(),
        lport,
        daddr: rest[0].to_owned(),
        dport: rest[1].parse().ok()?,
        lat_ms: rest[2].parse().ok()?,
    })
}

/// The connects `comm` made, from the lines a tool printed.
fn connects_of(lines: &[String], comm: &str, with_lport: bool) -> Vec<Connect> {
    lines
        .iter()
        .filter_map(|l| parse(l, with_lport))
        .filter(|c| c.comm == comm)
        .collect()
}

fn has_connect(comm: &'static str, dport: u16, with_lport: bool) -> impl Fn(&str) -> bool {
    move |l| parse(l, with_lport).is_some_and(|c| c.comm == comm && c.dport == dport)
}

/// Waits until `count` lines match `pred`.
fn wait_for_count(tool: &mut Tool, count: usize, pred: impl Fn(&str) -> bool) -> bool {
    let hits = Cell::new(0);
    tool.wait_for(WAIT, |l| {
        if pred(l) {
            hits.set(hits.get() + 1);
        }
        hits.get() >= count
    })
}

fn stop(tool: Tool) -> Finished {
    let done = tool.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "stderr: {}", done.stderr);
    done
}

/// Fast connects over IPv4, IPv6 and IPv4-mapped IPv6 show the right columns.
fn fast_connects(tag: &'static str, ports: [u16; 3], env: &[(&str, &str)]) {
    let ns = Netns::new(tag);
    let mut tool = Tool::start(BIN, &[], env, 1);
    assert!(tool.wait_for(Duration::ZERO, |l| l
        == "PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)"));
    ns.run(tag, move || {
        connection(addr(&format!("127.0.0.1:{}", ports[0])), 1);
        connection(addr(&format!("[::1]:{}", ports[1])), 1);
        let listener = TcpListener::bind(addr(&format!("127.0.0.1:{}", ports[2]))).unwrap();
        let client = TcpStream::connect(addr(&format!("[::ffff:127.0.0.1]:{}", ports[2]))).unwrap();
        drop(listener.accept().unwrap());
        drop(client);
    });
    assert!(tool.wait_for(WAIT, has_connect(tag, ports[2], false)));
    let done = stop(tool);
    let seen = connects_of(&done.stdout, tag, false);
    assert_eq!(seen.len(), 3, "{:?}", done.stdout);
    let me = std::process::id();
    let expected = [
        (4, "127.0.0.1", ports[0]),
        (6, "::1", ports[1]),
        (6, "::ffff:127.0.0.1", ports[2]),
    ];
    for (c, (ip, address, port)) in seen.iter().zip(expected) {
        assert_eq!((c.pid, c.ip, c.dport), (me, ip, port), "{c:?}");
        assert_eq!(
            (c.saddr.as_str(), c.daddr.as_str()),
            (address, address),
            "{c:?}"
        );
        assert!((0.0..100.0).contains(&c.lat_ms), "{c:?}");
    }
}

#[test]
fn fast_ipv4_ipv6_and_mapped_connects_appear() {
    fast_connects("clfast", [42001, 42002, 42003], &[]);
}

#[test]
fn perf_buffer_and_raw_tracepoint_see_the_same() {
    fast_connects(
        "clperfraw",
        [42005, 42006, 42007],
        &[("TCPTOOLS_PERF_BUFFER", "1"), ("TCPTOOLS_RAW_TP", "1")],
    );
}

#[test]
fn a_minimum_hides_fast_connects_and_keeps_slow_ones() {
    let ns = Netns::new("clmin");
    ns.drop_every_other_syn(42011);
    let mut tool = Tool::start(BIN, &["10"], &[], 1);
    let started = Instant::now();
    ns.run("clmin", || {
        connection(addr("127.0.0.1:42010"), 1);
        connection(addr("[::1]:42012"), 1);
        connection(addr("127.0.0.1:42011"), 1);
        connection(addr("127.0.0.1:42011"), 1);
    });
    // Each connect to 42011 lost its first SYN and waited for the retransmission.
    assert!(started.elapsed() >= Duration::from_millis(1800));
    assert!(wait_for_count(
        &mut tool,
        2,
        has_connect("clmin", 42011, false)
    ));
    let done = stop(tool);
    let seen = connects_of(&done.stdout, "clmin", false);
    assert_eq!(seen.len(), 2, "{:?}", done.stdout);
    for c in &seen {
        assert_eq!(c.dport, 42011, "{c:?}");
        assert!(c.lat_ms >= 900.0 && c.lat_ms < 3000.0, "{c:?}");
    }
}

#[test]
fn local_port_is_the_client_sockets_port() {
    let ns = Netns::new("cllport");
    let mut tool = Tool::start(BIN, &["-L"], &[], 1);
    assert!(tool.wait_for(Duration::ZERO, |l| {
        l == "PID    COMM         IP SADDR            LPORT  DADDR            DPORT LAT(ms)"
    }));
    let clients = ns.run("cllport", || {
        [
            connection(addr("127.0.0.1:42020"), 1),
            connection(addr("[::1]:42021"), 1),
        ]
    });
    assert!(tool.wait_for(WAIT, has_connect("cllport", 42021, true)));
    let done = stop(tool);
    let seen = connects_of(&done.stdout, "cllport", true);
    assert_eq!(seen.len(), 2, "{:?}", done.stdout);
    for (c, client) in seen.iter().zip(clients) {
        assert_eq!(c.lport, Some(client.port()), "{c:?}");
        assert_ne!(c.lport, Some(0));
        assert_eq!(c.saddr, client.ip().to_string(), "{c:?}");
    }
}

#[test]
fn pid_filter_keeps_only_that_process() {
    let ns = Netns::new("clpid");
    let me = std::process::id().to_string();
    let mut mine = Tool::start(BIN, &["-p", &me], &[], 1);
    let mut all = Tool::start(BIN, &[], &[], 1);
    // A listener in the namespace for another process (bash) to connect to.
    let listener = ns.run("clpidsrv", || {
        TcpListener::bind(addr("127.0.0.1:42031")).unwrap()
    });
    let bash = Command::new("ip")
        .args(["netns", "exec", &ns.name, "bash", "-c"])
        .arg("exec 3<>/dev/tcp/127.0.0.1/42031")
        .spawn()
        .expect("start bash");
    // `ip netns exec` execs bash in place: the child's pid is the connecting process.
    let bash_pid = bash.id();
    let status = bash.wait_with_output().expect("bash ends").status;
    assert!(status.success());
    drop(listener);
    ns.run("clpid", || connection(addr("127.0.0.1:42030"), 1));

    assert!(all.wait_for(WAIT, has_connect("clpid", 42030, false)));
    let everyone = stop(all);
    let others: Vec<Connect> = everyone
        .stdout
        .iter()
        .filter_map(|l| parse(l, false))
        .filter(|c| c.dport == 42031)
        .collect();
    assert_eq!(others.len(), 1, "{:?}", everyone.stdout);
    assert_eq!((others[0].pid, others[0].comm.as_str()), (bash_pid, "bash"));

    assert!(mine.wait_for(WAIT, has_connect("clpid", 42030, false)));
    let filtered = stop(mine);
    let events: Vec<Connect> = filtered
        .stdout
        .iter()
        .filter_map(|l| parse(l, false))
        .filter(|c| c.dport == 42030 || c.dport == 42031)
        .collect();
    assert_eq!(events.len(), 1, "{:?}", filtered.stdout);
    assert_eq!(events[0].dport, 42030);
    assert_eq!(events[0].pid.to_string(), me);
}

#[test]
fn family_filters() {
    let ns = Netns::new("clfam");
    let mut v6 = Tool::start(BIN, &["-4", "-6"], &[], 1);
    let mut v4 = Tool::start(BIN, &["--ipv4"], &[], 1);
    ns.run("clfam", || {
        connection(addr("127.0.0.1:42050"), 1);
        connection(addr("[::1]:42051"), 1);
        connection(addr("127.0.0.1:42052"), 1);
    });
    assert!(v6.wait_for(WAIT, has_connect("clfam", 42051, false)));
    assert!(v4.wait_for(WAIT, has_connect("clfam", 42052, false)));
    let v6 = stop(v6);
    let v4 = stop(v4);
    let ports = |done: &Finished| -> Vec<u16> {
        connects_of(&done.stdout, "clfam", false)
            .iter()
            .map(|c| c.dport)
            .collect()
    };
    assert_eq!(ports(&v6), [42051]);
    assert_eq!(ports(&v4), [42050, 42052]);
}

#[test]
fn a_refused_connect_is_reported() {
    let ns = Netns::new("clrefuse");
    let mut tool = Tool::start(BIN, &["-L", "-t"], &[], 1);
    let errors = ns.run("clrefuse", || {
        [
            TcpStream::connect(addr("127.0.0.1:42040")).map(|_| ()),
            TcpStream::connect(addr("[::1]:42041")).map(|_| ()),
        ]
        .map(|r| r.err().map(|e| e.kind()))
    });
    assert_eq!(
        errors,
        [
            Some(ErrorKind::ConnectionRefused),
            Some(ErrorKind::ConnectionRefused)
        ]
    );
    assert!(tool.wait_for(WAIT, |l| l.contains(" clrefuse ") && l.contains(" 42041 ")));
    let done = stop(tool);
    assert_eq!(
        done.stdout[0],
        "TIME(s)   PID    COMM         IP SADDR            LPORT  DADDR            DPORT LAT(ms)"
    );
    // With -t the first column is the seconds; drop it and parse the rest.
    let rest: Vec<String> = done
        .stdout
        .iter()
        .skip(1)
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.to_owned()))
        .collect();
    let seen = connects_of(&rest, "clrefuse", true);
    assert_eq!(seen.len(), 2, "{:?}", done.stdout);
    assert_eq!((seen[0].ip, seen[0].dport), (4, 42040));
    assert_eq!((seen[1].ip, seen[1].dport), (6, 42041));
    assert_eq!(seen[1].saddr, "::1");
    for c in &seen {
        assert_eq!(c.pid, std::process::id());
        assert!(c.lport.is_some_and(|p| p > 0), "{c:?}");
        assert!((0.0..100.0).contains(&c.lat_ms), "{c:?}");
    }
}

/// The id of the raw_tp programs' start table (there is one per running tcpconnlat).
fn start_map_of(tool: &Tool) -> u32 {
    map_named(tool.pid(), "start_table")
}

/// Entries of the start map whose process name is `comm` (the tool also sees connects of
/// tests running at the same time).
fn start_entries_of(map: u32, comm: &str) -> usize {
    let dump = bpftool_json(&["map", "dump", "id", &map.to_string()]);
    let entries = dump.as_array().expect("a list of entries");
    entries
        .iter()
        .filter(|e| {
            // struct connect_start: ts_ns (8), tgid (4), comm (16), pad (4).
            let bytes = value_bytes(e);
            assert_eq!(bytes.len(), 32, "{e}");
            let name = &bytes[12..28];
            let len = name.iter().position(|&b| b == 0).unwrap_or(16);
            &name[..len] == comm.as_bytes()
        })
        .count()
}

#[test]
fn connects_that_never_complete_leave_no_entries() {
    const CONNECTS: usize = 24;
    let ns = Netns::new("clnever");
    // Every SYN to 42060 is dropped: the connects stay in SYN_SENT until closed.
    ns.exec(
        "nft",
        &["add table inet clnever; add chain inet clnever input { type filter hook input priority 0; }; \
           add rule inet clnever input tcp dport 42060 tcp flags & (syn|ack) == syn drop"],
    );
    // The tp_btf programs keep connect starts in the slot table and socket storage
    // (bpf/sk_store.bpf.h), which cannot outlive its socket and which bpftool cannot dump.
    // The raw_tp programs keep them in a fixed hash table, start_table, where a leak would
    // stay: force raw_tp and watch that table.
    let tool = Tool::start(BIN, &[], &[("TCPTOOLS_RAW_TP", "1")], 1);
    let map = start_map_of(&tool);
    assert_eq!(start_entries_of(map, "clnever"), 0);
    let connects = ns.run("clnever-spawn", || {
        (0..CONNECTS)
            .map(|i| {
                let target = if i % 2 == 0 {
                    "127.0.0.1:42060"
                } else {
                    "[::1]:42060"
                };
                thread::Builder::new()
                    .name("clnever".to_owned())
                    .spawn(move || {
                        // Gives up after 1.5 s and closes the socket while still in SYN_SENT.
                        TcpStream::connect_timeout(&addr(target), Duration::from_millis(1500))
                            .map(|_| ())
                            .map_err(|e| e.kind())
                    })
                    .expect("spawn connect thread")
            })
            .collect::<Vec<_>>()
    });
    // Halfway: every connect is in flight and has its entry.
    thread::sleep(Duration::from_millis(700));
    assert_eq!(start_entries_of(map, "clnever"), CONNECTS);
    for connect in connects {
        assert_eq!(
            connect.join().expect("connect thread"),
            Err(ErrorKind::TimedOut)
        );
    }
    thread::sleep(Duration::from_millis(200));
    assert_eq!(start_entries_of(map, "clnever"), 0);
    let done = tool.stop_with(Signal::SIGTERM);
    assert_eq!(done.status.code(), Some(0), "stderr: {}", done.stderr);
    assert!(
        connects_of(&done.stdout, "clnever", false).is_empty(),
        "{:?}",
        done.stdout
    );
}

#[test]
fn attaches_with_tp_btf() {
    common::assert_attaches_with_tp_btf(BIN, &[], 1);
}
