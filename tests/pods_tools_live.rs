//! The tools' pod features against a real containerd (tests/common/cri.rs): `--pod`,
//! `--k8s-namespace` and `--container` select exactly a pod's or a container's sockets,
//! also of a pod that starts after the tool; JSON and `--show-pod` name them as the CRI
//! does; tcprtt's `--bypod` counts per pod what `--bycgroup` counts in the pod's cgroups;
//! a runtime that is missing or refuses costs one line and tracing goes on; malformed pod
//! flags are usage errors. Each test runs a containerd of its own; namespaces and pods are
//! named after the test and this process, so that tests in parallel (whose tracepoints see
//! every pod) never match each other's.
//! Needs root. Ports: 45101..45131 inside pods' own network namespaces, 45141 in a test
//! namespace.

mod common;

use std::collections::BTreeMap;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use common::cri::{pod_uid, Container, Containerd, EchoListener, Network, Pod, PodSpec, Qos};
use common::{
    assert_one_line_failure, bpftool_json, cgroup2_mount, connection, inode_of, map_named,
    transitions_of, wait_for_bpf_links, Finished, Netns, Tool,
};

const TCPSTATES: &str = env!("CARGO_BIN_EXE_tcpstates");
const TCPRTT: &str = env!("CARGO_BIN_EXE_tcprtt");
const TCPCONNLAT: &str = env!("CARGO_BIN_EXE_tcpconnlat");

const WAIT: Duration = Duration::from_secs(30);
/// How long a pod that starts after the tool may take to reach the kernel's set: the
/// runtime lists it, the next refresh (a second apart) names it, the next walk (each
/// second) selects it; with room for a loaded machine.
const FOLLOW_BOUND: Duration = Duration::from_secs(15);

const SELECT_PORT: u16 = 45101;
const NAMESPACE_PORT: u16 = 45111;
const RTT_PORT: u16 = 45121;
const RUNTIME_PORT: u16 = 45141;

/// `tcpt-WHAT-PID`: a Kubernetes namespace name of this test's own.
fn unique(what: &str) -> String {
    format!("tcpt-{what}-{}", std::process::id())
}

fn spec<'a>(namespace: &'a str, name: &'a str, uid: &'a str, qos: Qos) -> PodSpec<'a> {
    PodSpec {
        namespace,
        name,
        uid,
        qos,
        network: Network::Pod,
    }
}

/// The pod's cgroup v2 directory: the mount and the sandbox's cgroup parent.
fn pod_dir(pod: &Pod) -> String {
    format!("{}{}", cgroup2_mount().display(), pod.cgroup_parent())
}

/// BPF links each tool holds once attached: its main program and its catcher.
const LINKS: usize = 2;

/// Starts a tool printing JSON (no header) and waits until its programs are attached.
fn start_json(bin: &str, args: &[&str]) -> Tool {
    let tool = Tool::start(bin, args, &[], 0);
    assert!(
        wait_for_bpf_links(tool.pid(), LINKS),
        "{bin} {args:?} did not attach"
    );
    tool
}

/// Waits until `count` lines match `pred` (at most 30 s), a second more for any extra
/// one, then ends the tool with SIGINT: it must exit 0.
fn stop_after(mut tool: Tool, count: usize, pred: impl Fn(&str) -> bool) -> Finished {
    tool.wait_for_count(WAIT, count, pred);
    thread::sleep(Duration::from_secs(1));
    stop(tool)
}

fn stop(tool: Tool) -> Finished {
    let done = tool.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "stderr: {}", done.stderr);
    done
}

fn is_json(line: &str) -> bool {
    line.starts_with('{')
}

fn objects(done: &Finished) -> Vec<Value> {
    done.stdout
        .iter()
        .filter(|l| is_json(l))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn transition(o: &Value) -> String {
    format!(
        "{} -> {}",
        o["oldstate"].as_str().expect("oldstate"),
        o["newstate"].as_str().expect("newstate")
    )
}

fn census<'a>(transitions: impl Iterator<Item = String> + 'a) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for t in transitions {
        *counts.entry(t).or_insert(0) += 1;
    }
    counts
}

fn total(counts: &BTreeMap<String, usize>) -> usize {
    counts.values().sum()
}

/// Whether a state change is one of a client's socket (transitions_of's client part).
fn is_client_change(transition: &str) -> bool {
    transitions_of(1, true, 0).contains_key(transition)
}

/// Waits until a socket in the network namespace of process `pid` listens on `port`.
fn wait_listening(pid: u32, port: u16) {
    let local = format!(":{port:04X}");
    let deadline = Instant::now() + WAIT;
    loop {
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
        let listening = table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1).is_some_and(|a| a.ends_with(&local)) && f.get(3) == Some(&"0A")
        });
        if listening {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} in the namespace of pid {pid}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a workload container has done its traffic (its line in its log); fails at
/// once when it exited instead.
fn wait_traffic(container: &Container) {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = container.log();
        if log.contains(" connections on ") {
            return;
        }
        let exited =
            container.status().state == k8s_cri::v1::ContainerState::ContainerExited as i32;
        assert!(
            !exited && Instant::now() < deadline,
            "container {} did not do its traffic; its log:\n{log}",
            container.name()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// In `pod` (a network namespace of its own): container `server` listening on `port`,
/// then container `client` making `conns` connections of `rounds` round trips to it; both
/// stay (hold) once done. Returns (server, client) after the traffic.
fn serve_and_connect<'p>(
    pod: &'p Pod<'p>,
    port: u16,
    conns: usize,
    rounds: usize,
) -> (Container<'p>, Container<'p>) {
    let (port_arg, n, r) = (port.to_string(), conns.to_string(), rounds.to_string());
    let server = pod.start_container("server", &["server", "127.0.0.1", &port_arg, &n, "hold"]);
    wait_listening(server.pid(), port);
    let client = pod.start_container(
        "client",
        &["client", "127.0.0.1", &port_arg, &n, &r, "hold"],
    );
    wait_traffic(&client);
    wait_traffic(&server);
    (server, client)
}

/// The cgroup ids in BPF hash map `id` (keys of 8 bytes), from bpftool.
fn set_members(id: u32) -> Vec<u64> {
    let dump = bpftool_json(&["map", "dump", "id", &id.to_string()]);
    let entries = dump.as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .map(|entry| {
            if let Some(key) = entry.get("formatted").and_then(|f| f["key"].as_u64()) {
                return key;
            }
            let bytes: Vec<u8> = entry["key"]
                .as_array()
                .unwrap_or_else(|| panic!("no key in {entry}"))
                .iter()
                .filter_map(|b| b.as_str())
                .filter_map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).ok())
                .collect();
            u64::from_le_bytes(bytes.try_into().expect("an 8-byte key"))
        })
        .collect()
}

/// Waits (at most FOLLOW_BOUND) until the set holds the cgroup at `dir`.
fn wait_in_set(set: u32, dir: &str) {
    let id = inode_of(dir);
    let deadline = Instant::now() + FOLLOW_BOUND;
    while !set_members(set).contains(&id) {
        assert!(
            Instant::now() < deadline,
            "{dir} (id {id}) not in the cgroup set within {FOLLOW_BOUND:?}: {:?}",
            set_members(set)
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// `--pod NS/web` traces the sockets of that pod's containers and nothing of the pod next
/// to it, whose containers do the same traffic on the same port in their own network
/// namespace. JSON names each socket's namespace, pod, container and container id as the
/// CRI does (the listener's and the accepted sockets' are the server container's, the
/// connecting ones the client's); `--show-pod`'s column likewise.
#[test]
fn pod_selects_that_pods_connections_only() {
    const N: usize = 5;
    const M: usize = 7;
    let containerd = Containerd::start("podsel");
    let ns = unique("sel");
    let (uid_a, uid_b) = (pod_uid(11), pod_uid(12));
    let web = containerd.run_pod(&spec(&ns, "web", &uid_a, Qos::BestEffort));
    let db = containerd.run_pod(&spec(&ns, "db", &uid_b, Qos::Burstable));
    let endpoint = containerd.endpoint();
    let selector = format!("{ns}/web");
    let pod_args = ["--pod", &selector, "--runtime-endpoint", &endpoint];
    let json = start_json(TCPSTATES, &[&pod_args[..], &["--json"]].concat());
    let text = Tool::start(
        TCPSTATES,
        &[&pod_args[..], &["--show-pod"]].concat(),
        &[],
        1,
    );

    let (server_a, client_a) = serve_and_connect(&web, SELECT_PORT, N, 2);
    let (_server_b, _client_b) = serve_and_connect(&db, SELECT_PORT, M, 2);
    let expected = transitions_of(N, true, 1);
    let json = stop_after(json, total(&expected), is_json);
    let text = stop_after(text, total(&expected), |l| !l.starts_with("SKADDR"));

    let objects = objects(&json);
    assert_eq!(
        census(objects.iter().map(transition)),
        expected,
        "{objects:#?}"
    );
    let (client_dir, server_dir) = (client_a.cgroup_dir(), server_a.cgroup_dir());
    for o in &objects {
        let client = is_client_change(&transition(o));
        let (name, id, dir) = if client {
            ("client", client_a.id(), &client_dir)
        } else {
            ("server", server_a.id(), &server_dir)
        };
        assert_eq!(o["namespace"], ns.as_str(), "{o}");
        assert_eq!(o["pod"], "web", "{o}");
        assert_eq!(o["container"], name, "{o}");
        assert_eq!(o["container_id"], id, "{o}");
        assert_eq!(o["cgroup"], dir.as_str(), "{o}");
    }

    assert_eq!(
        text.stdout[0],
        "SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS NAMESPACE/POD/CONTAINER"
    );
    let lines = &text.stdout[1..];
    let mut changes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let arrow = fields.iter().position(|f| *f == "->").expect("an arrow");
        let change = format!("{} -> {}", fields[arrow - 1], fields[arrow + 1]);
        let name = if is_client_change(&change) {
            "client"
        } else {
            "server"
        };
        assert_eq!(
            fields.last(),
            Some(&&*format!("{selector}/{name}")),
            "{line}"
        );
        changes.push(change);
    }
    assert_eq!(census(changes.into_iter()), expected, "{lines:#?}");
}

/// `--k8s-namespace NS2` started before any pod of NS2 runs: one line says it waits; the
/// pods of NS2 that start are put into the kernel's set within seconds (with a -v line
/// each), and their connections traced exactly, per pod; a pod of another namespace is
/// neither in the set nor printed.
#[test]
fn namespace_covers_a_pod_started_after_the_tool() {
    let containerd = Containerd::start("podns");
    let (ns2, other) = (unique("ns"), unique("other"));
    let endpoint = containerd.endpoint();
    let tool = start_json(
        TCPSTATES,
        &[
            "--k8s-namespace",
            &ns2,
            "--runtime-endpoint",
            &endpoint,
            "--json",
            "-v",
        ],
    );
    let set = map_named(tool.pid(), "cgroup_set");
    let (uid1, uid2, uid3) = (pod_uid(21), pod_uid(22), pod_uid(23));
    let p3 = containerd.run_pod(&spec(&other, "p3", &uid3, Qos::BestEffort));
    let p1 = containerd.run_pod(&spec(&ns2, "p1", &uid1, Qos::BestEffort));
    let p2 = containerd.run_pod(&spec(&ns2, "p2", &uid2, Qos::Guaranteed));
    wait_in_set(set, &pod_dir(&p1));
    wait_in_set(set, &pod_dir(&p2));
    let p3_id = inode_of(&pod_dir(&p3));
    assert!(
        !set_members(set).contains(&p3_id),
        "{} in the set",
        pod_dir(&p3)
    );

    let traffic = [(&p1, "p1", 3), (&p2, "p2", 4), (&p3, "p3", 5)];
    let mut containers = Vec::new();
    for (pod, _, n) in traffic {
        containers.push(serve_and_connect(pod, NAMESPACE_PORT, n, 1));
    }
    let expected: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::from([
        ("p1", transitions_of(3, true, 1)),
        ("p2", transitions_of(4, true, 1)),
    ]);
    let count = expected.values().map(total).sum();
    let done = stop_after(tool, count, is_json);

    let objects = objects(&done);
    let mut per_pod: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for o in &objects {
        assert_eq!(o["namespace"], ns2.as_str(), "{o}");
        let pod = o["pod"].as_str().unwrap_or_else(|| panic!("no pod: {o}"));
        per_pod.entry(pod).or_default().push(transition(o));
    }
    let per_pod: BTreeMap<&str, BTreeMap<String, usize>> = per_pod
        .into_iter()
        .map(|(pod, changes)| (pod, census(changes.into_iter())))
        .collect();
    assert_eq!(per_pod, expected, "{objects:#?}");

    let waiting = format!("tcpstates: no namespace {ns2} is running yet; waiting for it");
    let lines: Vec<&str> = done.stderr.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.contains("running yet")).count(),
        1,
        "{lines:#?}"
    );
    assert!(lines.contains(&waiting.as_str()), "{lines:#?}");
    for pod in [&p1, &p2] {
        let tracing = format!(
            "tcpstates: tracing namespace {ns2} (cgroup {})",
            pod.cgroup_parent()
        );
        assert_eq!(
            lines.iter().filter(|l| **l == tracing).count(),
            1,
            "{tracing:?} in {lines:#?}"
        );
    }
    assert!(!done.stderr.contains(p3.cgroup_parent()), "{}", done.stderr);
}

/// tcprtt `--bypod` beside `--bycgroup`, on the same traffic of two pods: per pod, the
/// samples of its section equal those of the sections of the pod's cgroup and those below
/// it, summed over the intervals, and there are some.
#[test]
fn tcprtt_bypod_counts_per_pod() {
    let containerd = Containerd::start("podrtt");
    let ns = unique("rtt");
    let (uid1, uid2) = (pod_uid(31), pod_uid(32));
    let r1 = containerd.run_pod(&spec(&ns, "r1", &uid1, Qos::BestEffort));
    let r2 = containerd.run_pod(&spec(&ns, "r2", &uid2, Qos::Guaranteed));
    let endpoint = containerd.endpoint();
    let bypod = start_json(
        TCPRTT,
        &[
            "--bypod",
            "--json",
            "-i",
            "1",
            "--runtime-endpoint",
            &endpoint,
        ],
    );
    let bycgroup = start_json(TCPRTT, &["--bycgroup", "--json", "-i", "1"]);
    let _a = serve_and_connect(&r1, RTT_PORT, 3, 4);
    let _b = serve_and_connect(&r2, RTT_PORT, 5, 4);
    thread::sleep(Duration::from_millis(500));
    let (bypod, bycgroup) = (stop(bypod), stop(bycgroup));
    let (bypod, bycgroup) = (objects(&bypod), objects(&bycgroup));

    for (pod, name) in [(&r1, "r1"), (&r2, "r2")] {
        let dir = pod.cgroup_parent();
        let below = format!("{dir}/");
        let in_pod = |o: &&Value| {
            o["cgroup"]
                .as_str()
                .is_some_and(|c| c == dir || c.starts_with(&below))
        };
        let count = |o: &Value| o["count"].as_u64().expect("count");
        let unnamed: Vec<&Value> = bypod.iter().filter(in_pod).collect();
        assert!(
            unnamed.is_empty(),
            "cgroups of pod {name} not named: {unnamed:#?}"
        );
        let per_pod: u64 = bypod
            .iter()
            .filter(|o| o["key"] == "pod" && o["namespace"] == ns.as_str() && o["pod"] == name)
            .map(count)
            .sum();
        let per_cgroup: u64 = bycgroup
            .iter()
            .filter(|o| o["key"] == "cgroup")
            .filter(in_pod)
            .map(count)
            .sum();
        assert!(per_pod > 0, "no samples of pod {name}: {bypod:#?}");
        assert_eq!(
            per_pod, per_cgroup,
            "pod {name}: --bypod {bypod:#?}\n--bycgroup {bycgroup:#?}"
        );
    }
}

/// tcpconnlat `--pod NS/web --container client`: exactly the connects of that container,
/// named NS/web/client; another container of the same pod connecting to the same
/// listener is not printed. Both containers wait (gated) until the tool runs.
#[test]
fn tcpconnlat_pod_and_container() {
    const N: usize = 4;
    const M: usize = 3;
    let containerd = Containerd::start("podconn");
    let ns = unique("conn");
    let uid = pod_uid(41);
    let pod = containerd.run_pod(&spec(&ns, "web", &uid, Qos::Burstable));
    let listener = EchoListener::start_in(&pod.netns());
    let port = listener.port().to_string();
    let (n, m) = (N.to_string(), M.to_string());
    let client = pod.start_container(
        "client",
        &["client", "127.0.0.1", &port, &n, "1", "hold", "gated"],
    );
    let other = pod.start_container(
        "other",
        &["client", "127.0.0.1", &port, &m, "1", "hold", "gated"],
    );
    let selector = format!("{ns}/web");
    let endpoint = containerd.endpoint();
    let tool = Tool::start(
        TCPCONNLAT,
        &[
            "--pod",
            &selector,
            "--container",
            "client",
            "--show-pod",
            "--runtime-endpoint",
            &endpoint,
        ],
        &[],
        1,
    );
    client.open_gate();
    assert_eq!(listener.served_after(N, WAIT), N, "{}", client.log());
    other.open_gate();
    assert_eq!(listener.served_after(N + M, WAIT), N + M, "{}", other.log());
    let done = stop_after(tool, N, |l| !l.starts_with("PID"));

    assert!(
        done.stdout[0].starts_with("PID") && done.stdout[0].ends_with(" NAMESPACE/POD/CONTAINER"),
        "{:?}",
        done.stdout[0]
    );
    let lines = &done.stdout[1..];
    assert_eq!(lines.len(), N, "{lines:#?}");
    let column = format!(" {selector}/client");
    for line in lines {
        assert!(line.ends_with(&column), "{line:?} lacks {column:?}");
    }
    assert!(!done.stderr.contains("running yet"), "{}", done.stderr);
}

/// A Unix socket file nobody listens on (connecting is refused); removed on drop.
struct RefusingSocket(PathBuf);

impl RefusingSocket {
    fn new() -> RefusingSocket {
        let path = std::env::temp_dir().join(format!("tcpt-refusing-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        drop(UnixListener::bind(&path).expect("bind a Unix socket"));
        RefusingSocket(path)
    }

    fn url(&self) -> String {
        format!("unix://{}", self.0.display())
    }
}

impl Drop for RefusingSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A runtime socket that does not exist, and one that refuses connections: tcpstates says
/// so in one line naming it, prints every change with its cgroup path and no names, and
/// ends with 0 on SIGINT.
#[test]
fn runtime_missing_or_refusing_keeps_tracing() {
    const N: usize = 3;
    let netns = Netns::new("podrt");
    let refusing = RefusingSocket::new();
    let netns_path = format!("/run/netns/{}", netns.name);
    let endpoints = [
        (
            "unix:///nonexistent/x.sock".to_owned(),
            "No such file or directory",
        ),
        (refusing.url(), "Connection refused"),
    ];
    let tools: Vec<Tool> = endpoints
        .iter()
        .map(|(ep, _)| {
            start_json(
                TCPSTATES,
                &["--json", "--runtime-endpoint", ep, "--netns", &netns_path],
            )
        })
        .collect();
    let listen = format!("127.0.0.1:{RUNTIME_PORT}")
        .parse()
        .expect("address");
    for _ in 0..N {
        netns.run("tcpt-podrt", move || connection(listen, 2));
    }
    let expected = transitions_of(N, true, N);
    for ((endpoint, why), tool) in endpoints.iter().zip(tools) {
        let done = stop_after(tool, total(&expected), is_json);
        let objects = objects(&done);
        assert_eq!(
            census(objects.iter().map(transition)),
            expected,
            "{endpoint}"
        );
        for o in &objects {
            assert!(
                o["cgroup"].as_str().is_some_and(|c| c.starts_with('/')),
                "{o}"
            );
            for key in ["namespace", "pod", "container", "container_id"] {
                assert!(o.get(key).is_none(), "{endpoint}: {key} in {o}");
            }
        }
        let lines: Vec<&str> = done.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{endpoint}: {lines:#?}");
        let prefix =
            format!("tcpstates: cannot ask the container runtime at {endpoint} for names: ");
        assert!(
            lines[0].starts_with(&prefix)
                && lines[0].contains(why)
                && lines[0].ends_with("; showing cgroup paths"),
            "{:?}",
            lines[0]
        );
    }
}

/// Malformed pod flags, a namespace given twice differently, -c with a pod selector and an
/// endpoint that is no Unix socket: each exits 64 with one line, in all three tools.
#[test]
fn bad_pod_flags_are_usage_errors() {
    let mount = cgroup2_mount();
    let dir = mount.to_str().expect("UTF-8 path");
    let pod = "lower-case letters, digits, - and ., at most 253";
    let cases: [(Vec<&str>, String); 7] = [
        (vec!["--pod", ""], format!("invalid --pod name: (empty) ({pod})")),
        (vec!["--pod", "a/b/c"], format!("invalid --pod name: b/c ({pod})")),
        (
            vec!["--k8s-namespace", "Bad"],
            "invalid --k8s-namespace name: Bad (lower-case letters, digits and -, at most 63)"
                .to_owned(),
        ),
        (
            vec!["--container", ""],
            "invalid --container name: (empty) (letters, digits, _, . and -)".to_owned(),
        ),
        (
            vec!["--pod", "x/web", "--k8s-namespace", "y"],
            "--pod x/web: namespace x differs from --k8s-namespace y".to_owned(),
        ),
        (
            vec!["-c", dir, "--pod", "web"],
            "-c selects a cgroup, --k8s-namespace, --pod and --container select pods: give one or the other".to_owned(),
        ),
        (
            vec!["--runtime-endpoint", "tcp://x"],
            "invalid runtime endpoint: tcp://x (auto, none or unix:///PATH)".to_owned(),
        ),
    ];
    for bin in [TCPSTATES, TCPRTT, TCPCONNLAT] {
        for (args, message) in &cases {
            let done = assert_one_line_failure(bin, args, 64, message);
            assert_eq!(done.stderr, format!("{message}\n"), "{bin} {args:?}");
        }
    }
}
