//! tcptools-exporter's command line and startup errors: one line on stderr, exit 64 for
//! usage errors, exit 1 for runtime ones.

mod common;

use std::net::TcpListener;

use common::run_tool;

const BIN: &str = env!("CARGO_BIN_EXE_tcptools-exporter");

fn assert_fails(args: &[&str], code: i32, expected: &str) {
    common::assert_one_line_failure(BIN, args, code, expected);
}

#[test]
fn usage_errors() {
    assert_fails(
        &["--listen", "nonsense"],
        64,
        "invalid listen address: nonsense",
    );
    assert_fails(
        &["--listen", "127.0.0.1"],
        64,
        "invalid listen address: 127.0.0.1",
    );
    assert_fails(
        &["-l", ":10187", "--web.listen-address", ":x"],
        64,
        "invalid listen address: :x",
    );
    assert_fails(
        &["--web.telemetry-path", "metrics"],
        64,
        "invalid --web.telemetry-path: metrics",
    );
    assert_fails(&["-L", "80abc"], 64, "Invalid ports: 80abc");
    assert_fails(&["-D", "0"], 64, "Invalid ports: 0");
    assert_fails(&["--bogus"], 64, "tcptools-exporter: ");
    assert_fails(&["extra"], 64, "tcptools-exporter: ");
    assert_fails(&["--group-by", "pods"], 64, "tcptools-exporter: ");
}

#[test]
fn runtime_endpoint_usage_errors() {
    let needs = "--runtime-endpoint needs --group-by namespace, pod or container";
    assert_fails(&["--runtime-endpoint", "none"], 64, needs);
    assert_fails(
        &["--group-by", "cgroup", "--runtime-endpoint", "auto"],
        64,
        needs,
    );
    assert_fails(
        &["--group-by", "netns", "--runtime-endpoint", "none"],
        64,
        needs,
    );
    assert_fails(
        &[
            "--group-by",
            "pod",
            "--runtime-endpoint",
            "tcp://127.0.0.1:1",
        ],
        64,
        "invalid runtime endpoint: tcp://127.0.0.1:1 (auto, none or unix:///PATH)",
    );
    assert_fails(
        &["--group-by", "namespace", "--runtime-endpoint", "none"],
        64,
        "--group-by namespace needs a runtime: --runtime-endpoint none names no namespace",
    );
    assert_fails(
        &["--group-by", "container", "--max-groups", "0"],
        64,
        "invalid --max-groups: 0 (1 to 10000)",
    );
    assert_fails(
        &["--group-histograms", "connect"],
        64,
        "--group-histograms needs --group-by",
    );
    assert_fails(
        &["--group-by", "pod", "--group-histograms", "connect,states"],
        64,
        "invalid --group-histograms: connect,states (rtt, connect, state, comma-separated, or none)",
    );
}

/// The new kinds and endpoints are accepted: the run gets as far as binding the address
/// (taken here), past every usage check, before any BPF or runtime is touched.
#[test]
fn named_kinds_and_endpoints_are_accepted() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let expected = if nix::unistd::geteuid().is_root() {
        format!("cannot listen on {addr}")
    } else {
        "needs root".to_owned()
    };
    for extra in [
        &["--group-by", "namespace"][..],
        &["--group-by", "pod", "--runtime-endpoint", "none"],
        &["--group-by", "container", "--runtime-endpoint", "auto"],
        &[
            "--group-by",
            "pod",
            "--runtime-endpoint",
            "unix:///run/containerd/containerd.sock",
        ],
        &[
            "--group-by",
            "namespace",
            "--runtime-endpoint",
            "/run/crio/crio.sock",
        ],
        &["--group-by", "container", "--max-groups", "5"],
        &["--group-by", "pod", "--group-histograms", "connect"],
        &["--group-by", "cgroup", "--group-histograms", "none"],
    ] {
        let args = [&["--listen", addr.as_str()][..], extra].concat();
        assert_fails(&args, 1, &expected);
    }
}

#[test]
fn help_and_version() {
    let done = run_tool(BIN, &["--help"]);
    assert_eq!(done.status.code(), Some(0));
    let help = done.stdout.join("\n");
    for needle in [
        "--listen",
        "127.0.0.1:10187",
        "--localport",
        "--remoteport",
        "--group-by",
        "namespace, pod, container",
        "--runtime-endpoint",
        "--group-by pod",
        "EXAMPLES:",
    ] {
        assert!(help.contains(needle), "help lacks {needle}: {help}");
    }
    let done = run_tool(BIN, &["-V"]);
    assert_eq!(done.status.code(), Some(0));
    assert!(done.stdout[0].starts_with("tcptools-exporter "));
}

/// An address already taken is a runtime error, reported before any BPF is loaded.
#[test]
fn busy_address_is_one_line_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    if !nix::unistd::geteuid().is_root() {
        assert_fails(&["--listen", &addr], 1, "needs root");
        return;
    }
    assert_fails(&["--listen", &addr], 1, &format!("cannot listen on {addr}"));
}
