//! tcptools-exporter's web side, live (root): TLS and basic auth from a web config file,
//! scraped by a real Prometheus and by curl; bad web config files; gzip, the landing page
//! and 404; client certificates; and clients that are slow, idle or do not read, which
//! must delay nobody else. Each test runs its exporter in a network namespace of its own.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::web::{
    check_exposition, curl, raw_get, tls_scrape_job, Certs, Exporter, Prometheus, TempDir, EXPORTER,
};
use common::Netns;

/// The exporter's port inside each test's namespace.
const PORT: u16 = 10187;
const PROMETHEUS_PORT: u16 = 9090;
/// What the exporter answers an unauthenticated request with.
const CHALLENGE: &str = "Basic realm=\"tcptools-exporter\"";
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn url(path: &str) -> String {
    format!("https://127.0.0.1:{PORT}{path}")
}

fn stop_cleanly(exporter: Exporter) {
    let done = exporter.stop();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
}

/// Prometheus scrapes over HTTPS, trusting the test CA, with basic auth: the target is up
/// and its tcp_* series are stored. The same exporter with a wrong password, or over plain
/// HTTP, is down.
#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let ns = Netns::new("web-prom");
    let dir = TempDir::new("web-prom");
    let certs = Certs::new(&dir);
    let config = dir.write("web.yml", &certs.web_config(&[("prom", "scrape-me")], &[]));
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &config]);
    assert_eq!(
        exporter.ready_line(),
        format!("Serving metrics on https://127.0.0.1:{PORT}/metrics")
    );
    let jobs = [
        tls_scrape_job("web", PORT, &certs.ca, "prom", "scrape-me"),
        tls_scrape_job("web-wrong-password", PORT, &certs.ca, "prom", "guess"),
        format!(
            "  - job_name: web-plain\n    static_configs:\n      - targets: ['127.0.0.1:{PORT}']\n"
        ),
    ]
    .concat();
    let prometheus = Prometheus::start(&ns, PROMETHEUS_PORT, &jobs);
    prometheus.wait_until(Duration::from_secs(30), "all three targets scraped", || {
        prometheus.query("up{job=~\"web.*\"}").len() == 3
    });
    prometheus.wait_until(Duration::from_secs(30), "web up", || {
        prometheus.value("up{job=\"web\"}") == Some(1.0)
    });
    assert_eq!(
        prometheus.last_errors("web"),
        vec![String::new()],
        "{}",
        prometheus.log()
    );
    let series = prometheus.value("count({job=\"web\",__name__=~\"tcp_.+\"})");
    assert!(series.is_some_and(|n| n >= 1.0), "tcp_* series: {series:?}");
    let own = prometheus.query("tcptools_exporter_build_info{job=\"web\"}");
    assert!(
        !own.is_empty(),
        "the exporter's own metrics are scraped too"
    );

    assert_eq!(
        prometheus.value("up{job=\"web-wrong-password\"}"),
        Some(0.0)
    );
    let errors = prometheus.last_errors("web-wrong-password");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("401"), "{errors:?}");
    assert_eq!(prometheus.value("up{job=\"web-plain\"}"), Some(0.0));
    assert_eq!(
        prometheus.value("count({job=~\"web-.+\",__name__=~\"tcp_.+\"})"),
        None,
        "no metrics without the password or without TLS"
    );
    drop(prometheus);
    stop_cleanly(exporter);
}

/// Basic auth over TLS: no credentials, a wrong password and an unknown user get 401 with
/// the challenge; the right ones get the metrics. A client that does not trust the CA, and
/// plain HTTP to the TLS port, get nothing.
#[test]
fn basic_auth_over_tls() {
    let ns = Netns::new("web-auth");
    let dir = TempDir::new("web-auth");
    let certs = Certs::new(&dir);
    let users = [("alice", "s3cret:with colon"), ("bob", "hunter2")];
    let config = dir.write("web.yml", &certs.web_config(&users, &[]));
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &config]);
    let metrics = url("/metrics");
    let ca = ["--cacert", certs.ca.as_str()];
    let as_user = |credentials: &str, target: &str| {
        let mut args = ca.to_vec();
        args.extend(["-u", credentials, target]);
        curl(&ns, &args).expect("an HTTP answer")
    };

    let refused = [
        curl(&ns, &[ca[0], ca[1], &metrics]).expect("an HTTP answer"),
        curl(&ns, &[ca[0], ca[1], &url("/")]).expect("an HTTP answer"),
        as_user("alice:wrong", &metrics),
        as_user("alice:", &metrics),
        as_user("mallory:hunter2", &metrics),
        as_user("bob:s3cret:with colon", &metrics),
    ];
    for (i, reply) in refused.iter().enumerate() {
        assert_eq!(reply.status, 401, "case {i}: {reply:?}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(CHALLENGE),
            "case {i}"
        );
        assert!(!reply.text().contains("tcp_"), "case {i}: {}", reply.text());
    }
    let unknown_path = as_user("alice:s3cret:with colon", &url("/nope"));
    assert_eq!(
        unknown_path.status, 404,
        "the right user on an unknown path"
    );

    for _ in 0..3 {
        // The first verifies with bcrypt, the others come from the cache: all equal.
        for (user, password) in users {
            let reply = as_user(&format!("{user}:{password}"), &metrics);
            assert_eq!(reply.status, 200, "{user}: {reply:?}");
            assert_eq!(reply.header("content-type"), Some(CONTENT_TYPE));
            let text = reply.text();
            assert!(check_exposition(&text) > 0);
            assert!(text.contains("\n# TYPE tcp_"), "{text}");
        }
    }

    let untrusted = curl(&ns, &[&metrics]).expect_err("curl must not trust the test CA");
    assert!(untrusted.contains("(60)"), "{untrusted}");
    let plain = curl(&ns, &[&format!("http://127.0.0.1:{PORT}/metrics")]);
    assert!(plain.is_err(), "plain HTTP to the TLS port: {plain:?}");

    // Plain HTTP to the TLS port, byte by byte as a client sees it: no HTTP answer, and
    // the connection is closed (not left hanging).
    let (raw, closed) = ns.run("web-plain", || {
        let addr = SocketAddr::from(([127, 0, 0, 1], PORT));
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("write");
        let mut raw = Vec::new();
        let closed = match stream.read_to_end(&mut raw) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        (raw, closed)
    });
    assert!(closed, "the TLS port keeps a plain HTTP connection open");
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.starts_with("HTTP/"), "{text}");
    assert!(!text.contains("tcp_"), "{text}");
    // What rustls sends, if anything, is a TLS alert record (type 21).
    assert!(raw.is_empty() || raw[0] == 21, "{raw:?}");
    stop_cleanly(exporter);
}

/// Client certificates: with RequireAndVerifyClientCert and the test CA, a client without a
/// certificate or with one from another CA is refused in the handshake; with the CA's
/// client certificate it gets the metrics.
#[test]
fn client_certificates_required_and_verified() {
    let ns = Netns::new("web-mtls");
    let dir = TempDir::new("web-mtls");
    let certs = Certs::new(&dir);
    let client_ca = format!("client_ca_file: {}", certs.ca);
    let config = dir.write(
        "web.yml",
        &certs.web_config(
            &[],
            &[&client_ca, "client_auth_type: RequireAndVerifyClientCert"],
        ),
    );
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &config]);
    let metrics = url("/metrics");
    let ca = certs.ca.as_str();

    let anonymous = curl(&ns, &["--cacert", ca, &metrics]);
    assert!(anonymous.is_err(), "no client certificate: {anonymous:?}");
    let stranger = curl(
        &ns,
        &[
            "--cacert",
            ca,
            "--cert",
            &certs.stranger_cert,
            "--key",
            &certs.stranger_key,
            &metrics,
        ],
    );
    assert!(stranger.is_err(), "another CA's certificate: {stranger:?}");
    for tls in ["--tlsv1.2", "--tlsv1.3"] {
        let reply = curl(
            &ns,
            &[
                tls,
                "--cacert",
                ca,
                "--cert",
                &certs.client_cert,
                "--key",
                &certs.client_key,
                &metrics,
            ],
        )
        .unwrap_or_else(|e| panic!("{tls}: {e}"));
        assert_eq!(reply.status, 200, "{tls}");
        assert!(check_exposition(&reply.text()) > 0);
    }
    stop_cleanly(exporter);
}

/// A bad web config file stops the exporter before it loads anything: exit 1, nothing on
/// stdout, one line on stderr that names the file, the key and the problem.
#[test]
fn bad_web_configs_fail_in_one_line() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "live tests need root (run `sudo make test`)"
    );
    let dir = TempDir::new("web-bad");
    let certs = Certs::new(&dir);
    let d = dir.path.display();
    let tls = |extra: &str| {
        format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}")
    };
    let cases: Vec<(&str, String, String)> = vec![
        (
            "missing-cert.yml",
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n".into(),
            format!(
                "tls_server_config.cert_file: cannot read {d}/missing.crt: No such file or directory"
            ),
        ),
        (
            "bad-yaml.yml",
            "tls_server_config: [cert_file\n".into(),
            "invalid YAML: ".into(),
        ),
        (
            "unknown-key.yml",
            tls("  cert_fil: x\n"),
            "invalid YAML: tls_server_config: unknown field `cert_fil`".into(),
        ),
        (
            "unknown-top-key.yml",
            "basic_auth_user:\n  a: b\n".into(),
            "invalid YAML: unknown field `basic_auth_user`".into(),
        ),
        (
            "unknown-cipher.yml",
            tls("  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n"),
            "tls_server_config.cipher_suites: unknown cipher suite \"TLS_RSA_WITH_RC4_128_SHA\"".into(),
        ),
        (
            "bad-hash.yml",
            "basic_auth_users:\n  alice: $2y$10$notahash\n".into(),
            "basic_auth_users.alice: not a bcrypt hash (the hash format is malformed; expected 60 ASCII bytes)".into(),
        ),
        (
            "bad-client-auth.yml",
            tls("  client_auth_type: Maybe\n  client_ca_file: ca.crt\n"),
            "tls_server_config.client_auth_type: unknown value \"Maybe\"".into(),
        ),
        (
            "ca-without-policy.yml",
            tls("  client_ca_file: ca.crt\n"),
            "tls_server_config.client_ca_file: a client CA needs a client_auth_type".into(),
        ),
        (
            "wrong-key.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n".into(),
            format!("tls_server_config.key_file: {d}/client.key does not fit {d}/server.crt"),
        ),
        (
            "not-a-cert.yml",
            "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n".into(),
            format!("tls_server_config.cert_file: no PEM certificate in {d}/server.key"),
        ),
        (
            "old-tls.yml",
            tls("  min_version: TLS10\n"),
            "tls_server_config.min_version: TLS10 is not supported (TLS12 or TLS13)".into(),
        ),
    ];
    assert!(std::path::Path::new(&certs.server_key).is_file());
    for (name, text, problem) in &cases {
        let path = dir.write(name, text);
        let expected = format!("tcptools-exporter: web config {path}: {problem}");
        common::assert_one_line_failure(
            EXPORTER,
            &["--listen", "127.0.0.1:0", "--web.config.file", &path],
            1,
            &expected,
        );
    }
    let absent = dir.file("absent.yml");
    common::assert_one_line_failure(
        EXPORTER,
        &["--listen", "127.0.0.1:0", "--web.config.file", &absent],
        1,
        &format!("tcptools-exporter: web config {absent}: No such file or directory"),
    );
}

/// Plain HTTP (an empty web config): gzip when asked, with Vary; HEAD; the landing page;
/// 404 and 405.
#[test]
fn gzip_landing_page_and_errors() {
    let ns = Netns::new("web-gzip");
    let dir = TempDir::new("web-gzip");
    let config = dir.write("empty.yml", "");
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &config]);
    assert_eq!(
        exporter.ready_line(),
        format!("Serving metrics on http://127.0.0.1:{PORT}/metrics")
    );
    let base = format!("http://127.0.0.1:{PORT}");
    let metrics = format!("{base}/metrics");

    let gz = curl(&ns, &["-H", "Accept-Encoding: gzip", &metrics]).expect("gzip answer");
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("Accept, Accept-Encoding"));
    assert_eq!(gz.header("content-type"), Some(CONTENT_TYPE));
    assert_eq!(
        gz.header("content-length"),
        Some(gz.body.len().to_string().as_str())
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz.body.as_slice())
        .read_to_string(&mut text)
        .expect("a gzip body");
    assert!(check_exposition(&text) > 0);
    assert!(text.contains("\n# TYPE tcp_"), "{text}");
    assert!(gz.body.len() * 3 < text.len(), "compressed well");

    for accept in [
        None,
        Some("Accept-Encoding: gzip;q=0"),
        Some("Accept-Encoding: br"),
    ] {
        let mut args = vec![metrics.as_str()];
        if let Some(header) = accept {
            args.splice(0..0, ["-H", header]);
        }
        let plain = curl(&ns, &args).expect("answer");
        assert_eq!(plain.status, 200, "{accept:?}");
        assert_eq!(plain.header("content-encoding"), None, "{accept:?}");
        assert_eq!(plain.header("vary"), Some("Accept, Accept-Encoding"));
        assert!(check_exposition(&plain.text()) > 0);
    }

    // HEAD: the headers of a GET, with no body after them.
    let head = ns.run("web-head", || {
        let mut stream = connect();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
            .write_all(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read");
        raw
    });
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|l| l.parse::<usize>().ok());
    assert!(length.is_some_and(|l| l > 0), "{head}");

    let landing = curl(&ns, &[&format!("{base}/")]).expect("landing page");
    assert_eq!(landing.status, 200);
    assert_eq!(
        landing.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = landing.text();
    assert!(html.contains("<a href=\"/metrics\">"), "{html}");
    assert!(
        html.contains(&format!("tcptools-exporter {}", env!("CARGO_PKG_VERSION"))),
        "{html}"
    );

    for path in ["/nope", "/metrics/", "/metricsx", "/favicon.ico"] {
        let reply = curl(&ns, &[&format!("{base}{path}")]).expect("answer");
        assert_eq!(reply.status, 404, "{path}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let reply = curl(&ns, &["-X", method, "--data", "x=1", &metrics]).expect("answer");
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method}");
    }
    stop_cleanly(exporter);
}

/// Opens a connection from the calling thread's namespace.
fn connect() -> TcpStream {
    TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], PORT))).expect("connect")
}

/// Counts `HTTP/1.1 200` status lines in what was received.
fn responses_in(raw: &[u8]) -> usize {
    raw.windows(b"HTTP/1.1 200 OK\r\n".len())
        .filter(|w| *w == b"HTTP/1.1 200 OK\r\n")
        .count()
}

/// The exporter's send queue towards `client` (from `ss` in the namespace), if connected.
fn send_queue(ns: &Netns, client: SocketAddr) -> Option<u64> {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "ss",
            "-tnH",
            "state",
            "established",
        ])
        .arg(format!("( sport = :{PORT} )"))
        .output()
        .expect("run ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            // Recv-Q Send-Q Local:Port Peer:Port
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(3) == Some(&client.to_string().as_str())).then(|| fields[1].parse().ok())?
        })
}

/// Waits (90 s at most) until the exporter's send queue towards `client` has stayed the
/// same, and not empty, for 2 s: it is blocked writing to a client that does not read.
fn wait_until_blocked(ns: &Netns, client: SocketAddr) {
    let (mut last, mut since) = (None, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let now = send_queue(ns, client);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if now.is_some_and(|q| q > 0) && since.elapsed() >= Duration::from_secs(2) {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
    panic!("the exporter never blocked on the client that does not read (queue {last:?})");
}

/// Waits (at most until `limit`) until the exporter's side of the connection from
/// `client` is no longer established; true if it closed.
fn wait_for_close(ns: &Netns, client: SocketAddr, limit: Instant) -> bool {
    while Instant::now() < limit {
        if send_queue(ns, client).is_none() {
            return true;
        }
        thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A client that asks for hundreds of responses and reads none blocks the exporter's
/// writes to it; then, with 8 idle connections, a client sending its request a byte at a
/// time and one reading the response a byte at a time, a scrape still answers in well
/// under a second. The one that does not read is let go at the response deadline (30 s
/// after the request whose response could not be written), most of its answers unsent.
#[test]
fn slow_and_idle_clients_delay_nobody() {
    let ns = Netns::new("web-slow");
    let exporter = Exporter::start(&ns, PORT, &[]);
    let size = ns
        .run("web-size", || {
            raw_get(PORT, "/metrics", Duration::from_secs(5))
        })
        .expect("a first scrape")
        .1
        .len();
    // Enough responses to fill every buffer between the exporter and the client several
    // times over (loopback socket buffers grow to 4 MiB).
    let requests = ((16 << 20) / size.max(1)).clamp(200, 2000);
    let asked = Instant::now();
    let hoarder = ns.run("web-hoard", move || {
        let mut hoarder = connect();
        let pipelined = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(requests);
        hoarder
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        hoarder.write_all(pipelined.as_bytes()).expect("write");
        hoarder
    });
    let hoarder_addr = hoarder.local_addr().expect("address");
    wait_until_blocked(&ns, hoarder_addr);

    let (idle, trickle_in, trickle_out) = ns.run("web-hold", || {
        let idle: Vec<TcpStream> = (0..8).map(|_| connect()).collect();
        let trickle_in = connect();
        let mut trickle_out = connect();
        trickle_out
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        (idle, trickle_in, trickle_out)
    });
    // A byte of a request every 200 ms, and a byte of a response every 100 ms, for 3 s.
    let slow_writer = thread::spawn(move || {
        let mut stream = trickle_in;
        for byte in b"GET /metrics HTTP/1.1\r\n".iter().take(15) {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    let slow_reader = thread::spawn(move || {
        let mut stream = trickle_out;
        let mut byte = [0u8; 1];
        let mut got = 0;
        for _ in 0..30 {
            if stream.read_exact(&mut byte).is_ok() {
                got += 1;
            }
            thread::sleep(Duration::from_millis(100));
        }
        got
    });
    thread::sleep(Duration::from_millis(300));
    for i in 0..5 {
        let started = Instant::now();
        let scrape = ns.run("web-scrape", || {
            raw_get(PORT, "/metrics", Duration::from_secs(5))
        });
        let took = started.elapsed();
        let (status, body) = scrape.expect("a scrape answered");
        assert_eq!(status, 200, "scrape {i}");
        assert!(check_exposition(&body) > 0);
        assert!(took < Duration::from_secs(1), "scrape {i} took {took:?}");
    }
    slow_writer.join().expect("slow writer");
    assert_eq!(slow_reader.join().expect("slow reader"), 30);
    drop(idle);

    // The hoarder is let go at the deadline, never before (nothing else ends a connection
    // that has a response to send), and can then take only what the buffers held.
    assert!(
        wait_for_close(&ns, hoarder_addr, asked + Duration::from_secs(150)),
        "the exporter still holds the connection that does not read"
    );
    let held = asked.elapsed();
    assert!(held >= Duration::from_secs(30), "let go after {held:?}");
    let mut hoarder = hoarder;
    hoarder
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut raw = Vec::new();
    let _ = hoarder.read_to_end(&mut raw);
    let answered = responses_in(&raw);
    assert!(
        answered < requests,
        "{answered} of {requests} responses: the deadline did not cut it"
    );
    stop_cleanly(exporter);
}
