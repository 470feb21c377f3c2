//! tcprtt against real traffic in private network namespaces (root). Ports 41000-41099.
//!
//! The tracepoint sees every namespace, so every tool run filters on this file's ports
//! and on an address no other test uses (127.0.0.N or fd00::N, N from the port).
//! On a tbf-shaped loopback (2 mbit/s), a 1434-byte request and a 1434-byte response
//! (1500 bytes on the wire each) take 6 ms apiece: a round trip of about 12 ms, the middle
//! of the 8192..16383 us (8..15 ms) slot.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{Netns, Tool};
use nix::sys::signal::Signal;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tcprtt");
/// Payload that makes a 1500-byte packet on the wire.
const SLOW_SIZE: usize = 1434;

/// One connection with `rounds` request/response exchanges of `size` bytes each way; the
/// client closes first. While ESTABLISHED, the server's socket receives the requests, the
/// client's FIN and a window update or so; the client's the responses and about one more.
fn ping_pong(listen: SocketAddr, rounds: usize, size: usize) {
    let listener = TcpListener::bind(listen).expect("bind listener");
    exchange(&listener, rounds, size);
}

/// `ping_pong` over an existing listener.
fn exchange(listener: &TcpListener, rounds: usize, size: usize) {
    let listen = listener.local_addr().expect("listener address");
    let mut client = TcpStream::connect(listen).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    let request = vec![b'x'; size];
    let mut buf = vec![0u8; size];
    for _ in 0..rounds {
        client.write_all(&request).expect("client write");
        server.read_exact(&mut buf).expect("server read");
        server.write_all(&buf).expect("server write");
        client.read_exact(&mut buf).expect("client read");
    }
    drop(client);
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).expect("server reads EOF");
}

/// The samples of one side of a `ping_pong` connection: one per exchange, and at most
/// three more; both sides would give twice as many.
fn within(samples: u64, rounds: u64) -> bool {
    (rounds..=rounds + 3).contains(&samples)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// One printed histogram: its section header and its rows `(low, high, count)`.
#[derive(Debug)]
struct Section {
    header: String,
    rows: Vec<(u64, u64, u64)>,
}

impl Section {
    fn total(&self) -> u64 {
        self.rows.iter().map(|r| r.2).sum()
    }

    /// The row with the most samples.
    fn fullest(&self) -> (u64, u64, u64) {
        *self.rows.iter().max_by_key(|r| r.2).expect("rows")
    }

    /// The `n` of `[AVG n]`.
    fn average(&self) -> u64 {
        let start = self.header.find("[AVG ").expect("[AVG") + 5;
        self.header[start..self.header.len() - 1]
            .parse()
            .expect("average")
    }
}

fn sections(lines: &[String]) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in lines {
        if line.contains(" Address") && line.contains(" = ") {
            out.push(Section {
                header: line.clone(),
                rows: Vec::new(),
            });
        } else if let Some((range, rest)) = line.split_once(" : ") {
            if range.contains("->") {
                let mut ends = range.split("->").map(|s| s.trim().parse::<u64>().unwrap());
                let count = rest.split_whitespace().next().unwrap().parse().unwrap();
                let section = out.last_mut().expect("histogram rows after a header");
                section
                    .rows
                    .push((ends.next().unwrap(), ends.next().unwrap(), count));
            }
        }
    }
    out
}

fn headers(lines: &[String]) -> Vec<String> {
    sections(lines).into_iter().map(|s| s.header).collect()
}

const BANNER: &str = "Tracing TCP RTT... Hit Ctrl-C to end.";

#[test]
fn usecs_bucket_and_average_on_shaped_loopback() {
    let ns = Netns::new("rtt-us");
    ns.slow_loopback();
    let tool = Tool::start(BIN, &["-p", "41010", "-a", "127.0.0.10", "-e"], &[], 1);
    ns.run("rtt-us", || {
        ping_pong(addr("127.0.0.10:41010"), 60, SLOW_SIZE)
    });
    let done = tool.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout[0], BANNER);
    assert_eq!(done.stdout[1], "");
    let all = sections(&done.stdout);
    assert_eq!(all.len(), 1, "{:?}", done.stdout);
    let section = &all[0];
    assert!(section.header.starts_with("All Addresses = ****** [AVG "));
    assert_eq!(
        done.stdout[3],
        "     usecs               : count    distribution"
    );
    assert_eq!(section.fullest().0, 8192, "{:?}", done.stdout);
    assert_eq!(section.fullest().1, 16383);
    // Early samples are smaller (srtt converges from the unshaped handshake), and a round
    // trip is ~12 ms: the mean lands in the same slot.
    let avg = section.average();
    assert!((8192..=16383).contains(&avg), "AVG {avg}");
    // -p 41010: only the server's socket, one sample per request (plus the FIN).
    assert!(within(section.total(), 60), "{section:?}");
}

#[test]
fn msecs_bucket_and_average_with_timestamp_and_sigterm() {
    let ns = Netns::new("rtt-ms");
    ns.slow_loopback();
    let tool = Tool::start(
        BIN,
        &["-m", "-T", "-e", "-P", "41011", "-A", "127.0.0.11"],
        &[],
        1,
    );
    ns.run("rtt-ms", || {
        ping_pong(addr("127.0.0.11:41011"), 60, SLOW_SIZE)
    });
    let done = tool.stop_with(Signal::SIGTERM);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout[1], "");
    let time = &done.stdout[2];
    assert_eq!(time.len(), 8, "{time:?}");
    assert!(time.bytes().enumerate().all(|(i, b)| if i == 2 || i == 5 {
        b == b':'
    } else {
        b.is_ascii_digit()
    }));
    assert_eq!(
        done.stdout[4],
        "     msecs               : count    distribution"
    );
    let all = sections(&done.stdout);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].fullest().0, 8, "{:?}", done.stdout);
    assert_eq!(all[0].fullest().1, 15);
    let avg = all[0].average();
    assert!((8..=15).contains(&avg), "AVG {avg}");
    // -P 41011: only the client's socket, one sample per response.
    assert!(within(all[0].total(), 60), "{:?}", all[0]);
}

/// -p/-P pick sockets by port: a slow and a fast connection side by side.
#[test]
fn ports_select_the_right_sockets() {
    let ns = Netns::new("rtt-ports");
    ns.slow_loopback();
    let slow_local = Tool::start(BIN, &["-p", "41020", "-a", "127.0.0.20"], &[], 1);
    let slow_remote = Tool::start(BIN, &["-P", "41020", "-A", "127.0.0.20"], &[], 1);
    let fast = Tool::start(BIN, &["-p", "41021", "-a", "127.0.0.20"], &[], 1);
    let nothing = Tool::start(BIN, &["-p", "41022", "-a", "127.0.0.20"], &[], 1);
    ns.run("rtt-ports", || {
        ping_pong(addr("127.0.0.20:41021"), 40, 1);
        ping_pong(addr("127.0.0.20:41020"), 40, SLOW_SIZE);
    });
    for tool in [slow_local, slow_remote] {
        let done = tool.stop_with(Signal::SIGINT);
        let all = sections(&done.stdout);
        assert_eq!(all.len(), 1, "{:?}", done.stdout);
        assert_eq!(all[0].fullest().0, 8192, "{:?}", done.stdout);
        assert!(within(all[0].total(), 40), "{:?}", all[0]);
    }
    let done = fast.stop_with(Signal::SIGINT);
    let all = sections(&done.stdout);
    assert_eq!(all.len(), 1, "{:?}", done.stdout);
    assert!(within(all[0].total(), 40), "{:?}", all[0]);
    let last = all[0].rows.last().unwrap();
    assert!(
        last.1 < 4096,
        "fast connection saw slow RTTs: {:?}",
        done.stdout
    );
    let done = nothing.stop_with(Signal::SIGINT);
    assert_eq!(done.stdout, [BANNER, ""]);
}

/// -b/-B: one section per address, IPv4 and IPv6 apart; -4/-6 and -a/-A narrow them.
#[test]
fn one_section_per_address() {
    let ns = Netns::new("rtt-addr");
    for a in ["fd00::32/128", "fd00::33/128"] {
        ns.ip(&["addr", "add", a, "dev", "lo", "nodad"]);
    }
    let by_local = Tool::start(BIN, &["-b", "-p", "41030", "-e"], &[], 1);
    let by_remote = Tool::start(BIN, &["-B", "-P", "41030"], &[], 1);
    let v6_only = Tool::start(BIN, &["-6", "-b", "-p", "41030"], &[], 1);
    let v4_only = Tool::start(BIN, &["-4", "-B", "-P", "41030"], &[], 1);
    let one_v4 = Tool::start(BIN, &["-B", "-A", "127.0.0.33", "-P", "41030"], &[], 1);
    let one_v6 = Tool::start(BIN, &["-b", "-a", "fd00::32", "-p", "41030"], &[], 1);
    let listens = [
        "127.0.0.32:41030",
        "127.0.0.33:41030",
        "[fd00::32]:41030",
        "[fd00::33]:41030",
    ];
    ns.run("rtt-addr", move || {
        for l in listens {
            ping_pong(addr(l), 5, 1);
        }
    });
    let expect = |tool: Tool, prefix: &str, addrs: &[&str]| {
        let done = tool.stop_with(Signal::SIGINT);
        assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
        let found = headers(&done.stdout);
        let wanted: Vec<String> = addrs.iter().map(|a| format!("{prefix} = {a} ")).collect();
        let trimmed: Vec<String> = found
            .iter()
            .map(|h| h.split("[AVG").next().unwrap().to_owned())
            .collect();
        assert_eq!(trimmed, wanted, "{:?}", done.stdout);
        for s in sections(&done.stdout) {
            assert!(within(s.total(), 5), "{s:?}");
        }
        found
    };
    let all4 = ["127.0.0.32", "127.0.0.33", "fd00::32", "fd00::33"];
    let found = expect(by_local, "Local Address", &all4);
    assert!(found.iter().all(|h| h.contains("[AVG ")));
    expect(by_remote, "Remote Address", &all4);
    expect(v6_only, "Local Address", &["fd00::32", "fd00::33"]);
    expect(v4_only, "Remote Address", &["127.0.0.32", "127.0.0.33"]);
    expect(one_v4, "Remote Address", &["127.0.0.33"]);
    expect(one_v6, "Local Address", &["fd00::32"]);
}

#[test]
fn interval_and_duration_end_by_themselves() {
    let started = std::time::Instant::now();
    let tool = Tool::start(
        BIN,
        &["-i", "1", "-d", "3", "-p", "41040", "-A", "192.0.2.1", "-T"],
        &[],
        1,
    );
    let done = tool.finish();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout[0], "Tracing TCP RTT for 3 secs.");
    // Three idle intervals: an empty line and a time line each.
    assert_eq!(done.stdout.len(), 7, "{:?}", done.stdout);
    for i in 0..3 {
        assert_eq!(done.stdout[1 + 2 * i], "");
        assert_eq!(done.stdout[2 + 2 * i].len(), 8);
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(8),
        "{took:?}"
    );

    // -d without -i: one interval of the whole duration (bcc never ends here).
    let started = std::time::Instant::now();
    let done = Tool::start(BIN, &["-d", "1", "-p", "41041", "-A", "192.0.2.1"], &[], 1).finish();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout, ["Tracing TCP RTT for 1 secs.", ""]);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Across interval boundaries nothing is lost or counted twice: the per-second histograms
/// of one run add up to exactly the single histogram of another run that saw the same
/// segments.
#[test]
fn intervals_neither_lose_nor_duplicate_samples() {
    let ns = Netns::new("rtt-gen");
    let per_second = Tool::start(BIN, &["-i", "1", "-p", "41050", "-a", "127.0.0.50"], &[], 1);
    let whole = Tool::start(BIN, &["-p", "41050", "-a", "127.0.0.50"], &[], 1);
    ns.run("rtt-gen", || {
        let listener = TcpListener::bind(addr("127.0.0.50:41050")).expect("bind listener");
        // Bounded by time (3.5 s, so at least three 1-second intervals see samples), and
        // by count in case the clock misbehaves.
        let end = std::time::Instant::now() + Duration::from_millis(3500);
        for _ in 0..100_000 {
            if std::time::Instant::now() >= end {
                break;
            }
            exchange(&listener, 100, 1);
        }
    });
    let whole = whole.stop_with(Signal::SIGINT);
    let per_second = per_second.stop_with(Signal::SIGINT);
    assert_eq!(per_second.status.code(), Some(0), "{}", per_second.stderr);
    let whole_total = sections(&whole.stdout)[0].total();
    let intervals = sections(&per_second.stdout);
    assert!(intervals.len() >= 3, "{:?}", per_second.stdout);
    let interval_total: u64 = intervals.iter().map(Section::total).sum();
    assert!(whole_total > 1000, "{whole_total}");
    assert_eq!(interval_total, whole_total);
}

/// `--json`: one object per histogram per interval, with the documented fields.
#[test]
fn json_objects() {
    let ns = Netns::new("rtt-json");
    ns.slow_loopback();
    // No banner in JSON: send traffic until the first interval with samples shows up,
    // which also proves the programs are attached.
    let mut tool = Tool::start(
        BIN,
        &[
            "--json",
            "-i",
            "1",
            "-e",
            "-m",
            "-B",
            "-P",
            "41060",
            "-A",
            "127.0.0.60",
        ],
        &[],
        0,
    );
    let mut seen = false;
    for _ in 0..10 {
        ns.run("rtt-json", || {
            ping_pong(addr("127.0.0.60:41060"), 60, SLOW_SIZE)
        });
        if tool.wait_for(Duration::from_millis(1500), |l| l.starts_with('{')) {
            seen = true;
            break;
        }
    }
    assert!(seen, "no JSON output");
    let done = tool.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    let objects: Vec<Value> = done
        .stdout
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let fullest = objects
        .iter()
        .max_by_key(|o| o["count"].as_u64().unwrap())
        .unwrap();
    assert_eq!(fullest["key"], "remote");
    assert_eq!(fullest["addr"], "127.0.0.60");
    assert_eq!(fullest["unit"], "msecs");
    assert!(fullest["time"].as_str().unwrap().contains('T'));
    let buckets = fullest["buckets"].as_array().unwrap();
    let count: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(count, fullest["count"].as_u64().unwrap());
    let top = buckets
        .iter()
        .max_by_key(|b| b["count"].as_u64().unwrap())
        .unwrap();
    assert_eq!(
        (top["low"].as_u64(), top["high"].as_u64()),
        (Some(8), Some(15))
    );
    let avg = fullest["avg"].as_u64().unwrap();
    assert!((8..=15).contains(&avg), "avg {avg}");
    assert!(fullest["sum"].as_u64().unwrap() >= avg * count);
}

/// The raw_tp program (used where tp_btf cannot load) counts the same way.
#[test]
fn raw_tp_program() {
    let ns = Netns::new("rtt-raw");
    ns.ip(&["addr", "add", "fd00::70/128", "dev", "lo", "nodad"]);
    let tool = Tool::start(
        BIN,
        &["-p", "41070", "-a", "fd00::70", "-B"],
        &[("TCPTOOLS_RAW_TP", "1")],
        1,
    );
    ns.run("rtt-raw", || ping_pong(addr("[fd00::70]:41070"), 20, 1));
    let done = tool.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    let all = sections(&done.stdout);
    assert_eq!(all.len(), 1, "{:?}", done.stdout);
    assert_eq!(all[0].header, "Remote Address = fd00::70 ");
    assert!(within(all[0].total(), 20), "{:?}", all[0]);
}

#[test]
fn attaches_with_tp_btf() {
    common::assert_attaches_with_tp_btf(BIN, &[], 1);
}
