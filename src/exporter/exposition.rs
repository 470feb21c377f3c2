//! tcptools-exporter's metric families, encoded in the Prometheus text format (0.0.4) by
//! the `prometheus` crate: the TCP metrics of every group, and the exporter's own.

use prometheus::core::Collector as _;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use super::collect::{MapFill, ProgramStats};
use super::metrics::{Counts, HistKind, Log2Hist, Outcome, FAMILIES, STATES};
use crate::runtime::Status;
use crate::tcpstates::state_name;

/// The Content-Type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
/// (no group label).
pub struct Series<'a> {
    pub group: Vec<(&'static str, String)>,
    pub counts: &'a Counts,
}

impl Series<'_> {
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
    /// Reloads of the web config file that failed (the last good one served on).
    pub web_config_reload_failures: u64,
}

/// The whole exposition.
pub fn render(series: &[Series<'_>], own: &Own) -> String {
    let mut families = tcp_families(series);
    families.extend(own_families(own));
    families.extend(prometheus::process_collector::ProcessCollector::for_self().collect());
    // The encoder refuses a family without series (transitions before the first change).
    families.retain(|f| !f.get_metric().is_empty());
    let mut out = Vec::with_capacity(32 * 1024);
    // Encoding into memory fails only on a metric family the encoder refuses (a bug).
    if let Err(err) = TextEncoder::new().encode(&families, &mut out) {
        out.extend_from_slice(format!("# encoding failed: {err}\n").as_bytes());
    }
    String::from_utf8_lossy(&out).into_owned()
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
        groups: Some((0, 0)),
        runtime: Some(Status::default()),
        ..Own::default()
    };
    let series = Series {
        group: Vec::new(),
        counts: &counts,
    };
    let mut families = tcp_families(&[series]);
    families.extend(own_families(&own));
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

fn tcp_families(series: &[Series<'_>]) -> Vec<MetricFamily> {
    vec![
        family(
            "tcp_rtt_seconds",
            "Smoothed round-trip time of TCP sockets, sampled at every segment received on an established connection (tcprtt).",
            MetricType::HISTOGRAM,
            hist_series(series, &[HistKind::Rtt], |_| None),
        ),
        family(
            "tcp_connect_latency_seconds",
            "Time from a TCP connect's SYN to its answer: a SYN-ACK (outcome established) or an RST (outcome refused) (tcpconnlat).",
            MetricType::HISTOGRAM,
            hist_series(
                series,
                &Outcome::ANSWERED.map(HistKind::Connect),
                |kind| match kind {
                    HistKind::Connect(o) => Some(("outcome", o.label().to_owned())),
                    _ => None,
                },
            ),
        ),
        family(
            "tcp_connect_attempts_total",
            "TCP connects by how they left SYN_SENT: established, refused (an RST), timeout (the SYN retries ran out) or other.",
            MetricType::COUNTER,
            attempt_series(series),
        ),
        family(
            "tcp_state_transitions_total",
            "TCP state changes (tcpstates).",
            MetricType::COUNTER,
            transition_series(series),
        ),
        family(
            "tcp_state_duration_seconds",
            "Time TCP sockets spent in a state, counted when they leave it; only states whose start the exporter saw (tcpstates).",
            MetricType::HISTOGRAM,
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

/// Histograms `kinds` of every series and family, labeled by `labels_of`. A state's
/// duration is shown once it has a sample, in any series.
fn hist_series(
    series: &[Series<'_>],
    kinds: &[HistKind],
    labels_of: impl Fn(HistKind) -> Option<(&'static str, String)>,
) -> Vec<Metric> {
    let mut metrics = Vec::new();
    for s in series {
        for f in 0..FAMILIES {
            for &kind in kinds {
                let hist = s.counts.hist(f, kind);
                let shown = match kind {
                    HistKind::State(_) => hist.count() > 0,
                    _ => s.shows(hist.count()),
                };
                if shown {
                    let mut pairs = vec![("family", family_label(f).to_owned())];
                    pairs.extend(labels_of(kind));
                    metrics.push(histogram(s.labels(&pairs), &hist));
                }
            }
        }
    }
    metrics
}

fn attempt_series(series: &[Series<'_>]) -> Vec<Metric> {
    let mut metrics = Vec::new();
    for s in series {
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
    for s in series {
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
    let by_program = |value: fn(&ProgramStats) -> f64| -> Vec<Metric> {
        let metrics = own.programs.iter().map(|(name, stats)| {
            let labels = vec![label(("program", name.as_str()))];
            sample(MetricType::COUNTER, labels, value(stats))
        });
        metrics.collect()
    };
    let mut families = vec![
        family(
            "tcptools_exporter_build_info",
            "The exporter's version; the value is 1.",
            MetricType::GAUGE,
            vec![gauge(vec![label(("version", env!("CARGO_PKG_VERSION")))], 1.0)],
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
    if own.stats_enabled {
        families.push(family(
            "tcptools_exporter_bpf_runs_total",
            "Runs of the exporter's BPF programs (kernel run-time statistics, on for the exporter's lifetime).",
            MetricType::COUNTER,
            by_program(|s| s.runs as f64),
        ));
        families.push(family(
            "tcptools_exporter_bpf_run_seconds_total",
            "Time spent in the exporter's BPF programs.",
            MetricType::COUNTER,
            by_program(|s| s.run_ns as f64 / 1e9),
        ));
    }
    families.extend(fill_families(own));
    families.extend(runtime_families(own));
    families.push(web_config_family(own));
    families
}

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

/// A histogram's cumulative buckets, one per finite slot: `le` is the slot's inclusive
/// upper bound, `2^(i+1) - 1` microseconds, in seconds. The encoder adds `+Inf`.
fn histogram(labels: Vec<LabelPair>, hist: &Log2Hist) -> Metric {
    let finite = hist.slots.len().saturating_sub(1);
    let mut cumulative = 0u64;
    let buckets = hist.slots[..finite]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            cumulative = cumulative.wrapping_add(n);
            let mut bucket = Bucket::default();
            bucket.set_cumulative_count(cumulative);
            bucket.set_upper_bound(slot_le(i));
            bucket
        })
        .collect();
    let mut h = Histogram::default();
    h.set_bucket(buckets);
    h.set_sample_count(hist.count());
    h.set_sample_sum(hist.sum_us as f64 / 1e6);
    let mut metric = Metric::from_label(labels);
    metric.set_histogram(h);
    metric
}

/// The `le` of log2 slot `i`, in seconds.
pub fn slot_le(i: usize) -> f64 {
    let (_, high) = crate::hist::slot_range(i);
    high as f64 / 1e6
}
