//! tcpconnlat's command line: every bad argument is one line on stderr and exit 64.

mod common;

use common::run_tool;

const BIN: &str = env!("CARGO_BIN_EXE_tcpconnlat");

fn assert_usage_error(args: &[&str], expected: &str) {
    common::assert_one_line_failure(BIN, args, 64, expected);
}

/// Runs the tool without any privilege: arguments that parse get as far as the privilege
/// check (exit 1), so this tells accepted arguments from rejected ones without BPF.
fn unprivileged(args: &[&str]) -> common::Finished {
    let mut all = vec![
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        BIN,
    ];
    all.extend_from_slice(args);
    run_tool("setpriv", &all)
}

#[test]
fn bad_minimum_latency_names_the_whole_argument() {
    for arg in [
        "0", "0.0", "abc", "0.0009", "1e-4", "inf", "nan", "NaN", "1abc", " 2", "0x10", "", "1,5",
    ] {
        assert_usage_error(&[arg], &format!("Invalid delay (in us): {arg}\n"));
    }
    // Only after `--` can a negative number be a positional argument.
    for arg in ["-1", "-0", "-0.5", "-inf"] {
        assert_usage_error(&["--", arg], &format!("Invalid delay (in us): {arg}\n"));
    }
    let done = run_tool(BIN, &["-t", "0.0001"]);
    assert_eq!(done.stderr, "Invalid delay (in us): 0.0001\n");
}

#[test]
fn a_second_positional_argument_is_refused() {
    assert_usage_error(&["1", "2"], "Unrecognized positional argument: 2\n");
    assert_usage_error(
        &["1", "-t", "abc"],
        "Unrecognized positional argument: abc\n",
    );
    let done = run_tool(BIN, &["5", "7"]);
    assert_eq!(done.stderr, "Unrecognized positional argument: 7\n");
}

#[test]
fn bad_pids_name_the_whole_argument() {
    for arg in [
        "0",
        "-3",
        "abc",
        "1.5",
        "12abc",
        "",
        "2147483648",
        "99999999999999999999",
        "-t",
    ] {
        assert_usage_error(&["-p", arg], &format!("invalid PID: {arg}\n"));
        assert_usage_error(&[&format!("--pid={arg}")], &format!("invalid PID: {arg}\n"));
    }
    assert_usage_error(&["-pabc"], "invalid PID: abc\n");
}

#[test]
fn bad_flags() {
    assert_usage_error(&["-x"], "'-x'");
    assert_usage_error(&["-1"], "'-1'");
    assert_usage_error(&["--foo"], "'--foo'");
    assert_usage_error(&["--ipv"], "--ipv");
    assert_usage_error(&["-p"], "PID");
    assert_usage_error(&["--pid"], "PID");
    assert_usage_error(&["--lport=3"], "--lport");
    assert_usage_error(&["--json=1"], "--json");
}

#[test]
fn good_arguments_are_accepted() {
    for args in [
        &[][..],
        &["1"],
        &["0.5"],
        &["0.001"],
        &["1e3"],
        &["10", "-t"],
        &["-tL", "-p", "1"],
        &["-p1", "-4", "-6"],
        &["--pid=2147483647", "--json"],
        &["--time", "--lp", "-v", "2.5"],
        &["-6", "-4", "--", "3"],
    ] {
        let done = unprivileged(args);
        assert_eq!(done.status.code(), Some(1), "{args:?}: {}", done.stderr);
        assert!(done.stdout.is_empty(), "{args:?}: {:?}", done.stdout);
        assert_eq!(
            done.stderr,
            "tcpconnlat: tracing the kernel needs root, or the capabilities CAP_BPF and CAP_PERFMON\n",
            "{args:?}"
        );
    }
}

#[test]
fn help_and_version_exit_zero() {
    for flag in ["-h", "--help", "-?"] {
        let done = run_tool(BIN, &[flag]);
        assert_eq!(done.status.code(), Some(0), "{flag}");
        let text = done.stdout.join("\n");
        for expected in [
            "Trace TCP connects and show connection latency.",
            "Include LPORT on output",
            "Trace this PID only",
            "Include timestamp on output",
            "Verbose debug output",
            "tcpconnlat 0.1          # trace connection latency slower than 100 us",
            "tcpconnlat -p 185       # trace PID 185 only",
        ] {
            assert!(
                text.contains(expected),
                "{flag}: {expected:?} not in {text}"
            );
        }
    }
    let done = run_tool(BIN, &["-V"]);
    assert_eq!(done.status.code(), Some(0));
    assert_eq!(
        done.stdout,
        [format!("tcpconnlat {}", env!("CARGO_PKG_VERSION"))]
    );
}
