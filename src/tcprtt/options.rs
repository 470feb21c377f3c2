//! tcprtt's command line and the prose of its man page: the one definition that the tool
//! parses with and that the man page and shell completions are generated from.

use clap::{ArgAction, CommandFactory, Parser};

use crate::cli::ManPage;

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
    tcprtt --json     # one JSON object per histogram per interval";

#[derive(Parser)]
#[command(
    name = "tcprtt",
    version,
    about = "Summarize TCP RTT as a histogram.",
    override_usage = "tcprtt [-bBemTv46] [-a LADDR] [-A RADDR] [-d DURATION] [-i INTERVAL] [-p LPORT] [-P RPORT] [--json]",
    after_help = EXAMPLES,
    disable_help_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
pub struct Options {
    /// Trace IPv4 family only
    #[arg(short = '4', long = "ipv4", overrides_with = "ipv6")]
    pub ipv4: bool,
    /// Trace IPv6 family only
    #[arg(short = '6', long = "ipv6", overrides_with = "ipv4")]
    pub ipv6: bool,
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
    /// Give this help list
    #[arg(short = 'h', long = "help", short_alias = '?', action = ArgAction::Help)]
    help: Option<bool>,
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
    differences: &[
        "-d N without -i prints one N-second interval and exits (bcc never exits).",
        "-e prints [AVG 0] for a count of 0 (bcc dies dividing by zero).",
        "-p and -P accept only 1 to 65535 (invalid lport: ARG, invalid rport: ARG, exit 64; \
bcc takes garbage as no filter); -a and -A validate IPv4 as well as IPv6 addresses.",
        "No sample is lost or counted twice between intervals: the map is keyed by a \
generation that user space moves on before it reads and deletes the old one.",
        "Sections are printed IPv4 first, then IPv6, each in address order (bcc: hash \
order).",
        "Histogram bars are computed in 64 bits (bcc's 32-bit arithmetic draws wrong bars \
above about 107 million samples in one slot).",
        "Added: -4/-6 family filters (the last one given wins) and --json (one JSON object \
per histogram per interval, times in RFC 3339).",
        "Samples the kernel skipped because another BPF program was running on that CPU are \
reported on standard error (kernel skipped N events).",
    ],
};
