//! tcpstates' command line, validated into a Config, and the prose of its man page: the one
//! definition that the tool parses with and that the man page and completions come from.

use clap::Args;

use super::bpf::Filter;
use super::print::{Format, JSON_FIELDS};
use crate::cli::{IntoConfig, ManPage, PortFlags, TraceFlags, UsageError};
use crate::container::ContainerArgs;

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

#[derive(Args)]
pub struct Options {
    #[command(flatten)]
    pub shared: TraceFlags,
    #[command(flatten)]
    pub ports: PortFlags,
    /// Include timestamp on output
    ///
    /// A leading wall-clock HH:MM:SS column (bcc labels it TIME(s)).
    #[arg(short = 'T', long = "timestamp")]
    pub timestamp: bool,
    /// Include seconds since the first printed event on output
    ///
    /// A leading column of seconds since the first printed event (%-9.6f), from bcc's Python
    /// tool.
    #[arg(short = 't', long = "seconds")]
    pub seconds: bool,
    /// Comma separated values output
    ///
    /// bcc Python's CSV layout (overrides -w), with its header; a field holding a comma or a
    /// quote is quoted as RFC 4180 says.
    #[arg(short = 's', long = "csv")]
    pub csv: bool,
    /// Also log each state change to the systemd journal
    ///
    /// Each change also goes to the systemd journal with bcc Python's fields; without
    /// journald the tool exits 1 saying so.
    #[arg(short = 'Y', long = "journal")]
    pub journal: bool,
    /// Wide column output (fits IPv6 addresses)
    ///
    /// The wide layout: an IP version column and 39-character address columns.
    #[arg(short = 'w', long = "wide")]
    pub wide: bool,
    /// Show the socket's owner (the process that connected or listened) as PID and COMM
    ///
    /// PID and COMM show the socket's owner: the process that called connect() (at CLOSE ->
    /// SYN_SENT) or listen() (at CLOSE -> LISTEN) on it, or on the listener it was accepted
    /// from; - where it is not known (sockets opened before the tool started). Needs the tp_btf
    /// programs, which keep it in socket storage (Linux 5.12 or later): elsewhere the tool
    /// exits 1.
    #[arg(long = "owner")]
    pub owner: bool,
    /// Add a CGROUP column: the socket's cgroup v2 path
    ///
    /// A trailing CGROUP column (with -s, a trailing field): the socket's cgroup v2 path from
    /// the hierarchy's root, or its id where the cgroup is gone.
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
}

impl IntoConfig for Options {
    type Config = Config;
    const MAN: &'static ManPage = &MAN;

    fn into_config(self) -> Result<Config, UsageError> {
        let shared = self.shared;
        let ports = self.ports.into_filter()?;
        Ok(Config {
            filter: Filter {
                family: shared.family.family(),
                local_ports: ports.local,
                remote_ports: ports.remote,
            },
            container: shared.container.into_args()?,
            format: Format {
                clock: self.timestamp,
                seconds: self.seconds,
                wide: self.wide,
                csv: self.csv,
                json: shared.json,
                owner: self.owner,
                cgroup: self.show_cgroup,
                pod: self.show_pod,
            },
            journal: self.journal,
        })
    }
}

/// What to trace and how to print it, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub filter: Filter,
    pub container: ContainerArgs,
    pub format: Format,
    /// `-Y`: also send each change to the systemd journal.
    pub journal: bool,
}

/// The man page's prose.
pub const MAN: ManPage = ManPage {
    name: "tcpstates",
    about: "Trace TCP session state changes and durations.",
    long_about: None,
    usage: "tcpstates [-4] [-6] [-T] [-t] [-w] [-s] [-Y] [--json] [-L lport] [-D dport] [-c PATH] [--netns NS] [--owner] [--show-cgroup] [--show-pod] [--k8s-namespace NS] [--pod [NS/]NAME] [--container NAME]",
    examples: EXAMPLES,
    json_fields: JSON_FIELDS,
    json_names: true,
    metrics: None,
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
        "IPv6 addresses of any length are printed in full; the -w address columns are 39 \
wide, as in bcc at HEAD (Debian's libbpf-tools 0.26: 26).",
        "A TCP state number with no name prints as its decimal number, not (null).",
        "Added from bcc's Python tool: -t/--seconds (seconds since the first printed event), \
-s/--csv (its CSV header and rows; a field holding a comma or quote is quoted as RFC 4180 \
says) and -Y/--journal (each event also goes to the systemd journal with its field names).",
        "Added: -4/-6 family filters (the last one given wins) and --json (one JSON object \
per event, times in RFC 3339, with the socket's netns inode and cgroup path, and \
owner_pid/owner_comm where the owner is known).",
        "Added: --owner prints the socket's owner as PID and COMM (the process that called \
connect() or listen() on it, or on the listener it was accepted from; - where it is not \
known: sockets opened before the tool started, or kernels before 5.12, where --owner \
exits 1), and --show-cgroup adds a CGROUP column with the socket's cgroup v2 path.",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::config_of;

    #[test]
    fn port_lists_and_family() {
        let c = config_of::<Options>(&["-L", "80,443", "-D80", "-4", "-6"]).unwrap();
        assert_eq!(c.filter.family, crate::net::AF_INET6);
        let ports = |l: &Option<crate::net::PortList>| l.as_ref().map(|l| l.ports().to_vec());
        assert_eq!(ports(&c.filter.local_ports), Some(vec![80, 443]));
        assert_eq!(ports(&c.filter.remote_ports), Some(vec![80]));
        assert_eq!(config_of::<Options>(&[]).unwrap().filter, Filter::default());
    }

    #[test]
    fn bad_port_lists_are_usage_errors() {
        for (args, message) in [
            (&["-L", "80abc"][..], "Invalid ports: 80abc"),
            (&["-D", "0"][..], "Invalid ports: 0"),
            (&["-L", ","][..], "Invalid ports: ,"),
        ] {
            assert_eq!(
                config_of::<Options>(args),
                Err(UsageError::new(message)),
                "{args:?}"
            );
        }
    }
}
