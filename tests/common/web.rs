//! Test support for the exporter's web side: a temporary directory, certificates made with
//! openssl (a CA, a server certificate for 127.0.0.1, client certificates), web config
//! files and bcrypt hashes, the exporter and curl inside a test namespace, and a Prometheus
//! server that scrapes over TLS with basic auth. Everything is removed or ended on drop.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{Finished, Netns, Tool};

pub const EXPORTER: &str = env!("CARGO_BIN_EXE_tcptools-exporter");

pub use super::host::TempDir;

/// Test certificates (P-256 keys, valid two days) in a directory: `ca.crt` signed
/// `server.crt` (for IP 127.0.0.1 and localhost) and `client.crt`; `stranger.crt` is a
/// client certificate from another CA, `other-ca.crt`.
pub struct Certs {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    pub stranger_cert: String,
    pub stranger_key: String,
}

impl Certs {
    pub fn new(dir: &TempDir) -> Certs {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir.path)
                .output()
                .unwrap_or_else(|e| panic!("cannot run openssl (apt-get install openssl): {e}"));
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        const KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let ca = |name: &str| {
            let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
            args.extend(KEY);
            let (key, crt, subj) = (
                format!("{name}.key"),
                format!("{name}.crt"),
                format!("/CN=tcpt {name}"),
            );
            args.extend(["-keyout", &key, "-out", &crt, "-subj", &subj]);
            openssl(&args);
        };
        let signed = |name: &str, ca: &str, extensions: &str| {
            let ext = dir.write(&format!("{name}.ext"), extensions);
            let (key, csr, crt, subj) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("/CN=tcpt {name}"),
            );
            let mut args = vec!["req", "-new", "-nodes"];
            args.extend(KEY);
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            openssl(&args);
            let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ]);
        };
        ca("ca");
        ca("other-ca");
        signed(
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n",
        );
        let client = "extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n";
        signed("client", "ca", client);
        signed("stranger", "other-ca", client);
        Certs {
            ca: dir.file("ca.crt"),
            server_cert: dir.file("server.crt"),
            server_key: dir.file("server.key"),
            client_cert: dir.file("client.crt"),
            client_key: dir.file("client.key"),
            stranger_cert: dir.file("stranger.crt"),
            stranger_key: dir.file("stranger.key"),
        }
    }

    /// A web config serving TLS with the server certificate; `users` (name, password) get
    /// basic auth with bcrypt hashes of their passwords; `extra_tls` lines go under
    /// `tls_server_config` (two spaces of indent each).
    pub fn web_config(&self, users: &[(&str, &str)], extra_tls: &[&str]) -> String {
        let mut yaml = format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            self.server_cert, self.server_key
        );
        for line in extra_tls {
            yaml.push_str(&format!("  {line}\n"));
        }
        if !users.is_empty() {
            yaml.push_str("basic_auth_users:\n");
            for (user, password) in users {
                yaml.push_str(&format!("  {user}: '{}'\n", bcrypt_hash(password)));
            }
        }
        yaml
    }
}

/// A bcrypt hash of `password` as `htpasswd -nbB` would make it (cost 6: quick to test).
pub fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 6).expect("bcrypt")
}

/// A tcptools-exporter serving inside a namespace; killed on drop unless stopped.
pub struct Exporter {
    tool: Option<Tool>,
    pub port: u16,
}

impl Exporter {
    /// Starts it on 127.0.0.1:`port` in `ns` with `extra` options, and waits for its
    /// `Serving metrics on ...` line. nsenter changes the network namespace alone: `ip
    /// netns exec` would also remount /sys, and with it hide the cgroup hierarchy whose
    /// paths name `--group-by cgroup`'s groups.
    pub fn start(ns: &Netns, port: u16, extra: &[&str]) -> Exporter {
        Exporter::start_env(ns, port, extra, &[])
    }

    /// As start(), with `env` added to its environment.
    pub fn start_env(ns: &Netns, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Exporter {
        let listen = format!("127.0.0.1:{port}");
        let net = format!("--net=/run/netns/{}", ns.name);
        let mut args = vec![net.as_str(), EXPORTER, "--listen", &listen];
        args.extend_from_slice(extra);
        Exporter {
            tool: Some(Tool::start("nsenter", &args, env, 1)),
            port,
        }
    }

    /// The line it printed when it began serving.
    pub fn ready_line(&self) -> &str {
        &self.tool.as_ref().expect("running").lines()[0]
    }

    pub fn pid(&self) -> u32 {
        self.tool.as_ref().expect("running").pid()
    }

    /// SIGTERM, then what it printed and how it ended.
    pub fn stop(mut self) -> Finished {
        self.tool
            .take()
            .expect("running")
            .stop_with(Signal::SIGTERM)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(tool) = &self.tool {
            let _ = kill(Pid::from_raw(tool.pid() as i32), Signal::SIGKILL);
        }
    }
}

/// An HTTP response as curl saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs curl in `ns` with `args` (5 s bound): the response, or curl's error when there was
/// none (no connection, a refused handshake, a reply that is not HTTP).
pub fn curl(ns: &Netns, args: &[&str]) -> Result<Reply, String> {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = TempDir::new(&format!("curl-{}-{n}", ns.name));
    let (head, body) = (dir.file("head"), dir.file("body"));
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "curl", "-sS", "--max-time", "5"])
        .args(["-D", &head, "-o", &body])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl (apt-get install curl): {e}"));
    if !out.status.success() {
        return Err(format!(
            "curl {args:?}: {:?} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    // After a 100 Continue or the like, the last block is the response.
    let last = head
        .trim_end()
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("curl {args:?}: no status line in {head:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    })
}

/// A raw HTTP/1.1 GET with `Connection: close` on a fresh connection to 127.0.0.1:`port`
/// from the calling thread's namespace, bounded by `timeout`: the status and the body.
pub fn raw_get(port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
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
    Some((status, body.to_owned()))
}

/// GET /metrics of the exporter on 127.0.0.1:`port` in `ns` (plain HTTP), answered 200
/// within `timeout`: the exposition.
pub fn scrape(ns: &Netns, port: u16, timeout: Duration) -> String {
    let got = ns.run("exp-scrape", move || raw_get(port, "/metrics", timeout));
    match got {
        Some((200, body)) => body,
        other => panic!("GET /metrics on port {port}: {other:?}"),
    }
}

/// A sample's labels.
pub type Labels = BTreeMap<String, String>;

/// Every sample line of an exposition: its name, labels and value.
pub fn parse_samples(text: &str) -> Vec<(String, Labels, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        let labels = labels
            .trim_end_matches('}')
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once("=\""))
            .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
            .collect();
        out.push((name.to_owned(), labels, value.parse().expect("a number")));
    }
    out
}

/// Checks `text` is a Prometheus text exposition: every line a `# HELP`/`# TYPE` comment
/// or `name{labels} value`; returns the number of samples.
pub fn check_exposition(text: &str) -> usize {
    assert!(text.ends_with('\n'), "no final newline");
    let mut samples = 0;
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line:?}"
        );
        assert!(
            series == name || (series[name.len()..].starts_with('{') && series.ends_with('}')),
            "bad labels: {line:?}"
        );
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad value: {line:?}"
        );
        samples += 1;
    }
    samples
}

/// A scrape job for `scrape_configs:` that scrapes 127.0.0.1:`port` over HTTPS, trusting
/// `ca_file`, with basic auth.
pub fn tls_scrape_job(job: &str, port: u16, ca_file: &str, user: &str, password: &str) -> String {
    format!(
        "  - job_name: {job}\n    scheme: https\n    tls_config:\n      ca_file: {ca_file}\n    \
         basic_auth:\n      username: {user}\n      password: '{password}'\n    \
         static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
}

/// A Prometheus server (Debian's `prometheus`) inside a test namespace, scraping every
/// second; its config and storage in a directory of its own. Ended and removed on drop.
pub struct Prometheus {
    child: Child,
    ns: String,
    port: u16,
    dir: TempDir,
}

impl Prometheus {
    /// Starts it on 127.0.0.1:`port` in `ns` with `jobs` (entries of `scrape_configs:`),
    /// and waits (60 s at most) until it is ready.
    pub fn start(ns: &Netns, port: u16, jobs: &str) -> Prometheus {
        Prometheus::start_with(ns, port, jobs, &[])
    }

    /// As start(), with `flags` added (`--enable-feature=native-histograms`).
    pub fn start_with(ns: &Netns, port: u16, jobs: &str, flags: &[&str]) -> Prometheus {
        let dir = TempDir::new(&format!("prometheus-{}", ns.name));
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n{jobs}"
        );
        let config = dir.write("prometheus.yml", &config);
        let log = std::fs::File::create(dir.file("log")).expect("create log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "prometheus"])
            .arg(format!("--config.file={config}"))
            .arg(format!("--storage.tsdb.path={}", dir.file("data")))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus (apt-get install prometheus): {e}")
            });
        let prometheus = Prometheus {
            child,
            ns: ns.name.clone(),
            port,
            dir,
        };
        prometheus.wait_until(Duration::from_secs(60), "prometheus ready", || {
            prometheus.api(&["-o", "/dev/null", "-w", "%{http_code}", "/-/ready"]) == "200"
        });
        prometheus
    }

    /// curl against its HTTP API (`path` last): stdout, empty on failure.
    fn api(&self, args: &[&str]) -> String {
        let (path, args) = args.split_last().expect("a path");
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-s", "--max-time", "5"])
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.file("log")).unwrap_or_default()
    }

    /// Polls `done` every 250 ms until it holds; fails the test after `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
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
    pub fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let query = format!("query={promql}");
        let body = self.api(&["-G", "--data-urlencode", &query, "/api/v1/query"]);
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
    pub fn value(&self, promql: &str) -> Option<f64> {
        let results = self.query(promql);
        assert!(
            results.len() <= 1,
            "{promql} has several series: {results:?}"
        );
        results.first().map(|(_, v)| *v)
    }

    /// The scrape error Prometheus reports for the targets of `job` (empty when healthy).
    pub fn last_errors(&self, job: &str) -> Vec<String> {
        let body = self.api(&["/api/v1/targets"]);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        json["data"]["activeTargets"]
            .as_array()
            .map(|targets| {
                targets
                    .iter()
                    .filter(|t| t["labels"]["job"] == job)
                    .map(|t| t["lastError"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
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
    }
}
