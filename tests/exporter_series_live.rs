//! tcptools-exporter's bounded series on real loopback traffic (needs root and
//! `prometheus`): native histograms scraped by a real Prometheus with native histograms on,
//! against the classic ones another Prometheus scrapes from the same exporter; and the
//! series of a scrape at the DaemonSet's flags with 100 busy pods. Ports 48300-48399 are
//! this file's.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::web::{self, parse_samples, Exporter, Prometheus};
use common::{connection, Cgroup, Netns, Proc};

const EXPORTER_PORT: u16 = 48300;
const DAEMONSET_EXPORTER_PORT: u16 = 48301;
const SERVER_PORT: u16 = 48310;
const BUSY_SERVER_PORT: u16 = 48311;
const REFUSED_PORT: u16 = 48312;
const NATIVE_PROMETHEUS_PORT: u16 = 48390;
const CLASSIC_PROMETHEUS_PORT: u16 = 48391;

const WAIT: Duration = Duration::from_secs(30);

fn job(port: u16) -> String {
    format!("  - job_name: exp\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
}

/// The classic `le` at or above `value`: powers of 4 seconds (docs/exporter.md).
fn classic_bucket(value: f64) -> (f64, f64) {
    let le = 4f64.powf((value.log2() / 2.0).ceil());
    (le / 4.0, le)
}

#[test]
fn native_histograms_agree_with_the_classic_ones() {
    const CONNECTIONS: usize = 20;
    let ns = Netns::new("series");
    let dport = SERVER_PORT.to_string();
    let exporter = Exporter::start(&ns, EXPORTER_PORT, &["-D", &dport]);
    let jobs = job(EXPORTER_PORT);
    let native = Prometheus::start_with(
        &ns,
        NATIVE_PROMETHEUS_PORT,
        &jobs,
        &["--enable-feature=native-histograms"],
    );
    let classic = Prometheus::start(&ns, CLASSIC_PROMETHEUS_PORT, &jobs);
    for p in [&native, &classic] {
        p.wait_until(WAIT, "the exporter up", || p.value("up") == Some(1.0));
    }
    ns.run("series-traffic", move || {
        for _ in 0..CONNECTIONS {
            connection(SocketAddr::from(([127, 0, 0, 1], SERVER_PORT)), 3);
        }
    });
    let histograms = [
        "tcp_connect_latency_seconds{family=\"ipv4\",outcome=\"established\"}",
        "tcp_state_duration_seconds{family=\"ipv4\",state=\"SYN_SENT\"}",
        "tcp_state_duration_seconds{family=\"ipv4\",state=\"ESTABLISHED\"}",
        "tcp_rtt_seconds{family=\"ipv4\"}",
    ];
    let suffixed = |h: &str, suffix: &str| h.replacen('{', &format!("{suffix}{{"), 1);
    // Both have every connection (a scrape every second); the client's ESTABLISHED ends
    // with its close, so it is counted once per connection too.
    for h in &histograms[..3] {
        let count = suffixed(h, "_count");
        classic.wait_until(WAIT, &count, || {
            classic.value(&count) == Some(CONNECTIONS as f64)
        });
        let native_count = format!("histogram_count({h})");
        native.wait_until(WAIT, &native_count, || {
            native.value(&native_count) == Some(CONNECTIONS as f64)
        });
    }
    // RTT keeps no fixed count: wait for both to see the same last scrape's.
    let rtt = histograms[3];
    native.wait_until(WAIT, "the same RTT count in both", || {
        let c = classic.value(&suffixed(rtt, "_count"));
        c.is_some_and(|c| c > 0.0) && native.value(&format!("histogram_count({rtt})")) == c
    });
    for h in histograms {
        let sum = classic.value(&suffixed(h, "_sum")).expect("a classic sum");
        let native_sum = native.value(&format!("histogram_sum({h})"));
        assert_eq!(native_sum, Some(sum), "{h}");
        let q = |p: &Prometheus, series: &str| {
            let query = format!("histogram_quantile(0.5, {series})");
            p.value(&query).unwrap_or_else(|| panic!("no {query}"))
        };
        let classic_q = q(&classic, &suffixed(h, "_bucket"));
        let native_q = q(&native, h);
        // Within one bucket of the classic's: the native buckets refine them.
        let (low, high) = classic_bucket(classic_q);
        assert!(
            (low..=high).contains(&native_q),
            "{h}: native median {native_q} outside the classic's bucket {low}..{high} (classic {classic_q})"
        );
    }
    // The native Prometheus took the native histogram, not classic buckets: protobuf.
    assert!(native
        .query("tcp_connect_latency_seconds_bucket")
        .is_empty());
    assert!(!classic
        .query("tcp_connect_latency_seconds_bucket")
        .is_empty());
    let transitions = "sum(tcp_state_transitions_total)";
    assert_eq!(native.value(transitions), classic.value(transitions));
    let done = exporter.stop();
    assert!(done.status.success(), "{:?} {}", done.status, done.stderr);
}

/// The pods' traffic (tests/series/traffic.py, which bench/series.py runs too): moves
/// itself into each cgroup.procs given, and from there makes N connections to HOST PORT (v4)
/// and N to [::1]:PORT, one byte each way, and N connects to REFUSED on both.
const PODS_TRAFFIC: &str = include_str!("series/traffic.py");

/// Echoes one byte on every connection, on 127.0.0.1 and ::1, until stdin closes.
const ECHO_SERVER: &str = r#"
import socket, sys, threading
port = int(sys.argv[1])
def serve(host, family):
    l = socket.socket(family)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, port))
    l.listen(128)
    def loop():
        while True:
            c, _ = l.accept()
            c.recv(1)
            c.sendall(b'y')
            c.close()
    threading.Thread(target=loop, daemon=True).start()
serve('127.0.0.1', socket.AF_INET)
serve('::1', socket.AF_INET6)
print('ready', flush=True)
sys.stdin.readline()
"#;

/// kubelet's cgroupfs layout: `tcpt-TAG-PID/kubepods/besteffort/pod<uid>/<container id>`.
fn pod_uid(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// The DaemonSet's arguments (contrib/kubernetes/daemonset.yaml) after `--listen`.
fn daemonset_args() -> Vec<String> {
    let manifest = std::fs::read_to_string("contrib/kubernetes/daemonset.yaml").expect("manifest");
    let line = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("args: ["))
        .expect("an args line");
    // Every argument is quoted: the odd pieces between quotes.
    let args: Vec<String> = line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert_eq!(args[0], "--listen", "{args:?}");
    args[2..].to_vec()
}

#[test]
fn daemonset_flags_bound_the_series_of_100_busy_pods() {
    const PODS: usize = 100;
    let ns = Netns::new("series-pods");
    let parent = Cgroup::new("series");
    let kubepods = parent.child("kubepods");
    let besteffort = kubepods.child("besteffort");
    let pods: Vec<Cgroup> = (0..PODS)
        .map(|n| besteffort.child(&format!("pod{}", pod_uid(n))))
        .collect();
    let containers: Vec<Cgroup> = pods.iter().map(|p| p.child(&"c".repeat(64))).collect();
    let mut args = daemonset_args();
    // No runtime in the test: pods are labeled by uid, as the runtime does not name them.
    args.extend(["--runtime-endpoint".to_owned(), "none".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&ns, DAEMONSET_EXPORTER_PORT, &args);
    // Groups already busy on the host take labels first.
    let before = web::scrape(&ns, DAEMONSET_EXPORTER_PORT, WAIT);
    let labeled_before = sample(&before, "tcptools_exporter_groups", &[("kind", "labeled")]);

    let mut server = Proc::spawn(
        None,
        &ns,
        "python3",
        &["-c", ECHO_SERVER, &BUSY_SERVER_PORT.to_string()],
    );
    server.expect_line("ready", WAIT);
    let procs: Vec<String> = containers
        .iter()
        .map(|c| c.procs().to_str().expect("UTF-8").to_owned())
        .collect();
    let (port, refused) = (BUSY_SERVER_PORT.to_string(), REFUSED_PORT.to_string());
    // nsenter changes the network namespace alone: `ip netns exec` would remount /sys, and
    // with it hide the cgroup hierarchy the script moves itself through.
    let net = format!("--net=/run/netns/{}", ns.name);
    let mut traffic = Command::new("nsenter")
        .args([
            net.as_str(),
            "python3",
            "-c",
            PODS_TRAFFIC,
            &port,
            &refused,
            "2",
        ])
        .args(&procs)
        .stdout(Stdio::null())
        .spawn()
        .expect("python3");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = traffic.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = traffic.kill();
            let _ = traffic.wait();
            panic!("the pods' traffic did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the pods' traffic: {status:?}");
    // The last connections' closes follow within a few hundred ms.
    std::thread::sleep(Duration::from_secs(1));

    let text = web::scrape(&ns, DAEMONSET_EXPORTER_PORT, WAIT);
    let samples = parse_samples(&text);
    let served = sample(&text, "tcptools_exporter_series", &[]);
    assert_eq!(served, samples.len() as f64, "tcptools_exporter_series");
    let ours = |labels: &common::web::Labels| {
        labels
            .get("pod")
            .is_some_and(|pod| pod.starts_with("00000000-0000-4000-8000-"))
    };
    let pods_labeled: std::collections::BTreeSet<&String> = samples
        .iter()
        .filter(|(_, labels, _)| ours(labels))
        .filter_map(|(_, labels, _)| labels.get("pod"))
        .collect();
    assert!(
        pods_labeled.len() + labeled_before as usize >= PODS,
        "{} of our pods labeled, {labeled_before} before",
        pods_labeled.len()
    );
    // Each of ours established 2 + 2 connections and had 4 refused.
    let established = samples.iter().filter(|(name, labels, _)| {
        name == "tcp_connect_attempts_total" && ours(labels) && labels["outcome"] == "established"
    });
    assert!(established.clone().all(|(_, _, v)| *v == 2.0));
    assert_eq!(established.count(), 2 * pods_labeled.len());
    // At the DaemonSet's --group-histograms connect, a pod's state changes are counted in
    // its group's entries and their durations for the node: no duration per pod, and the
    // node's time in SYN_SENT holds every connect of ours (2 established, 2 refused).
    let per_pod = |(name, labels, _): &&(String, common::web::Labels, f64)| {
        name.starts_with("tcp_state_duration_seconds") && labels.contains_key("pod")
    };
    assert_eq!(samples.iter().filter(per_pod).count(), 0);
    for family in ["ipv4", "ipv6"] {
        let ours_left: f64 = samples
            .iter()
            .filter(|(name, labels, _)| {
                name == "tcp_state_transitions_total"
                    && ours(labels)
                    && labels["family"] == family
                    && labels["old_state"] == "SYN_SENT"
            })
            .map(|(_, _, v)| *v)
            .sum();
        assert_eq!(ours_left, 4.0 * pods_labeled.len() as f64, "{family}");
        let want = [("family", family), ("state", "SYN_SENT")];
        let node = sample(&text, "tcp_state_duration_seconds_count", &want);
        assert!(node >= ours_left, "{family}: {node} < {ours_left}");
    }
    eprintln!(
        "{} series ({} bytes) at {} pods labeled",
        samples.len(),
        text.len(),
        pods_labeled.len()
    );
    assert!(samples.len() <= 10_000, "{} series", samples.len());
    server.send_line("");
    drop(server);
    drop(exporter);
    drop(containers);
    drop(pods);
}

/// The value of the one sample named `name` with labels `want`.
fn sample(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = parse_samples(text)
        .into_iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {want:?}: {found:?}");
    found[0]
}
