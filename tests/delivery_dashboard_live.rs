//! contrib/grafana/tcptools.json against a real Prometheus (Debian's `prometheus`) scraping
//! a real exporter (`--group-by cgroup`) while loopback traffic runs: every PromQL
//! expression of every panel, and every template variable's query, must parse and return
//! data (needs root). Grafana's variables are substituted as a dashboard with "All"
//! selected would ($__rate_interval: 15s, four scrapes), then once more with $cgroup set to
//! this test's own cgroup. $namespace and $pod stay All (`.*`), which also matches the
//! series of `--group-by cgroup`, which have no such labels. The panels' series over the run are written to
//! target/dashboard/ranges.json, which bench/dashboard.py renders (the picture in contrib/README.md);
//! TCPTOOLS_DASHBOARD_SECONDS makes the run longer for that.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{cgroup_of_pid, connection, Netns, Tool};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const EXPORTER: &str = env!("CARGO_BIN_EXE_tcptools-exporter");
const PROMETHEUS_PORT: u16 = 44190;
const EXPORTER_PORT: u16 = 44191;
const SERVER_PORT: u16 = 44101;
const REFUSED_PORT: u16 = 44102;
const RATE_INTERVAL: &str = "15s";

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

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
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

/// Prometheus' HTTP API from inside `ns`: the JSON answer to GET `path`.
fn api(ns: &Netns, path: &str) -> Option<Value> {
    let path = path.to_owned();
    ns.run("dash-http", move || {
        let addr = SocketAddr::from(([127, 0, 0, 1], PROMETHEUS_PORT));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let body = if head.to_ascii_lowercase().contains("chunked") {
            dechunk(body)
        } else {
            body.to_owned()
        };
        serde_json::from_str(&body).ok()
    })
}

fn query(ns: &Netns, promql: &str) -> Value {
    api(
        ns,
        &format!("/api/v1/query?query={}", percent_encode(promql)),
    )
    .unwrap_or(Value::Null)
}

/// Prometheus in `ns` scraping the exporter every second; killed and removed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
}

impl Prometheus {
    fn start(ns: &Netns) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("tcpt-dash-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("create prometheus dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: tcptools\n    static_configs:\n      - targets: ['127.0.0.1:{EXPORTER_PORT}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
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
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus (apt-get install prometheus)");
        Prometheus { child, dir }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The exporter; killed on drop if the test fails before stopping it.
struct Exporter(Option<Tool>);

impl Exporter {
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

/// Every panel target: (panel title, unit, legend format, expression).
fn targets(dashboard: &Value) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                panel["title"].as_str().expect("title").to_owned(),
                panel["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                target["legendFormat"].as_str().unwrap_or("").to_owned(),
                target["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    out
}

fn substitute(expr: &str, cgroup: &str) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$job", "tcptools")
        .replace("$instance", ".*")
        .replace("$cgroup", cgroup)
        .replace("$namespace", ".*")
        .replace("$pod", ".*")
}

/// A query's result series, failing the test unless it parsed and returned data.
fn must_return_data(ns: &Netns, promql: &str) -> usize {
    let answer = query(ns, promql);
    assert_eq!(answer["status"], "success", "{promql}: {answer}");
    let results = answer["data"]["result"].as_array().map_or(0, Vec::len);
    if results == 0 {
        let groups = query(ns, "count by (cgroup) (tcp_state_transitions_total)");
        panic!("{promql}: no data: {answer}; cgroups: {groups}");
    }
    results
}

#[test]
fn every_dashboard_query_returns_data() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("contrib/grafana/tcptools.json"))
            .expect("contrib/grafana/tcptools.json"),
    )
    .expect("dashboard JSON");
    let ns = Netns::new("dash");
    let listen = format!("127.0.0.1:{EXPORTER_PORT}");
    // nsenter changes the network namespace alone: `ip netns exec` would also remount /sys
    // and hide the cgroup2 mount the exporter reads paths from.
    let net = format!("--net=/run/netns/{}", ns.name);
    let exporter = Exporter(Some(Tool::start(
        "nsenter",
        &[&net, EXPORTER, "--listen", &listen, "--group-by", "cgroup"],
        &[],
        1,
    )));
    let prometheus = Prometheus::start(&ns);
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let seconds: u64 = std::env::var("TCPTOOLS_DASHBOARD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);

    let stop = Arc::new(AtomicBool::new(false));
    // Stops the traffic however the scope ends (a failed assertion included).
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    thread::scope(|scope| {
        let _stop_traffic = StopOnDrop(stop.clone());
        let flag = stop.clone();
        scope.spawn(|| {
            ns.run("dash-traffic", move || {
                let mut round = 0usize;
                while !flag.load(Ordering::Relaxed) {
                    connection(
                        SocketAddr::from(([127, 0, 0, 1], SERVER_PORT)),
                        1 + round % 8,
                    );
                    let _ = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], REFUSED_PORT)));
                    round += 1;
                    thread::sleep(Duration::from_millis(20 + (round % 5) as u64 * 20));
                }
            })
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while query(&ns, "up{job=\"tcptools\"}")["data"]["result"][0]["value"][1] != "1" {
            assert!(
                Instant::now() < deadline,
                "prometheus never scraped the exporter"
            );
            thread::sleep(Duration::from_millis(250));
        }
        thread::sleep(Duration::from_secs(seconds));

        let me = cgroup_of_pid(std::process::id());
        let mine = me.replace('.', "\\\\.");
        for (title, _, _, expr) in targets(&dashboard) {
            let all = substitute(&expr, ".*");
            must_return_data(&ns, &all);
            if expr.contains("$cgroup") {
                let only = substitute(&expr, &mine);
                must_return_data(&ns, &only);
                eprintln!("ok: {title}: {all}");
            }
        }
        // Template variables: label_values(SELECTOR, LABEL) as the query Grafana runs.
        for var in dashboard["templating"]["list"]
            .as_array()
            .expect("variables")
        {
            let Some(q) = var["query"]["query"].as_str() else {
                continue;
            };
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'));
            let (selector, label) = inner.and_then(|s| s.rsplit_once(", ")).expect(q);
            let promql = format!("count by ({label}) ({})", substitute(selector, ".*"));
            must_return_data(&ns, &promql);
            if label == "cgroup" {
                let answer = query(&ns, &promql);
                let found = answer["data"]["result"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["metric"]["cgroup"] == me.as_str());
                assert!(found, "{me} not among the cgroup values: {answer}");
            }
        }

        // The panels' series over the run, for bench/dashboard.py.
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut panels = Vec::new();
        for (title, unit, legend, expr) in targets(&dashboard) {
            let promql = substitute(&expr, ".*");
            let path = format!(
                "/api/v1/query_range?query={}&start={started}&end={end}&step=1",
                percent_encode(&promql)
            );
            let answer = api(&ns, &path).unwrap_or(Value::Null);
            panels.push(serde_json::json!({
                "title": title, "unit": unit, "legend": legend, "expr": promql,
                "result": answer["data"]["result"],
            }));
        }
        let out = Path::new(ROOT).join("target/dashboard");
        std::fs::create_dir_all(&out).expect("target/dashboard");
        let data = serde_json::json!({ "seconds": end - started, "panels": panels });
        std::fs::write(out.join("ranges.json"), data.to_string()).expect("write ranges.json");
    });
    drop(prometheus);
    let done = exporter.stop();
    assert!(done.status.success(), "{}", done.stderr);
}
