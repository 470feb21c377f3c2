//! tcprtt's command line: help and version, and every bad argument exits 64 with one line.

mod common;

use common::run_tool;

const BIN: &str = env!("CARGO_BIN_EXE_tcprtt");

/// Runs with `args` and asserts exit 64, nothing on stdout, exactly `message` on stderr.
fn usage_error(args: &[&str], message: &str) {
    let done = common::assert_one_line_failure(BIN, args, 64, message);
    assert_eq!(done.stderr, format!("{message}\n"), "{args:?}");
}

/// Runs with `args` and asserts exit 64, nothing on stdout, one line on stderr.
fn one_line_usage_error(args: &[&str]) {
    common::assert_one_line_failure(BIN, args, 64, "");
}

#[test]
fn bad_intervals_and_durations() {
    for bad in ["abc", "0", "-1", "-0", "", "99999999999999999999", "x1"] {
        usage_error(&["-i", bad], &format!("invalid interval: {bad}"));
        usage_error(&["-d", bad], &format!("invalid duration: {bad}"));
    }
    usage_error(&["--interval=0"], "invalid interval: 0");
    usage_error(&["-d-5"], "invalid duration: -5");
    usage_error(&["-i", "2", "-d", "-5"], "invalid duration: -5");
}

#[test]
fn bad_ports() {
    for bad in [
        "abc",
        "0",
        "-1",
        "65536",
        "70000",
        "1e3",
        "80abc",
        " 80",
        "+80",
        "",
        "99999999999999999999",
    ] {
        usage_error(&["-p", bad], &format!("invalid lport: {bad}"));
        usage_error(&["-P", bad], &format!("invalid rport: {bad}"));
    }
    usage_error(&["--lport=0"], "invalid lport: 0");
    usage_error(&["-P80x"], "invalid rport: 80x");
}

#[test]
fn bad_addresses() {
    for bad in [
        "abc",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "10.1",
        "",
        "0x7f.0.0.1",
    ] {
        usage_error(&["-a", bad], &format!("invalid local address: {bad}"));
        usage_error(&["-A", bad], &format!("invalid remote address: {bad}"));
    }
    for bad in ["::zz", ":", "1::2::3", "::1%lo"] {
        usage_error(&["-a", bad], &format!("invalid local IPv6 address: {bad}"));
        usage_error(&["-A", bad], &format!("invalid remote address: {bad}"));
    }
}

#[test]
fn parser_errors_are_one_line() {
    for args in [
        &["foo"][..],
        &["-x"],
        &["-i"],
        &["--lport"],
        &["--by"],
        &["--milliseconds"],
        &["--extension=1"],
        &["-e", "1"],
    ] {
        one_line_usage_error(args);
    }
}

#[test]
fn both_address_families_exit_1() {
    for args in [
        &["-a", "10.0.0.1", "-A", "::1"][..],
        &["-a", "fe80::1", "-A", "127.0.0.1"],
    ] {
        let out = run_tool(BIN, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty());
        assert_eq!(
            out.stderr,
            "It is not permitted to filter by both IPv4 and IPv6\n"
        );
    }
}

#[test]
fn help_and_version() {
    for flag in ["--help", "-h", "-?", "--he"] {
        let out = run_tool(BIN, &[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let text = out.stdout.join("\n");
        assert!(
            text.starts_with("Summarize TCP RTT as a histogram."),
            "{text}"
        );
        for needle in [
            "-a, --laddr <LADDR>           filter for local address",
            "-A, --raddr <RADDR>           filter for remote address",
            "-b, --byladdr                 show sockets histogram by local address",
            "-B, --byraddr                 show sockets histogram by remote address",
            "-d, --duration <DURATION>     total duration of trace, seconds",
            "-e, --extension               show extension summary(average)",
            "-i, --interval <INTERVAL>     summary interval, seconds",
            "-m, --millisecond             millisecond histogram",
            "-p, --lport <LPORT>           filter for local port",
            "-P, --rport <RPORT>           filter for remote port",
            "-T, --timestamp               include timestamp on output",
            "-v, --verbose                 Verbose debug output",
            "tcprtt -i 1 -d 10 # print 1 second summaries, 10 times",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
    }
    let out = run_tool(BIN, &["-V"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        out.stdout,
        [format!("tcprtt {}", env!("CARGO_PKG_VERSION"))]
    );
}

/// Forms bcc's strtol accepts, and filters that mean "no filter" (all-zero addresses),
/// get past validation: the tool goes on to trace (root) or to the privilege check.
#[test]
fn accepted_forms_pass_validation() {
    let cases: Vec<Vec<&str>> = vec![
        vec!["-i", "1abc", "-d", "1"],
        vec!["-i", " 1", "-d", "1"],
        vec!["-d", "+1"],
        vec!["-p", "65535", "-P", "1", "-d", "1"],
        vec!["-a", "0.0.0.0", "-A", "::1", "-d", "1"],
        vec!["-a", "::", "-A", "10.0.0.1", "-d", "1"],
        vec!["--milli", "--ext", "-bB46", "-d1"],
    ];
    let handles: Vec<_> = cases
        .into_iter()
        .map(|args| {
            let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
            std::thread::spawn(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                (args.clone(), run_tool(BIN, &refs))
            })
        })
        .collect();
    for handle in handles {
        let (args, out) = handle.join().unwrap();
        assert_ne!(out.status.code(), Some(64), "{args:?}: {}", out.stderr);
        if nix::unistd::geteuid().is_root() {
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", out.stderr);
            assert_eq!(out.stdout[0], "Tracing TCP RTT for 1 secs.", "{args:?}");
        }
    }
}
