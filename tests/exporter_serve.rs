//! tcptools-exporter's serving, live (root): listening on several addresses and forms,
//! socket activation through systemd-socket-activate, the telemetry path, the probes with
//! basic auth on, a failed scrape (a test hook forces it) answered 500 then 200, the self
//! metrics, and 1,000 held or trickling connections (HTTP/1.1, or HTTP/2 over TLS) that
//! lock no scrape out and do not delay SIGINT or SIGTERM. Each test runs its exporter in a
//! network namespace of its own.
//!
//! Ports: 48100-48199.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::web::{
    bcrypt_hash, check_exposition, parse_samples, Certs, Exporter, TempDir, EXPORTER,
};
use common::{Netns, Tool};

/// Connections each crowd test holds.
const CROWD: usize = 1000;
/// The exporter's bound on open connections (src/exporter/http.rs MAX_CONNECTIONS).
const MAX_CONNECTIONS: usize = 1024;
/// How long the exporter keeps a connection without a request (HEADER_READ_TIMEOUT).
const IDLE_LIMIT: Duration = Duration::from_secs(10);

/// An HTTP/1.1 GET on a fresh connection (`Connection: close`), with `headers` added,
/// bounded by 5 s: status and body.
fn get(addr: SocketAddr, path: &str, headers: &str) -> Option<(u16, String)> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_owned()))
}

/// `get` from inside `ns`.
fn get_in(ns: &Netns, addr: SocketAddr, path: &str, headers: &str) -> Option<(u16, String)> {
    let (path, headers) = (path.to_owned(), headers.to_owned());
    ns.run("serve-get", move || get(addr, &path, &headers))
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn v6(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port))
}

/// The value of the one sample `name` with `labels` in an exposition.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matches = |l: &common::web::Labels| {
        l.len() == labels.len()
            && labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
    };
    let samples = parse_samples(text);
    samples
        .into_iter()
        .find(|(n, l, _)| n == name && matches(l))
        .map(|(_, _, v)| v)
}

/// Waits (5 s at most) for the process to have ended (a zombie, not yet reaped): how long.
fn time_to_end(pid: u32) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
        if stat.is_empty() || state == Some("Z") {
            return started.elapsed();
        }
        thread::sleep(Duration::from_millis(5));
    }
    panic!("the exporter did not end within 5 s");
}

/// After 2 * CROWD connections, a scrape's counts: at least those beyond the exporter's
/// MAX_CONNECTIONS shed, none refused.
fn shed_not_refused(text: &str) {
    let shed = sample(text, "tcptools_exporter_http_connections_shed_total", &[]);
    let least = (2 * CROWD - MAX_CONNECTIONS) as f64;
    assert!(
        shed.is_some_and(|n| n >= least),
        "shed {shed:?}, want {least} at least"
    );
    let refused = sample(
        text,
        "tcptools_exporter_http_connections_refused_total",
        &[],
    );
    assert_eq!(refused, Some(0.0));
}

/// Sends `signal` to the exporter: it ends within a second, exit 0, saying nothing.
fn ends_within_a_second(exporter: Exporter, signal: Signal) {
    let pid = exporter.pid();
    kill(Pid::from_raw(pid as i32), signal).expect("signal the exporter");
    let took = time_to_end(pid);
    assert!(took < Duration::from_secs(1), "{signal:?} took {took:?}");
    let done = exporter.stop();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stderr, "");
}

/// Raises this process's open-file limit to its hard limit: the crowd tests hold thousands
/// of sockets.
fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    assert!(
        hard >= 4 * CROWD as u64,
        "open-file hard limit {hard} is too low"
    );
}

/// Five scrapes, one after the other, each answered 200 within a second (the exporter
/// answers in milliseconds; the second is for a loaded machine): the last exposition.
fn scrapes_answer_at_once(ns: &Netns, port: u16) -> String {
    let mut body = String::new();
    for i in 0..5 {
        let started = Instant::now();
        let got = get_in(ns, v4(port), "/metrics", "");
        let took = started.elapsed();
        let (status, text) = got.unwrap_or_else(|| panic!("scrape {i} not answered"));
        assert_eq!(status, 200, "scrape {i}");
        assert!(check_exposition(&text) > 0);
        assert!(took < Duration::from_secs(1), "scrape {i} took {took:?}");
        body = text;
    }
    body
}

/// Opens `n` connections to `port` from inside `ns`.
fn crowd(ns: &Netns, port: u16, n: usize) -> Vec<TcpStream> {
    ns.run("serve-crowd", move || {
        let open =
            |i| TcpStream::connect(v4(port)).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        (0..n).map(open).collect()
    })
}

/// Every address form at once, one server: IPv4, IPv6, and :PORT (both families), with
/// the metrics at another path the landing page links to.
#[test]
fn listens_on_every_address_given() {
    let ns = Netns::new("serve-listen");
    let extra = [
        "--web.listen-address",
        "[::1]:48101",
        "--web.listen-address",
        ":48102",
        "--web.telemetry-path",
        "/tcp/metrics",
    ];
    let exporter = Exporter::start(&ns, 48100, &extra);
    assert_eq!(
        exporter.ready_line(),
        "Serving metrics on http://127.0.0.1:48100/tcp/metrics, http://[::1]:48101/tcp/metrics, http://[::]:48102/tcp/metrics"
    );
    for addr in [v4(48100), v6(48101), v4(48102), v6(48102)] {
        let (status, body) = get_in(&ns, addr, "/tcp/metrics", "").expect("answered");
        assert_eq!(status, 200, "{addr}");
        assert!(body.contains("# TYPE tcptools_exporter_build_info gauge\n"));
        let (status, _) = get_in(&ns, addr, "/metrics", "").expect("answered");
        assert_eq!(status, 404, "{addr}: /metrics is not the telemetry path");
    }
    let (status, landing) = get_in(&ns, v6(48102), "/", "").expect("answered");
    assert_eq!(status, 200);
    assert!(
        landing.contains("<a href=\"/tcp/metrics\">Metrics</a>"),
        "{landing}"
    );
    assert!(
        get_in(&ns, v6(48100), "/tcp/metrics", "").is_none(),
        "not on [::1]:48100"
    );
    let done = exporter.stop();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
}

/// A second listener that cannot be bound stops the exporter at start in one line.
#[test]
fn an_address_in_use_is_one_line() {
    let ns = Netns::new("serve-inuse");
    let args = ["-l", "127.0.0.1:48105", "-l", "127.0.0.1:48105"];
    let net = format!("--net=/run/netns/{}", ns.name);
    let mut all = vec![net.as_str(), EXPORTER];
    all.extend_from_slice(&args);
    let done = common::run_tool("nsenter", &all);
    assert_eq!(done.status.code(), Some(1));
    assert_eq!(
        done.stderr,
        "tcptools-exporter: cannot listen on 127.0.0.1:48105: Address already in use (os error 98)\n"
    );
    assert!(done.stdout.is_empty());
}

/// With basic auth on, the probes answer 200 without credentials (and without a scrape:
/// the scrape duration stays that of the one authenticated scrape), the metrics 401.
#[test]
fn probes_answer_without_auth() {
    let ns = Netns::new("serve-probes");
    let dir = TempDir::new("serve-probes");
    let config = format!("basic_auth_users:\n  prom: {}\n", bcrypt_hash("s3cret"));
    let config = dir.write("web.yml", &config);
    let exporter = Exporter::start(&ns, 48110, &["--web.config.file", &config]);
    for path in ["/-/healthy", "/-/ready"] {
        let got = get_in(&ns, v4(48110), path, "");
        let want = format!("{}\n", &path[3..]);
        assert_eq!(got, Some((200, want)), "{path}");
    }
    let got = get_in(&ns, v4(48110), "/metrics", "");
    assert_eq!(got.map(|(status, _)| status), Some(401));
    // prom:s3cret
    let auth = "Authorization: Basic cHJvbTpzM2NyZXQ=\r\n";
    let (status, text) = get_in(&ns, v4(48110), "/metrics", auth).expect("answered");
    assert_eq!(status, 200);
    for (code, n) in [("200", 0.0), ("401", 1.0), ("500", 0.0), ("503", 0.0)] {
        let counted = sample(
            &text,
            "tcptools_exporter_http_requests_total",
            &[("code", code)],
        );
        // The probes count as 200s; the scrape itself is counted after it is answered.
        let want = if code == "200" { 2.0 } else { n };
        assert_eq!(counted, Some(want), "code {code}");
    }
    let done = exporter.stop();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
}

/// The test hook fails the first scrape: 500, one line on stderr, and the next scrape
/// answers 200 with the error counted. build_info has its four labels.
#[test]
fn a_failed_scrape_is_a_500_then_the_next_succeeds() {
    let ns = Netns::new("serve-fail");
    let env = [("TCPTOOLS_FAIL_SCRAPES", "1")];
    let exporter = Exporter::start_env(&ns, 48120, &[], &env);
    let got = get_in(&ns, v4(48120), "/metrics", "");
    assert_eq!(got, Some((500, "scrape failed\n".to_owned())));
    let (status, text) = get_in(&ns, v4(48120), "/metrics", "").expect("answered");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&text, "tcptools_exporter_scrape_errors_total", &[]),
        Some(1.0)
    );
    let code = |c| {
        sample(
            &text,
            "tcptools_exporter_http_requests_total",
            &[("code", c)],
        )
    };
    assert_eq!((code("500"), code("200")), (Some(1.0), Some(0.0)));
    let duration = sample(&text, "tcptools_exporter_scrape_duration_seconds", &[]);
    assert!(duration.is_some_and(|d| d > 0.0 && d < 5.0), "{duration:?}");
    let info = parse_samples(&text);
    let (_, labels, _) = info
        .iter()
        .find(|(n, _, _)| n == "tcptools_exporter_build_info")
        .expect("build_info");
    let revision = labels["revision"].as_str();
    let hex = revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit());
    assert!(hex || revision == "unknown", "{revision}");
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .expect("rustc -V");
    let rustc = String::from_utf8_lossy(&rustc.stdout)
        .split(' ')
        .nth(1)
        .map(str::to_owned);
    assert_eq!(labels.get("rustc_version"), rustc.as_ref());
    assert_eq!(
        labels["target"],
        format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
    );
    assert_eq!(labels["version"], env!("CARGO_PKG_VERSION"));
    let done = exporter.stop();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(
        done.stderr,
        "tcptools-exporter: scrape failed: failure forced by TCPTOOLS_FAIL_SCRAPES\n"
    );
}

/// 1,000 idle connections held, no byte sent: scrapes answer at once, and SIGINT ends the
/// exporter within a second, exit 0, with them open.
#[test]
fn idle_connections_lock_no_scrape_out() {
    raise_descriptor_limit();
    let ns = Netns::new("serve-idle");
    let exporter = Exporter::start(&ns, 48130, &[]);
    let idle = crowd(&ns, 48130, CROWD);
    thread::sleep(Duration::from_millis(300));
    scrapes_answer_at_once(&ns, 48130);
    ends_within_a_second(exporter, Signal::SIGINT);
    drop(idle);
}

/// 1,000 idle connections and then 1,000 that send a byte of a request head every 2 s:
/// more than the exporter keeps open, so the longest-waiting are shed for newer ones
/// (counted), none refused, scrapes answer at once throughout; SIGTERM ends the exporter
/// within a second, exit 0, with them open.
#[test]
fn trickling_connections_lock_no_scrape_out() {
    raise_descriptor_limit();
    let ns = Netns::new("serve-trickle");
    let exporter = Exporter::start(&ns, 48140, &[]);
    let idle = crowd(&ns, 48140, CROWD);
    let trickling = crowd(&ns, 48140, CROWD);
    let head = b"GET /metrics HTTP/1.1\r\n";
    let trickle = thread::spawn(move || {
        let mut trickling = trickling;
        for byte in head.iter().take(3) {
            for stream in &mut trickling {
                // A shed connection refuses the byte; the others carry on.
                let _ = stream.write_all(&[*byte]);
            }
            thread::sleep(Duration::from_secs(2));
        }
        trickling
    });
    let mut text = String::new();
    for _ in 0..3 {
        text = scrapes_answer_at_once(&ns, 48140);
        thread::sleep(Duration::from_secs(1));
    }
    shed_not_refused(&text);
    let trickling = trickle.join().expect("trickle");
    ends_within_a_second(exporter, Signal::SIGTERM);
    drop((idle, trickling));
}

/// A client's HTTP/2 connection over TLS, held open.
type H2Held = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS client that trusts `ca` (a PEM file) and offers HTTP/2 only.
fn h2_client(ca: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read the CA") {
        roots.add(cert.expect("the CA's PEM")).expect("the CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// An HTTP/2 connection to 127.0.0.1:`port` that sent the connection preface and an
/// empty SETTINGS frame, then nothing; with `unfinished`, also the start of a request's
/// headers (HEADERS on stream 1, `:method GET`, without END_HEADERS) whose CONTINUATION
/// never comes.
fn h2_hold(config: &Arc<rustls::ClientConfig>, port: u16, unfinished: bool) -> H2Held {
    let server = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a name");
    let tcp = TcpStream::connect(v4(port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let client = rustls::ClientConnection::new(config.clone(), server).expect("TLS client");
    let mut tls = rustls::StreamOwned::new(client, tcp);
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec();
    if unfinished {
        bytes.extend_from_slice(b"\0\0\x01\x01\0\0\0\0\x01\x82");
    }
    tls.write_all(&bytes).expect("handshake and preface");
    tls.flush().expect("flush");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]), "ALPN chose h2");
    tls
}

/// `n` HTTP/2 connections held (`h2_hold`) to `port` from inside `ns`.
fn h2_crowd(ns: &Netns, port: u16, ca: &str, n: usize, unfinished: bool) -> Vec<H2Held> {
    let config = h2_client(ca);
    ns.run("serve-h2crowd", move || {
        (0..n).map(|_| h2_hold(&config, port, unfinished)).collect()
    })
}

/// Whether the server has closed `held` by `deadline` (its data read and dropped).
fn closed_by(held: &mut H2Held, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = left.max(Duration::from_millis(1));
        held.sock.set_read_timeout(Some(left)).expect("timeout");
        match held.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                use std::io::ErrorKind::{TimedOut, WouldBlock};
                return !matches!(e.kind(), WouldBlock | TimedOut);
            }
        }
    }
}

/// A scrape over HTTP/2 with TLS by curl in `ns`: the HTTP version, the status, curl's
/// time for the whole request (connect to last byte), and the body.
fn h2_scrape(ns: &Netns, port: u16, ca: &str) -> (String, u16, Duration, String) {
    let url = format!("https://127.0.0.1:{port}/metrics");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "curl", "-sS", "--max-time", "5"])
        .args(["--http2", "--cacert", ca, &url])
        .args(["-w", "\n%{http_version} %{http_code} %{time_total}"])
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl: {stderr}");
    let (body, written) = stdout.rsplit_once('\n').expect("curl's -w line");
    let fields: Vec<&str> = written.split(' ').collect();
    let [version, status, took] = fields[..] else {
        panic!("curl wrote {written:?}")
    };
    let took = Duration::from_secs_f64(took.parse().expect("time_total"));
    let status = status.parse().expect("http_code");
    (version.to_owned(), status, took, body.to_owned())
}

/// 1,000 idle HTTP/2 connections over TLS, then 1,000 that stop in the middle of a
/// request's headers: more than the exporter keeps open, so the longest-waiting are shed
/// (counted), none refused; HTTP/2 scrapes answer within a second throughout; every held
/// connection left is closed once it has been without a request for 10 s (hyper's HTTP/2
/// server has no timeout of its own); with 200 new ones held, SIGTERM ends the exporter
/// within a second, exit 0.
#[test]
fn http2_connections_lock_no_scrape_out() {
    raise_descriptor_limit();
    let ns = Netns::new("serve-h2");
    let dir = TempDir::new("serve-h2");
    let certs = Certs::new(&dir);
    let config = dir.write("web.yml", &certs.web_config(&[], &[]));
    let exporter = Exporter::start(&ns, 48160, &["--web.config.file", &config]);
    let idle = h2_crowd(&ns, 48160, &certs.ca, CROWD, false);
    let unfinished = h2_crowd(&ns, 48160, &certs.ca, CROWD, true);
    let all_held = Instant::now();
    let mut text = String::new();
    for i in 0..5 {
        let (version, status, took, body) = h2_scrape(&ns, 48160, &certs.ca);
        assert_eq!((version.as_str(), status), ("2", 200), "scrape {i}");
        assert!(took < Duration::from_secs(1), "scrape {i} took {took:?}");
        assert!(check_exposition(&body) > 0);
        text = body;
    }
    shed_not_refused(&text);
    let deadline = all_held + IDLE_LIMIT + Duration::from_secs(3);
    let mut held: Vec<H2Held> = idle.into_iter().chain(unfinished).collect();
    let open = held
        .iter_mut()
        .map(|h| closed_by(h, deadline))
        .filter(|closed| !closed)
        .count();
    assert_eq!(open, 0, "held connections still open 13 s on");
    let held = (
        h2_crowd(&ns, 48160, &certs.ca, 100, false),
        h2_crowd(&ns, 48160, &certs.ca, 100, true),
    );
    ends_within_a_second(exporter, Signal::SIGTERM);
    drop(held);
}

/// systemd-socket-activate holds 127.0.0.1:48150 and starts the exporter with it on the
/// first connection: that connection is answered, --web.listen-address is not bound, and
/// SIGTERM ends it with exit 0. Without a socket from systemd it fails in one line.
#[test]
fn socket_activation() {
    let ns = Netns::new("serve-systemd");
    let net = format!("--net=/run/netns/{}", ns.name);
    let args = [
        net.as_str(),
        "systemd-socket-activate",
        "-l",
        "127.0.0.1:48150",
        EXPORTER,
        "--web.systemd-socket",
        "--web.listen-address",
        "127.0.0.1:48151",
    ];
    let mut activated = Tool::start("nsenter", &args, &[], 0);
    // The exporter starts on this connection, loads its programs, then answers it.
    let (status, body) = ns
        .run("serve-first", || {
            let timeout = Duration::from_secs(30);
            // systemd-socket-activate listens a moment after it starts (10 s at most).
            let listening = Instant::now() + Duration::from_secs(10);
            let mut stream = loop {
                match TcpStream::connect(v4(48150)) {
                    Ok(stream) => break stream,
                    Err(_) if Instant::now() < listening => {
                        thread::sleep(Duration::from_millis(50))
                    }
                    Err(_) => return None,
                }
            };
            stream.set_read_timeout(Some(timeout)).ok()?;
            let head = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).ok()?;
            let mut raw = String::new();
            stream.read_to_string(&mut raw).ok()?;
            let (head, body) = raw.split_once("\r\n\r\n")?;
            Some((head.split(' ').nth(1)?.to_owned(), body.to_owned()))
        })
        .expect("the first connection answered");
    assert_eq!(status, "200");
    assert!(check_exposition(&body) > 0);
    let line = "Serving metrics on http://127.0.0.1:48150/metrics";
    assert!(
        activated.wait_for(Duration::from_secs(5), |l| l == line),
        "{:?}",
        activated.lines()
    );
    assert_eq!(
        get_in(&ns, v4(48150), "/-/ready", ""),
        Some((200, "ready\n".into()))
    );
    assert!(
        get_in(&ns, v4(48151), "/-/healthy", "").is_none(),
        "48151 bound"
    );
    let done = activated.stop_with(Signal::SIGTERM);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);

    let all = [net.as_str(), EXPORTER, "--web.systemd-socket"];
    let done = common::run_tool("nsenter", &all);
    assert_eq!(done.status.code(), Some(1));
    assert_eq!(
        done.stderr,
        "tcptools-exporter: --web.systemd-socket: systemd passed no socket (LISTEN_FDS, LISTEN_PID)\n"
    );
}
