//! tcptools-exporter's kernel-side counts on real loopback traffic (needs root): connect
//! outcomes (established, refused, timeout), `--group-by cgroup` with `--max-groups`,
//! `--group-by netns`, and `--group-by pod` and `container` on cgroups laid out as kubelet's
//! cgroupfs driver does (no runtime: pods unnamed), read from the exporter's own /metrics
//! and checked with promtool. Ports 44200-44299 are this file's.
//!
//! Clients are python3 processes in the test's own cgroups and namespace; every exporter
//! counts only the remote ports of this file (`-D`), since tracepoints see everything.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::web::{
    self, parse_samples, tls_scrape_job, Certs, Exporter, Labels, Prometheus, TempDir,
};
use common::{inode_of, Cgroup, Netns, Proc};

const WAIT: Duration = Duration::from_secs(30);

/// Listens on HOST PORT, prints `ready`, accepts and closes connections until stdin closes.
const SERVER: &str = r#"
import socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
l = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((host, port))
l.listen(128)
def serve():
    while True:
        c, _ = l.accept()
        c.recv(1)
        c.close()
threading.Thread(target=serve, daemon=True).start()
print('ready', flush=True)
sys.stdin.readline()
"#;

/// Prints `ready`, waits for a line on stdin, then makes N connect attempts to HOST PORT at
/// once (each closed as soon as it is answered, or fails), prints `done`.
const ATTEMPTS: &str = r#"
import socket, sys, threading
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print('ready', flush=True)
sys.stdin.readline()
def attempt():
    s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    s.settimeout(60)
    try:
        s.connect((host, port))
    except OSError:
        pass
    s.close()
threads = [threading.Thread(target=attempt) for _ in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print('done', flush=True)
"#;

fn server(ns: &Netns, port: u16) -> Proc {
    let mut p = Proc::spawn(
        None,
        ns,
        "python3",
        &["-c", SERVER, "127.0.0.1", &port.to_string()],
    );
    p.expect_line("ready", WAIT);
    p
}

/// Starts N connect attempts to `port` from `cgroup`, once `go` is called.
fn attempts(cgroup: Option<&Cgroup>, ns: &Netns, port: u16, n: usize) -> Proc {
    let args = [
        "-c",
        ATTEMPTS,
        "127.0.0.1",
        &port.to_string(),
        &n.to_string(),
    ];
    let mut p = Proc::spawn(cgroup, ns, "python3", &args);
    p.expect_line("ready", WAIT);
    p
}

/// Runs every client at once, and waits for all of them.
fn run_all(mut clients: Vec<Proc>) {
    for c in &mut clients {
        c.send_line("go");
    }
    for mut c in clients {
        c.expect_line("done", WAIT);
        c.finish(WAIT);
    }
}

/// An exporter inside `ns` on `port`, counting connections to `dports` only.
fn exporter(ns: &Netns, port: u16, dports: &str, extra: &[&str]) -> Exporter {
    let mut args = vec!["-D", dports];
    args.extend_from_slice(extra);
    Exporter::start(ns, port, &args)
}

fn scrape(ns: &Netns, port: u16) -> String {
    web::scrape(ns, port, WAIT)
}

/// Every sample of metric `name` in an exposition: its labels and value.
fn samples(text: &str, name: &str) -> Vec<(Labels, f64)> {
    parse_samples(text)
        .into_iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, labels, v)| (labels, v))
        .collect()
}

/// The value of the one sample of `name` whose labels include `want`; panics on none or
/// several.
fn value(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples(text, name)
        .into_iter()
        .filter(|(labels, _)| {
            want.iter()
                .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {want:?}: {found:?}\n{text}");
    found[0]
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stop(exporter: Exporter) {
    let done = exporter.stop();
    assert!(done.status.success(), "{:?} {}", done.status, done.stderr);
}

/// In `ns`: connects to DROPPED get no answer, so with one SYN retry they time out (ETIMEDOUT)
/// after about 3 s.
fn drop_syns_to(ns: &Netns, dropped: u16) {
    ns.exec("sysctl", &["-qw", "net.ipv4.tcp_syn_retries=1"]);
    let rule = format!(
        "add table inet tcpt; add chain inet tcpt input {{ type filter hook input priority 0; }}; \
         add rule inet tcpt input tcp dport {dropped} drop"
    );
    ns.exec("nft", &[&rule]);
}

#[test]
fn connect_outcomes_are_counted_exactly() {
    const OPEN: u16 = 44201;
    const CLOSED: u16 = 44202;
    const DROPPED: u16 = 44203;
    const EXPORTER_PORT: u16 = 44290;
    let (established, refused, timeouts) = (5, 4, 3);
    let ns = Netns::new("expout");
    drop_syns_to(&ns, DROPPED);
    let dports = format!("{OPEN},{CLOSED},{DROPPED}");
    let exp = exporter(&ns, EXPORTER_PORT, &dports, &[]);
    let mut srv = server(&ns, OPEN);
    run_all(vec![
        attempts(None, &ns, OPEN, established),
        attempts(None, &ns, CLOSED, refused),
        attempts(None, &ns, DROPPED, timeouts),
    ]);
    srv.send_line("stop");

    let text = scrape(&ns, EXPORTER_PORT);
    let attempts_of = |outcome| {
        let want = [("family", "ipv4"), ("outcome", outcome)];
        value(&text, "tcp_connect_attempts_total", &want)
    };
    assert_eq!(attempts_of("established"), established as f64);
    assert_eq!(attempts_of("refused"), refused as f64);
    assert_eq!(attempts_of("timeout"), timeouts as f64);
    assert_eq!(attempts_of("other"), 0.0);
    let latency = |outcome| {
        let want = [("family", "ipv4"), ("outcome", outcome)];
        value(&text, "tcp_connect_latency_seconds_count", &want)
    };
    assert_eq!(latency("established"), established as f64);
    assert_eq!(latency("refused"), refused as f64);
    let want = [
        ("family", "ipv4"),
        ("old_state", "SYN_SENT"),
        ("new_state", "CLOSE"),
    ];
    let closed = value(&text, "tcp_state_transitions_total", &want);
    assert_eq!(closed, (refused + timeouts) as f64);
    // A timeout waits for the retries: its SYN_SENT lasted seconds, a refusal's did not.
    let want = [("family", "ipv4"), ("state", "SYN_SENT"), ("le", "1")];
    let under_a_second = value(&text, "tcp_state_duration_seconds_bucket", &want);
    assert_eq!(under_a_second, (established + refused) as f64, "{text}");
    assert!(samples(&text, "tcptools_exporter_events_skipped_total")
        .iter()
        .all(|(_, v)| *v == 0.0));
    promtool_check(&text);
    stop(exp);
}

#[test]
fn groups_keep_the_busiest_and_sum_the_rest() {
    const PORT: u16 = 44211;
    const BY_CGROUP: u16 = 44291;
    const BY_NETNS: u16 = 44292;
    let ns = Netns::new("expgrp");
    let parent = Cgroup::new("expgrp");
    let cgroups: Vec<Cgroup> = (1..=4).map(|i| parent.child(&format!("c{i}"))).collect();
    let dports = PORT.to_string();
    let by_cgroup = exporter(
        &ns,
        BY_CGROUP,
        &dports,
        &["--group-by", "cgroup", "--max-groups", "2"],
    );
    let by_netns = exporter(&ns, BY_NETNS, &dports, &["--group-by", "netns"]);
    let mut srv = server(&ns, PORT);
    // 4, 3, 2 and 1 connects: the first two cgroups are the busiest.
    let clients = cgroups
        .iter()
        .enumerate()
        .map(|(i, cg)| attempts(Some(cg), &ns, PORT, 4 - i))
        .collect();
    run_all(clients);
    srv.send_line("stop");

    let text = scrape(&ns, BY_CGROUP);
    let established = |text: &str| -> BTreeMap<String, f64> {
        samples(text, "tcp_connect_attempts_total")
            .into_iter()
            .filter(|(l, _)| l.get("outcome").map(String::as_str) == Some("established"))
            .map(|(mut l, v)| {
                (
                    l.remove("cgroup")
                        .or_else(|| l.remove("netns"))
                        .unwrap_or_default(),
                    v,
                )
            })
            .collect()
    };
    let want: BTreeMap<String, f64> = [
        (cgroups[0].rel.clone(), 4.0),
        (cgroups[1].rel.clone(), 3.0),
        ("other".to_owned(), 3.0),
    ]
    .into();
    assert_eq!(established(&text), want, "{text}");
    assert_eq!(
        value(&text, "tcptools_exporter_groups", &[("kind", "labeled")]),
        2.0
    );
    assert_eq!(
        value(&text, "tcptools_exporter_groups", &[("kind", "other")]),
        2.0
    );
    promtool_check(&text);

    let text = scrape(&ns, BY_NETNS);
    let inode = inode_of(&format!("/run/netns/{}", ns.name)).to_string();
    let want: BTreeMap<String, f64> = [(inode, 10.0)].into();
    assert_eq!(established(&text), want, "{text}");
    promtool_check(&text);
    stop(by_cgroup);
    stop(by_netns);
}

#[test]
fn removed_cgroups_give_their_label_and_map_room_back() {
    const PORT: u16 = 44221;
    const BY_CGROUP: u16 = 44293;
    let ns = Netns::new("expret");
    let parent = Cgroup::new("expret");
    let exp = exporter(
        &ns,
        BY_CGROUP,
        &PORT.to_string(),
        &["--group-by", "cgroup", "--max-groups", "1"],
    );
    let mut srv = server(&ns, PORT);
    let gone = parent.child("gone");
    run_all(vec![attempts(Some(&gone), &ns, PORT, 2)]);
    let text = scrape(&ns, BY_CGROUP);
    let want = [("outcome", "established"), ("cgroup", gone.rel.as_str())];
    assert_eq!(value(&text, "tcp_connect_attempts_total", &want), 2.0);
    let gone_rel = gone.rel.clone();
    drop(gone);
    // Quiet across two scrapes and its directory removed: retired at the second.
    scrape(&ns, BY_CGROUP);
    let text = scrape(&ns, BY_CGROUP);
    assert!(!text.contains(&format!("cgroup=\"{gone_rel}\"")), "{text}");
    assert_eq!(
        value(
            &text,
            "tcptools_exporter_map_entries",
            &[("map", "group_counters")]
        ),
        0.0
    );
    assert_eq!(
        value(&text, "tcptools_exporter_groups", &[("kind", "labeled")]),
        0.0
    );
    // The label is free for the next cgroup.
    let next = parent.child("next");
    run_all(vec![attempts(Some(&next), &ns, PORT, 3)]);
    let text = scrape(&ns, BY_CGROUP);
    let want = [("outcome", "established"), ("cgroup", next.rel.as_str())];
    assert_eq!(value(&text, "tcp_connect_attempts_total", &want), 3.0);
    srv.send_line("stop");
    stop(exp);
}

/// A real Prometheus scrapes two exporters over TLS with basic auth, one grouped by cgroup
/// and one by network namespace, while the test's cgroups connect: through its HTTP API
/// the counts equal the traffic, per outcome and per group.
#[test]
fn prometheus_over_tls_counts_outcomes_per_cgroup_and_netns() {
    const OPEN: u16 = 44231;
    const CLOSED: u16 = 44232;
    const DROPPED: u16 = 44233;
    const BY_CGROUP: u16 = 44294;
    const BY_NETNS: u16 = 44295;
    const PROMETHEUS_PORT: u16 = 44296;
    let ns = Netns::new("expprom");
    drop_syns_to(&ns, DROPPED);
    let parent = Cgroup::new("expprom");
    let (app, batch) = (parent.child("app"), parent.child("batch"));
    let dir = TempDir::new("exp-groups-prom");
    let certs = Certs::new(&dir);
    let config = dir.write("web.yml", &certs.web_config(&[("prom", "s3cret")], &[]));
    let dports = format!("{OPEN},{CLOSED},{DROPPED}");
    let tls = ["--web.config.file", config.as_str()];
    let by_cgroup = exporter(
        &ns,
        BY_CGROUP,
        &dports,
        &[&tls[..], &["--group-by", "cgroup"]].concat(),
    );
    let by_netns = exporter(
        &ns,
        BY_NETNS,
        &dports,
        &[&tls[..], &["--group-by", "netns"]].concat(),
    );
    let jobs = [
        tls_scrape_job("cgroup", BY_CGROUP, &certs.ca, "prom", "s3cret"),
        tls_scrape_job("netns", BY_NETNS, &certs.ca, "prom", "s3cret"),
    ]
    .concat();
    let prometheus = Prometheus::start(&ns, PROMETHEUS_PORT, &jobs);
    prometheus.wait_until(WAIT, "both exporters up", || {
        prometheus.value("sum(up{job=~\"cgroup|netns\"})") == Some(2.0)
    });

    let mut srv = server(&ns, OPEN);
    run_all(vec![
        attempts(Some(&app), &ns, OPEN, 3),
        attempts(Some(&app), &ns, CLOSED, 2),
        attempts(Some(&app), &ns, DROPPED, 2),
        attempts(Some(&batch), &ns, OPEN, 1),
    ]);
    srv.send_line("stop");

    let attempts_of = |job: &str, group: &str, outcome: &str| {
        let label = if job == "cgroup" { "cgroup" } else { "netns" };
        format!(
            "tcp_connect_attempts_total{{job=\"{job}\",family=\"ipv4\",outcome=\"{outcome}\",{label}=\"{group}\"}}"
        )
    };
    let inode = inode_of(&format!("/run/netns/{}", ns.name)).to_string();
    let latency = format!(
        "tcp_connect_latency_seconds_count{{job=\"cgroup\",outcome=\"refused\",cgroup=\"{}\"}}",
        app.rel
    );
    let exact = [
        (attempts_of("cgroup", &app.rel, "established"), 3.0),
        (attempts_of("cgroup", &app.rel, "refused"), 2.0),
        (attempts_of("cgroup", &app.rel, "timeout"), 2.0),
        (attempts_of("cgroup", &batch.rel, "established"), 1.0),
        (latency, 2.0),
        (attempts_of("netns", &inode, "established"), 4.0),
        (attempts_of("netns", &inode, "refused"), 2.0),
        (attempts_of("netns", &inode, "timeout"), 2.0),
    ];
    for (query, want) in &exact {
        prometheus.wait_until(WAIT, query, || prometheus.value(query) == Some(*want));
    }
    // Scrapes later nothing grew, nothing was reset, and no other group appeared.
    std::thread::sleep(Duration::from_secs(3));
    for (query, want) in &exact {
        assert_eq!(prometheus.value(query), Some(*want), "{query}");
    }
    let groups = prometheus.query("count by (cgroup) (tcp_connect_attempts_total{job=\"cgroup\"})");
    assert_eq!(groups.len(), 2, "{groups:?}");
    drop(prometheus);
    stop(by_cgroup);
    stop(by_netns);
}

/// Pod uids and container ids as kubelet and the runtimes write them.
const POD_A: &str = "6f1e2d3c-4b5a-4697-8877-665544332211";
const POD_B: &str = "0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d";

fn container_id(c: char) -> String {
    c.to_string().repeat(64)
}

/// kubelet's cgroupfs layout below a cgroup of the test's own,
/// `tcpt-TAG-PID/kubepods/besteffort`, removed (deepest first) on drop.
struct Kubepods {
    besteffort: Cgroup,
    _kubepods: Cgroup,
    _parent: Cgroup,
}

impl Kubepods {
    fn new(tag: &str) -> Kubepods {
        let parent = Cgroup::new(tag);
        let kubepods = parent.child("kubepods");
        Kubepods {
            besteffort: kubepods.child("besteffort"),
            _kubepods: kubepods,
            _parent: parent,
        }
    }

    /// A pod's cgroup, `pod<uid>`; its containers are its children named by their ids.
    fn pod(&self, uid: &str) -> Cgroup {
        self.besteffort.child(&format!("pod{uid}"))
    }

    /// A cgroup beside `kubepods`, in no pod: the node's own.
    fn outside(&self, name: &str) -> Cgroup {
        self._parent.child(name)
    }
}

/// Established connects by the values of `labels` (in that order).
fn established_by(text: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
    samples(text, "tcp_connect_attempts_total")
        .into_iter()
        .filter(|(l, _)| l.get("outcome").map(String::as_str) == Some("established"))
        .map(|(l, v)| {
            let values = labels
                .iter()
                .map(|k| l.get(*k).cloned().unwrap_or_default());
            (values.collect(), v)
        })
        .collect()
}

fn keyed(pairs: &[(&[&str], f64)]) -> BTreeMap<Vec<String>, f64> {
    let key = |k: &[&str]| k.iter().map(|s| s.to_string()).collect();
    pairs.iter().map(|(k, v)| (key(k), *v)).collect()
}

/// Scrapes every 200 ms until `done` holds for the exposition (20 s at most), checking
/// `every` on each one; returns the last.
fn scrape_until(
    ns: &Netns,
    port: u16,
    what: &str,
    every: impl Fn(&str),
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(ns, port);
        every(&text);
        if done(&text) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "{what}:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `--group-by pod` and `container` with `--runtime-endpoint none` (no runtime names
/// them): a pod's containers are summed under its uid with namespace="", cgroups in no pod
/// have empty names; a restarted container's counts stay in its pod's totals, which never
/// go down, also while the pod has no container; a removed pod's series end.
#[test]
fn unnamed_pods_sum_their_containers_across_restarts() {
    const PORT: u16 = 44241;
    const BY_POD: u16 = 44281;
    const BY_CONTAINER: u16 = 44282;
    let ns = Netns::new("exppod");
    let kube = Kubepods::new("exppod");
    let (pod_a, pod_b) = (kube.pod(POD_A), kube.pod(POD_B));
    let (a1, a2) = (
        pod_a.child(&container_id('a')),
        pod_a.child(&container_id('b')),
    );
    let b1 = pod_b.child(&container_id('c'));
    let node = kube.outside("node");
    let none = ["--runtime-endpoint", "none"];
    let dports = PORT.to_string();
    let by_pod = exporter(
        &ns,
        BY_POD,
        &dports,
        &[&["--group-by", "pod"][..], &none].concat(),
    );
    let by_container = exporter(
        &ns,
        BY_CONTAINER,
        &dports,
        &[&["--group-by", "container"][..], &none].concat(),
    );
    let mut srv = server(&ns, PORT);
    run_all(vec![
        attempts(Some(&a1), &ns, PORT, 3),
        attempts(Some(&a2), &ns, PORT, 2),
        attempts(Some(&b1), &ns, PORT, 1),
        attempts(Some(&node), &ns, PORT, 4),
    ]);

    let pods = ["namespace", "pod"];
    let text = scrape(&ns, BY_POD);
    let want = keyed(&[(&["", POD_A], 5.0), (&["", POD_B], 1.0), (&["", ""], 4.0)]);
    assert_eq!(established_by(&text, &pods), want, "{text}");
    assert_eq!(value(&text, "tcptools_exporter_runtime_up", &[]), 0.0);
    assert_eq!(
        value(&text, "tcptools_exporter_runtime_errors_total", &[]),
        0.0
    );
    promtool_check(&text);
    let containers = ["pod", "container"];
    let (id_a, id_b, id_c) = (container_id('a'), container_id('b'), container_id('c'));
    let by_id = [
        (&[POD_A, id_a.as_str()][..], 3.0),
        (&[POD_A, id_b.as_str()], 2.0),
        (&[POD_B, id_c.as_str()], 1.0),
        (&["", ""], 4.0),
    ];
    let text = scrape(&ns, BY_CONTAINER);
    assert_eq!(established_by(&text, &containers), keyed(&by_id), "{text}");
    promtool_check(&text);

    // Both containers of pod A end: pod A keeps its 5 while it has no container at all,
    // over scrapes that would retire their cgroups (with pod the kernel counted them in
    // the pod's cgroup, which stays: its entries stay too).
    let entries = |text: &str| {
        value(
            text,
            "tcptools_exporter_map_entries",
            &[("map", "group_counters")],
        )
    };
    let before = entries(&scrape(&ns, BY_POD));
    drop((a1, a2));
    let pod_a_is = |want: f64| {
        move |text: &str| {
            let got = established_by(text, &pods);
            assert_eq!(
                got.get(&vec![String::new(), POD_A.to_owned()]),
                Some(&want),
                "{text}"
            );
        }
    };
    for _ in 0..3 {
        let text = scrape(&ns, BY_POD);
        pod_a_is(5.0)(&text);
        assert_eq!(entries(&text), before, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The container grouping keeps the ended containers' series flat while their pod stands.
    let text = scrape(&ns, BY_CONTAINER);
    assert_eq!(established_by(&text, &containers), keyed(&by_id), "{text}");

    // A restart: a new container in pod A adds to the same series.
    let a3 = pod_a.child(&container_id('d'));
    run_all(vec![attempts(Some(&a3), &ns, PORT, 2)]);
    let text = scrape(&ns, BY_POD);
    let want = keyed(&[(&["", POD_A], 7.0), (&["", POD_B], 1.0), (&["", ""], 4.0)]);
    assert_eq!(established_by(&text, &pods), want, "{text}");

    // Pod A is removed: its cgroup is retired (the kernel's entries go), its series end,
    // its place is free.
    let before = entries(&scrape(&ns, BY_POD));
    drop((a3, pod_a));
    let text = scrape_until(
        &ns,
        BY_POD,
        "pod A's series ended",
        |_| {},
        |t| !t.contains(POD_A) && entries(t) < before,
    );
    let want = keyed(&[(&["", POD_B], 1.0), (&["", ""], 4.0)]);
    assert_eq!(established_by(&text, &pods), want, "{text}");
    assert_eq!(
        value(&text, "tcptools_exporter_groups", &[("kind", "labeled")]),
        2.0
    );
    srv.send_line("stop");
    stop(by_pod);
    stop(by_container);
}

/// With honor_labels: true, Prometheus keeps the exporter's namespace and pod over a
/// target's own (as Kubernetes discovery gives them), and a series whose values are empty
/// gets neither; without it, the exporter's are renamed exported_*.
#[test]
fn honor_labels_keeps_the_pods_names() {
    const PORT: u16 = 44251;
    const BY_POD: u16 = 44283;
    const PROMETHEUS_PORT: u16 = 44284;
    let ns = Netns::new("exphonor");
    let kube = Kubepods::new("exphonor");
    let pod = kube.pod(POD_A);
    let app = pod.child(&container_id('a'));
    let node = kube.outside("node");
    let args = ["--group-by", "pod", "--runtime-endpoint", "none"];
    let by_pod = exporter(&ns, BY_POD, &PORT.to_string(), &args);
    let job = |name: &str, honor: bool| {
        format!(
            "  - job_name: {name}\n    honor_labels: {honor}\n    static_configs:\n      \
             - targets: ['127.0.0.1:{BY_POD}']\n        \
             labels: {{namespace: monitoring, pod: tcptools-exporter-x}}\n"
        )
    };
    let jobs = [job("honored", true), job("plain", false)].concat();
    let prometheus = Prometheus::start(&ns, PROMETHEUS_PORT, &jobs);
    let mut srv = server(&ns, PORT);
    run_all(vec![
        attempts(Some(&app), &ns, PORT, 3),
        attempts(Some(&node), &ns, PORT, 2),
    ]);
    srv.send_line("stop");

    let names = ["namespace", "pod", "exported_namespace", "exported_pod"];
    let series = |job: &str| -> BTreeMap<Labels, f64> {
        let query = format!("tcp_connect_attempts_total{{job=\"{job}\",outcome=\"established\"}}");
        let found = prometheus.query(&query).into_iter();
        let found = found.map(|(mut labels, v)| {
            labels.retain(|k, _| names.contains(&k.as_str()));
            (labels, v)
        });
        found.collect()
    };
    let labels = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let honored = BTreeMap::from([(labels(&[]), 2.0), (labels(&[("pod", POD_A)]), 3.0)]);
    prometheus.wait_until(WAIT, "honored series", || series("honored") == honored);
    let target = [("namespace", "monitoring"), ("pod", "tcptools-exporter-x")];
    let renamed = [&target[..], &[("exported_pod", POD_A)]].concat();
    let plain = BTreeMap::from([(labels(&target), 2.0), (labels(&renamed), 3.0)]);
    prometheus.wait_until(WAIT, "plain series", || series("plain") == plain);
    drop(prometheus);
    stop(by_pod);
}
