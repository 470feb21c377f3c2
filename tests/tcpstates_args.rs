//! tcpstates' command line: every bad argument is one line on stderr and exit 64.

mod common;

use common::run_tool;

const BIN: &str = env!("CARGO_BIN_EXE_tcpstates");

fn assert_usage_error(args: &[&str], expected: &str) {
    common::assert_one_line_failure(BIN, args, 64, expected);
}

#[test]
fn bad_port_lists_name_the_whole_argument() {
    for arg in [
        "abc",
        "70000",
        "0",
        "-1",
        "65536",
        "",
        ",",
        ",,,",
        "80abc",
        "0x50",
        "80,abc",
        " 80",
        "99999999999999999999",
    ] {
        assert_usage_error(&["-L", arg], &format!("Invalid ports: {arg}\n"));
        assert_usage_error(
            &[&format!("--remoteport={arg}")],
            &format!("Invalid ports: {arg}\n"),
        );
    }
    let done = run_tool(BIN, &["-L", "80abc"]);
    assert_eq!(done.stderr, "Invalid ports: 80abc\n");
}

#[test]
fn bad_flags_and_stray_arguments() {
    assert_usage_error(&["-x"], "'-x'");
    assert_usage_error(&["--foo"], "'--foo'");
    assert_usage_error(&["--ipv"], "--ipv");
    assert_usage_error(&["-L"], "LPORT");
    assert_usage_error(&["--localport"], "LPORT");
    assert_usage_error(&["--wide=3"], "--wide");
    assert_usage_error(&["foo"], "'foo'");
    assert_usage_error(&["-Tw", "bar"], "'bar'");
}

#[test]
fn help_and_version_exit_zero() {
    for flag in ["-h", "--help", "-?"] {
        let done = run_tool(BIN, &[flag]);
        assert_eq!(done.status.code(), Some(0), "{flag}");
        let text = done.stdout.join("\n");
        assert!(
            text.contains("Trace TCP session state changes and durations."),
            "{flag}: {text}"
        );
        assert!(
            text.contains("Comma-separated list of local ports to trace."),
            "{text}"
        );
        assert!(
            text.contains("tcpstates -L 80            # only trace local port 80"),
            "{text}"
        );
    }
    let done = run_tool(BIN, &["-V"]);
    assert_eq!(done.status.code(), Some(0));
    assert_eq!(
        done.stdout,
        [format!("tcpstates {}", env!("CARGO_PKG_VERSION"))]
    );
}

#[test]
fn without_privileges_one_line_names_what_is_missing() {
    let done = run_tool(
        "setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            BIN,
        ],
    );
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(done.stdout.is_empty(), "{:?}", done.stdout);
    assert_eq!(
        done.stderr,
        "tcpstates: tracing the kernel needs root, or the capabilities CAP_BPF and CAP_PERFMON\n"
    );
}

#[test]
fn journal_without_journald_is_one_clear_error() {
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        eprintln!("journald runs here: the missing-journal error cannot be provoked");
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "run as root (`sudo make test`)"
    );
    let done = run_tool(BIN, &["-Y"]);
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(done.stdout.is_empty(), "{:?}", done.stdout);
    assert_eq!(
        done.stderr,
        "tcpstates: journal logging (-Y) needs systemd-journald, but /run/systemd/journal/socket does not exist\n"
    );
}
