//! tcptools-exporter against a real Prometheus server: loopback traffic in a private
//! namespace, then queries through Prometheus' HTTP API (needs root and `prometheus`).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{connection, Netns, Tool};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const EXPORTER: &str = env!("CARGO_BIN_EXE_tcptools-exporter");
const PROMETHEUS_PORT: u16 = 44090;
const EXPORTER_ALL_PORT: u16 = 44091;
const EXPORTER_FILTERED_PORT: u16 = 44092;
const SERVER_V4: u16 = 44001;
const SERVER_V6: u16 = 44002;

/// A GET over a fresh connection, bounded by `timeout`: (status, body).
fn http_get(port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    // Chunked bodies (Prometheus' API) are decoded loosely: only their JSON is wanted.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    for _ in 0..10_000 {
        let Some((size, rest)) = body.split_once("\r\n") else {
            break;
        };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A Prometheus server of this test's own: temp config and storage, killed and removed
/// on drop (also when the test fails).
struct Prometheus<'a> {
    child: Child,
    dir: PathBuf,
    ns: &'a Netns,
}

impl<'a> Prometheus<'a> {
    /// Starts inside `ns`, where its port cannot meet the host's ephemeral ports.
    fn start(ns: &'a Netns, targets: &[(&str, u16)]) -> Prometheus<'a> {
        let dir = std::env::temp_dir().join(format!("tcpt-exp-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("create prometheus dir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, port) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.join("log")).expect("create log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "prometheus"])
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus (apt-get install prometheus): {e}")
            });
        let prometheus = Prometheus { child, dir, ns };
        prometheus.wait_until(Duration::from_secs(60), "prometheus ready", || {
            get(prometheus.ns, PROMETHEUS_PORT, "/-/ready").is_some_and(|(status, _)| status == 200)
        });
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Polls `done` every 250 ms until it holds; fails the test after `timeout`.
    fn wait_until(&self, timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; prometheus log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// An instant query: each result's labels and value.
    fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let Some((200, body)) = get(self.ns, PROMETHEUS_PORT, &path) else {
            return Vec::new();
        };
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let Some(results) = json["data"]["result"].as_array() else {
            return Vec::new();
        };
        results
            .iter()
            .filter_map(|r| {
                let labels = r["metric"]
                    .as_object()?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let value = r["value"][1].as_str()?.parse().ok()?;
                Some((labels, value))
            })
            .collect()
    }

    /// The value of a query that has exactly one result; None while it has none.
    fn value(&self, promql: &str) -> Option<f64> {
        let results = self.query(promql);
        assert!(
            results.len() <= 1,
            "{promql} has several series: {results:?}"
        );
        results.first().map(|(_, v)| *v)
    }
}

impl Drop for Prometheus<'_> {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of the one sample line of `/metrics` text whose name and labels are `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// An exporter serving inside `ns`; killed on drop if the test fails before stopping it.
struct Exporter(Option<Tool>);

impl Exporter {
    fn start(ns: &Netns, port: u16, extra: &[&str]) -> Exporter {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["netns", "exec", &ns.name, EXPORTER, "--listen", &listen];
        args.extend_from_slice(extra);
        Exporter(Some(Tool::start("ip", &args, &[], 1)))
    }

    fn stop(mut self) -> common::Finished {
        self.0.take().expect("running").stop_with(Signal::SIGTERM)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(tool) = &self.0 {
            let _ = kill(Pid::from_raw(tool.pid() as i32), Signal::SIGKILL);
        }
    }
}

/// A GET from inside `ns` (5 s bound).
fn get(ns: &Netns, port: u16, path: &str) -> Option<(u16, String)> {
    let path = path.to_owned();
    ns.run("exp-http", move || {
        http_get(port, &path, Duration::from_secs(5))
    })
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
    let ready = &all.0.as_ref().expect("running").lines()[0];
    assert_eq!(
        ready,
        &format!("Serving metrics on http://127.0.0.1:{EXPORTER_ALL_PORT}/metrics")
    );
    let prometheus = Prometheus::start(
        &ns,
        &[
            ("exp-all", EXPORTER_ALL_PORT),
            ("exp-port", EXPORTER_FILTERED_PORT),
        ],
    );
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

    drop(prometheus);
    for exporter in [all, filtered] {
        let done = exporter.stop();
        assert!(done.status.success(), "{:?} {}", done.status, done.stderr);
    }
}
