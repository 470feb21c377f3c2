//! tcptools-exporter's command line, validated into a Config.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser};

use crate::cli::{self, IntoConfig, ManPage, UsageError};
use crate::net::PortFilter;

/// Examples shown by `--help`.
pub const EXAMPLES: &str = "EXAMPLES:
    tcptools-exporter                          # serve http://127.0.0.1:9435/metrics
    tcptools-exporter --listen 0.0.0.0:9435    # serve on every address
    tcptools-exporter -L 80,443                # count sockets of local ports 80 and 443 only
    tcptools-exporter -D 5432                  # count connections to remote port 5432 only
    tcptools-exporter --web.config.file web.yml # TLS and basic auth (exporter-toolkit format)";

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
        visible_alias = "web.listen-address",
        value_name = "ADDR",
        default_value = super::DEFAULT_LISTEN
    )]
    pub listen: String,
    /// TLS and basic auth settings, in the Prometheus exporter-toolkit's web config format
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
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

/// The command line as clap sees it (for the man page and completions).
pub fn command() -> clap::Command {
    Options::command()
}

/// The man page's prose.
pub const MAN: ManPage = ManPage {
    description: "tcptools-exporter loads the BPF programs of tcpstates, tcpconnlat and tcprtt \
once and serves what they measure as Prometheus metrics: tcp_state_transitions_total \
(family, old_state, new_state), tcp_state_duration_seconds (family, state; only states \
whose start it saw), tcp_connect_latency_seconds and tcp_rtt_seconds (family), all \
cumulative from start and never reset. Histogram buckets are the log2 slots of bcc's \
tools: le is each slot's inclusive upper bound, in seconds.\n\
Its own losses are metrics too: tcptools_exporter_events_lost_total (records the kernel \
could not hand over), tcptools_exporter_events_skipped_total (program runs the kernel \
skipped) and tcptools_exporter_events_malformed_total. Each scrape first counts every \
record already in the buffers, so a scrape sees everything that happened before it.\n\
It answers GET (and HEAD) /metrics, gzip-compressed when the client accepts it, and a \
landing page at /; other paths are 404, other methods 405. Connections are served \
concurrently, at most 64 at once, each bounded: 10 s for a TLS handshake and for each \
request head (of at most 8 KiB; also the longest idle keep-alive), 30 s from a request \
to its response taken; request bodies are ignored.\n\
--web.config.file takes the Prometheus exporter-toolkit's web config file: \
tls_server_config (cert_file, key_file, client_ca_file, client_auth_type, min_version, \
max_version) for HTTPS with optional client certificates, and basic_auth_users (user \
name to bcrypt hash). It is read and checked at startup; a key it does not support, or a \
certificate, key or hash it cannot use, stops it with one line naming the key. An empty \
file means plain HTTP without authentication.\n\
It runs until SIGINT or SIGTERM.",
    tracepoints: "sock:inet_sock_set_state and tcp:tcp_probe",
    event_stream: true,
    differences: &[],
};

/// Where to serve and what to count, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub web_config_file: Option<PathBuf>,
    pub ports: PortFilter,
    pub verbose: bool,
}

impl IntoConfig for Options {
    type Config = Config;

    fn into_config(self) -> Result<Config, UsageError> {
        let listen = self
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| UsageError::new(format!("invalid listen address: {}", self.listen)))?;
        Ok(Config {
            listen,
            web_config_file: self.web_config_file,
            ports: PortFilter {
                local: cli::port_list(self.localport)?,
                remote: cli::port_list(self.remoteport)?,
            },
            verbose: self.verbose,
        })
    }

    fn verbose(config: &Config) -> bool {
        config.verbose
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, UsageError> {
        let argv = std::iter::once("tcptools-exporter").chain(args.iter().copied());
        Options::try_parse_from(argv)
            .expect("clap accepts")
            .into_config()
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(config(&[]).unwrap().listen.to_string(), "127.0.0.1:9435");
        assert_eq!(
            config(&["-l", "[::1]:80"]).unwrap().listen.to_string(),
            "[::1]:80"
        );
        assert_eq!(
            config(&["--web.listen-address", "0.0.0.0:9100"])
                .unwrap()
                .listen
                .to_string(),
            "0.0.0.0:9100"
        );
        for bad in ["localhost:80", "127.0.0.1", "1.2.3.4:99999", ""] {
            let err = config(&["-l", bad]).unwrap_err();
            assert_eq!(
                err,
                UsageError::new(format!("invalid listen address: {bad}"))
            );
        }
    }

    /// The man page states the HTTP bounds; they must be the server's.
    #[test]
    fn man_page_states_the_http_bounds() {
        use crate::exporter::http;
        let prose = MAN
            .description
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let secs = |d: std::time::Duration| d.as_secs();
        for fact in [
            format!("at most {} at once", http::MAX_CONNECTIONS),
            format!(
                "{} s for a TLS handshake",
                secs(http::TLS_HANDSHAKE_TIMEOUT)
            ),
            format!(
                "{} s for a TLS handshake and for each request head",
                secs(http::HEADER_READ_TIMEOUT)
            ),
            format!("(of at most {} KiB;", http::MAX_HEADER_BYTES / 1024),
            format!(
                "{} s from a request to its response taken",
                secs(http::RESPONSE_TIMEOUT)
            ),
        ] {
            assert!(prose.contains(&fact), "MAN lacks {fact:?}");
        }
    }

    #[test]
    fn web_config_file() {
        assert_eq!(config(&[]).unwrap().web_config_file, None);
        let c = config(&["--web.config.file", "/etc/web.yml"]).unwrap();
        assert_eq!(c.web_config_file, Some(PathBuf::from("/etc/web.yml")));
    }

    #[test]
    fn port_lists() {
        let c = config(&["-L", "80,443", "-D", "5432"]).unwrap();
        let socket = |lport, rport| crate::net::Endpoints {
            lport,
            rport,
            ..Default::default()
        };
        assert!(c.ports.allows(&socket(443, 5432)));
        assert!(!c.ports.allows(&socket(22, 5432)));
        let err = config(&["-D", "x"]).unwrap_err();
        assert_eq!(err, UsageError::new("Invalid ports: x"));
    }
}
