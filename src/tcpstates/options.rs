//! tcpstates' command line, validated into a Config, and the prose of its man page: the one
//! definition that the tool parses with and that the man page and completions come from.

use clap::{ArgAction, CommandFactory, Parser};

use super::bpf::Filter;
use super::print::Format;
use crate::cli::{self, FamilyFlags, IntoConfig, ManPage, UsageError};
use crate::container::{ContainerArgs, ContainerFlags};

/// bcc's examples, shown by `--help` and in the man page.
pub const EXAMPLES: &str = "EXAMPLES:
    tcpstates                  # trace all TCP state changes
    tcpstates -T               # include timestamps
    tcpstates -L 80            # only trace local port 80
    tcpstates -D 80            # only trace remote port 80
    tcpstates -t               # include seconds since the first event
    tcpstates -s               # comma-separated values
    tcpstates --json           # one JSON object per event
    tcpstates -c /sys/fs/cgroup/unified/pod   # only sockets of that cgroup v2 and below
    tcpstates --netns /run/netns/blue         # only sockets of that network namespace
    tcpstates --owner --show-cgroup           # the socket's owner, and its cgroup";

#[derive(Parser)]
#[command(
    name = "tcpstates",
    version,
    about = "Trace TCP session state changes and durations.",
    override_usage = "tcpstates [-4] [-6] [-T] [-t] [-w] [-s] [-Y] [--json] [-L lport] [-D dport] [-c PATH] [--netns NS] [--owner] [--show-cgroup]",
    after_help = EXAMPLES,
    disable_help_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
pub struct Options {
    #[command(flatten)]
    pub family: FamilyFlags,
    /// Comma-separated list of remote ports to trace.
    #[arg(
        short = 'D',
        long = "remoteport",
        value_name = "DPORT",
        allow_hyphen_values = true,
        verbatim_doc_comment
    )]
    pub remoteport: Option<String>,
    /// Comma-separated list of local ports to trace.
    #[arg(
        short = 'L',
        long = "localport",
        value_name = "LPORT",
        allow_hyphen_values = true,
        verbatim_doc_comment
    )]
    pub localport: Option<String>,
    /// Include timestamp on output
    #[arg(short = 'T', long = "timestamp")]
    pub timestamp: bool,
    /// Include seconds since the first printed event on output
    #[arg(short = 't', long = "seconds")]
    pub seconds: bool,
    /// Comma separated values output
    #[arg(short = 's', long = "csv")]
    pub csv: bool,
    /// Also log each state change to the systemd journal
    #[arg(short = 'Y', long = "journal")]
    pub journal: bool,
    /// One JSON object per line
    #[arg(long = "json")]
    pub json: bool,
    /// Verbose debug output
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Wide column output (fits IPv6 addresses)
    #[arg(short = 'w', long = "wide")]
    pub wide: bool,
    #[command(flatten)]
    pub container: ContainerFlags,
    /// Show the socket's owner (the process that connected or listened) as PID and COMM
    #[arg(long = "owner")]
    pub owner: bool,
    /// Add a CGROUP column: the socket's cgroup v2 path
    #[arg(long = "show-cgroup")]
    pub show_cgroup: bool,
    /// Give this help list
    #[arg(short = 'h', long = "help", short_alias = '?', action = ArgAction::Help)]
    help: Option<bool>,
}

/// What to trace and how to print it, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub filter: Filter,
    pub container: ContainerArgs,
    pub format: Format,
    /// `-Y`: also send each change to the systemd journal.
    pub journal: bool,
    pub verbose: bool,
}

impl IntoConfig for Options {
    type Config = Config;

    fn into_config(self) -> Result<Config, UsageError> {
        Ok(Config {
            filter: Filter {
                family: self.family.family(),
                local_ports: cli::port_list(self.localport)?,
                remote_ports: cli::port_list(self.remoteport)?,
            },
            container: self.container.into_args()?,
            format: Format {
                clock: self.timestamp,
                seconds: self.seconds,
                wide: self.wide,
                csv: self.csv,
                json: self.json,
                owner: self.owner,
                cgroup: self.show_cgroup,
            },
            journal: self.journal,
            verbose: self.verbose,
        })
    }

    fn verbose(config: &Config) -> bool {
        config.verbose
    }
}

/// The command line as clap sees it (for the man page and completions).
pub fn command() -> clap::Command {
    Options::command()
}

/// The man page's prose.
pub const MAN: ManPage = ManPage {
    description: "tcpstates prints one line for each TCP state change of any socket in the \
system (every network namespace), with the process that was running when it happened, both \
addresses and ports, the old and the new state, and how long the socket spent in the old \
state, in milliseconds. It is a port of bcc's libbpf-tools tcpstates: its columns, CSV rows \
and messages are bcc's, byte for byte, apart from the differences listed below.\n\
The process shown is the one on the CPU when the state changed, which for changes made by \
the kernel (a SYN-ACK or a FIN arriving) is often unrelated to the socket; --owner shows \
the process that owns the socket instead.\n\
The time spent in a state is kept in a slot table and socket storage (tp_btf, Linux 5.12 \
or later) for any number of sockets; with raw_tp (older kernels, such as 5.10) it is kept \
in a table of 10240 sockets, and sockets it cannot hold are reported on standard error (socket table \
full) rather than printed as a duration of 0.",
    tracepoints: "sock:inet_sock_set_state",
    event_stream: true,
    slot_table: true,
    differences: &[
        "Port lists (-L, -D) accept 1 to 65535 only; 0, 65536, negatives, non-numbers, \
trailing garbage (80abc) and an empty or all-comma list are usage errors (exit 64).",
        "IPv6 addresses of any length are printed in full.",
        "A TCP state number with no name prints as its decimal number, not (null).",
        "Added from bcc's Python tool: -t/--seconds (seconds since the first printed event), \
-s/--csv (its CSV header and rows; a field holding a comma or quote is quoted as RFC 4180 \
says) and -Y/--journal (each event also goes to the systemd journal with its field names).",
        "Added: -4/-6 family filters (the last one given wins) and --json (one JSON object \
per event, times in RFC 3339, with the socket's netns inode and cgroup path, and \
owner_pid/owner_comm where the owner is known).",
        "Added: -c/--cgroup PATH and --netns NS filter in the kernel on the socket's own \
cgroup v2 (PATH or any cgroup below it) and network namespace (a path such as \
/run/netns/NAME or /proc/PID/ns/net, or an inode number), not on the task on the CPU, so \
they hold in softirq context and for accepted sockets.",
        "Added: --owner prints the socket's owner as PID and COMM (the process that called \
connect() or listen() on it, or on the listener it was accepted from; - where it is not \
known: sockets opened before the tool started, or kernels before 5.12, where --owner \
exits 1), and --show-cgroup adds a CGROUP column with the socket's cgroup v2 path.",
        "Output is flushed after each batch of events, so a pipe or the journal sees it at \
once.",
        "Control characters in process names are printed as ?.",
        "The kernel does not run a BPF program on a CPU where it is already running (a \
softirq that interrupts it): a second program on the same tracepoint runs the same code for \
those events. Events neither could run for are reported on standard error (kernel skipped N \
events). With -v the tool names its programs when they are attached.",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, UsageError> {
        let argv = std::iter::once("tcpstates").chain(args.iter().copied());
        Options::try_parse_from(argv)
            .expect("clap accepts")
            .into_config()
    }

    #[test]
    fn port_lists_and_family() {
        let c = config(&["-L", "80,443", "-D80", "-4", "-6"]).unwrap();
        assert_eq!(c.filter.family, crate::net::AF_INET6);
        let ports = |l: &Option<crate::net::PortList>| l.as_ref().map(|l| l.ports().to_vec());
        assert_eq!(ports(&c.filter.local_ports), Some(vec![80, 443]));
        assert_eq!(ports(&c.filter.remote_ports), Some(vec![80]));
        assert_eq!(config(&[]).unwrap().filter, Filter::default());
    }

    #[test]
    fn bad_port_lists_are_usage_errors() {
        for (args, message) in [
            (&["-L", "80abc"][..], "Invalid ports: 80abc"),
            (&["-D", "0"][..], "Invalid ports: 0"),
            (&["-L", ","][..], "Invalid ports: ,"),
        ] {
            assert_eq!(config(args), Err(UsageError::new(message)), "{args:?}");
        }
    }
}
