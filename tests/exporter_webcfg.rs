//! tcptools-exporter's web config beyond TLS and basic auth, live (root): the toolkit's
//! documented file with every key, client_allowed_sans enforced, rate_limit's 429, headers
//! and HTTP/2 over TLS; and reloads without a restart: a real Prometheus scrapes over TLS
//! while the certificate is renewed in place, and a broken new file keeps the old one
//! serving and is counted. Each test runs its exporter in a network namespace of its own.
//!
//! Ports: 48200-48299.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::web::{bcrypt_hash, curl, Certs, Exporter, Prometheus, Reply, TempDir};
use common::Netns;

const PORT: u16 = 48200;
const PROMETHEUS_PORT: u16 = 48290;
/// Where the namespace's test connections listen.
const TRAFFIC_PORT: u16 = 48250;
const FAILURES: &str = "tcptools_exporter_web_config_reload_failures_total";
/// The toolkit's documented file, every key (certificate names relative to it).
const TOOLKIT_FULL: &str = include_str!("webcfg/toolkit-full.yml");

fn url(path: &str) -> String {
    format!("https://127.0.0.1:{PORT}{path}")
}

/// Polls `done` every 200 ms until it holds; fails with `what` after `timeout`.
fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// Runs openssl in `dir`; panics with its stderr when it fails.
fn openssl(dir: &TempDir, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(&dir.path)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 key `NAME.key` and a certificate `NAME.crt` signed by the test CA (`ca.crt`,
/// `ca.key` in `dir`) with serial `serial` and `extensions`; their paths.
fn signed(dir: &TempDir, name: &str, serial: &str, extensions: &str) -> (String, String) {
    let ext = dir.write(&format!("{name}.ext"), extensions);
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    let subject = format!("/CN=tcpt {name}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            serial,
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
    (dir.file(&crt), dir.file(&key))
}

/// A client certificate of the test CA whose only SAN is `san` (`DNS:x`, `URI:x`).
fn client_with_san(dir: &TempDir, name: &str, san: &str) -> (String, String) {
    let extensions = format!(
        "subjectAltName={san}\nextendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n"
    );
    signed(dir, name, "0x100", &extensions)
}

/// curl in `ns` printing the response head: its lines (the status line first), or curl's
/// error.
fn head(ns: &Netns, args: &[&str]) -> Result<Vec<String>, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "curl", "-sS", "--max-time", "5"])
        .args(["-o", "/dev/null", "-D", "-"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(text.lines().map(|l| l.trim_end().to_owned()).collect())
}

/// The serial of the certificate served on `PORT` in `ns`, as openssl prints it.
fn served_serial(ns: &Netns) -> String {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{PORT} </dev/null 2>/dev/null | openssl x509 -noout -serial"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A sample's value in an exposition: the first line of `name` without labels.
fn value_of(text: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name} ");
    let line = text.lines().find(|l| l.starts_with(&prefix))?;
    line[prefix.len()..].parse().ok()
}

fn stop_cleanly(exporter: Exporter) -> String {
    let done = exporter.stop();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    done.stderr
}

/// The toolkit's documented file with every key is accepted: the exporter serves HTTPS
/// with HTTP/2, the client certificate with an allowed SAN and the user's password get the
/// metrics with all five headers, and `-v` says what rustls does instead of the CBC suite
/// and P-521. The same with the certificate, key and CA given inline.
#[test]
fn toolkit_full_example_is_accepted() {
    let ns = Netns::new("webcfg-full");
    let dir = TempDir::new("webcfg-full");
    let certs = Certs::new(&dir);
    let (client, client_key) = client_with_san(&dir, "allowed", "DNS:client.example");
    let text = TOOLKIT_FULL.replace("@HASH@", &bcrypt_hash("scrape-me"));
    let config = dir.write("web.yml", &text);
    let exporter = Exporter::start(&ns, PORT, &["-v", "--web.config.file", &config]);
    let args = [
        "--http2",
        "--cacert",
        &certs.ca,
        "--cert",
        &client,
        "--key",
        &client_key,
        "-u",
        "prometheus:scrape-me",
    ];
    let mut with_url = args.to_vec();
    let metrics = url("/metrics");
    with_url.push(&metrics);
    let lines = head(&ns, &with_url).expect("an HTTP answer");
    assert_eq!(lines[0], "HTTP/2 200", "{lines:?}");
    for header in [
        "content-security-policy: default-src 'self'",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "x-xss-protection: 1; mode=block",
        "strict-transport-security: max-age=31536000; includeSubDomains",
    ] {
        assert!(lines.iter().any(|l| l == header), "{header}: {lines:?}");
    }
    let stderr = stop_cleanly(exporter);
    let notes = [
        "tls_server_config.cipher_suites: rustls does not offer TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA; left out",
        "tls_server_config.curve_preferences: rustls does not offer CurveP521; left out",
    ];
    for note in notes {
        let line = format!("tcptools-exporter: web config {config}: {note}");
        assert!(stderr.lines().any(|l| l == line), "{line}: {stderr}");
    }

    let pem = |path: &str| std::fs::read_to_string(path).expect("read PEM");
    let indent = |text: String| text.replace('\n', "\n    ");
    let inline = text
        .replace(
            "  cert_file: server.crt\n",
            &format!("  cert: |\n    {}\n", indent(pem(&certs.server_cert))),
        )
        .replace(
            "  key_file: server.key\n",
            &format!("  key: |\n    {}\n", indent(pem(&certs.server_key))),
        )
        .replace(
            "  client_ca_file: ca.crt\n",
            &format!("  client_ca: |\n    {}\n", indent(pem(&certs.ca))),
        );
    assert!(!inline.contains("_file:"), "{inline}");
    let config = dir.write("inline.yml", &inline);
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &config]);
    let lines = head(&ns, &with_url).expect("an HTTP answer");
    assert_eq!(lines[0], "HTTP/2 200", "{lines:?}");
    stop_cleanly(exporter);
}

/// client_allowed_sans: certificates of the trusted CA whose SAN is listed (a DNS name, a
/// URI) get the metrics; one with another SAN, and one without a certificate, are refused
/// in the handshake.
#[test]
fn client_allowed_sans_are_enforced() {
    let ns = Netns::new("webcfg-sans");
    let dir = TempDir::new("webcfg-sans");
    let certs = Certs::new(&dir);
    let client_ca = format!("client_ca_file: {}", certs.ca);
    let config = dir.write(
        "web.yml",
        &certs.web_config(
            &[],
            &[
                &client_ca,
                "client_auth_type: RequireAndVerifyClientCert",
                "client_allowed_sans: [client.example, 'spiffe://tcpt/prometheus']",
            ],
        ),
    );
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &config]);
    let get = |cert: &str, key: &str| {
        curl(
            &ns,
            &[
                "--cacert",
                &certs.ca,
                "--cert",
                cert,
                "--key",
                key,
                &url("/metrics"),
            ],
        )
    };
    let (dns, dns_key) = client_with_san(&dir, "dns", "DNS:client.example");
    let (uri, uri_key) = client_with_san(&dir, "uri", "URI:spiffe://tcpt/prometheus");
    let (other, other_key) = client_with_san(&dir, "other", "DNS:other.example");
    for (cert, key) in [(&dns, &dns_key), (&uri, &uri_key)] {
        let reply: Reply = get(cert, key).expect("an HTTP answer");
        assert_eq!(reply.status, 200, "{cert}: {reply:?}");
    }
    let refused = get(&other, &other_key).expect_err("another SAN is refused");
    assert!(!refused.contains(": Some(0)"), "{refused}");
    // The CA's client certificate without any SAN is refused too.
    let bare = get(&certs.client_cert, &certs.client_key);
    assert!(bare.is_err(), "{bare:?}");
    let anonymous = curl(&ns, &["--cacert", &certs.ca, &url("/metrics")]);
    assert!(anonymous.is_err(), "{anonymous:?}");
    stop_cleanly(exporter);
}

/// rate_limit: a burst of 3 in an hour answers the first three requests and 429 to the
/// fourth and fifth, with the file's headers on every response. The probes are outside the
/// limit: asked before, they take no token; asked after, they get 200 while /metrics gets
/// 429 (a kubelet's probe that got 429 would restart the pod).
#[test]
fn rate_limit_answers_429() {
    let ns = Netns::new("webcfg-rate");
    let dir = TempDir::new("webcfg-rate");
    let config = dir.write(
        "web.yml",
        "rate_limit:\n  interval: 1h\n  burst: 3\nhttp_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n",
    );
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &config]);
    let status = |path: &str| {
        let reply = curl(&ns, &[&format!("http://127.0.0.1:{PORT}{path}")]).expect("an answer");
        assert_eq!(reply.header("x-frame-options"), Some("sameorigin"));
        reply.status
    };
    let probes = ["/-/healthy", "/-/ready", "/-/healthy", "/-/ready"];
    let before: Vec<u16> = probes.iter().map(|path| status(path)).collect();
    assert_eq!(before, [200; 4]);
    let statuses: Vec<u16> = (0..5).map(|_| status("/")).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let after: Vec<u16> = ["/-/healthy", "/-/ready", "/metrics"]
        .iter()
        .map(|path| status(path))
        .collect();
    assert_eq!(after, [200, 200, 429]);
    stop_cleanly(exporter);
}

/// HTTP/2 over TLS by ALPN when http2 is on (the default), HTTP/1.1 when it is off; plain
/// HTTP stays HTTP/1.1 (no h2c, as in Go). Headers are on every response, 401 and 404 too.
#[test]
fn headers_and_http2() {
    let ns = Netns::new("webcfg-h2");
    let dir = TempDir::new("webcfg-h2");
    let certs = Certs::new(&dir);
    let headers = "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n";
    let config = format!("{}{headers}", certs.web_config(&[("alice", "pw")], &[]));
    let config = dir.write("web.yml", &config);
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &config]);
    let ask = |extra: &[&str], path: &str| {
        let mut args = vec!["--cacert", certs.ca.as_str()];
        args.extend_from_slice(extra);
        let target = url(path);
        args.push(&target);
        head(&ns, &args).expect("an HTTP answer")
    };
    for (extra, path, status) in [
        (&["--http2", "-u", "alice:pw"][..], "/metrics", "HTTP/2 200"),
        (&["--http2"][..], "/metrics", "HTTP/2 401"),
        (&["--http2", "-u", "alice:pw"][..], "/nope", "HTTP/2 404"),
        (
            &["--http1.1", "-u", "alice:pw"][..],
            "/metrics",
            "HTTP/1.1 200 OK",
        ),
    ] {
        let lines = ask(extra, path);
        assert_eq!(lines[0], status, "{extra:?} {path}");
        assert!(
            lines.iter().any(|l| l == "x-content-type-options: nosniff"),
            "{lines:?}"
        );
    }
    stop_cleanly(exporter);

    let off = dir.write(
        "off.yml",
        &format!(
            "{}http_server_config:\n  http2: false\n",
            certs.web_config(&[], &[])
        ),
    );
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &off]);
    let lines = ask(&["--http2"], "/metrics");
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
    let only_h2 = ask(&["--http2-prior-knowledge"], "/metrics");
    assert_eq!(only_h2[0], "HTTP/1.1 200 OK", "ALPN offers http/1.1 only");
    stop_cleanly(exporter);

    let plain = dir.write("plain.yml", headers);
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &plain]);
    let lines = head(&ns, &["--http2", &format!("http://127.0.0.1:{PORT}/")]).expect("answer");
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
    assert!(lines.iter().any(|l| l == "x-content-type-options: nosniff"));
    stop_cleanly(exporter);
}

/// Some state changes in `ns`: `n` complete loopback connections.
fn traffic(ns: &Netns, n: usize) {
    ns.run("webcfg-traffic", move || {
        let listen = SocketAddr::from(([127, 0, 0, 1], TRAFFIC_PORT));
        for _ in 0..n {
            common::connection(listen, 1);
        }
    });
}

/// A real Prometheus scrapes over TLS while the test renews the server's key and
/// certificate in place: the new certificate is served within seconds, without a restart
/// (the process start time does not change), the scrapes go on and the state changes
/// counted go on growing from where they were (no reset), and nothing failed to reload.
#[test]
fn certificate_renewed_while_prometheus_scrapes() {
    let ns = Netns::new("webcfg-renew");
    let dir = TempDir::new("webcfg-renew");
    let certs = Certs::new(&dir);
    let config = dir.write("web.yml", &certs.web_config(&[], &[]));
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &config]);
    let job = format!(
        "  - job_name: renew\n    scheme: https\n    tls_config:\n      ca_file: {}\n    \
         static_configs:\n      - targets: ['127.0.0.1:{PORT}']\n",
        certs.ca
    );
    let prometheus = Prometheus::start(&ns, PROMETHEUS_PORT, &job);
    let changes = "sum(tcp_state_transitions_total{job=\"renew\"})";
    // Each batch's own changes (the scrapes' connections add theirs).
    let batch = common::transitions_of(5, true, 5).values().sum::<usize>() as f64;
    traffic(&ns, 5);
    prometheus.wait_until(Duration::from_secs(30), "the first changes scraped", || {
        prometheus.value(changes).is_some_and(|n| n >= batch)
    });
    let before = prometheus.value(changes).expect("scraped");
    let old_serial = served_serial(&ns);
    assert!(old_serial.starts_with("serial="), "{old_serial:?}");

    let renewed = TempDir::new("webcfg-renewed");
    for name in ["ca.crt", "ca.key"] {
        std::fs::copy(dir.file(name), renewed.file(name)).expect("copy the CA");
    }
    let server_ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n";
    let (crt, key) = signed(&renewed, "server", "0x5EED", server_ext);
    // In place, the certificate first: for a moment the key does not fit it.
    std::fs::write(&certs.server_cert, std::fs::read(crt).expect("read")).expect("write");
    std::fs::write(&certs.server_key, std::fs::read(key).expect("read")).expect("write");
    wait_until(
        Duration::from_secs(10),
        "the renewed certificate served",
        || served_serial(&ns) == "serial=5EED",
    );

    traffic(&ns, 5);
    prometheus.wait_until(Duration::from_secs(30), "the new changes scraped", || {
        prometheus
            .value(changes)
            .is_some_and(|n| n >= before + batch)
    });
    let window = "[2m]";
    assert_eq!(
        prometheus.value(&format!(
            "changes(process_start_time_seconds{{job=\"renew\"}}{window})"
        )),
        Some(0.0),
        "restarted"
    );
    assert_eq!(
        prometheus.value(&format!(
            "sum(resets(tcp_state_transitions_total{{job=\"renew\"}}{window}))"
        )),
        Some(0.0)
    );
    assert_eq!(prometheus.value("up{job=\"renew\"}"), Some(1.0));
    assert_eq!(
        prometheus.value(&format!("{FAILURES}{{job=\"renew\"}}")),
        Some(0.0)
    );
    assert_eq!(prometheus.last_errors("renew"), vec![String::new()]);
    drop(prometheus);
    stop_cleanly(exporter);
}

/// A broken new web config keeps the last good one serving (TLS, its user), costs one
/// stderr line and counts one reload failure; a good one after it is served.
#[test]
fn broken_new_config_keeps_the_last_good_one() {
    let ns = Netns::new("webcfg-broken");
    let dir = TempDir::new("webcfg-broken");
    let certs = Certs::new(&dir);
    let config = dir.write("web.yml", &certs.web_config(&[("alice", "a-pw")], &[]));
    let exporter = Exporter::start(&ns, PORT, &["--web.config.file", &config]);
    let get = |user: &str| {
        curl(&ns, &["--cacert", &certs.ca, "-u", user, &url("/metrics")]).expect("an answer")
    };
    let failures = |reply: &Reply| value_of(&reply.text(), FAILURES);
    assert_eq!(failures(&get("alice:a-pw")), Some(0.0));

    dir.write("web.yml", "tls_server_config: [\n");
    wait_until(Duration::from_secs(10), "the failed reload counted", || {
        failures(&get("alice:a-pw")) == Some(1.0)
    });
    thread::sleep(Duration::from_secs(3));
    let reply = get("alice:a-pw");
    assert_eq!(reply.status, 200, "the last good one serves on");
    assert_eq!(failures(&reply), Some(1.0), "counted once");

    dir.write("web.yml", &certs.web_config(&[("bob", "b-pw")], &[]));
    wait_until(Duration::from_secs(10), "the good new file served", || {
        get("bob:b-pw").status == 200
    });
    assert_eq!(get("alice:a-pw").status, 401);
    let stderr = stop_cleanly(exporter);
    let refusals: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("last good one"))
        .collect();
    assert_eq!(refusals.len(), 1, "{stderr}");
    assert!(
        refusals[0].starts_with(&format!(
            "tcptools-exporter: web config {config}: invalid YAML: "
        )),
        "{stderr}"
    );
}
