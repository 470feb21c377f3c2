//! tcpconnlat's command line and the prose of its man page: the one definition that the
//! tool parses with and that the man page and shell completions are generated from.

use clap::{ArgAction, CommandFactory, Parser};

use crate::cli::ManPage;

/// bcc's examples, shown by `--help` and in the man page.
pub const EXAMPLES: &str = "EXAMPLES:
    tcpconnlat              # trace all TCP connects
    tcpconnlat 1            # trace connection latency slower than 1 ms
    tcpconnlat 0.1          # trace connection latency slower than 100 us
    tcpconnlat -t           # include seconds since the first event
    tcpconnlat -p 185       # trace PID 185 only
    tcpconnlat -L           # include LPORT while printing outputs
    tcpconnlat -4           # trace IPv4 family only
    tcpconnlat --json       # one JSON object per connect";

#[derive(Parser)]
#[command(
    name = "tcpconnlat",
    version,
    about = "Trace TCP connects and show connection latency.",
    override_usage = "tcpconnlat [--help] [-t] [-p PID] [-L] [-4] [-6] [--json] [MIN_MS]",
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
    /// Include LPORT on output
    #[arg(short = 'L', long = "lport")]
    pub lport: bool,
    /// Trace this PID only
    #[arg(
        short = 'p',
        long = "pid",
        value_name = "PID",
        allow_hyphen_values = true
    )]
    pub pid: Option<String>,
    /// Include timestamp on output
    #[arg(short = 't', long = "timestamp")]
    pub timestamp: bool,
    /// One JSON object per line
    #[arg(long = "json")]
    pub json: bool,
    /// Verbose debug output
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Give this help list
    #[arg(short = 'h', long = "help", short_alias = '?', action = ArgAction::Help)]
    help: Option<bool>,
    /// Trace connects slower than this many milliseconds only
    #[arg(value_name = "MIN_MS")]
    pub min_ms: Vec<String>,
}

/// The command line as clap sees it (for the man page and completions).
pub fn command() -> clap::Command {
    Options::command()
}

/// The man page's prose.
pub const MAN: ManPage = ManPage {
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
    differences: &[
        "The latency is measured from SYN_SENT (bcc: from the entry of tcp_v4_connect, a few \
microseconds earlier).",
        "-t uses a signed difference (bcc wraps to 18446744073709.551 for an event from \
another CPU).",
        "-p rejects non-numbers and values outside 1 to 2147483647; the minimum must be a \
plain decimal number (negatives, NaN, infinities, 1abc and 0x10 are refused).",
        "A failure to set up the event buffer exits 1 (bcc exits 0).",
        "Added: -4/-6 family filters (the last one given wins) and --json (one JSON object \
per connect, times in RFC 3339).",
        "Output is flushed after each batch of events, so a pipe or the journal sees it at \
once.",
        "Control characters in process names are printed as ?.",
        "Events the kernel skipped because another BPF program was running on that CPU are \
reported on standard error (kernel skipped N events).",
    ],
};
