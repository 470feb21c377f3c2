//! The container dimension (issue 14) on real loopback traffic (needs root): `-c/--cgroup`,
//! `--netns`, the JSON `cgroup`/`netns`/`owner_*` fields, tcpstates `--owner` and
//! `--show-cgroup`, tcprtt `--bycgroup`, and per-socket state with 12,000 sockets.
//! Ports 43000-43999 are this file's.
//!
//! Servers and clients are separate python3 processes, moved into the test's own cgroups
//! before they exec (the test process never moves: its threads run other tests). Every tool
//! run is filtered on the test's own cgroup or namespace, since tracepoints see everything.

mod common;

use std::collections::BTreeMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use common::{
    assert_one_line_failure, cgroup_of_pid, inode_of, transitions_of, wait_for_bpf_links, Cgroup,
    Finished, Netns, Proc, Tool,
};
use nix::sys::signal::Signal;
use serde_json::Value;

const TCPSTATES: &str = env!("CARGO_BIN_EXE_tcpstates");
const TCPRTT: &str = env!("CARGO_BIN_EXE_tcprtt");
const TCPCONNLAT: &str = env!("CARGO_BIN_EXE_tcpconnlat");
const WAIT: Duration = Duration::from_secs(20);

/// The 12,000-socket test takes this for writing, the others for reading: it runs alone, so
/// its load cannot make the others lose events, and theirs cannot slow it down.
static HEAVY: RwLock<()> = RwLock::new(());

fn light() -> RwLockReadGuard<'static, ()> {
    HEAVY.read().unwrap_or_else(|e| e.into_inner())
}

fn heavy() -> RwLockWriteGuard<'static, ()> {
    HEAVY.write().unwrap_or_else(|e| e.into_inner())
}

/// An echo server: listens on HOST PORT, prints `ready`, serves N connections one after the
/// other (echoing until the client closes, then closing), closes the listener, prints `done`.
const SERVER: &str = r#"
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
l = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((host, port))
l.listen(64)
print('ready', flush=True)
for _ in range(n):
    c, _ = l.accept()
    while True:
        b = c.recv(64)
        if not b:
            break
        c.sendall(b)
    c.close()
l.close()
print('done', flush=True)
"#;

/// A client: prints `ready` and waits for a line on stdin (so the test can read its
/// /proc entries first), then makes N connections to HOST PORT one after the other, ROUNDS
/// one-byte exchanges each; it closes first (so the server sees EOF and closes after it).
/// Prints `done`.
const CLIENT: &str = r#"
import socket, sys
host, port, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print('ready', flush=True)
sys.stdin.readline()
for _ in range(n):
    s = socket.create_connection((host, port))
    for _ in range(rounds):
        s.sendall(b'x')
        assert s.recv(1) == b'x'
    s.close()
print('done', flush=True)
"#;

fn server(cgroup: Option<&Cgroup>, ns: &Netns, port: u16, n: usize) -> Proc {
    let mut p = Proc::spawn(
        cgroup,
        ns,
        "python3",
        &["-c", SERVER, "127.0.0.1", &port.to_string(), &n.to_string()],
    );
    p.expect_line("ready", WAIT);
    p
}

/// Starts a client, in its cgroup, ready to connect when `go` is called.
fn client(cgroup: Option<&Cgroup>, ns: &Netns, port: u16, n: usize, rounds: usize) -> Proc {
    let mut p = Proc::spawn(
        cgroup,
        ns,
        "python3",
        &[
            "-c",
            CLIENT,
            "127.0.0.1",
            &port.to_string(),
            &n.to_string(),
            &rounds.to_string(),
        ],
    );
    p.expect_line("ready", WAIT);
    p
}

fn go(p: &mut Proc) {
    p.send_line("go");
}

/// Runs a server and a client (N connections to `port`) to their end.
fn traffic(
    server_cg: Option<&Cgroup>,
    client_cg: Option<&Cgroup>,
    ns: &Netns,
    port: u16,
    n: usize,
) -> (u32, u32) {
    let mut s = server(server_cg, ns, port, n);
    let mut c = client(client_cg, ns, port, n, 3);
    go(&mut c);
    let pids = (s.pid(), c.pid());
    c.expect_line("done", WAIT);
    s.expect_line("done", WAIT);
    c.finish(WAIT);
    s.finish(WAIT);
    pids
}

/// Starts a tool printing JSON (no header) and waits until its programs are attached.
fn start_json(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Tool {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let tool = Tool::start(bin, &all, env, 0);
    assert!(
        wait_for_bpf_links(tool.pid(), 1),
        "{bin} {all:?} did not attach"
    );
    tool
}

/// Waits for `count` JSON objects (at most `timeout`), a little longer for any extra one,
/// then stops the tool with SIGINT and returns its objects.
fn stop_after(mut tool: Tool, count: usize, timeout: Duration) -> (Vec<Value>, Finished) {
    tool.wait_for_count(timeout, count, |l| l.starts_with('{'));
    std::thread::sleep(Duration::from_millis(500));
    let done = tool.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    (objects(&done), done)
}

fn objects(done: &Finished) -> Vec<Value> {
    done.stdout
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn transition(o: &Value) -> String {
    format!(
        "{} -> {}",
        o["oldstate"].as_str().unwrap(),
        o["newstate"].as_str().unwrap()
    )
}

/// How many times each transition appears.
fn census(events: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in events {
        *counts.entry(transition(e)).or_insert(0) += 1;
    }
    counts
}

/// The N of the tool's `kernel skipped N events` lines on stderr: changes the kernel did not
/// run the program for because a BPF program was already running on that CPU.
fn skipped(done: &Finished) -> usize {
    done.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("kernel skipped "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
        .sum()
}

/// Every expected change was printed, or was counted in the tool's report of the events
/// the kernel skipped; none was printed that was not expected.
fn assert_changes(events: &[Value], expected: &BTreeMap<String, usize>, done: &Finished) {
    let seen = census(events);
    let mut missing = 0;
    for (t, &n) in &seen {
        assert!(
            n <= expected.get(t).copied().unwrap_or(0),
            "{t} printed {n} times: {seen:?}, expected {expected:?}"
        );
    }
    for (t, &n) in expected {
        missing += n - seen.get(t).copied().unwrap_or(0);
    }
    // The kernel skips the program before it can filter: the count may include changes of
    // other sockets, but it must cover every missing one.
    assert!(
        missing <= skipped(done),
        "printed {seen:?}, expected {expected:?}: {missing} missing, not all reported as \
         skipped; stderr: {:?}",
        done.stderr
    );
}

/// tcpconnlat printed `n` connects, or fewer with the missing ones among those it reported
/// as skipped by the kernel.
fn assert_connects(connected: &[Value], n: usize, done: &Finished) {
    assert!(connected.len() <= n, "{connected:#?}");
    assert!(
        n - connected.len() <= skipped(done),
        "{} of {n} connects printed; stderr: {:?}",
        connected.len(),
        done.stderr
    );
}

/// Two censuses added up.
fn sum_census(a: BTreeMap<String, usize>, b: BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    let mut out = a;
    for (t, n) in b {
        *out.entry(t).or_insert(0) += n;
    }
    out
}

fn port_of(o: &Value, key: &str) -> u64 {
    o[key].as_u64().unwrap_or_else(|| panic!("no {key} in {o}"))
}

/// A server-side tcpstates event of `port` (listener or accepted socket).
fn server_side(o: &Value, port: u16) -> bool {
    port_of(o, "lport") == u64::from(port)
}

/// tcprtt's total sample count over the JSON objects it printed.
fn rtt_samples(done: &Finished) -> u64 {
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    objects(done)
        .iter()
        .map(|o| o["count"].as_u64().expect("count"))
        .sum()
}

/// `-c CG` shows exactly the sockets of the processes in CG: every transition, including
/// those that run in softirq or in the other process's context, and nothing of the traffic
/// outside CG in the same namespace. tcpconnlat shows exactly the inside connects, and
/// tcprtt counts exactly what `-p PORT` and `-P PORT` count for the inside port.
#[test]
fn cgroup_filter_shows_exactly_the_inside_sockets() {
    const N: usize = 5;
    const IN: u16 = 43001;
    const OUT: u16 = 43002;
    let _guard = light();
    let cg = Cgroup::new("cgin");
    let ns = Netns::new("cgin");
    let ns_path = format!("/run/netns/{}", ns.name);
    let states = start_json(TCPSTATES, &["-c", cg.dir_str()], &[]);
    let everything = start_json(TCPSTATES, &["--netns", &ns_path], &[]);
    let connects = start_json(TCPCONNLAT, &["-c", cg.dir_str()], &[]);
    let d = "10";
    let rtt_c = start_json(TCPRTT, &["-c", cg.dir_str(), "-d", d], &[]);
    let rtt_local = start_json(
        TCPRTT,
        &["-p", &IN.to_string(), "--netns", &ns_path, "-d", d],
        &[],
    );
    let rtt_remote = start_json(
        TCPRTT,
        &["-P", &IN.to_string(), "--netns", &ns_path, "-d", d],
        &[],
    );
    let started = Instant::now();

    // Inside and outside traffic at the same time.
    let mut s_in = server(Some(&cg), &ns, IN, N);
    let mut s_out = server(None, &ns, OUT, N);
    let mut c_in = client(Some(&cg), &ns, IN, N, 20);
    let mut c_out = client(None, &ns, OUT, N, 20);
    go(&mut c_in);
    go(&mut c_out);
    for p in [&mut c_in, &mut c_out, &mut s_in, &mut s_out] {
        p.expect_line("done", WAIT);
    }
    let (server_pid, client_pid) = (s_in.pid(), c_in.pid());
    for p in [c_in, c_out, s_in, s_out] {
        p.finish(WAIT);
    }
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "traffic took {:?}: tcprtt -d {d} may have missed some",
        started.elapsed()
    );

    let (events, done) = stop_after(states, 2 + 10 * N, WAIT);
    assert_changes(&events, &transitions_of(N, true, 1), &done);
    for e in &events {
        assert!(
            port_of(e, "lport") == u64::from(IN) || port_of(e, "rport") == u64::from(IN),
            "an outside socket: {e}"
        );
    }
    // Some of them ran in the client's context (LISTEN -> SYN_RECV on loopback) or in
    // softirq (pid 0): a filter on the current task would have misfiled them.
    assert!(
        events
            .iter()
            .any(|e| server_side(e, IN) && e["pid"].as_u64() != Some(u64::from(server_pid))),
        "no server-side event outside the server's context: {events:#?}"
    );

    // Without -c both the inside and the outside traffic show.
    let (all, done) = stop_after(everything, 4 + 20 * N, WAIT);
    let of_port = |port: u16| -> Vec<Value> {
        all.iter()
            .filter(|e| {
                port_of(e, "lport") == u64::from(port) || port_of(e, "rport") == u64::from(port)
            })
            .cloned()
            .collect()
    };
    let (inside, outside) = (of_port(IN), of_port(OUT));
    assert_eq!(inside.len() + outside.len(), all.len());
    assert!(!outside.is_empty());
    assert_changes(
        &all,
        &sum_census(transitions_of(N, true, 1), transitions_of(N, true, 1)),
        &done,
    );

    let (connected, done) = stop_after(connects, N, WAIT);
    assert_connects(&connected, N, &done);
    for c in &connected {
        assert_eq!(port_of(c, "dport"), u64::from(IN), "{c}");
        assert_eq!(c["pid"].as_u64(), Some(u64::from(client_pid)), "{c}");
    }

    let (rtt_c, rtt_local, rtt_remote) = (rtt_c.finish(), rtt_local.finish(), rtt_remote.finish());
    let by_cgroup = rtt_samples(&rtt_c);
    let local = rtt_samples(&rtt_local);
    let remote = rtt_samples(&rtt_remote);
    assert!(
        local >= 20 * N as u64 && remote >= 20 * N as u64,
        "{local} {remote}"
    );
    // Equal, unless the kernel skipped a program run, which each tool counts on stderr.
    let skips = |done: &Finished| skipped(done) as u64;
    let why = format!(
        "-c {by_cgroup}, -p {local}, -P {remote}; skipped {}, {}, {}",
        skips(&rtt_c),
        skips(&rtt_local),
        skips(&rtt_remote)
    );
    assert!(
        by_cgroup <= local + remote + skips(&rtt_local) + skips(&rtt_remote),
        "{why}"
    );
    assert!(local + remote <= by_cgroup + skips(&rtt_c), "{why}");
}

/// JSON `cgroup` and `netns` are what /proc/PID/cgroup and the nsfs inode of
/// /proc/PID/ns/net say for the processes; `owner_pid` of every server-side event (the
/// listener's and the accepted sockets') is the server, even where `pid` is the client or 0,
/// and the client's sockets belong to the client. `--owner --show-cgroup` prints the same.
#[test]
fn json_cgroup_netns_and_owners_match_the_processes() {
    const N: usize = 3;
    const PORT: u16 = 43011;
    let _guard = light();
    let cg = Cgroup::new("cgjson");
    let srv_cg = cg.child("srv");
    let cli_cg = cg.child("cli");
    let ns = Netns::new("cgjson");
    let states = start_json(TCPSTATES, &["-c", cg.dir_str()], &[]);
    let connects = start_json(TCPCONNLAT, &["-c", cg.dir_str()], &[]);
    let mut connects_text = Tool::start(TCPCONNLAT, &["-c", cg.dir_str(), "--show-cgroup"], &[], 1);
    assert_eq!(
        connects_text.lines(),
        ["PID    COMM         IP SADDR            DADDR            DPORT LAT(ms) CGROUP"]
    );
    let mut csv = Tool::start(
        TCPSTATES,
        &["-c", cg.dir_str(), "-s", "--show-cgroup"],
        &[],
        1,
    );
    assert_eq!(
        csv.lines(),
        ["SKADDR,C-PID,C-COMM,IP,LADDR,LPORT,RADDR,RPORT,OLDSTATE,NEWSTATE,MS,CGROUP"]
    );
    let mut text = Tool::start(
        TCPSTATES,
        &["-c", cg.dir_str(), "--owner", "--show-cgroup"],
        &[],
        1,
    );
    assert_eq!(
        text.lines(),
        ["SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS CGROUP"]
    );

    let mut s = server(Some(&srv_cg), &ns, PORT, N);
    let mut c = client(Some(&cli_cg), &ns, PORT, N, 1);
    let (server_pid, client_pid) = (s.pid(), c.pid());
    // Read while both processes still run.
    let server_cgroup = cgroup_of_pid(server_pid);
    let client_cgroup = cgroup_of_pid(client_pid);
    let server_netns = inode_of(&format!("/proc/{server_pid}/ns/net"));
    let client_netns = inode_of(&format!("/proc/{client_pid}/ns/net"));
    go(&mut c);
    c.expect_line("done", WAIT);
    s.expect_line("done", WAIT);
    c.finish(WAIT);
    s.finish(WAIT);
    assert_eq!(server_cgroup, srv_cg.rel);
    assert_eq!(client_cgroup, cli_cg.rel);
    assert_eq!(server_netns, inode_of(&format!("/run/netns/{}", ns.name)));
    assert_eq!(client_netns, server_netns);

    let (events, done) = stop_after(states, 2 + 10 * N, WAIT);
    assert_changes(&events, &transitions_of(N, true, 1), &done);
    let mut borrowed = 0;
    for e in &events {
        let (pid, cgroup, comm) = if server_side(e, PORT) {
            (server_pid, &server_cgroup, "python3")
        } else {
            assert_eq!(port_of(e, "rport"), u64::from(PORT), "{e}");
            (client_pid, &client_cgroup, "python3")
        };
        assert_eq!(e["cgroup"].as_str(), Some(cgroup.as_str()), "{e}");
        assert_eq!(e["netns"].as_u64(), Some(server_netns), "{e}");
        assert_eq!(e["owner_pid"].as_u64(), Some(u64::from(pid)), "{e}");
        assert_eq!(e["owner_comm"].as_str(), Some(comm), "{e}");
        borrowed += usize::from(e["pid"].as_u64() != Some(u64::from(pid)));
    }
    // The case the owner exists for: events that ran in another task's context.
    assert!(
        borrowed > 0,
        "every event ran in its owner's context: {events:#?}"
    );

    let (connected, done) = stop_after(connects, N, WAIT);
    assert_connects(&connected, N, &done);
    for o in &connected {
        assert_eq!(port_of(o, "dport"), u64::from(PORT), "{o}");
        assert_eq!(o["pid"].as_u64(), Some(u64::from(client_pid)), "{o}");
        assert_eq!(o["cgroup"].as_str(), Some(client_cgroup.as_str()), "{o}");
        assert_eq!(o["netns"].as_u64(), Some(client_netns), "{o}");
    }

    connects_text.wait_for_count(WAIT, 1 + N, |_| true);
    std::thread::sleep(Duration::from_millis(300));
    let done = connects_text.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout.len(), 1 + N, "{:?}", done.stdout);
    for line in &done.stdout[1..] {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 8, "{line}");
        assert_eq!(
            (f[0], f[1], f[5], f[7]),
            (
                client_pid.to_string().as_str(),
                "python3",
                PORT.to_string().as_str(),
                client_cgroup.as_str()
            ),
            "{line}"
        );
    }

    // CSV: a trailing CGROUP field.
    csv.wait_for_count(WAIT, 1 + 2 + 10 * N, |_| true);
    std::thread::sleep(Duration::from_millis(300));
    let done = csv.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout.len(), 1 + 2 + 10 * N, "{:?}", done.stdout);
    for line in &done.stdout[1..] {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 12, "{line}");
        let cgroup = if f[5] == PORT.to_string() {
            &server_cgroup
        } else {
            &client_cgroup
        };
        assert_eq!(f[11], cgroup.as_str(), "{line}");
    }

    // The text view: PID and COMM are the owner's, the last column the cgroup.
    text.wait_for_count(WAIT, 2 + 10 * N, |l| l.contains(" -> "));
    std::thread::sleep(Duration::from_millis(300));
    let done = text.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    let rows: Vec<Vec<&str>> = done.stdout[1..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2 + 10 * N, "{:?}", done.stdout);
    for (row, line) in rows.iter().zip(&done.stdout[1..]) {
        assert_eq!(row.len(), 12, "{line}");
        let (pid, cgroup) = if row[4] == PORT.to_string() {
            (server_pid, &server_cgroup)
        } else {
            (client_pid, &client_cgroup)
        };
        assert_eq!(
            (row[1], row[2], row[11]),
            (pid.to_string().as_str(), "python3", cgroup.as_str()),
            "{line}"
        );
    }
}

/// The owner is known only for sockets whose connect() or listen() the tool saw, and for
/// those accepted from such a listener: a listener older than the tool gives accepted
/// sockets without `owner_pid`/`owner_comm`, shown as `-` by `--owner`.
#[test]
fn owner_unknown_for_a_listener_older_than_the_tool() {
    const N: usize = 2;
    const PORT: u16 = 43071;
    let _guard = light();
    let cg = Cgroup::new("cgold");
    let ns = Netns::new("cgold");
    let mut s = server(Some(&cg), &ns, PORT, N);
    let states = start_json(TCPSTATES, &["-c", cg.dir_str()], &[]);
    let mut text = Tool::start(TCPSTATES, &["-c", cg.dir_str(), "--owner"], &[], 1);
    let mut c = client(Some(&cg), &ns, PORT, N, 1);
    let client_pid = c.pid();
    go(&mut c);
    c.expect_line("done", WAIT);
    s.expect_line("done", WAIT);
    c.finish(WAIT);
    s.finish(WAIT);

    // The listener's CLOSE -> LISTEN happened before the tool started.
    let mut expected = transitions_of(N, true, 1);
    expected.remove("CLOSE -> LISTEN");
    let (events, done) = stop_after(states, 1 + 10 * N, WAIT);
    assert_changes(&events, &expected, &done);
    for e in &events {
        if server_side(e, PORT) {
            assert!(e.get("owner_pid").is_none(), "{e}");
            assert!(e.get("owner_comm").is_none(), "{e}");
        } else {
            assert_eq!(e["owner_pid"].as_u64(), Some(u64::from(client_pid)), "{e}");
        }
    }
    text.wait_for_count(WAIT, 1 + 10 * N, |l| l.contains(" -> "));
    std::thread::sleep(Duration::from_millis(300));
    let done = text.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout.len(), 1 + 1 + 10 * N, "{:?}", done.stdout);
    for line in &done.stdout[1..] {
        let f: Vec<&str> = line.split_whitespace().collect();
        let owner = if f[4] == PORT.to_string() {
            ("-".to_owned(), "-")
        } else {
            (client_pid.to_string(), "python3")
        };
        assert_eq!((f[1], f[2]), (owner.0.as_str(), owner.1), "{line}");
    }
}

/// `-c` on a parent cgroup includes the sockets of the processes in its children.
#[test]
fn cgroup_filter_includes_child_cgroups() {
    const N: usize = 3;
    const PORT: u16 = 43031;
    let _guard = light();
    let parent = Cgroup::new("cgnest");
    let child = parent.child("child");
    let grandchild = child.child("grandchild");
    let ns = Netns::new("cgnest");
    let on_parent = start_json(TCPSTATES, &["-c", parent.dir_str()], &[]);
    let on_child = start_json(TCPSTATES, &["-c", child.dir_str()], &[]);
    let connects_parent = start_json(TCPCONNLAT, &["-c", parent.dir_str()], &[]);
    let connects_child = start_json(TCPCONNLAT, &["-c", child.dir_str()], &[]);

    // The server two levels down, the client in the parent itself.
    let (server_pid, client_pid) = traffic(Some(&grandchild), Some(&parent), &ns, PORT, N);

    let (all, done) = stop_after(on_parent, 2 + 10 * N, WAIT);
    assert_changes(&all, &transitions_of(N, true, 1), &done);
    for e in &all {
        let cgroup = if server_side(e, PORT) {
            &grandchild.rel
        } else {
            &parent.rel
        };
        assert_eq!(e["cgroup"].as_str(), Some(cgroup.as_str()), "{e}");
    }
    let (servers, done) = stop_after(on_child, 2 + 5 * N, WAIT);
    assert_changes(&servers, &transitions_of(N, false, 1), &done);
    assert!(servers.iter().all(|e| server_side(e, PORT)), "{servers:#?}");

    let (connected, done) = stop_after(connects_parent, N, WAIT);
    assert_connects(&connected, N, &done);
    assert!(connected
        .iter()
        .all(|o| o["pid"].as_u64() == Some(u64::from(client_pid))));
    // The child holds only the server: no connects there.
    let (none, _) = stop_after(connects_child, 1, Duration::from_millis(500));
    assert!(none.is_empty(), "{none:#?}");
    assert_ne!(server_pid, client_pid);
}

/// `--netns` (a path or an inode number) shows only the sockets of that namespace: two
/// namespaces with traffic on the same port.
#[test]
fn netns_filter_shows_only_that_namespace() {
    const PORT: u16 = 43021;
    let _guard = light();
    let x = Netns::new("nsx");
    let y = Netns::new("nsy");
    let x_path = format!("/run/netns/{}", x.name);
    let y_inode = inode_of(&format!("/run/netns/{}", y.name));
    let x_inode = inode_of(&x_path);
    assert_ne!(x_inode, y_inode);
    let in_x = start_json(TCPSTATES, &["--netns", &x_path], &[]);
    let in_y = start_json(TCPSTATES, &["--netns", &y_inode.to_string()], &[]);
    let connects_x = start_json(TCPCONNLAT, &["--netns", &x_path], &[]);
    let listen: std::net::SocketAddr = format!("127.0.0.1:{PORT}").parse().unwrap();
    // Two connections in X, three in Y, interleaved.
    for i in 0..5 {
        let ns = if i % 2 == 0 { &y } else { &x };
        ns.run("cgnetns", move || common::connection(listen, 1));
    }

    let (xs, x_done) = stop_after(in_x, 24, WAIT);
    let (ys, y_done) = stop_after(in_y, 36, WAIT);
    let mut expected = transitions_of(2, true, 1);
    expected.insert("CLOSE -> LISTEN".to_owned(), 2);
    expected.insert("LISTEN -> CLOSE".to_owned(), 2);
    assert_changes(&xs, &expected, &x_done);
    let mut expected = transitions_of(3, true, 1);
    expected.insert("CLOSE -> LISTEN".to_owned(), 3);
    expected.insert("LISTEN -> CLOSE".to_owned(), 3);
    assert_changes(&ys, &expected, &y_done);
    for (events, inode) in [(&xs, x_inode), (&ys, y_inode)] {
        for e in events {
            assert_eq!(e["netns"].as_u64(), Some(inode), "{e}");
            assert!(
                port_of(e, "lport") == u64::from(PORT) || port_of(e, "rport") == u64::from(PORT),
                "{e}"
            );
        }
    }
    let (connected, done) = stop_after(connects_x, 2, WAIT);
    assert_connects(&connected, 2, &done);
    for o in &connected {
        assert_eq!(o["netns"].as_u64(), Some(x_inode), "{o}");
        assert_eq!(port_of(o, "dport"), u64::from(PORT), "{o}");
    }
}

/// tcprtt `--bycgroup`: one histogram per cgroup, named by its path; with `--json`,
/// `"key": "cgroup"` and the path as `cgroup`. Both servers' and clients' samples land in
/// their own cgroup's histogram.
#[test]
fn tcprtt_histogram_per_cgroup() {
    const N: usize = 2;
    let _guard = light();
    let cg = Cgroup::new("cgrtt");
    let a = cg.child("a");
    let b = cg.child("b");
    let ns = Netns::new("cgrtt");
    let text = Tool::start(TCPRTT, &["-c", cg.dir_str(), "--bycgroup", "-e"], &[], 1);
    let json = start_json(TCPRTT, &["-c", cg.dir_str(), "--bycgroup"], &[]);
    traffic(Some(&a), Some(&a), &ns, 43061, N);
    traffic(Some(&b), Some(&b), &ns, 43062, N);

    let text = text.stop_with(Signal::SIGINT);
    assert_eq!(text.status.code(), Some(0), "{}", text.stderr);
    let headers: Vec<&String> = text
        .stdout
        .iter()
        .filter(|l| l.starts_with("Cgroup = "))
        .collect();
    assert_eq!(headers.len(), 2, "{:?}", text.stdout);
    let mut names: Vec<String> = headers
        .iter()
        .map(|h| {
            let (path, avg) = h["Cgroup = ".len()..]
                .split_once(" [AVG ")
                .unwrap_or_else(|| panic!("{h:?}"));
            assert!(avg.ends_with(']'), "{h:?}");
            path.to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, [a.rel.clone(), b.rel.clone()]);

    let json = json.stop_with(Signal::SIGINT);
    let objects = objects(&json);
    assert_eq!(objects.len(), 2, "{:?}", json.stdout);
    let mut seen: Vec<String> = objects
        .iter()
        .map(|o| {
            assert_eq!(o["key"], "cgroup", "{o}");
            assert!(o.get("addr").is_none(), "{o}");
            assert!(o["count"].as_u64().unwrap() >= 3 * N as u64, "{o}");
            o["cgroup"].as_str().expect("cgroup").to_owned()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, [a.rel.clone(), b.rel.clone()]);
}

/// With the raw_tp programs (no socket storage) the filters and the cgroup/netns fields
/// still work; the owner fields are absent, and `--owner` is refused in one line.
#[test]
fn raw_tracepoint_filters_without_owners() {
    const N: usize = 3;
    const PORT: u16 = 43041;
    let _guard = light();
    let cg = Cgroup::new("cgraw");
    let ns = Netns::new("cgraw");
    let env = [("TCPTOOLS_RAW_TP", "1")];
    let states = start_json(TCPSTATES, &["-c", cg.dir_str()], &env);
    let connects = start_json(TCPCONNLAT, &["-c", cg.dir_str()], &env);
    let ns_path = format!("/run/netns/{}", ns.name);
    let in_ns = start_json(TCPSTATES, &["--netns", &ns_path], &env);
    let outside_server = server(None, &ns, PORT + 1, 1);
    let (_, client_pid) = traffic(Some(&cg), Some(&cg), &ns, PORT, N);
    let mut outside = client(None, &ns, PORT + 1, 1, 1);
    go(&mut outside);
    outside.finish(WAIT);
    outside_server.finish(WAIT);
    let netns = inode_of(&format!("/run/netns/{}", ns.name));

    let (events, done) = stop_after(states, 2 + 10 * N, WAIT);
    assert_changes(&events, &transitions_of(N, true, 1), &done);
    for e in &events {
        assert_eq!(e["cgroup"].as_str(), Some(cg.rel.as_str()), "{e}");
        assert_eq!(e["netns"].as_u64(), Some(netns), "{e}");
        assert!(e.get("owner_pid").is_none(), "{e}");
        assert!(e.get("owner_comm").is_none(), "{e}");
    }
    // --netns: the inside and the outside traffic, nothing else.
    let (all, done) = stop_after(in_ns, 4 + 10 * N + 10, WAIT);
    assert_changes(
        &all,
        &sum_census(transitions_of(N, true, 1), transitions_of(1, true, 1)),
        &done,
    );
    assert!(all.iter().all(|e| e["netns"].as_u64() == Some(netns)));

    let (connected, done) = stop_after(connects, N, WAIT);
    assert_connects(&connected, N, &done);
    for o in &connected {
        assert_eq!(o["pid"].as_u64(), Some(u64::from(client_pid)), "{o}");
        assert_eq!(o["cgroup"].as_str(), Some(cg.rel.as_str()), "{o}");
        assert_eq!(o["netns"].as_u64(), Some(netns), "{o}");
    }
}

#[test]
fn owner_view_needs_socket_storage() {
    let done = common::run_tool_env(TCPSTATES, &["--owner"], &[("TCPTOOLS_RAW_TP", "1")]);
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(done.stdout.is_empty(), "{:?}", done.stdout);
    assert_eq!(done.stderr.lines().count(), 1, "{:?}", done.stderr);
    assert!(done.stderr.starts_with("tcpstates: "), "{:?}", done.stderr);
}

/// Bad `-c` and `--netns` values: one line on stderr, nothing on stdout, exit 1 for a path
/// that is not what it should be, 64 for a malformed value.
#[test]
fn bad_cgroup_and_netns_values_fail_cleanly() {
    let file = std::env::temp_dir().join(format!("tcpt-cgfile-{}", std::process::id()));
    std::fs::write(&file, "not a cgroup\n").expect("write a regular file");
    let file = file.to_str().unwrap().to_owned();
    let v1 = common::mounts_of_type("cgroup")
        .into_iter()
        .next()
        .expect("no cgroup v1 hierarchy in /proc/mounts to test with");
    let v1 = v1.to_str().unwrap().to_owned();
    let missing = format!(
        "{}/tcpt-missing-{}",
        common::cgroup2_mount().display(),
        std::process::id()
    );
    for (bin, name) in [
        (TCPSTATES, "tcpstates"),
        (TCPRTT, "tcprtt"),
        (TCPCONNLAT, "tcpconnlat"),
    ] {
        for path in [&missing, &file, &v1] {
            let done = assert_one_line_failure(
                bin,
                &["-c", path],
                1,
                &format!("{path}: not a cgroup v2 directory"),
            );
            assert!(
                done.stderr.starts_with(&format!("{name}: ")),
                "{}",
                done.stderr
            );
        }
        assert_one_line_failure(bin, &["-c", ""], 64, "invalid cgroup path: (empty)");
        assert_one_line_failure(bin, &["--cgroup", ""], 64, "invalid cgroup path: (empty)");
        for ns in ["-5", "0", "abc", "4294967296", "12x"] {
            assert_one_line_failure(
                bin,
                &["--netns", ns],
                64,
                &format!("invalid network namespace: {ns}"),
            );
        }
        let done = assert_one_line_failure(bin, &["--netns", &file], 1, &file);
        assert!(
            done.stderr.starts_with(&format!("{name}: ")),
            "{}",
            done.stderr
        );
        assert_one_line_failure(
            bin,
            &["--netns", "/nonexistent/tcpt-ns"],
            1,
            "/nonexistent/tcpt-ns",
        );
    }
    assert_one_line_failure(
        TCPRTT,
        &["--bycgroup", "-b"],
        64,
        "'--bycgroup' cannot be used with '--byladdr'",
    );
    assert_one_line_failure(
        TCPRTT,
        &["--bycgroup", "-B"],
        64,
        "'--bycgroup' cannot be used with '--byraddr'",
    );
    let _ = std::fs::remove_file(&file);
}

/// Holds N accepted connections on HOST PORT (prints `ready`, then `accepted` once it has
/// them all), then reads each to EOF, closes them all and the listener; prints `done`.
const HOLD_SERVER: &str = r#"
import resource, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# Room for n sockets: the soft limit up to the hard one, beyond it only with CAP_SYS_RESOURCE.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = n + 64
if hard != resource.RLIM_INFINITY and hard < want:
    hard = want
resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((host, port))
l.listen(4096)
print('ready', flush=True)
conns = [l.accept()[0] for _ in range(n)]
print('accepted', flush=True)
for c in conns:
    while c.recv(64):
        pass
# Every client has sent its FIN. Give the delayed ACKs of their FINs time to leave before the
# server's FINs, or a FIN could carry the ACK and the client's FIN_WAIT1 -> FIN_WAIT2 ->
# CLOSE happen within the same microsecond (a true MS of 0.000).
time.sleep(0.5)
for c in conns:
    c.close()
l.close()
print('done', flush=True)
"#;

/// Opens N connections to HOST PORT and holds them (prints `connected`) until a line comes
/// on stdin, then shuts down their sending side, waits for the server's FINs and closes
/// them all; prints `done`.
///
/// shutdown(), not close(): a closed (orphaned) socket that gets the ACK of its FIN goes
/// FIN_WAIT1 -> FIN_WAIT2 -> CLOSE (time-wait) within the same ACK's processing, so its
/// FIN_WAIT2 truly lasts under a microsecond and rightly prints MS 0.000. A socket still
/// owned stays in FIN_WAIT2 until the server's FIN.
const HOLD_CLIENT: &str = r#"
import resource, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# Room for n sockets: the soft limit up to the hard one, beyond it only with CAP_SYS_RESOURCE.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = n + 64
if hard != resource.RLIM_INFINITY and hard < want:
    hard = want
resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
conns = [socket.create_connection((host, port)) for _ in range(n)]
print('connected', flush=True)
sys.stdin.readline()
for s in conns:
    s.shutdown(socket.SHUT_WR)
for s in conns:
    while s.recv(64):
        pass
for s in conns:
    s.close()
print('done', flush=True)
"#;

/// The paths of the 12,000-connection test's sockets: a client's, an accepted socket's and
/// the listener's changes, in order.
const PATHS: [&[&str]; 3] = [
    &[
        "CLOSE -> SYN_SENT",
        "SYN_SENT -> ESTABLISHED",
        "ESTABLISHED -> FIN_WAIT1",
        "FIN_WAIT1 -> FIN_WAIT2",
        "FIN_WAIT2 -> CLOSE",
    ],
    &[
        "LISTEN -> SYN_RECV",
        "SYN_RECV -> ESTABLISHED",
        "ESTABLISHED -> CLOSE_WAIT",
        "CLOSE_WAIT -> LAST_ACK",
        "LAST_ACK -> CLOSE",
    ],
    &["CLOSE -> LISTEN", "LISTEN -> CLOSE"],
];

/// The sockets whose changes are not one of PATHS whole (at most three), each as its
/// printed changes: what a failure needs to tell a lost event from a connection that took
/// another path (a reset, a retransmitted FIN).
fn off_the_paths(by_socket: &std::collections::HashMap<&str, Vec<&Value>>) -> Vec<Vec<String>> {
    by_socket
        .values()
        .filter(|changes| {
            let seq: Vec<String> = changes.iter().map(|e| transition(e)).collect();
            !PATHS
                .iter()
                .any(|p| p.iter().copied().eq(seq.iter().map(String::as_str)))
        })
        .take(3)
        .map(|changes| changes.iter().map(|e| e.to_string()).collect())
        .collect()
}

/// The changes on a socket's path (client, accepted or listener) that neither `a` nor `b`
/// printed, by transition: what the kernel gave neither hook's program.
fn unseen_by_both(a: &[Value], b: &[Value]) -> BTreeMap<String, usize> {
    let printed = |events: &[Value]| -> std::collections::HashSet<(String, String)> {
        events
            .iter()
            .map(|e| {
                (
                    e["skaddr"].as_str().expect("skaddr").to_owned(),
                    transition(e),
                )
            })
            .collect()
    };
    let (a, b) = (printed(a), printed(b));
    let mut by_socket: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (sk, t) in a.iter().chain(&b) {
        by_socket.entry(sk).or_default().push(t);
    }
    let mut unseen = BTreeMap::new();
    for (sk, seen) in by_socket {
        let path = PATHS
            .iter()
            .find(|p| seen.iter().any(|t| p.contains(t)))
            .expect("a change of one of the paths");
        for t in path.iter() {
            let key = (sk.to_owned(), (*t).to_owned());
            if !a.contains(&key) && !b.contains(&key) {
                *unseen.entry((*t).to_owned()).or_insert(0) += 1;
            }
        }
    }
    unseen
}

/// 12,000 connections held open (24,000 sockets and a listener), then closed: every change
/// whose start was seen has a non-zero MS (the 10,240-entry table of old filled up and
/// printed 0.000), and tcpconnlat prints every connect. The raw_tp fallback, which keeps a
/// fixed table, says on stderr that it is full.
#[test]
fn twelve_thousand_connections_keep_their_durations() {
    const N: usize = 12_000;
    const PORT: u16 = 43051;
    let _guard = heavy();
    let started = Instant::now();
    let cg = Cgroup::new("cgmany");
    let ns = Netns::new("cgmany");
    // 15,536 ephemeral ports, all above the fixed ports tests filter on.
    ns.exec(
        "sysctl",
        &[
            "-qw",
            "net.ipv4.ip_local_port_range=50000 65535",
            "net.core.somaxconn=4096",
        ],
    );
    let states = start_json(TCPSTATES, &["-c", cg.dir_str()], &[]);
    let raw = start_json(
        TCPSTATES,
        &["-c", cg.dir_str()],
        &[("TCPTOOLS_RAW_TP", "1")],
    );
    let connects = start_json(TCPCONNLAT, &["-c", cg.dir_str()], &[]);
    let (port, n) = (PORT.to_string(), N.to_string());
    let args = ["127.0.0.1", port.as_str(), n.as_str()];
    let mut s = Proc::spawn(
        Some(&cg),
        &ns,
        "python3",
        &[&["-c", HOLD_SERVER][..], &args].concat(),
    );
    s.expect_line("ready", WAIT);
    let mut c = Proc::spawn(
        Some(&cg),
        &ns,
        "python3",
        &[&["-c", HOLD_CLIENT][..], &args].concat(),
    );
    c.expect_line("connected", Duration::from_secs(60));
    s.expect_line("accepted", WAIT);
    let opened = started.elapsed();
    c.send_line("close");
    c.expect_line("done", WAIT);
    s.expect_line("done", Duration::from_secs(60));
    c.finish(WAIT);
    s.finish(WAIT);
    let traffic = started.elapsed();

    // All the changes have happened: the tools have only their buffers left to print.
    let (connected, connects_done) = stop_after(connects, N, Duration::from_secs(10));
    let account = common::skip_account(states.pid());
    let (events, done) = stop_after(states, 2 + 10 * N, Duration::from_secs(10));
    assert!(!done.stderr.contains("lost"), "{}", done.stderr);
    // Each socket's changes in order (all the sockets are alive at once: no address reuse).
    let mut by_socket: std::collections::HashMap<&str, Vec<&Value>> = Default::default();
    for e in &events {
        by_socket
            .entry(e["skaddr"].as_str().expect("skaddr"))
            .or_default()
            .push(e);
    }
    let mut zeros: BTreeMap<String, usize> = BTreeMap::new();
    let mut example = None;
    let mut first_not_zero = Vec::new();
    for changes in by_socket.values() {
        // The first change of a socket has no start (an accepted socket's neither, though
        // it starts with a copy of its listener's storage); each later one has.
        if changes[0]["ms"].as_f64() != Some(0.0) {
            first_not_zero.push(changes[0]);
        }
        for e in &changes[1..] {
            if e["ms"].as_f64() == Some(0.0) {
                *zeros.entry(transition(e)).or_insert(0) += 1;
                example.get_or_insert_with(|| changes.clone());
            }
        }
    }
    assert!(
        zeros.is_empty(),
        "MS 0.000 with a known start: {zeros:?}; for example {example:#?}"
    );
    assert!(
        first_not_zero.is_empty(),
        "a first change with an MS: {:#?}",
        &first_not_zero[..first_not_zero.len().min(3)]
    );

    let to_port: Vec<Value> = connected
        .into_iter()
        .filter(|o| port_of(o, "dport") == u64::from(PORT))
        .collect();
    assert_connects(&to_port, N, &connects_done);

    let raw = raw.stop_with(Signal::SIGINT);
    assert_eq!(raw.status.code(), Some(0), "{}", raw.stderr);
    assert!(
        raw.stderr.contains("socket table full: "),
        "raw_tp with {} sockets: {}",
        1 + 2 * N,
        raw.stderr
    );

    // Every change of every socket was printed, or is one the kernel skipped (tcpstates'
    // program was already running on that CPU: a softirq interrupted it) and its catcher
    // program did not catch, which the tool counted on stderr; none passes in silence.
    // bpftool's counts agree: the main program's recursion_misses less the catches.
    //
    // Except what the kernel gives no BPF program at all. Seen here (Linux 6.18), about one
    // run in ten of this storm: 1 to 353 changes, nearly all FIN_WAIT1 -> FIN_WAIT2 (the
    // client's sockets taking the ACK of their FIN), that `perf stat` on the same
    // tracepoint counts but that neither this tool's tp_btf program nor its raw_tp twin, nor
    // a third tcpstates without -c, printed; a counter at the handler's first line showed
    // it never ran for them, with no recursion miss counted. So the raw_tp instance is the
    // witness: a change that neither hook printed is the kernel's (counted, bounded, and
    // said on stderr); one that only one hook missed is the tool's, and must be reported.
    let raw_events = objects(&raw);
    let unseen = unseen_by_both(&events, &raw_events);
    let kernel_skipped: usize = unseen.values().sum();
    assert!(
        kernel_skipped <= N / 10,
        "{kernel_skipped} changes printed by neither hook: {unseen:?}; sockets off the two \
         paths: {:#?}",
        off_the_paths(&by_socket)
    );
    let missing = (2 + 10 * N - kernel_skipped) as i64 - events.len() as i64;
    let lost = account.lost() as i64;
    assert_eq!(
        (skipped(&done) as i64, missing),
        (lost, lost),
        "(reported skips, missing events) vs bpftool's recursion_misses - catches \
         {account:?}; census {:?}; raw_tp's census {:?}; printed by neither: {unseen:?}; \
         sockets off the two paths: {:#?}; stderr: {}",
        census(&events),
        census(&raw_events),
        off_the_paths(&by_socket),
        done.stderr
    );
    assert_eq!(
        2 + 10 * N - kernel_skipped - raw_events.len(),
        skipped(&raw),
        "raw_tp: census {:?}; stderr: {}",
        census(&raw_events),
        raw.stderr
    );
    let mut expected = transitions_of(N, true, 1);
    for (t, n) in &unseen {
        *expected.get_mut(t).expect("a transition of the model") -= n;
    }
    assert_changes(&events, &expected, &done);
    if kernel_skipped > 0 {
        eprintln!(
            "12,000 connections: {kernel_skipped} changes given to no BPF program: {unseen:?}"
        );
    }
    eprintln!("12,000 connections: {account:?}");
    assert_eq!(by_socket.len(), 1 + 2 * N);
    let total = started.elapsed();
    eprintln!(
        "12,000 connections: opened in {opened:?}, closed by {traffic:?}, checked by {total:?}"
    );
    assert!(total < Duration::from_secs(120), "took {total:?}");
}
