//! tcprtt's command line, validated into a Config, and the prose of its man page: the one
//! definition that the tool parses with and that the man page and completions come from.

use std::net::{Ipv4Addr, Ipv6Addr};

use clap::{ArgAction, CommandFactory, Parser};

use super::bpf::{AddrFilter, Filter};
use super::print::{Format, KeyKind};
use crate::cli::{FamilyFlags, IntoConfig, ManPage, UsageError};
use crate::container::{ContainerArgs, ContainerFlags};

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
    tcprtt -c /sys/fs/cgroup/unified/pod   # only sockets of that cgroup v2 and below";

#[derive(Parser)]
#[command(
    name = "tcprtt",
    version,
    about = "Summarize TCP RTT as a histogram.",
    override_usage = "tcprtt [-bBemTv46] [-a LADDR] [-A RADDR] [-d DURATION] [-i INTERVAL] [-p LPORT] [-P RPORT] [--json] [-c PATH] [--netns NS] [--bycgroup]",
    after_help = EXAMPLES,
    disable_help_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
pub struct Options {
    #[command(flatten)]
    pub family: FamilyFlags,
    /// filter for local address
    #[arg(
        short = 'a',
        long = "laddr",
        value_name = "LADDR",
        allow_hyphen_values = true
    )]
    pub laddr: Option<String>,
    /// filter for remote address
    #[arg(
        short = 'A',
        long = "raddr",
        value_name = "RADDR",
        allow_hyphen_values = true
    )]
    pub raddr: Option<String>,
    /// show sockets histogram by local address
    #[arg(short = 'b', long = "byladdr")]
    pub byladdr: bool,
    /// show sockets histogram by remote address
    #[arg(short = 'B', long = "byraddr")]
    pub byraddr: bool,
    /// total duration of trace, seconds
    #[arg(
        short = 'd',
        long = "duration",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub duration: Option<String>,
    /// show extension summary(average)
    #[arg(short = 'e', long = "extension")]
    pub extension: bool,
    /// summary interval, seconds
    #[arg(
        short = 'i',
        long = "interval",
        value_name = "INTERVAL",
        allow_hyphen_values = true
    )]
    pub interval: Option<String>,
    /// One JSON object per histogram per interval
    #[arg(long = "json")]
    pub json: bool,
    /// millisecond histogram
    #[arg(short = 'm', long = "millisecond")]
    pub millisecond: bool,
    /// filter for local port
    #[arg(
        short = 'p',
        long = "lport",
        value_name = "LPORT",
        allow_hyphen_values = true
    )]
    pub lport: Option<String>,
    /// filter for remote port
    #[arg(
        short = 'P',
        long = "rport",
        value_name = "RPORT",
        allow_hyphen_values = true
    )]
    pub rport: Option<String>,
    /// include timestamp on output
    #[arg(short = 'T', long = "timestamp")]
    pub timestamp: bool,
    /// Verbose debug output
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    #[command(flatten)]
    pub container: ContainerFlags,
    /// show sockets histogram by cgroup v2
    #[arg(long = "bycgroup", conflicts_with_all = ["byladdr", "byraddr"])]
    pub bycgroup: bool,
    /// Give this help list
    #[arg(short = 'h', long = "help", short_alias = '?', action = ArgAction::Help)]
    help: Option<bool>,
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
    pub verbose: bool,
}

impl IntoConfig for Options {
    type Config = Config;

    fn into_config(self) -> Result<Config, UsageError> {
        let format = self.format();
        let interval = seconds(self.interval, "interval")?;
        let duration = seconds(self.duration, "duration")?;
        let filter = Filter {
            family: self.family.family(),
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
            container: self.container.into_args()?,
            format,
            verbose: self.verbose,
        })
    }

    fn verbose(config: &Config) -> bool {
        config.verbose
    }
}

impl Options {
    fn format(&self) -> Format {
        let key = if self.bycgroup {
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
            json: self.json,
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

/// The command line as clap sees it (for the man page and completions).
pub fn command() -> clap::Command {
    Options::command()
}

/// The man page's prose.
pub const MAN: ManPage = ManPage {
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
        "Added: -c/--cgroup PATH and --netns NS filter in the kernel on the socket's own \
cgroup v2 (PATH or any cgroup below it) and network namespace (a path such as \
/run/netns/NAME or /proc/PID/ns/net, or an inode number), not on the task on the CPU, so \
they hold in softirq context and for accepted sockets.",
        "Added: --bycgroup prints one histogram per cgroup v2 (section header Cgroup = PATH; \
in JSON \"key\": \"cgroup\" and the path as \"cgroup\").",
        "The kernel does not run a BPF program on a CPU where it is already running (a \
softirq that interrupts it): a second program on the same tracepoint runs the same code for \
those events. Samples neither could run for are reported on standard error (kernel skipped N \
events). With -v the tool names its programs when they are attached.",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, UsageError> {
        let argv = std::iter::once("tcprtt").chain(args.iter().copied());
        Options::try_parse_from(argv)
            .expect("clap accepts")
            .into_config()
    }

    #[test]
    fn seconds_follow_strtol() {
        assert_eq!(parse_seconds("5"), Some(5));
        assert_eq!(parse_seconds(" +7"), Some(7));
        assert_eq!(parse_seconds("1abc"), Some(1));
        assert_eq!(parse_seconds("9223372036854775807"), Some(i64::MAX as u64));
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
        let refused = |args: &[&str]| config(args).unwrap_err();
        assert_eq!(
            refused(&["-i", "0"]),
            UsageError::new("invalid interval: 0")
        );
        assert_eq!(
            refused(&["-d", "x"]),
            UsageError::new("invalid duration: x")
        );
        assert_eq!(refused(&["-p", "0"]), UsageError::new("invalid lport: 0"));
        assert_eq!(refused(&["-P", "x"]), UsageError::new("invalid rport: x"));
        assert_eq!(
            refused(&["-a", "1.2"]),
            UsageError::new("invalid local address: 1.2")
        );
        assert_eq!(
            refused(&["-a", "::g"]),
            UsageError::new("invalid local IPv6 address: ::g")
        );
        assert_eq!(
            refused(&["-A", "::g"]),
            UsageError::new("invalid remote address: ::g")
        );
        assert_eq!(
            refused(&["-a", "127.0.0.1", "-A", "::1"]),
            UsageError::runtime("It is not permitted to filter by both IPv4 and IPv6")
        );
    }

    #[test]
    fn duration_alone_is_one_interval() {
        let c = config(&["-d", "3"]).unwrap();
        assert_eq!((c.interval, c.duration), (Some(3), Some(3)));
        let c = config(&["-i", "1", "-d", "3", "-b"]).unwrap();
        assert_eq!((c.interval, c.duration), (Some(1), Some(3)));
        assert_eq!(c.format.key, KeyKind::Local);
    }
}
