//! tcptools-exporter against a real Prometheus server over plain HTTP: loopback traffic in
//! a private namespace, then queries through Prometheus' HTTP API (needs root and
//! `prometheus`). TLS, authentication and groups: tests/exporter_web.rs and
//! tests/exporter_groups_live.rs.

mod common;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use common::web::{raw_get, Exporter, Prometheus};
use common::{connection, Netns};

const PROMETHEUS_PORT: u16 = 44090;
const EXPORTER_ALL_PORT: u16 = 44091;
const EXPORTER_FILTERED_PORT: u16 = 44092;
const EXPORTER_CATCHERS_PORT: u16 = 44093;
const SERVER_V4: u16 = 44001;
const SERVER_V6: u16 = 44002;

/// The value of the one sample line of `/metrics` text whose name and labels are `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A GET from inside `ns` (5 s bound).
fn get(ns: &Netns, port: u16, path: &str) -> Option<(u16, String)> {
    let path = path.to_owned();
    ns.run("exp-http", move || {
        raw_get(port, &path, Duration::from_secs(5))
    })
}

fn plain_job(job: &str, port: u16) -> String {
    format!("  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
}

#[test]
fn prometheus_scrapes_exact_counts() {
    const V4_CONNECTIONS: usize = 5;
    const V6_CONNECTIONS: usize = 3;
    let ns = Netns::new("exp");
    let ports = format!("{SERVER_V4},{SERVER_V6}");
    let all = Exporter::start(&ns, EXPORTER_ALL_PORT, &[]);
    // Remote ports: a client elsewhere on the host may get 44001 as its ephemeral local
    // port, but nothing else connects to it.
    let filtered = Exporter::start(&ns, EXPORTER_FILTERED_PORT, &["-D", &ports]);
    // Its catchers alone (bpf/nested.bpf.h), which then count every event, in their own
    // copies of the counters: the same counts.
    let catchers = Exporter::start_env(
        &ns,
        EXPORTER_CATCHERS_PORT,
        &["-D", &ports],
        &[("TCPTOOLS_CATCHERS_ONLY", "1")],
    );
    assert_eq!(
        all.ready_line(),
        format!("Serving metrics on http://127.0.0.1:{EXPORTER_ALL_PORT}/metrics")
    );
    let jobs =
        plain_job("exp-all", EXPORTER_ALL_PORT) + &plain_job("exp-port", EXPORTER_FILTERED_PORT);
    let prometheus = Prometheus::start(&ns, PROMETHEUS_PORT, &jobs);
    prometheus.wait_until(Duration::from_secs(30), "both targets up", || {
        prometheus.value("sum(up{job=~\"exp-.*\"})") == Some(2.0)
    });

    ns.run("exp-traffic", move || {
        for _ in 0..V4_CONNECTIONS {
            connection(SocketAddr::from(([127, 0, 0, 1], SERVER_V4)), 3);
        }
        for _ in 0..V6_CONNECTIONS {
            connection(format!("[::1]:{SERVER_V6}").parse().expect("v6 addr"), 3);
        }
    });

    // The filtered exporter counted only connects to this test's servers: exact counts.
    let established = |job: &str, family: &str| {
        format!(
            "tcp_state_transitions_total{{job=\"{job}\",family=\"{family}\",old_state=\"SYN_SENT\",new_state=\"ESTABLISHED\"}}"
        )
    };
    let connects = |job: &str, family: &str| {
        format!(
            "tcp_connect_latency_seconds_count{{job=\"{job}\",family=\"{family}\",outcome=\"established\"}}"
        )
    };
    let syn_sent_time = |job: &str, family: &str| {
        format!(
            "tcp_state_duration_seconds_count{{job=\"{job}\",family=\"{family}\",state=\"SYN_SENT\"}}"
        )
    };
    let exact = [
        (established("exp-port", "ipv4"), V4_CONNECTIONS),
        (established("exp-port", "ipv6"), V6_CONNECTIONS),
        (connects("exp-port", "ipv4"), V4_CONNECTIONS),
        (connects("exp-port", "ipv6"), V6_CONNECTIONS),
        (syn_sent_time("exp-port", "ipv4"), V4_CONNECTIONS),
        (syn_sent_time("exp-port", "ipv6"), V6_CONNECTIONS),
    ];
    for (query, want) in &exact {
        prometheus.wait_until(Duration::from_secs(30), query, || {
            prometheus.value(query).is_some_and(|v| v >= *want as f64)
        });
    }
    // The unfiltered exporter counts everything on the host, parallel tests included.
    let at_least = [
        (
            format!("sum({})", established("exp-all", "ipv4")),
            V4_CONNECTIONS,
        ),
        (
            format!("sum({})", connects("exp-all", "ipv4")),
            V4_CONNECTIONS,
        ),
        (
            format!("sum({})", connects("exp-all", "ipv6")),
            V6_CONNECTIONS,
        ),
    ];
    for (query, want) in &at_least {
        prometheus.wait_until(Duration::from_secs(30), query, || {
            prometheus.value(query).is_some_and(|v| v >= *want as f64)
        });
    }
    // Several scrapes later nothing was reset, and nothing counted twice.
    thread::sleep(Duration::from_secs(3));
    for (query, want) in &exact {
        assert_eq!(prometheus.value(query), Some(*want as f64), "{query}");
    }
    // The buckets are cumulative and end in +Inf = _count; RTT samples were taken.
    let inf = "tcp_connect_latency_seconds_bucket{job=\"exp-port\",family=\"ipv4\",outcome=\"established\",le=\"+Inf\"}";
    assert_eq!(prometheus.value(inf), Some(V4_CONNECTIONS as f64));
    let rtt = prometheus
        .value("tcp_rtt_seconds_count{job=\"exp-port\",family=\"ipv4\"}")
        .unwrap_or(0.0);
    assert!(rtt >= V4_CONNECTIONS as f64, "rtt samples: {rtt}");
    let skipped = prometheus.value("sum(tcptools_exporter_events_skipped_total{job=\"exp-port\"})");
    assert_eq!(skipped, Some(0.0));

    // The exporter's own /metrics agrees, and unknown paths are 404 (/ is a landing page).
    let (status, text) = get(&ns, EXPORTER_FILTERED_PORT, "/metrics").expect("/metrics");
    assert_eq!(status, 200);
    let line = "tcp_state_transitions_total{family=\"ipv4\",old_state=\"SYN_SENT\",new_state=\"ESTABLISHED\"}";
    assert_eq!(sample(&text, line), Some(V4_CONNECTIONS as f64), "{text}");
    let line = "tcp_connect_latency_seconds_count{family=\"ipv6\",outcome=\"established\"}";
    assert_eq!(sample(&text, line), Some(V6_CONNECTIONS as f64), "{text}");
    let (status, _) = get(&ns, EXPORTER_FILTERED_PORT, "/nope").expect("/nope");
    assert_eq!(status, 404);
    let (_, caught) = get(&ns, EXPORTER_CATCHERS_PORT, "/metrics").expect("/metrics");
    for family in ["ipv4", "ipv6"] {
        for series in [
            format!("tcp_state_transitions_total{{family=\"{family}\",old_state=\"SYN_SENT\",new_state=\"ESTABLISHED\"}}"),
            format!("tcp_connect_latency_seconds_count{{family=\"{family}\",outcome=\"established\"}}"),
            format!("tcp_state_duration_seconds_count{{family=\"{family}\",state=\"SYN_SENT\"}}"),
            format!("tcp_rtt_seconds_count{{family=\"{family}\"}}"),
        ] {
            assert_eq!(
                sample(&caught, &series),
                sample(&text, &series),
                "{series}: catchers only vs both"
            );
        }
    }

    drop(prometheus);
    for exporter in [all, filtered, catchers] {
        let done = exporter.stop();
        assert!(done.status.success(), "{:?} {}", done.status, done.stderr);
    }
}
