//! tcpconnlat's command line, validated into a Config, and the prose of its man page: the
//! one definition that the tool parses with and that the man page and completions come from.

use clap::Args;

use super::bpf::Filter;
use super::print::{Format, JSON_FIELDS};
use crate::cli::{IntoConfig, ManPage, TraceFlags, UsageError};
use crate::container::ContainerArgs;

/// bcc's examples, shown by `--help` and in the man page.
pub const EXAMPLES: &str = "EXAMPLES:
    tcpconnlat              # trace all TCP connects
    tcpconnlat 1            # trace connection latency slower than 1 ms
    tcpconnlat 0.1          # trace connection latency slower than 100 us
    tcpconnlat -t           # include seconds since the first event
    tcpconnlat -p 185       # trace PID 185 only
    tcpconnlat -L           # include LPORT while printing outputs
    tcpconnlat -4           # trace IPv4 family only
    tcpconnlat --json       # one JSON object per connect
    tcpconnlat -c /sys/fs/cgroup/unified/pod --show-cgroup   # connects of that cgroup v2";

#[derive(Args)]
pub struct Options {
    #[command(flatten)]
    pub shared: TraceFlags,
    /// Include LPORT on output
    ///
    /// An LPORT column: the client socket's local port.
    #[arg(short = 'L', long)]
    pub lport: bool,
    /// Trace this PID only
    ///
    /// Only connects made by this process (its tgid), 1 to 2147483647.
    #[arg(short = 'p', long)]
    pub pid: Option<String>,
    /// Include timestamp on output
    ///
    /// A leading TIME(s) column: seconds since the first printed event (kernel clock; can be
    /// slightly negative for an event from another CPU).
    #[arg(short = 't', long)]
    pub timestamp: bool,
    /// Add a CGROUP column: the socket's cgroup v2 path
    #[arg(long = "show-cgroup")]
    pub show_cgroup: bool,
    /// Add a NAMESPACE/POD/CONTAINER column: the socket's pod and container
    ///
    /// A trailing NAMESPACE/POD/CONTAINER column (with -s, a trailing field), named by the
    /// node's container runtime (see --runtime-endpoint): - for a part it does not name (a
    /// pod's own cgroup has no container; a Docker or podman container no pod); the cgroup
    /// path where the socket is in no container the runtime names.
    #[arg(long = "show-pod")]
    pub show_pod: bool,
    /// Trace connects slower than this many milliseconds only
    ///
    /// Only connects that took at least this many milliseconds: fractions allowed (0.5),
    /// truncated to whole microseconds, which must leave at least 1.
    #[arg(value_name = "MIN_MS")]
    pub min_ms: Vec<String>,
}

impl IntoConfig for Options {
    type Config = Config;
    const MAN: &'static ManPage = &MAN;

    fn into_config(self) -> Result<Config, UsageError> {
        let mut positional = self.min_ms.into_iter();
        let min_us = match positional.next() {
            Some(arg) => parse_min_us(&arg)
                .ok_or_else(|| UsageError::new(format!("Invalid delay (in us): {arg}")))?,
            None => 0,
        };
        if let Some(extra) = positional.next() {
            return Err(UsageError::new(format!(
                "Unrecognized positional argument: {extra}"
            )));
        }
        let pid = match self.pid {
            Some(arg) => {
                parse_pid(&arg).ok_or_else(|| UsageError::new(format!("invalid PID: {arg}")))?
            }
            None => 0,
        };
        Ok(Config {
            filter: Filter {
                family: self.shared.family.family(),
                pid,
                min_us,
            },
            container: self.shared.container.into_args()?,
            format: Format {
                seconds: self.timestamp,
                lport: self.lport,
                json: self.shared.json,
                cgroup: self.show_cgroup,
                pod: self.show_pod,
            },
        })
    }
}

/// What to trace and how to print it, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub filter: Filter,
    pub container: ContainerArgs,
    pub format: Format,
}

/// The minimum latency in whole microseconds, as bcc truncates it; None unless it is a
/// finite number of milliseconds that leaves at least 1 µs.
fn parse_min_us(arg: &str) -> Option<u64> {
    let ms: f64 = arg.parse().ok()?;
    if !ms.is_finite() || ms < 0.0 {
        return None;
    }
    // `as` saturates: an absurd minimum simply hides every connect.
    let us = (ms * 1000.0) as u64;
    (us > 0).then_some(us)
}

/// `-p`: a positive C int.
fn parse_pid(arg: &str) -> Option<u32> {
    let pid: i32 = arg.parse().ok()?;
    u32::try_from(pid).ok().filter(|&p| p > 0)
}

/// The man page's prose.
pub const MAN: ManPage = ManPage {
    name: "tcpconnlat",
    about: "Trace TCP connects and show connection latency.",
    long_about: None,
    usage: "tcpconnlat [--help] [-t] [-p PID] [-L] [-4] [-6] [--json] [-c PATH] [--netns NS] [--show-cgroup] [--show-pod] [--k8s-namespace NS] [--pod [NS/]NAME] [--container NAME] [MIN_MS]",
    examples: EXAMPLES,
    json_fields: JSON_FIELDS,
    json_names: true,
    metrics: None,
    description: "tcpconnlat traces active TCP connects and prints how long each waited for \
its answer: from the moment the socket enters SYN_SENT (inside connect(), in the caller's \
context) to the SYN-ACK. A refused connect (RST, ECONNREFUSED) is reported too, with the \
RST's round trip, as bcc does; connects that time out, are closed before the handshake or \
fail locally are not printed, and leave nothing behind in the kernel. MIN_MS, if given, \
hides connects faster than that many milliseconds (fractions allowed, truncated to whole \
microseconds). It is a port of bcc's libbpf-tools tcpconnlat: its columns and messages are \
bcc's, byte for byte, apart from the differences listed below.",
    tracepoints: "sock:inet_sock_set_state",
    event_stream: true,
    slot_table: true,
    differences: &[
        "The latency is measured from SYN_SENT (bcc: from the entry of tcp_v4_connect, a few \
microseconds earlier).",
        "-t uses a signed difference (bcc wraps to 18446744073709.551 for an event from \
another CPU).",
        "-p rejects non-numbers and values outside 1 to 2147483647; the minimum must be a \
plain decimal number (negatives, NaN, infinities, 1abc and 0x10 are refused).",
        "A failure to set up the event buffer exits 1 (bcc exits 0).",
        "Added: -4/-6 family filters (the last one given wins) and --json (one JSON object \
per connect, times in RFC 3339, with the socket's netns inode and cgroup path).",
        "Added: --show-cgroup adds a CGROUP column with the socket's cgroup v2 path.",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_latency_is_truncated_to_whole_microseconds() {
        for (arg, us) in [("1", 1000), ("0.1", 100), ("0.0015", 1), ("1e3", 1_000_000)] {
            assert_eq!(parse_min_us(arg), Some(us), "{arg:?}");
        }
        for bad in ["0", "0.0001", "-1", "NaN", "inf", "1abc", "0x10", ""] {
            assert_eq!(parse_min_us(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pids_are_positive_c_ints() {
        assert_eq!(parse_pid("185"), Some(185));
        assert_eq!(parse_pid("2147483647"), Some(i32::MAX as u32));
        for bad in ["0", "-1", "2147483648", "12a", "", " 1"] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refusals_carry_bcc_messages() {
        let config = crate::cli::config_of::<Options>;
        let refused = |args: &[&str]| config(args).unwrap_err().message;
        assert_eq!(refused(&["abc"]), "Invalid delay (in us): abc");
        assert_eq!(refused(&["1", "2"]), "Unrecognized positional argument: 2");
        assert_eq!(refused(&["-p", "x"]), "invalid PID: x");
        let ok = config(&["-p", "7", "2.5", "-6"]).unwrap();
        assert_eq!((ok.filter.pid, ok.filter.min_us), (7, 2500));
        assert_eq!(ok.filter.family, crate::net::AF_INET6);
    }
}
