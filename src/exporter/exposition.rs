//! tcptools-exporter's metric families, encoded in the Prometheus text format (0.0.4) by
//! the `prometheus` crate, or in the protobuf format with native histograms (protobuf.rs):
//! the TCP metrics of every group, and the exporter's own.

use prometheus::core::Collector as _;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use super::collect::{MapFill, ProgramStats};
use super::http::Serving;
use super::metrics::{Counts, GroupedHists, Hist, HistKind, Outcome, FAMILIES, STATES};
use super::protobuf;
use crate::runtime::Status;
use crate::tcpstates::state_name;

/// The Content-Type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The format a scrape is answered in: the text format, or for a scraper that asks for it
/// (Prometheus with native histograms on) the protobuf format, with native histograms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Protobuf,
}

impl Format {
    /// The format an Accept header asks for: protobuf when it names the delimited
    /// MetricFamily messages with a weight above 0 and no other type weighs more.
    pub fn negotiate(accept: &str) -> Format {
        let (mut protobuf, mut other) = (0f64, 0f64);
        for item in accept.split(',') {
            let mut params = item.split(';').map(str::trim);
            let media = params.next().unwrap_or_default();
            let (mut q, mut proto, mut delimited) = (1f64, false, false);
            for param in params {
                match param.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("q", v)) => q = v.parse().unwrap_or(0.0),
                    Some(("proto", v)) => proto = v == "io.prometheus.client.MetricFamily",
                    Some(("encoding", v)) => delimited = v == "delimited",
                    _ => {}
                }
            }
            if media.eq_ignore_ascii_case("application/vnd.google.protobuf") && proto && delimited {
                protobuf = protobuf.max(q);
            } else {
                other = other.max(q);
            }
        }
        if protobuf > 0.0 && protobuf >= other {
            Format::Protobuf
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE,
            Format::Protobuf => protobuf::CONTENT_TYPE,
        }
    }
}

/// The `family` label value of family index `f` (0 AF_INET, 1 AF_INET6).
pub fn family_label(f: usize) -> &'static str {
    if f == 0 {
        "ipv4"
    } else {
        "ipv6"
    }
}

/// One set of TCP series: a group's (labeled `label="value"` for each of its labels: one
/// for cgroup and netns, up to three for namespace, pod and container), or every socket's
/// (no group label); with --group-histograms, the node's histograms of the kinds not kept
/// per group (no group label, no counters).
pub struct Series<'a> {
    pub group: Vec<(&'static str, String)>,
    pub counts: &'a Counts,
    /// The histograms it shows.
    pub hists: GroupedHists,
    /// Whether it shows the counters.
    pub counters: bool,
}

impl<'a> Series<'a> {
    /// Every metric of `counts`, labeled with `group`.
    pub fn new(group: Vec<(&'static str, String)>, counts: &'a Counts) -> Series<'a> {
        Series {
            group,
            counts,
            hists: GroupedHists::ALL,
            counters: true,
        }
    }

    /// The node-wide histograms of `counts` of the kinds groups do not keep.
    pub fn node_hists(counts: &'a Counts, grouped: GroupedHists) -> Series<'a> {
        let hists = GroupedHists {
            rtt: !grouped.rtt,
            connect: !grouped.connect,
            state: !grouped.state,
        };
        Series {
            group: Vec::new(),
            counts,
            hists,
            counters: false,
        }
    }

    /// Ungrouped series are shown from the start (so that `rate()` sees the first
    /// samples); a group's only once they have counted something.
    fn shows(&self, value: u64) -> bool {
        self.group.is_empty() || value > 0
    }

    fn labels(&self, pairs: &[(&str, String)]) -> Vec<LabelPair> {
        let group = self.group.iter().map(|(n, v)| (*n, v.as_str()));
        let pairs = pairs.iter().map(|(n, v)| (*n, v.as_str()));
        pairs.chain(group).map(label).collect()
    }
}

/// The exporter's own figures.
#[derive(Default)]
pub struct Own {
    pub programs: Vec<(String, ProgramStats)>,
    /// Whether run time and count are kept (BPF_ENABLE_STATS).
    pub stats_enabled: bool,
    pub maps: Vec<MapFill>,
    /// Each BPF map's kernel memory in bytes (its memlock).
    pub map_memory: Vec<(String, u64)>,
    /// Events the kernel skipped a main program for that its catcher counted, and that
    /// nothing counted.
    pub caught: u64,
    pub skipped: u64,
    pub group_overflow: u64,
    pub sockets_untracked: u64,
    /// Groups with a label, and groups summed into "other" (with --group-by).
    pub groups: Option<(usize, usize)>,
    /// The container runtimes' state, with --group-by namespace, pod or container.
    pub runtime: Option<Status>,
    /// How the programs attached: hook and socket storage.
    pub hook: String,
    pub sk_storage: bool,
    /// The HTTP side's figures (none in renders outside a server).
    pub serving: Option<Serving>,
    /// Reloads of the web config file that failed (the last good one served on).
    pub web_config_reload_failures: u64,
}

/// The whole exposition in the text format.
pub fn render(series: &[Series<'_>], own: &Own) -> String {
    String::from_utf8_lossy(&encode(series, own, Format::Text)).into_owned()
}

/// The whole exposition in `format`, with the number of its series.
pub fn encode(series: &[Series<'_>], own: &Own, format: Format) -> Vec<u8> {
    let mut families = tcp_families(series);
    let mut others = own_families(own);
    others.extend(prometheus::process_collector::ProcessCollector::for_self().collect());
    families.extend(others.into_iter().map(|f| (f, Vec::new())));
    // The encoder refuses a family without series (transitions before the first change).
    families.retain(|(f, _)| !f.get_metric().is_empty());
    let counted = families
        .iter()
        .map(|(f, _)| series_in(f, format))
        .sum::<usize>();
    // Itself included.
    families.push((series_family(counted + 1), Vec::new()));
    let mut out = Vec::with_capacity(32 * 1024);
    match format {
        Format::Text => {
            let families: Vec<MetricFamily> = families.into_iter().map(|(f, _)| f).collect();
            // Encoding into memory fails only on a metric family the encoder refuses (a bug).
            if let Err(err) = TextEncoder::new().encode(&families, &mut out) {
                out.extend_from_slice(format!("# encoding failed: {err}\n").as_bytes());
            }
        }
        Format::Protobuf => {
            for (family, hists) in &families {
                protobuf::encode(family, hists, &mut out);
            }
        }
    }
    out
}

/// The series `family` exposes in `format`: in the text format a histogram's are its
/// buckets, `+Inf`, `_sum` and `_count`; a native histogram is one series.
fn series_in(family: &MetricFamily, format: Format) -> usize {
    let metrics = family.get_metric();
    if family.get_field_type() != MetricType::HISTOGRAM || format == Format::Protobuf {
        return metrics.len();
    }
    let text = |m: &Metric| m.get_histogram().get_bucket().len() + 3;
    metrics.iter().map(text).sum()
}

fn series_family(count: usize) -> MetricFamily {
    family(
        "tcptools_exporter_series",
        "Series this scrape exposes, itself included: samples in the text format; in the protobuf format a native histogram is one series.",
        MetricType::GAUGE,
        vec![gauge(vec![], count as f64)],
    )
}

/// Every metric family the exporter can serve but the process_* ones, each as its name,
/// type and label names, and its HELP line: the man page's METRICS.
pub fn families_served() -> Vec<crate::cli::Term> {
    // Something counted everywhere, so that every family has series to take labels from.
    let mut counts = Counts::default();
    counts.counters.fill(1);
    counts.hists.iter_mut().for_each(|hist| hist.slots[0] = 1);
    let own = Own {
        programs: vec![(String::new(), ProgramStats::default())],
        stats_enabled: true,
        maps: vec![MapFill {
            name: "",
            entries: 0,
            capacity: 0,
        }],
        map_memory: vec![(String::new(), 0)],
        groups: Some((0, 0)),
        runtime: Some(Status::default()),
        serving: Some(Serving {
            responses: vec![(200, 0)],
            ..Serving::default()
        }),
        ..Own::default()
    };
    let series = Series::new(Vec::new(), &counts);
    let mut families: Vec<MetricFamily> = tcp_families(&[series])
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    families.extend(own_families(&own));
    families.push(series_family(0));
    families.iter().map(documented).collect()
}

/// `name (type; labels: a, b)` and the HELP line.
fn documented(family: &MetricFamily) -> crate::cli::Term {
    let mut labels: Vec<&str> = Vec::new();
    for metric in family.get_metric() {
        for pair in metric.get_label() {
            if !labels.contains(&pair.name()) {
                labels.push(pair.name());
            }
        }
    }
    let kind = format!("{:?}", family.get_field_type()).to_lowercase();
    let term = if labels.is_empty() {
        format!("{} ({kind})", family.name())
    } else {
        format!("{} ({kind}; labels: {})", family.name(), labels.join(", "))
    };
    (term, family.help().to_owned())
}

/// The TCP families, each with the histograms of its metrics (none for counters).
fn tcp_families<'a>(series: &[Series<'a>]) -> Vec<(MetricFamily, Vec<&'a Hist>)> {
    vec![
        hist_family(
            "tcp_rtt_seconds",
            "Smoothed round-trip time of TCP sockets, sampled at every segment received on an established connection (tcprtt).",
            hist_series(series, &[HistKind::Rtt], |_| None),
        ),
        hist_family(
            "tcp_connect_latency_seconds",
            "Time from a TCP connect's SYN to its answer: a SYN-ACK (outcome established) or an RST (outcome refused) (tcpconnlat).",
            hist_series(
                series,
                &Outcome::ANSWERED.map(HistKind::Connect),
                |kind| match kind {
                    HistKind::Connect(o) => Some(("outcome", o.label().to_owned())),
                    _ => None,
                },
            ),
        ),
        (
            family(
                "tcp_connect_attempts_total",
                "TCP connects by how they left SYN_SENT: established, refused (an RST), timeout (the SYN retries ran out) or other.",
                MetricType::COUNTER,
                attempt_series(series),
            ),
            Vec::new(),
        ),
        (
            family(
                "tcp_state_transitions_total",
                "TCP state changes (tcpstates).",
                MetricType::COUNTER,
                transition_series(series),
            ),
            Vec::new(),
        ),
        hist_family(
            "tcp_state_duration_seconds",
            "Time TCP sockets spent in a state, counted when they leave it; only states whose start the exporter saw (tcpstates).",
            hist_series(
                series,
                &(0..STATES).map(HistKind::State).collect::<Vec<_>>(),
                |kind| match kind {
                    HistKind::State(s) => Some(("state", state_label(s))),
                    _ => None,
                },
            ),
        ),
    ]
}

fn state_label(state: usize) -> String {
    state_name(state as i32).into_owned()
}

fn hist_family<'a>(
    name: &str,
    help: &str,
    (metrics, hists): (Vec<Metric>, Vec<&'a Hist>),
) -> (MetricFamily, Vec<&'a Hist>) {
    (family(name, help, MetricType::HISTOGRAM, metrics), hists)
}

/// Histograms `kinds` of every series and family, labeled by `labels_of`, and the kernel's
/// histogram behind each. A state's duration is shown once it has a sample, in any series.
fn hist_series<'a>(
    series: &[Series<'a>],
    kinds: &[HistKind],
    labels_of: impl Fn(HistKind) -> Option<(&'static str, String)>,
) -> (Vec<Metric>, Vec<&'a Hist>) {
    let (mut metrics, mut hists) = (Vec::new(), Vec::new());
    for s in series {
        for f in 0..FAMILIES {
            for &kind in kinds.iter().filter(|&&kind| s.hists.grouped(kind)) {
                let hist = s.counts.hist(f, kind);
                let shown = match kind {
                    HistKind::State(_) => hist.count() > 0,
                    _ => s.shows(hist.count()),
                };
                if shown {
                    let mut pairs = vec![("family", family_label(f).to_owned())];
                    pairs.extend(labels_of(kind));
                    metrics.push(histogram(s.labels(&pairs), hist, kind));
                    hists.push(hist);
                }
            }
        }
    }
    (metrics, hists)
}

fn attempt_series(series: &[Series<'_>]) -> Vec<Metric> {
    let mut metrics = Vec::new();
    for s in series.iter().filter(|s| s.counters) {
        for f in 0..FAMILIES {
            for outcome in Outcome::ALL {
                let n = s.counts.attempts(f, outcome);
                if s.shows(n) {
                    let pairs = [
                        ("family", family_label(f).to_owned()),
                        ("outcome", outcome.label().to_owned()),
                    ];
                    metrics.push(counter(s.labels(&pairs), n));
                }
            }
        }
    }
    metrics
}

fn transition_series(series: &[Series<'_>]) -> Vec<Metric> {
    let mut metrics = Vec::new();
    for s in series.iter().filter(|s| s.counters) {
        for f in 0..FAMILIES {
            for old in 0..STATES {
                for new in 0..STATES {
                    let n = s.counts.transitions(f, old, new);
                    if n > 0 {
                        let pairs = [
                            ("family", family_label(f).to_owned()),
                            ("old_state", state_label(old)),
                            ("new_state", state_label(new)),
                        ];
                        metrics.push(counter(s.labels(&pairs), n));
                    }
                }
            }
        }
    }
    metrics
}

fn own_families(own: &Own) -> Vec<MetricFamily> {
    let mut families = vec![
        family(
            "tcptools_exporter_build_info",
            "The exporter's version, git revision (or unknown), the rustc that built it and its target; the value is 1.",
            MetricType::GAUGE,
            vec![gauge(build_labels(), 1.0)],
        ),
        family(
            "tcptools_exporter_attach_info",
            "How the BPF programs attached (hook: tp_btf or raw_tp; socket_storage: whether state starts live in socket storage); the value is 1.",
            MetricType::GAUGE,
            vec![gauge(
                vec![
                    label(("hook", own.hook.as_str())),
                    label(("socket_storage", if own.sk_storage { "true" } else { "false" })),
                ],
                1.0,
            )],
        ),
        family(
            "tcptools_exporter_events_caught_total",
            "Events the kernel skipped a main BPF program for (it was already running on that CPU, interrupted) that its catcher program counted instead; they are in the metrics.",
            MetricType::COUNTER,
            vec![counter(vec![], own.caught)],
        ),
        family(
            "tcptools_exporter_events_skipped_total",
            "Events the kernel skipped a main BPF program for that its catcher could not count either; they are missing from the metrics.",
            MetricType::COUNTER,
            vec![counter(vec![], own.skipped)],
        ),
    ];
    families.extend(run_time_families(own));
    families.extend(fill_families(own));
    families.extend(runtime_families(own));
    families.extend(serving_families(own));
    families.extend(kernel_families(own));
    families.push(web_config_family(own));
    families
}

/// The BPF programs' runs and run time, when the kernel keeps them.
fn run_time_families(own: &Own) -> Vec<MetricFamily> {
    if !own.stats_enabled {
        return Vec::new();
    }
    let by_program = |value: fn(&ProgramStats) -> f64| -> Vec<Metric> {
        let metrics = own.programs.iter().map(|(name, stats)| {
            let labels = vec![label(("program", name.as_str()))];
            sample(MetricType::COUNTER, labels, value(stats))
        });
        metrics.collect()
    };
    vec![
        family(
            "tcptools_exporter_bpf_runs_total",
            "Runs of the exporter's BPF programs (kernel run-time statistics, on for the exporter's lifetime).",
            MetricType::COUNTER,
            by_program(|s| s.runs as f64),
        ),
        family(
            "tcptools_exporter_bpf_run_seconds_total",
            "Time spent in the exporter's BPF programs.",
            MetricType::COUNTER,
            by_program(|s| s.run_ns as f64 / 1e9),
        ),
    ]
}

/// build_info's labels, set by build.rs.
fn build_labels() -> Vec<LabelPair> {
    vec![
        label(("version", env!("CARGO_PKG_VERSION"))),
        label(("revision", env!("TCPTOOLS_REVISION"))),
        label(("rustc_version", env!("TCPTOOLS_RUSTC_VERSION"))),
        label(("target", env!("TCPTOOLS_TARGET"))),
    ]
}

/// The HTTP side's: scrapes, responses and connections.
fn serving_families(own: &Own) -> Vec<MetricFamily> {
    let Some(serving) = &own.serving else {
        return Vec::new();
    };
    let by_code = serving.responses.iter().map(|(code, n)| {
        let code = code.to_string();
        counter(vec![label(("code", code.as_str()))], *n)
    });
    vec![
        // A gauge of the last scrape, as node_exporter's
        // node_scrape_collector_duration_seconds and Prometheus' scrape_duration_seconds:
        // scrapes come at the scrape interval, so a histogram would add series for the
        // same one sample per interval that Prometheus already stores.
        family(
            "tcptools_exporter_scrape_duration_seconds",
            "Time the previous scrape took to read the kernel's counts and render them.",
            MetricType::GAUGE,
            vec![gauge(vec![], serving.last_scrape_seconds)],
        ),
        family(
            "tcptools_exporter_scrape_errors_total",
            "Scrapes that failed (answered 500).",
            MetricType::COUNTER,
            vec![counter(vec![], serving.scrape_errors)],
        ),
        family(
            "tcptools_exporter_http_requests_total",
            "HTTP requests answered, by status code.",
            MetricType::COUNTER,
            by_code.collect(),
        ),
        family(
            "tcptools_exporter_http_connections_shed_total",
            "Connections closed at the connection bound to make room for a new one: the one that had waited longest for a request.",
            MetricType::COUNTER,
            vec![counter(vec![], serving.connections_shed)],
        ),
        family(
            "tcptools_exporter_http_connections_refused_total",
            "New connections closed at the connection bound because every open one had a request being answered.",
            MetricType::COUNTER,
            vec![counter(vec![], serving.connections_refused)],
        ),
    ]
}

/// Whether the programs' run time counts, and what their maps cost the kernel.
fn kernel_families(own: &Own) -> Vec<MetricFamily> {
    let memory = own
        .map_memory
        .iter()
        .map(|(name, bytes)| gauge(vec![label(("map", name.as_str()))], *bytes as f64));
    vec![
        family(
            "tcptools_exporter_bpf_stats_enabled",
            "Whether the kernel keeps the BPF programs' run time and count (BPF_ENABLE_STATS with CAP_SYS_ADMIN, else the kernel.bpf_stats_enabled sysctl): 1 or 0; with 0 there are no tcptools_exporter_bpf_run* series.",
            MetricType::GAUGE,
            vec![gauge(vec![], if own.stats_enabled { 1.0 } else { 0.0 })],
        ),
        family(
            "tcptools_exporter_map_memory_bytes",
            "Kernel memory of the exporter's BPF maps (their memlock), by map.",
            MetricType::GAUGE,
            memory.collect(),
        ),
    ]
}

/// The web config file's reloads.
fn web_config_family(own: &Own) -> MetricFamily {
    family(
        "tcptools_exporter_web_config_reload_failures_total",
        "Reloads of the changed web config file (or its certificate, key or CA files) that failed; the last good one is served meanwhile.",
        MetricType::COUNTER,
        vec![counter(vec![], own.web_config_reload_failures)],
    )
}

/// Whether the runtimes that name namespaces, pods and containers answer.
fn runtime_families(own: &Own) -> Vec<MetricFamily> {
    let Some(status) = &own.runtime else {
        return Vec::new();
    };
    vec![
        family(
            "tcptools_exporter_runtime_up",
            "Whether the container runtimes answered the last refresh of their pods' and containers' names: 1 or 0 (with --group-by namespace, pod or container).",
            MetricType::GAUGE,
            vec![gauge(vec![], if status.up { 1.0 } else { 0.0 })],
        ),
        family(
            "tcptools_exporter_runtime_errors_total",
            "Refreshes of names from the container runtimes that failed.",
            MetricType::COUNTER,
            vec![counter(vec![], status.errors)],
        ),
    ]
}

fn fill_families(own: &Own) -> Vec<MetricFamily> {
    let by_map = |value: fn(&MapFill) -> u64| -> Vec<Metric> {
        let metrics = own
            .maps
            .iter()
            .map(|m| gauge(vec![label(("map", m.name))], value(m) as f64));
        metrics.collect()
    };
    let mut families = vec![
        family(
            "tcptools_exporter_map_entries",
            "Entries in the exporter's bounded BPF maps.",
            MetricType::GAUGE,
            by_map(|m| m.entries),
        ),
        family(
            "tcptools_exporter_map_capacity",
            "Capacity of the exporter's bounded BPF maps.",
            MetricType::GAUGE,
            by_map(|m| m.capacity),
        ),
        family(
            "tcptools_exporter_sockets_untracked_total",
            "Sockets whose state start the fixed table had no room for (raw_tp and Linux 5.10 only): their next change has no duration.",
            MetricType::COUNTER,
            vec![counter(vec![], own.sockets_untracked)],
        ),
    ];
    if let Some((labeled, other)) = own.groups {
        families.push(family(
            "tcptools_exporter_group_overflow_total",
            "Counts and samples the kernel put in the \"other\" group because its group maps were full.",
            MetricType::COUNTER,
            vec![counter(vec![], own.group_overflow)],
        ));
        families.push(family(
            "tcptools_exporter_groups",
            "Groups seen: with a label of their own (labeled) or summed into \"other\".",
            MetricType::GAUGE,
            vec![
                gauge(vec![label(("kind", "labeled"))], labeled as f64),
                gauge(vec![label(("kind", "other"))], other as f64),
            ],
        ));
    }
    families
}

fn label((name, value): (&str, &str)) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn counter(labels: Vec<LabelPair>, value: u64) -> Metric {
    sample(MetricType::COUNTER, labels, value as f64)
}

fn gauge(labels: Vec<LabelPair>, value: f64) -> Metric {
    sample(MetricType::GAUGE, labels, value)
}

/// A counter's or a gauge's one value.
fn sample(kind: MetricType, labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut metric = Metric::from_label(labels);
    if kind == MetricType::GAUGE {
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
    } else {
        let mut counter = Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
    }
    metric
}

/// A histogram's classic cumulative buckets (a subset of the native bounds, see
/// metrics.rs), the `le` in seconds. The encoder adds `+Inf`.
fn histogram(labels: Vec<LabelPair>, hist: &Hist, kind: HistKind) -> Metric {
    let buckets = hist.classic(kind).into_iter().map(|(le, cumulative)| {
        let mut bucket = Bucket::default();
        bucket.set_cumulative_count(cumulative);
        bucket.set_upper_bound(le);
        bucket
    });
    let mut h = Histogram::default();
    h.set_bucket(buckets.collect());
    h.set_sample_count(hist.count());
    h.set_sample_sum(hist.sum_us as f64 / 1e6);
    let mut metric = Metric::from_label(labels);
    metric.set_histogram(h);
    metric
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn protobuf_only_for_who_asks_for_it_first() {
        let delimited = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        // Prometheus 2.42 with native histograms on, and without.
        let native = format!("{delimited};q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1");
        let classic = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(&native), Format::Protobuf);
        assert_eq!(Format::negotiate(delimited), Format::Protobuf);
        for text in [
            classic,
            "",
            "*/*",
            "text/plain",
            &format!("{delimited};q=0"),
            &format!("{delimited};q=0.2, text/plain"),
            // Another protobuf message, or not delimited: not ours.
            "application/vnd.google.protobuf;proto=io.prometheus.client.Other;encoding=delimited",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
        ] {
            assert_eq!(Format::negotiate(text), Format::Text, "{text:?}");
        }
    }
}
