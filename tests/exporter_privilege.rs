//! tcptools-exporter with the least privilege the systemd unit and the DaemonSet grant:
//! root with only CAP_BPF and CAP_PERFMON (setpriv's bounding set, checked in
//! /proc/PID/status), its BPF run-time metrics following kernel.bpf_stats_enabled both
//! ways; with full root they come from BPF_ENABLE_STATS whatever the sysctl says. Needs
//! root and setpriv. Ports 48400-48499.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::web::{scrape, EXPORTER};
use common::{connection, Netns, Tool};

/// Each test's exporter and server ports (the tests run in parallel, and the kernel's
/// programs see every namespace's traffic).
const LEAST_PORTS: (u16, u16) = (48401, 48402);
const ROOT_PORTS: (u16, u16) = (48411, 48412);

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// CAP_PERFMON (38) and CAP_BPF (39): what the unit and the DaemonSet grant.
const BPF_AND_PERFMON: u64 = (1 << 38) | (1 << 39);

/// The sysctl is the machine's: one test at a time sets it.
static SYSCTL_HELD: Mutex<()> = Mutex::new(());

/// kernel.bpf_stats_enabled set for the test, its value before put back on drop (also
/// when the test fails).
struct StatsSysctl {
    before: String,
    _held: MutexGuard<'static, ()>,
}

impl StatsSysctl {
    fn set(on: bool) -> StatsSysctl {
        let held = SYSCTL_HELD.lock().unwrap_or_else(|e| e.into_inner());
        let before = std::fs::read_to_string(STATS_SYSCTL).expect("read the sysctl");
        std::fs::write(STATS_SYSCTL, if on { "1" } else { "0" }).expect("write the sysctl");
        StatsSysctl {
            before,
            _held: held,
        }
    }
}

impl Drop for StatsSysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(STATS_SYSCTL, self.before.trim());
    }
}

/// A capability set of /proc/PID/status (`CapEff`, `CapBnd`, ...).
fn caps_of(pid: u32, set: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(set)?.strip_prefix(":"));
    u64::from_str_radix(line.expect("capability line").trim(), 16).expect("hex")
}

/// The exporter, killed on drop (a failed assertion leaves nothing running).
struct Running(Option<Tool>);

impl Running {
    fn pid(&self) -> u32 {
        self.0.as_ref().expect("running").pid()
    }

    /// SIGTERM: it ends with exit 0; its stderr (the -v lines).
    fn stop(mut self) -> String {
        let finished = self.0.take().expect("running").stop_with(Signal::SIGTERM);
        assert_eq!(finished.status.code(), Some(0), "{}", finished.stderr);
        finished.stderr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tool) = &self.0 {
            let _ = kill(Pid::from_raw(tool.pid() as i32), Signal::SIGKILL);
        }
    }
}

/// The exporter in `ns`, with only CAP_BPF and CAP_PERFMON when `least`, as root else;
/// `-v` for its lines on the statistics.
fn start(ns: &Netns, least: bool, (exporter, server): (u16, u16)) -> Running {
    let net = format!("--net=/run/netns/{}", ns.name);
    let listen = format!("127.0.0.1:{exporter}");
    let ports = server.to_string();
    let mut args = vec![net.as_str()];
    if least {
        args.extend(["setpriv", "--bounding-set=-all,+bpf,+perfmon", "--"]);
    }
    args.extend([EXPORTER, "-v", "--listen", &listen, "-L", &ports]);
    // Ready with its serving line on stdout; the -v lines go to stderr.
    Running(Some(Tool::start("nsenter", &args, &[], 1)))
}

/// Whether stderr has a line that starts with `note`.
fn has_line(stderr: &str, note: &str) -> bool {
    stderr.lines().any(|l| l.starts_with(note))
}

/// The one sample of `name` (no labels) in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Some connections on the server port in `ns`, then a scrape once set_state has counted
/// them (bounded).
fn scrape_after_traffic(ns: &Netns, (exporter, server): (u16, u16)) -> String {
    const CONNECTIONS: usize = 3;
    for _ in 0..CONNECTIONS {
        let listen = format!("127.0.0.1:{server}").parse().unwrap();
        ns.run("priv-conn", move || connection(listen, 1));
    }
    // With -L: the accepted socket's 5 changes and its own listener's 2 (each connection binds one).
    let changes = 7 * CONNECTIONS;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(ns, exporter, Duration::from_secs(5));
        let counted: f64 = text
            .lines()
            .filter(|l| l.starts_with("tcp_state_transitions_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if counted as usize >= changes || Instant::now() > deadline {
            assert_eq!(counted as usize, changes, "state changes counted:\n{text}");
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The run-time families: present with runs of set_state when `on`, absent else.
fn assert_run_metrics(text: &str, on: bool) {
    let gauge = sample(text, "tcptools_exporter_bpf_stats_enabled");
    assert_eq!(gauge, Some(if on { 1.0 } else { 0.0 }), "{text}");
    let runs = sample(
        text,
        "tcptools_exporter_bpf_runs_total{program=\"set_state\"}",
    );
    let seconds = text.contains("tcptools_exporter_bpf_run_seconds_total{");
    if on {
        assert!(runs.unwrap_or(0.0) >= 21.0, "set_state runs: {runs:?}");
        assert!(seconds, "no run seconds:\n{text}");
    } else {
        assert_eq!(runs, None, "{text}");
        assert!(!seconds, "run seconds with the statistics off:\n{text}");
        assert!(!text.contains("tcptools_exporter_bpf_runs_total"), "{text}");
    }
}

/// The exporter's memory gauge: every map, the group maps absent without groups.
fn assert_map_memory(text: &str) {
    let maps: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("tcptools_exporter_map_memory_bytes{map=\""))
        .collect();
    assert!(maps.iter().any(|m| m.starts_with("counters\"")), "{maps:?}");
    assert!(maps.iter().any(|m| m.starts_with("hists\"")), "{maps:?}");
    for line in &maps {
        let bytes: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(bytes > 0.0, "{line}");
    }
}

#[test]
fn bpf_and_perfmon_only_follow_the_sysctl() {
    let ns = Netns::new("priv");
    for on in [false, true] {
        let _sysctl = StatsSysctl::set(on);
        let tool = start(&ns, true, LEAST_PORTS);
        let pid = tool.pid();
        // nsenter execs setpriv, which execs the exporter: the same process.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
        assert!(exe.ends_with("tcptools-exporter"), "{exe:?}");
        assert_eq!(caps_of(pid, "CapEff"), BPF_AND_PERFMON, "CapEff");
        assert_eq!(caps_of(pid, "CapBnd"), BPF_AND_PERFMON, "CapBnd");
        let text = scrape_after_traffic(&ns, LEAST_PORTS);
        assert_run_metrics(&text, on);
        assert_map_memory(&text);
        let note = if on {
            "BPF run-time statistics: on (kernel.bpf_stats_enabled is 1)"
        } else {
            "BPF run-time statistics: off (BPF_ENABLE_STATS needs CAP_SYS_ADMIN"
        };
        let stderr = tool.stop();
        assert!(has_line(&stderr, note), "{stderr}");
        assert!(has_line(&stderr, "BPF maps' kernel memory: "), "{stderr}");
    }
}

#[test]
fn root_keeps_statistics_with_the_sysctl_off() {
    let ns = Netns::new("priv-root");
    let _sysctl = StatsSysctl::set(false);
    let tool = start(&ns, false, ROOT_PORTS);
    assert_eq!(
        caps_of(tool.pid(), "CapEff") & (1 << 21),
        1 << 21,
        "CAP_SYS_ADMIN"
    );
    let text = scrape_after_traffic(&ns, ROOT_PORTS);
    assert_run_metrics(&text, true);
    let stderr = tool.stop();
    assert!(
        has_line(&stderr, "BPF run-time statistics: on (BPF_ENABLE_STATS"),
        "{stderr}"
    );
}
