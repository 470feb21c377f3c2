//! tcptools-exporter's command line, validated into a Config.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::metrics::GroupedHists;
use crate::cli::{CommonFlags, IntoConfig, ManPage, PortFlags, UsageError};
use crate::net::PortFilter;
use crate::runtime::Endpoint;

/// Examples shown by `--help`.
pub const EXAMPLES: &str = "EXAMPLES:
    tcptools-exporter                          # serve http://127.0.0.1:10187/metrics
    tcptools-exporter --listen :10187          # serve on every address, IPv4 and IPv6
    tcptools-exporter -l 127.0.0.1:10187 -l [::1]:10187 # serve on two addresses
    tcptools-exporter --web.systemd-socket     # serve on the socket systemd passes
    tcptools-exporter --web.telemetry-path /tcp # serve the metrics at /tcp
    tcptools-exporter -L 80,443                # count sockets of local ports 80 and 443 only
    tcptools-exporter -D 5432                  # count connections to remote port 5432 only
    tcptools-exporter --group-by cgroup        # label every TCP metric with the socket's cgroup
    tcptools-exporter --group-by netns --max-groups 20 # 20 namespaces labeled, the rest \"other\"
    tcptools-exporter --group-by pod           # namespace=\"NS\",pod=\"NAME\" from the node's runtime
    tcptools-exporter --web.config.file web.yml # TLS and basic auth (exporter-toolkit format)";

#[derive(Args)]
pub struct Options {
    /// Address and port to serve on; repeat to serve on several (default 127.0.0.1:10187)
    ///
    /// IP:PORT, [IPV6]:PORT, HOST:PORT (the name resolved at start) or :PORT for every
    /// address (IPv4 and IPv6), as node_exporter takes them; repeat it to serve on several
    /// addresses, all from one server. --web.listen-address is the same option. Default
    /// 127.0.0.1:10187.
    #[arg(
        short = 'l',
        long,
        visible_alias = "web.listen-address",
        value_name = "ADDR",
        action = clap::ArgAction::Append
    )]
    pub listen: Vec<String>,
    /// Serve on the sockets systemd passes (socket activation) instead of binding
    ///
    /// Serve on the listening sockets systemd passes (LISTEN_FDS, LISTEN_PID: socket
    /// activation, e.g. contrib/tcptools-exporter.socket) instead of binding any; as with
    /// node_exporter, --web.listen-address is then not used. It fails if systemd passed
    /// none, or a socket that is not a listening TCP socket.
    #[arg(long = "web.systemd-socket")]
    pub systemd_socket: bool,
    /// Path under which to serve the metrics (default /metrics)
    ///
    /// The path of the metrics (default /metrics): an absolute path of letters, digits and
    /// / - _ . ~, other than /, /-/healthy and /-/ready. The landing page at / links to it.
    #[arg(long = "web.telemetry-path", value_name = "PATH")]
    pub telemetry_path: Option<String>,
    /// TLS and basic auth settings, in the Prometheus exporter-toolkit's web config format
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    #[command(flatten)]
    pub ports: PortFlags,
    /// Label every TCP metric with the socket's cgroup v2 path, network namespace inode, or Kubernetes namespace, pod or container
    ///
    /// Every TCP metric also carries cgroup="/path" (the socket's cgroup v2 path),
    /// netns="INODE" (its network namespace inode), or the names the node's container
    /// runtime gives the socket's cgroup: namespace="NS" (namespace), namespace and
    /// pod="NAME" (pod), or namespace, pod and container="NAME" (container). Sockets in no
    /// pod have empty values, but for a Docker or podman container's name in container=; a
    /// pod the runtime does not name is labeled by its uid in pod= (container= by the
    /// container's id), with namespace="".
    #[arg(
        long = "group-by",
        value_name = "KIND",
        value_parser = ["cgroup", "netns", "namespace", "pod", "container"]
    )]
    pub group_by: Option<String>,
    /// With --group-by: the number of groups labeled (the busiest first seen); the rest are summed into "other"
    ///
    /// With --group-by: at most N groups get a label of their own (default 100, at most
    /// 10000), the busiest at the scrape that first sees them, for the exporter's lifetime;
    /// the rest are summed into a group whose labels are all "other". A group is a cgroup,
    /// a network namespace, or a set of names (a namespace, a pod, a container).
    #[arg(long = "max-groups", value_name = "N")]
    pub max_groups: Option<String>,
    /// With --group-by: the histograms kept per group, of rtt, connect and state (default all), or none; the others node-wide
    ///
    /// With --group-by: the histograms kept per group, comma-separated: rtt
    /// (tcp_rtt_seconds), connect (tcp_connect_latency_seconds), state
    /// (tcp_state_duration_seconds); none for none. The default is all three. The others
    /// are kept for the whole node, without group labels: --group-histograms connect keeps
    /// a pod's connect latencies, but its RTT and the durations of its states go to the
    /// node's, a fifth of the series a busy group adds in the text format.
    #[arg(long = "group-histograms", value_name = "KINDS")]
    pub group_histograms: Option<String>,
    /// With --group-by namespace, pod or container: where to ask for names: auto, none or unix:///PATH
    ///
    /// With --group-by namespace, pod or container: the container runtime to ask for names
    /// of pods and containers, never the API server. auto (the default) asks the runtimes'
    /// usual sockets that exist (CRI: containerd, CRI-O; the Docker-compatible API:
    /// Docker, podman); unix:///PATH that CRI socket (crictl's form); none asks nothing, so
    /// pods are labeled by uid (not with --group-by namespace). A runtime that does not
    /// answer is reported once on stderr and by tcptools_exporter_runtime_up; the exporter
    /// keeps serving.
    #[arg(long = "runtime-endpoint", value_name = "ENDPOINT")]
    pub runtime_endpoint: Option<String>,
    #[command(flatten)]
    pub common: CommonFlags,
}

/// The man page's prose.
pub const MAN: ManPage = ManPage {
    name: "tcptools-exporter",
    about: "Serve TCP state changes, connect latency and RTT as Prometheus metrics.",
    long_about: Some(
        "Serve TCP state changes, connect latency and RTT as Prometheus metrics.\n\n\
        Loads the BPF programs of tcpstates, tcpconnlat and tcprtt and serves cumulative \
        counters and histograms at GET /metrics. Labels: family, and old_state/new_state or \
        state; there are no per-address or per-port labels.",
    ),
    // clap's own usage line.
    usage: "tcptools-exporter [OPTIONS]",
    examples: EXAMPLES,
    json_fields: &[],
    json_names: false,
    metrics: Some(super::exposition::families_served),
    description: "tcptools-exporter counts TCP state changes, connect outcomes and latency, \
time spent in states and RTTs in the kernel: one BPF program on sock:inet_sock_set_state and \
one on tcp:tcp_probe add to per-CPU counters and histograms, and a scrape reads and \
sums them. No per-event record reaches user space, so none is lost. Metrics: \
tcp_state_transitions_total (family, old_state, new_state), tcp_state_duration_seconds \
(family, state; only states whose start it saw), tcp_connect_attempts_total (family, outcome: \
established, refused, timeout, other), tcp_connect_latency_seconds (family, outcome: \
established, refused) and tcp_rtt_seconds (family), all cumulative from start and never \
reset.\n\
Histograms are bucketed in the kernel on the grid of Prometheus' native histograms, schema \
1 (bounds 2^(k/2) seconds, from 2^-20 s to 2^16 s). A scraper that accepts \
application/vnd.google.protobuf with proto=io.prometheus.client.MetricFamily and \
encoding=delimited (Prometheus with native histograms on) gets the protobuf format with native histograms; \
any other the text format, whose le bounds are every fourth native bound: powers of 4 \
seconds, up to 64 for RTT and connect latency and 65536 for state durations. \
tcptools_exporter_series counts the series of each scrape. With --group-by, \
--group-histograms chooses the histograms kept per group; the others are kept for the \
node, without group labels: the durations of states are most of a group's series.\n\
With --group-by cgroup or netns every TCP metric also carries cgroup=\"/path\" or \
netns=\"INODE\", taken from the socket; the --max-groups busiest groups (at the scrape that \
first sees them) keep a label for the exporter's lifetime, the rest are summed into \
\"other\", so no series ever goes down.\n\
With --group-by namespace, pod or container the kernel still counts by cgroup (with \
namespace and pod by the parent of the socket's cgroup: a container's pod cgroup, which \
outlives the container, so a container that ends before a scrape is still counted in its \
pod; with container by the socket's own cgroup), and each cgroup is named by the node's \
container runtime (--runtime-endpoint; never the API server) at the first scrape that sees \
it: namespace=\"NS\"; namespace and pod=\"NAME\"; or namespace, pod and \
container=\"NAME\". A group is then a set of names: a pod's containers are summed into \
it, and a restarted container's counts stay in it, so its counters never go down; it ends \
when its cgroups are gone and its pod's cgroup too. Sockets in no pod have \
empty names (a Docker or podman container has its name in container=); a pod the runtime \
does not name has namespace=\"\" and its uid in pod=, an unnamed container its id in \
container=, for the cgroup's lifetime. A runtime that does not answer is one line on stderr \
and tcptools_exporter_runtime_up 0; the metrics are still served. Prometheus' Kubernetes \
discovery adds its own namespace, pod and container labels: scrape with honor_labels: true \
(honorLabels in a ServiceMonitor), or these labels become exported_namespace and so on.\n\
Its own cost and losses are metrics too: tcptools_exporter_bpf_runs_total and \
tcptools_exporter_bpf_run_seconds_total per program (the kernel's run-time statistics: \
with CAP_SYS_ADMIN on for its lifetime only, else while the kernel.bpf_stats_enabled sysctl \
is 1; tcptools_exporter_bpf_stats_enabled says which), tcptools_exporter_events_skipped_total \
(runs the kernel skipped), map fill, the maps' kernel memory \
(tcptools_exporter_map_memory_bytes) and group overflow, scrape duration and errors, HTTP \
responses by code, connections shed at the bound, tcptools_exporter_build_info (version, git \
revision, rustc version, target) and process_* CPU and memory.\n\
State start times live in a slot table of 65536 sockets and, beyond a full bucket of it, in \
socket storage on Linux 5.12 or later (tp_btf), else (raw_tp, as on Linux 5.10) in a fixed \
table of 16384 sockets (TCPTOOLS_RAW_TP=1 forces it).\n\
It listens on every --web.listen-address (127.0.0.1:10187 by default; :PORT is every \
address, IPv4 and IPv6), or with --web.systemd-socket on the sockets systemd passes \
(socket activation; contrib/tcptools-exporter.socket), all served by one server. It \
answers GET (and HEAD) at --web.telemetry-path (/metrics by default), gzip-compressed \
when the client accepts it, a landing page at / that links to it, and the probes \
/-/healthy (200 while it serves) and /-/ready (200 once its BPF programs are loaded, 503 \
before), which need no authentication and make no scrape; other paths are 404, other \
methods 405. A scrape that fails is one line on stderr, a 500 and \
tcptools_exporter_scrape_errors_total; it keeps serving. Connections are served \
concurrently, at most 1024 at once (fewer if the open-file limit, raised to its hard \
limit at start, is lower): a new one takes the place of the one that has waited longest \
for a request, so held or idle connections cannot lock a scrape out; at most 40 scrapes \
are answered at once (more get 503). Each connection is bounded: 10 s for a TLS handshake \
and for each request head (of at most 8 KiB; also the longest idle keep-alive), 30 s from \
a request to its response taken; request bodies are ignored.\n\
--web.config.file takes the Prometheus exporter-toolkit's web config file, every key of it: \
tls_server_config (cert_file, key_file, client_ca_file, client_auth_type, \
client_allowed_sans, min_version, max_version, cipher_suites, curve_preferences, \
prefer_server_cipher_suites) for HTTPS with optional client certificates, basic_auth_users \
(user name to bcrypt hash), http_server_config (http2 over TLS by ALPN, on by default; \
headers added to every response) and rate_limit (interval and burst of one token bucket; \
429 when it is empty). What rustls cannot do exactly (CBC suites, P-521) is left out and \
-v says what is used instead. It is checked at startup: an unknown key, or a certificate, \
key or hash it cannot use, stops it with one line naming the key. An empty file means \
plain HTTP without authentication. The file and the certificate, key and CA files it \
names are looked at once a second and loaded again when they changed; a new file that \
does not load leaves the last good one serving, with one stderr line, and counts in \
tcptools_exporter_web_config_reload_failures_total.\n\
It runs until SIGINT or SIGTERM.",
    tracepoints: "sock:inet_sock_set_state and tcp:tcp_probe",
    event_stream: false,
    slot_table: true,
    differences: &[],
};

/// What the TCP metrics are labeled with besides family and states. The kernel groups by
/// cgroup id, the id of the cgroup's parent, or network namespace inode (`enum group_by`,
/// bpf/exporter.h); namespace, pod and container are names of that cgroup, given in user
/// space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    None,
    /// `cgroup="/path"`: the socket's cgroup v2.
    Cgroup,
    /// `netns="INODE"`: the socket's network namespace.
    Netns,
    /// `namespace="NS"`: the Kubernetes namespace of the socket's pod.
    Namespace,
    /// `namespace`, `pod="NAME"`: the socket's pod.
    Pod,
    /// `namespace`, `pod`, `container="NAME"`: the socket's container.
    Container,
}

impl GroupBy {
    /// The labels' names, in the order the series carry them.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            GroupBy::None => &[],
            GroupBy::Cgroup => &["cgroup"],
            GroupBy::Netns => &["netns"],
            GroupBy::Namespace => &["namespace"],
            GroupBy::Pod => &["namespace", "pod"],
            GroupBy::Container => &["namespace", "pod", "container"],
        }
    }

    /// Whether the kernel keys this kind's groups by a cgroup id: the socket's cgroup's, or
    /// with namespace and pod its parent's.
    pub fn by_cgroup(self) -> bool {
        matches!(
            self,
            GroupBy::Cgroup | GroupBy::Namespace | GroupBy::Pod | GroupBy::Container
        )
    }

    /// Whether the labels are names from the container runtime.
    pub fn named(self) -> bool {
        matches!(self, GroupBy::Namespace | GroupBy::Pod | GroupBy::Container)
    }
}

/// `--max-groups` when not given.
pub const DEFAULT_MAX_GROUPS: usize = 100;
/// The most `--max-groups` accepts: each group costs kernel map room (see collect.rs).
pub const MAX_MAX_GROUPS: usize = 10_000;

/// Where to serve and what to count, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen, in the order given; not used with `systemd_socket`.
    pub listen: Vec<ListenAddress>,
    /// `--web.systemd-socket`: serve on the sockets systemd passes.
    pub systemd_socket: bool,
    /// Where the metrics are served, `/metrics` by default.
    pub telemetry_path: String,
    pub web_config_file: Option<PathBuf>,
    pub ports: PortFilter,
    pub group_by: GroupBy,
    pub max_groups: usize,
    /// With --group-by, the histograms kept per group.
    pub grouped_hists: GroupedHists,
    /// Where names come from, with a [`GroupBy::named`] kind.
    pub runtime: Endpoint,
    /// `-v`.
    pub verbose: bool,
}

/// `--web.telemetry-path` when not given.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";

/// A `--web.listen-address`, in one of node_exporter's forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddress {
    /// `IP:PORT` or `[IPV6]:PORT`.
    Socket(SocketAddr),
    /// `:PORT`: every address, IPv4 and IPv6.
    Every(u16),
    /// `HOST:PORT`: the name's first address, resolved at start.
    Host(String, u16),
}

impl ListenAddress {
    /// Parses one argument; `None` if it is none of the forms.
    pub fn parse(arg: &str) -> Option<ListenAddress> {
        if let Some(port) = arg.strip_prefix(':') {
            return port.parse().ok().map(ListenAddress::Every);
        }
        if let Ok(addr) = arg.parse::<SocketAddr>() {
            return Some(ListenAddress::Socket(addr));
        }
        let (host, port) = arg.rsplit_once(':')?;
        let name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if host.is_empty() || !host.chars().all(name) {
            return None;
        }
        Some(ListenAddress::Host(host.to_owned(), port.parse().ok()?))
    }
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::Socket(addr) => write!(f, "{addr}"),
            ListenAddress::Every(port) => write!(f, ":{port}"),
            ListenAddress::Host(host, port) => write!(f, "{host}:{port}"),
        }
    }
}

/// `--web.listen-address`, every one given, or the default.
fn listen_addresses(args: Vec<String>) -> Result<Vec<ListenAddress>, UsageError> {
    if args.is_empty() {
        let default = ListenAddress::parse(super::DEFAULT_LISTEN).expect("a valid default");
        return Ok(vec![default]);
    }
    let parse = |arg: String| {
        ListenAddress::parse(&arg)
            .ok_or_else(|| UsageError::new(format!("invalid listen address: {arg}")))
    };
    args.into_iter().map(parse).collect()
}

/// `--web.telemetry-path`: absolute, of characters that need no escaping in a URL or in
/// the landing page's link, and not a path the exporter serves otherwise.
fn telemetry_path(arg: Option<String>) -> Result<String, UsageError> {
    let Some(path) = arg else {
        return Ok(DEFAULT_TELEMETRY_PATH.to_owned());
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "/-_.~".contains(c);
    let reserved = ["/", "/-/healthy", "/-/ready"].contains(&path.as_str());
    if !path.starts_with('/') || !path.chars().all(plain) || reserved {
        return Err(UsageError::new(format!(
            "invalid --web.telemetry-path: {path} (an absolute path other than /, /-/healthy and /-/ready, of letters, digits and / - _ . ~)"
        )));
    }
    Ok(path)
}

fn group_by(kind: Option<&str>) -> GroupBy {
    match kind {
        Some("cgroup") => GroupBy::Cgroup,
        Some("netns") => GroupBy::Netns,
        Some("namespace") => GroupBy::Namespace,
        Some("pod") => GroupBy::Pod,
        Some("container") => GroupBy::Container,
        _ => GroupBy::None,
    }
}

/// `--runtime-endpoint`: only where names are asked for, and never `none` for namespaces,
/// which only the runtime knows (pods and containers fall back on their uid and id).
fn runtime(arg: Option<String>, group_by: GroupBy) -> Result<Endpoint, UsageError> {
    let Some(arg) = arg else {
        return Ok(Endpoint::Auto);
    };
    if !group_by.named() {
        return Err(UsageError::new(
            "--runtime-endpoint needs --group-by namespace, pod or container",
        ));
    }
    let endpoint = Endpoint::parse(&arg)?;
    if endpoint == Endpoint::None && group_by == GroupBy::Namespace {
        return Err(UsageError::new(
            "--group-by namespace needs a runtime: --runtime-endpoint none names no namespace",
        ));
    }
    Ok(endpoint)
}

fn max_groups(arg: Option<String>, group_by: GroupBy) -> Result<usize, UsageError> {
    let Some(arg) = arg else {
        return Ok(DEFAULT_MAX_GROUPS);
    };
    if group_by == GroupBy::None {
        return Err(UsageError::new("--max-groups needs --group-by"));
    }
    match arg.parse::<usize>() {
        Ok(n) if (1..=MAX_MAX_GROUPS).contains(&n) => Ok(n),
        _ => Err(UsageError::new(format!(
            "invalid --max-groups: {arg} (1 to {MAX_MAX_GROUPS})"
        ))),
    }
}

fn grouped_hists(arg: Option<String>, group_by: GroupBy) -> Result<GroupedHists, UsageError> {
    let Some(arg) = arg else {
        return Ok(GroupedHists::ALL);
    };
    if group_by == GroupBy::None {
        return Err(UsageError::new("--group-histograms needs --group-by"));
    }
    GroupedHists::parse(&arg).ok_or_else(|| {
        UsageError::new(format!(
            "invalid --group-histograms: {arg} (rtt, connect, state, comma-separated, or none)"
        ))
    })
}

impl IntoConfig for Options {
    type Config = Config;
    const MAN: &'static ManPage = &MAN;

    fn into_config(self) -> Result<Config, UsageError> {
        let group_by = group_by(self.group_by.as_deref());
        Ok(Config {
            listen: listen_addresses(self.listen)?,
            systemd_socket: self.systemd_socket,
            telemetry_path: telemetry_path(self.telemetry_path)?,
            web_config_file: self.web_config_file,
            ports: self.ports.into_filter()?,
            group_by,
            max_groups: max_groups(self.max_groups, group_by)?,
            grouped_hists: grouped_hists(self.group_histograms, group_by)?,
            runtime: runtime(self.runtime_endpoint, group_by)?,
            verbose: self.common.verbose,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::config_of;

    #[test]
    fn listen_addresses() {
        let listen = |args: &[&str]| -> Vec<String> {
            let config = config_of::<Options>(args).unwrap();
            config.listen.iter().map(ToString::to_string).collect()
        };
        assert_eq!(listen(&[]), ["127.0.0.1:10187"]);
        assert_eq!(listen(&["-l", "[::1]:80"]), ["[::1]:80"]);
        assert_eq!(
            listen(&["--web.listen-address", "0.0.0.0:9100"]),
            ["0.0.0.0:9100"]
        );
        let many = listen(&[
            "--web.listen-address",
            ":10187",
            "-l",
            "localhost:80",
            "--listen",
            "[::]:1",
        ]);
        assert_eq!(many, [":10187", "localhost:80", "[::]:1"]);
        assert_eq!(
            ListenAddress::parse(":10187"),
            Some(ListenAddress::Every(10187))
        );
        assert_eq!(
            ListenAddress::parse("node-1.example:80"),
            Some(ListenAddress::Host("node-1.example".into(), 80))
        );
        for bad in [
            "127.0.0.1",
            "1.2.3.4:99999",
            "",
            ":",
            ":x",
            "::1:80",
            "a b:80",
            "[::1]",
            "localhost:",
        ] {
            let err = config_of::<Options>(&["-l", bad]).unwrap_err();
            assert_eq!(
                err,
                UsageError::new(format!("invalid listen address: {bad}"))
            );
        }
    }

    #[test]
    fn systemd_socket_and_telemetry_path() {
        let c = config_of::<Options>(&[]).unwrap();
        assert_eq!(
            (c.systemd_socket, c.telemetry_path.as_str()),
            (false, "/metrics")
        );
        let c = config_of::<Options>(&["--web.systemd-socket", "--web.telemetry-path", "/x/m_1"]);
        let c = c.unwrap();
        assert_eq!(
            (c.systemd_socket, c.telemetry_path.as_str()),
            (true, "/x/m_1")
        );
        for bad in [
            "",
            "metrics",
            "/",
            "/-/healthy",
            "/-/ready",
            "/a b",
            "/a?b",
            "/\"a",
        ] {
            let err = config_of::<Options>(&["--web.telemetry-path", bad]).unwrap_err();
            let want = format!("invalid --web.telemetry-path: {bad} (an absolute path other than /, /-/healthy and /-/ready, of letters, digits and / - _ . ~)");
            assert_eq!(err, UsageError::new(want), "{bad:?}");
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
            format!("at most {} scrapes", http::MAX_SCRAPES_IN_FLIGHT),
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
        assert_eq!(config_of::<Options>(&[]).unwrap().web_config_file, None);
        let c = config_of::<Options>(&["--web.config.file", "/etc/web.yml"]).unwrap();
        assert_eq!(c.web_config_file, Some(PathBuf::from("/etc/web.yml")));
    }

    #[test]
    fn port_lists() {
        let c = config_of::<Options>(&["-L", "80,443", "-D", "5432"]).unwrap();
        let ports = |list: Option<crate::net::PortList>| list.map(|l| l.ports().to_vec());
        assert_eq!(ports(c.ports.local), Some(vec![80, 443]));
        assert_eq!(ports(c.ports.remote), Some(vec![5432]));
        let err = config_of::<Options>(&["-D", "x"]).unwrap_err();
        assert_eq!(err, UsageError::new("Invalid ports: x"));
    }

    #[test]
    fn groups() {
        let c = config_of::<Options>(&[]).unwrap();
        assert_eq!(
            (c.group_by, c.max_groups),
            (GroupBy::None, DEFAULT_MAX_GROUPS)
        );
        let c = config_of::<Options>(&["--group-by", "cgroup", "--max-groups", "3"]).unwrap();
        assert_eq!((c.group_by, c.max_groups), (GroupBy::Cgroup, 3));
        let c = config_of::<Options>(&["--group-by", "netns"]).unwrap();
        assert_eq!(
            (c.group_by, c.max_groups),
            (GroupBy::Netns, DEFAULT_MAX_GROUPS)
        );
        let err = config_of::<Options>(&["--max-groups", "3"]).unwrap_err();
        assert_eq!(err, UsageError::new("--max-groups needs --group-by"));
        for bad in ["0", "x", "-1", "10001"] {
            let err =
                config_of::<Options>(&["--group-by", "cgroup", "--max-groups", bad]).unwrap_err();
            let want = format!("invalid --max-groups: {bad} (1 to 10000)");
            assert_eq!(err, UsageError::new(want));
        }
    }

    #[test]
    fn named_groups_and_their_runtime() {
        for (kind, want) in [
            ("namespace", GroupBy::Namespace),
            ("pod", GroupBy::Pod),
            ("container", GroupBy::Container),
        ] {
            let c = config_of::<Options>(&["--group-by", kind]).unwrap();
            assert_eq!((c.group_by, c.runtime), (want, Endpoint::Auto));
            assert!(want.by_cgroup() && want.named());
        }
        let c = config_of::<Options>(&["--group-by", "pod", "--runtime-endpoint", "none"]);
        assert_eq!(c.unwrap().runtime, Endpoint::None);
        let sock = "unix:///run/containerd/containerd.sock";
        let c = config_of::<Options>(&["--group-by", "container", "--runtime-endpoint", sock]);
        let want = Endpoint::Cri(PathBuf::from("/run/containerd/containerd.sock"));
        assert_eq!(c.unwrap().runtime, want);
        assert_eq!(
            GroupBy::Container.labels(),
            ["namespace", "pod", "container"]
        );
        assert!(GroupBy::Cgroup.by_cgroup() && !GroupBy::Cgroup.named());
        assert!(!GroupBy::Netns.by_cgroup());
    }

    #[test]
    fn runtime_endpoint_refusals() {
        let needs = "--runtime-endpoint needs --group-by namespace, pod or container";
        for args in [
            &["--runtime-endpoint", "auto"][..],
            &["--group-by", "cgroup", "--runtime-endpoint", "none"],
            &["--group-by", "netns", "--runtime-endpoint", "auto"],
        ] {
            assert_eq!(
                config_of::<Options>(args).unwrap_err(),
                UsageError::new(needs)
            );
        }
        let err = config_of::<Options>(&["--group-by", "namespace", "--runtime-endpoint", "none"]);
        let want =
            "--group-by namespace needs a runtime: --runtime-endpoint none names no namespace";
        assert_eq!(err.unwrap_err(), UsageError::new(want));
        for bad in ["tcp://x", "unix://relative", "", "/"] {
            let err = config_of::<Options>(&["--group-by", "pod", "--runtime-endpoint", bad]);
            let want = format!("invalid runtime endpoint: {bad} (auto, none or unix:///PATH)");
            assert_eq!(err.unwrap_err(), UsageError::new(want), "{bad:?}");
        }
    }
}
