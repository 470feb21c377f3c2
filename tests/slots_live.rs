//! Per-socket state beyond the slot table (bpf/slots.bpf.h) goes to socket storage, and
//! nothing of it is lost: tcpconnlat, tcpstates and tcptools-exporter with the table shrunk to 2
//! buckets of 8 sockets (TCPTOOLS_SLOT_BITS=1) and more sockets than that in flight at
//! once (needs root).

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::web::{parse_samples, scrape, Exporter};
use common::{bpftool_json, map_named, value_bytes, Netns, Tool};
use nix::sys::signal::Signal;

const TCPCONNLAT: &str = env!("CARGO_BIN_EXE_tcpconnlat");
const TCPSTATES: &str = env!("CARGO_BIN_EXE_tcpstates");
const SLOT_BITS: (&str, &str) = ("TCPTOOLS_SLOT_BITS", "1");
/// The slots of that table: 2 buckets of 8.
const SLOTS: usize = 16;
const CONNECT_PORT: u16 = 43800;
const SERVER_PORT: u16 = 43801;
const EXPORTER_PORT: u16 = 43802;
const STATES_PORT: u16 = 43803;

/// Sockets holding a slot in the slot table `map` (its nonzero keys).
fn slots_in_use(map: u32) -> usize {
    let dump = bpftool_json(&["map", "dump", "id", &map.to_string()]);
    let buckets = dump.as_array().expect("a list of buckets");
    buckets
        .iter()
        .map(|b| {
            value_bytes(b)
                .chunks(8)
                .filter(|key| key.iter().any(|&x| x != 0))
                .count()
        })
        .sum()
}

/// Waits (up to 10 s) until no socket holds a slot of `map`.
fn wait_for_empty_slots(map: u32) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let in_use = slots_in_use(map);
        if in_use == 0 || Instant::now() > deadline {
            return in_use;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Latencies in ms of the connects tcpconnlat printed for process name `comm`.
fn latencies_of(lines: &[String], comm: &str) -> Vec<f64> {
    lines
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() == 7 && f[1] == comm)
        .map(|f| f[6].parse().expect("LAT(ms) is a number"))
        .collect()
}

#[test]
fn connects_beyond_the_slot_table_are_measured() {
    const CONNECTS: usize = 40;
    let ns = Netns::new("slotcl");
    // Half of the SYNs are dropped: about 20 connects wait in SYN_SENT at once, more than
    // the table holds, so some go to socket storage.
    ns.drop_every_other_syn(CONNECT_PORT);
    let tool = Tool::start(TCPCONNLAT, &[], &[SLOT_BITS], 1);
    let map = map_named(tool.pid(), "start_slots");
    let (listener, connects) = ns.run("slotcl-spawn", || {
        let listen = SocketAddr::from(([127, 0, 0, 1], CONNECT_PORT));
        let listener = TcpListener::bind(listen).expect("bind");
        let connects: Vec<_> = (0..CONNECTS)
            .map(|_| {
                thread::Builder::new()
                    .name("slotcl".to_owned())
                    .spawn(move || TcpStream::connect_timeout(&listen, Duration::from_secs(10)))
                    .expect("spawn connect thread")
            })
            .collect();
        (listener, connects)
    });
    thread::sleep(Duration::from_millis(500));
    // 20 sockets in 2 buckets: one bucket has at least 10 for its 8 slots.
    let in_use = slots_in_use(map);
    assert!(in_use >= SLOTS / 2, "slots in use halfway: {in_use}");
    let streams: Vec<TcpStream> = connects
        .into_iter()
        .map(|c| c.join().expect("connect thread").expect("connect"))
        .collect();
    drop((streams, listener));
    assert_eq!(wait_for_empty_slots(map), 0, "slots left in use");
    let done = tool.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "stderr: {}", done.stderr);
    let lat = latencies_of(&done.stdout, "slotcl");
    assert_eq!(lat.len(), CONNECTS, "{:?}", done.stdout);
    // A connect whose SYN was dropped waits at least the initial RTO (1 s): half of them.
    let slow = lat.iter().filter(|&&ms| ms >= 900.0).count();
    assert_eq!(slow, CONNECTS / 2, "{lat:?}");
    assert!(lat.iter().all(|&ms| ms < 10_000.0), "{lat:?}");
}

/// Opens `n` connections to 127.0.0.1:`port` in `ns` and holds them for `hold`, then
/// closes them, clients first (every server read has a timeout); returns the slots of the
/// table `map` in use while all were open.
fn hold_connections(ns: &Netns, port: u16, n: usize, map: u32, hold: Duration) -> usize {
    ns.run("slotheld", move || {
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(listen).expect("bind");
        let pairs: Vec<(TcpStream, TcpStream)> = (0..n)
            .map(|_| {
                let client = TcpStream::connect(listen).expect("connect");
                (client, listener.accept().expect("accept").0)
            })
            .collect();
        let held = slots_in_use(map);
        thread::sleep(hold);
        for (client, mut server) in pairs {
            drop(client);
            server
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            server
                .read_to_end(&mut Vec::new())
                .expect("server reads EOF");
        }
        held
    })
}

/// The exporter's count of `name` with exactly `labels`.
fn count_of(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    parse_samples(text).into_iter().find_map(|(n, l, v)| {
        let same = l.len() == labels.len()
            && labels
                .iter()
                .all(|(k, want)| l.get(*k).map(String::as_str) == Some(*want));
        (n == name && same).then_some(v)
    })
}

#[test]
fn sockets_beyond_the_slot_table_keep_their_state_starts() {
    const CONNECTIONS: usize = 30;
    let ns = Netns::new("slotexp");
    let port = SERVER_PORT.to_string();
    // -D: only this test's client sockets are counted, and take slots.
    let exporter = Exporter::start_env(&ns, EXPORTER_PORT, &["-D", &port], &[SLOT_BITS]);
    let map = map_named(exporter.pid(), "start_slots");
    // 30 client sockets ESTABLISHED at once in a table of 16.
    let held = hold_connections(&ns, SERVER_PORT, CONNECTIONS, map, Duration::ZERO);
    assert_eq!(held, SLOTS, "slots in use with every connection open");
    // Every client socket left SYN_SENT, ESTABLISHED, FIN_WAIT1 and FIN_WAIT2 from a start
    // the programs kept: in a slot or in socket storage.
    let states = ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"];
    let durations = |text: &str, state: &str| {
        count_of(
            text,
            "tcp_state_duration_seconds_count",
            &[("family", "ipv4"), ("state", state)],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(&ns, EXPORTER_PORT, Duration::from_secs(5));
        let all = states
            .iter()
            .all(|s| durations(&text, s) == Some(CONNECTIONS as f64));
        if all || Instant::now() > deadline {
            break text;
        }
        thread::sleep(Duration::from_millis(200));
    };
    for state in states {
        assert_eq!(
            durations(&text, state),
            Some(CONNECTIONS as f64),
            "{state}: {text}"
        );
    }
    assert_eq!(wait_for_empty_slots(map), 0, "slots left in use");
    let done = exporter.stop();
    assert_eq!(done.status.code(), Some(0), "stderr: {}", done.stderr);
}

/// tcpstates without owners to keep holds state starts in the slot table, and what does
/// not fit in socket storage: 30 client sockets held open at once in a table of 16, each
/// printed leaving ESTABLISHED after the time it was held.
#[test]
fn tcpstates_beyond_the_slot_table_measures_every_state() {
    const CONNECTIONS: usize = 30;
    const HOLD: Duration = Duration::from_millis(300);
    let ns = Netns::new("slotst");
    let port = STATES_PORT.to_string();
    // -D: only this test's client sockets are traced, and take slots.
    let tool = Tool::start(TCPSTATES, &["-D", &port], &[SLOT_BITS], 1);
    let map = map_named(tool.pid(), "state_slots");
    let held = hold_connections(&ns, STATES_PORT, CONNECTIONS, map, HOLD);
    assert_eq!(held, SLOTS, "slots in use with every connection open");
    assert_eq!(wait_for_empty_slots(map), 0, "slots left in use");
    let done = tool.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "stderr: {}", done.stderr);
    // ... RPORT OLDSTATE -> NEWSTATE MS
    let held_ms: Vec<f64> = done
        .stdout
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| {
            f.len() >= 5 && f[f.len() - 4] == "ESTABLISHED" && f[f.len() - 2] == "FIN_WAIT1"
        })
        .map(|f| f[f.len() - 1].parse().expect("MS is a number"))
        .collect();
    assert_eq!(held_ms.len(), CONNECTIONS, "{:?}", done.stdout);
    assert!(
        held_ms
            .iter()
            .all(|&ms| ms >= HOLD.as_millis() as f64 && ms < 10_000.0),
        "{held_ms:?}"
    );
}
