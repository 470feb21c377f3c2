//! tcprtt's command line, validated into a Config, and the prose of its man page: the one
//! definition that the tool parses with and that the man page and completions come from.

use std::net::{Ipv4Addr, Ipv6Addr};

use clap::Args;

use super::bpf::{AddrFilter, Filter};
use super::print::{Format, KeyKind, JSON_FIELDS};
use crate::cli::{IntoConfig, ManPage, TraceFlags, UsageError};
use crate::container::ContainerArgs;

/// bcc's examples, shown by `--help` and in the man page.
pub const EXAMPLES: &str = "EXAMPLES:
    tcprtt            # summarize TCP RTT
    tcprtt -i 1 -d 10 # print 1 second summaries, 10 times
    tcprtt -m -T      # summarize in millisecond, and timestamps
    tcprtt -p         # filter for local port
    tcprtt -P         # filter for remote port
    tcprtt -a         # filter for local address
    tcprtt -A         # filter for remote address
    tcprtt -b         # show sockets histogram by local address
    tcprtt -B         # show sockets histogram by remote address
    tcprtt -e         # show extension summary(average)
    tcprtt -6 -B      # IPv6 sockets only, one histogram per remote address
    tcprtt --json     # one JSON object per histogram per interval
    tcprtt --bycgroup # one histogram per cgroup v2
    tcprtt --bypod    # one histogram per Kubernetes pod
    tcprtt -c /sys/fs/cgroup/unified/pod   # only sockets of that cgroup v2 and below";

#[derive(Args)]
pub struct Options {
    #[command(flatten)]
    pub shared: TraceFlags,
    // What the histograms are keyed by.
    /// show sockets histogram by local address
    #[arg(short = 'b', long)]
    pub byladdr: bool,
    /// show sockets histogram by remote address
    #[arg(short = 'B', long)]
    pub byraddr: bool,
    /// show sockets histogram by cgroup v2
    ///
    /// One histogram per cgroup v2 of the sockets, headed Cgroup = PATH (with -e, [AVG n]
    /// after it).
    #[arg(long, conflicts_with_all = ["byladdr", "byraddr"])]
    pub bycgroup: bool,
    /// show sockets histogram by Kubernetes pod
    ///
    /// One histogram per pod of the sockets, headed Pod = NAMESPACE/POD (with -e, [AVG n]
    /// after it): the histograms of the pod's cgroups merged, named by the node's container
    /// runtime (see --runtime-endpoint). A cgroup in no pod the runtime names keeps its own
    /// histogram, headed by its cgroup v2 path.
    #[arg(long, conflicts_with_all = ["byladdr", "byraddr", "bycgroup"])]
    pub bypod: bool,
    // Which sockets are counted.
    /// filter for local address
    ///
    /// Only sockets with this local address, IPv4 (dotted quad) or IPv6; 0.0.0.0 and :: mean
    /// no filter, as in bcc.
    #[arg(short = 'a', long)]
    pub laddr: Option<String>,
    /// filter for remote address
    ///
    /// Only sockets with this remote address, likewise. An IPv4 and an IPv6 address filter
    /// together are refused with exit status 1.
    #[arg(short = 'A', long)]
    pub raddr: Option<String>,
    /// filter for local port
    ///
    /// Only sockets with this local port, 1 to 65535.
    #[arg(short = 'p', long)]
    pub lport: Option<String>,
    /// filter for remote port
    ///
    /// Only sockets with this remote port, 1 to 65535.
    #[arg(short = 'P', long)]
    pub rport: Option<String>,
    // How the histograms are printed.
    /// show extension summary(average)
    ///
    /// [AVG n] after each section header: the sum of the samples divided by their count, in
    /// integer division (0 for no samples).
    #[arg(short = 'e', long)]
    pub extension: bool,
    /// millisecond histogram
    #[arg(short = 'm', long)]
    pub millisecond: bool,
    /// include timestamp on output
    ///
    /// An HH:MM:SS line at the top of each interval.
    #[arg(short = 'T', long)]
    pub timestamp: bool,
    // When.
    /// summary interval, seconds
    ///
    /// Print the histograms every this many seconds (without -i: when the tool ends).
    #[arg(short = 'i', long)]
    pub interval: Option<String>,
    /// total duration of trace, seconds
    ///
    /// End after this many seconds; without -i, print one interval of the whole duration.
    #[arg(short = 'd', long)]
    pub duration: Option<String>,
}

impl IntoConfig for Options {
    type Config = Config;
    const MAN: &'static ManPage = &MAN;

    fn into_config(self) -> Result<Config, UsageError> {
        let format = self.format();
        let interval = seconds(self.interval, "interval")?;
        let duration = seconds(self.duration, "duration")?;
        let filter = Filter {
            family: self.shared.family.family(),
            // bcc's order of checks: addresses, then ports.
            laddr: addr(self.laddr, "local")?,
            raddr: addr(self.raddr, "remote")?,
            lport: port(self.lport, "lport")?,
            rport: port(self.rport, "rport")?,
        };
        if mixes_families(&filter) {
            return Err(UsageError::runtime(
                "It is not permitted to filter by both IPv4 and IPv6",
            ));
        }
        Ok(Config {
            // bcc never ends with -d alone (it sleeps 99999999 s); here -d alone is one
            // interval of the whole duration, then the tool exits.
            interval: interval.or(duration),
            duration,
            filter,
            container: self.shared.container.into_args()?,
            format,
        })
    }
}

/// What to trace and how to print it, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Seconds between intervals; None: until Ctrl-C.
    pub interval: Option<u64>,
    /// `-d`: seconds until the tool ends.
    pub duration: Option<u64>,
    pub filter: Filter,
    pub container: ContainerArgs,
    pub format: Format,
}

impl Options {
    fn format(&self) -> Format {
        let key = if self.bycgroup || self.bypod {
            KeyKind::Cgroup
        } else if self.byladdr {
            KeyKind::Local
        } else if self.byraddr {
            KeyKind::Remote
        } else {
            KeyKind::All
        };
        Format {
            key,
            extension: self.extension,
            timestamp: self.timestamp,
            millisecond: self.millisecond,
            json: self.shared.json,
            bypod: self.bypod,
        }
    }
}

fn seconds(arg: Option<String>, what: &str) -> Result<Option<u64>, UsageError> {
    arg.map(|a| parse_seconds(&a).ok_or_else(|| UsageError::new(format!("invalid {what}: {a}"))))
        .transpose()
}

fn port(arg: Option<String>, what: &str) -> Result<u16, UsageError> {
    arg.map_or(Ok(0), |a| {
        parse_port(&a).ok_or_else(|| UsageError::new(format!("invalid {what}: {a}")))
    })
}

/// `-a`/`-A` with bcc's messages: `invalid local address`, `invalid local IPv6 address`
/// (for text with a `:`) and `invalid remote address`.
fn addr(arg: Option<String>, side: &str) -> Result<Option<AddrFilter>, UsageError> {
    let Some(a) = arg else {
        return Ok(None);
    };
    parse_addr(&a).map_err(|()| {
        let v6 = if side == "local" && a.contains(':') {
            " IPv6"
        } else {
            ""
        };
        UsageError::new(format!("invalid {side}{v6} address: {a}"))
    })
}

/// bcc refuses an IPv4 and an IPv6 address filter together (exit 1, not a usage error).
fn mixes_families(filter: &Filter) -> bool {
    let filters = [filter.laddr, filter.raddr];
    let v4 = filters.iter().any(|f| matches!(f, Some(AddrFilter::V4(_))));
    let v6 = filters.iter().any(|f| matches!(f, Some(AddrFilter::V6(_))));
    v4 && v6
}

/// bcc's `strtol(arg, NULL, 10) > 0` test for `-i`/`-d`: leading blanks and a sign are
/// allowed and text after the digits is ignored (`1abc` is 1); no digits, zero, negatives
/// and values beyond a C long are rejected.
fn parse_seconds(arg: &str) -> Option<u64> {
    let s = arg.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let value: i64 = rest[..digits].parse().ok()?;
    if negative || value <= 0 {
        return None;
    }
    u64::try_from(value).ok()
}

/// A port for `-p`/`-P`: decimal digits only, 1..=65535.
fn parse_port(arg: &str) -> Option<u16> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    arg.parse::<u16>().ok().filter(|&p| p > 0)
}

/// `-a`/`-A`: text with a `:` is IPv6, anything else must be a dotted-quad IPv4 address
/// (inet_pton's rules). The all-zero address is no filter, as in bcc.
fn parse_addr(arg: &str) -> Result<Option<AddrFilter>, ()> {
    let filter = if arg.contains(':') {
        AddrFilter::V6(arg.parse::<Ipv6Addr>().map_err(|_| ())?.octets())
    } else {
        AddrFilter::V4(arg.parse::<Ipv4Addr>().map_err(|_| ())?.octets())
    };
    let zero = match filter {
        AddrFilter::V4(a) => a == [0; 4],
        AddrFilter::V6(a) => a == [0; 16],
    };
    Ok((!zero).then_some(filter))
}

/// The man page's prose.
pub const MAN: ManPage = ManPage {
    name: "tcprtt",
    about: "Summarize TCP RTT as a histogram.",
    long_about: None,
    usage: "tcprtt [-bBemTv46] [-a LADDR] [-A RADDR] [-d DURATION] [-i INTERVAL] [-p LPORT] [-P RPORT] [--json] [-c PATH] [--netns NS] [--bycgroup] [--bypod] [--k8s-namespace NS] [--pod [NS/]NAME] [--container NAME]",
    examples: EXAMPLES,
    json_fields: JSON_FIELDS,
    json_names: false,
    metrics: None,
    description: "tcprtt summarizes the smoothed round-trip time (srtt) that TCP holds for \
each segment an ESTABLISHED socket receives, as power-of-two histograms in microseconds (or \
milliseconds with -m): one for all sockets, or one per local (-b) or remote (-B) address. \
It counts segments, not connections, so busy connections dominate. Without -i it prints \
when it ends (Ctrl-C or SIGTERM); with -i it prints every INTERVAL seconds, and -d ends it \
after DURATION seconds. It is a port of bcc's libbpf-tools tcprtt: its banner and \
histograms are bcc's, byte for byte, apart from the differences listed below.\n\
-a 0.0.0.0 and -a :: mean no filter, as in bcc; an IPv4 and an IPv6 address filter together \
are refused with exit status 1.",
    tracepoints: "tcp:tcp_probe",
    event_stream: false,
    slot_table: false,
    differences: &[
        "-d N without -i prints one N-second interval and exits (bcc never exits).",
        "-e prints [AVG 0] for a count of 0 (bcc dies dividing by zero).",
        "-p and -P accept only 1 to 65535 (invalid lport: ARG, invalid rport: ARG, exit 64; \
bcc takes garbage as no filter); -a and -A validate IPv4 as well as IPv6 addresses.",
        "No sample is lost or counted twice between intervals: samples go to the \
histograms of a generation that user space moves on before it reads and clears the old one.",
        "Sections are printed IPv4 first, then IPv6, each in address order (bcc: hash \
order).",
        "Histogram bars are computed in 64 bits (bcc's 32-bit arithmetic draws wrong bars \
above about 107 million samples in one slot).",
        "Added: -4/-6 family filters (the last one given wins) and --json (one JSON object \
per histogram per interval, times in RFC 3339).",
        "Added: --bycgroup prints one histogram per cgroup v2 (section header Cgroup = PATH; \
in JSON \"key\": \"cgroup\" and the path as \"cgroup\").",
        "Added: --bypod prints one histogram per Kubernetes pod (section header Pod = \
NAMESPACE/POD; in JSON \"key\": \"pod\" with \"namespace\" and \"pod\"), and \
--k8s-namespace, --pod and --container select sockets by pod and container as -c does by \
cgroup.",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::config_of;

    #[test]
    fn seconds_follow_strtol() {
        let max = i64::MAX as u64;
        for (arg, secs) in [
            ("5", 5),
            (" +7", 7),
            ("1abc", 1),
            ("9223372036854775807", max),
        ] {
            assert_eq!(parse_seconds(arg), Some(secs), "{arg:?}");
        }
        for bad in ["", "0", "-1", "abc", "9223372036854775808", " "] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ports_are_1_to_65535() {
        assert_eq!(parse_port("80"), Some(80));
        assert_eq!(parse_port("65535"), Some(65535));
        for bad in ["", "0", "65536", "-1", "+80", "80a", " 80"] {
            assert_eq!(parse_port(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn addresses_and_the_zero_address() {
        assert_eq!(
            parse_addr("127.0.0.1"),
            Ok(Some(AddrFilter::V4([127, 0, 0, 1])))
        );
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(parse_addr("::1"), Ok(Some(AddrFilter::V6(one))));
        assert_eq!(parse_addr("0.0.0.0"), Ok(None));
        assert_eq!(parse_addr("::"), Ok(None));
        for bad in ["1.2.3", "localhost", "1.2.3.4.5", ":::", ""] {
            assert_eq!(parse_addr(bad), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn refusals_carry_bcc_messages_and_status() {
        let refused = |args: &[&str]| config_of::<Options>(args).unwrap_err();
        for (args, message) in [
            (&["-i", "0"][..], "invalid interval: 0"),
            (&["-d", "x"], "invalid duration: x"),
            (&["-p", "0"], "invalid lport: 0"),
            (&["-P", "x"], "invalid rport: x"),
            (&["-a", "1.2"], "invalid local address: 1.2"),
            (&["-a", "::g"], "invalid local IPv6 address: ::g"),
            (&["-A", "::g"], "invalid remote address: ::g"),
        ] {
            assert_eq!(refused(args), UsageError::new(message), "{args:?}");
        }
        assert_eq!(
            refused(&["-a", "127.0.0.1", "-A", "::1"]),
            UsageError::runtime("It is not permitted to filter by both IPv4 and IPv6")
        );
    }

    #[test]
    fn duration_alone_is_one_interval() {
        let c = config_of::<Options>(&["-d", "3"]).unwrap();
        assert_eq!((c.interval, c.duration), (Some(3), Some(3)));
        let c = config_of::<Options>(&["-i", "1", "-d", "3", "-b"]).unwrap();
        assert_eq!((c.interval, c.duration), (Some(1), Some(3)));
        assert_eq!(c.format.key, KeyKind::Local);
    }
}
