//! tcptools-exporter's command line.

use clap::{ArgAction, Parser};

/// Examples shown by `--help`.
pub const EXAMPLES: &str = "EXAMPLES:
    tcptools-exporter                          # serve http://127.0.0.1:9435/metrics
    tcptools-exporter --listen 0.0.0.0:9435    # serve on every address
    tcptools-exporter -L 80,443                # count sockets of local ports 80 and 443 only
    tcptools-exporter -D 5432                  # count connections to remote port 5432 only";

#[derive(Parser)]
#[command(
    name = "tcptools-exporter",
    version,
    about = "Serve TCP state changes, connect latency and RTT as Prometheus metrics.",
    long_about = "Serve TCP state changes, connect latency and RTT as Prometheus metrics.\n\n\
        Loads the BPF programs of tcpstates, tcpconnlat and tcprtt and serves cumulative \
        counters and histograms at GET /metrics. Labels: family, and old_state/new_state or \
        state; there are no per-address or per-port labels.",
    after_help = EXAMPLES,
    disable_help_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
pub struct Options {
    /// Address and port to serve /metrics on
    #[arg(
        short = 'l',
        long = "listen",
        value_name = "ADDR",
        default_value = super::DEFAULT_LISTEN
    )]
    pub listen: String,
    /// Count only sockets whose local port is in this comma-separated list
    #[arg(
        short = 'L',
        long = "localport",
        value_name = "LPORT",
        allow_hyphen_values = true
    )]
    pub localport: Option<String>,
    /// Count only sockets whose remote port is in this comma-separated list
    #[arg(
        short = 'D',
        long = "remoteport",
        value_name = "DPORT",
        allow_hyphen_values = true
    )]
    pub remoteport: Option<String>,
    /// Verbose debug output
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Give this help list
    #[arg(short = 'h', long = "help", short_alias = '?', action = ArgAction::Help)]
    pub help: Option<bool>,
}
