//! tcptools-exporter's metrics: cumulative counters and log2 histograms fed by the tools'
//! BPF programs, rendered in the Prometheus text exposition format (version 0.0.4).

pub mod http;
pub mod options;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::net::{PortList, AF_INET, AF_INET6};
use crate::tcpconnlat::ConnectLatency;
use crate::tcpstates::{state_name, StateChange};

/// Default address of the `/metrics` endpoint.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9435";
/// The Content-Type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Log2 slots of the RTT histogram: the kernel's (bpf/tcprtt.h `MAX_SLOTS`).
pub const RTT_SLOTS: usize = crate::tcprtt::MAX_SLOTS;
/// Connect latency slots: as RTT, the last one holds 2^26 us (67 s) and more.
pub const CONNECT_SLOTS: usize = 27;
/// State duration slots: states last up to hours, so the last finite bucket is ~9.5 h.
pub const STATE_SLOTS: usize = 36;

/// The families the exporter labels; every histogram of these exists from the start so
/// that `rate()` and `increase()` see the first samples.
pub const FAMILIES: [u16; 2] = [AF_INET, AF_INET6];

/// The `family` label value.
pub fn family_label(family: u16) -> &'static str {
    match family {
        AF_INET => "ipv4",
        AF_INET6 => "ipv6",
        _ => "other",
    }
}

/// The log2 slot bcc puts `value` in: 0 for 0 and 1, else floor(log2(value)); values past
/// the last slot go to the last slot.
pub fn slot_of(value: u64, slots: usize) -> usize {
    let slot = if value == 0 {
        0
    } else {
        63 - value.leading_zeros() as usize
    };
    slot.min(slots.saturating_sub(1))
}

/// A cumulative log2 histogram of microsecond values. Slot `i` holds `2^i ..= 2^(i+1)-1`
/// (slot 0 holds 0 and 1); the last slot also holds everything above, so it has no finite
/// upper bound and appears only in the `+Inf` bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log2Hist {
    pub slots: Vec<u64>,
    /// Sum of the recorded values, in microseconds.
    pub sum_us: u64,
}

impl Log2Hist {
    pub fn new(slots: usize) -> Log2Hist {
        Log2Hist {
            slots: vec![0; slots.max(1)],
            sum_us: 0,
        }
    }

    pub fn record(&mut self, value_us: u64) {
        let slot = slot_of(value_us, self.slots.len());
        if let Some(count) = self.slots.get_mut(slot) {
            *count = count.saturating_add(1);
        }
        self.sum_us = self.sum_us.saturating_add(value_us);
    }

    /// Number of values: the sum of the slots, so `_count` always equals the `+Inf` bucket.
    pub fn count(&self) -> u64 {
        self.slots.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }
}

/// Cumulative RTT histograms built from the kernel's per-family `hists` entries, whose
/// slots are 32-bit and wrap: each read adds the difference to the last read (modulo
/// 2^32), which is exact as long as no slot gains 2^32 samples between two reads.
#[derive(Clone, Debug, Default)]
pub struct RttTotals {
    last: BTreeMap<u16, KernelHist>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KernelHist {
    slots: Vec<u32>,
    sum: u64,
}

impl RttTotals {
    /// Adds what the kernel's histogram of `family` gained since the last call to `into`.
    pub fn update(&mut self, family: u16, slots: &[u32], sum_us: u64, into: &mut Log2Hist) {
        let last = self.last.entry(family).or_default();
        last.slots.resize(slots.len(), 0);
        let top = into.slots.len().saturating_sub(1);
        for (i, (&now, before)) in slots.iter().zip(last.slots.iter_mut()).enumerate() {
            let gained = u64::from(now.wrapping_sub(*before));
            if let Some(total) = into.slots.get_mut(i.min(top)) {
                *total = total.saturating_add(gained);
            }
            *before = now;
        }
        into.sum_us = into.sum_us.saturating_add(sum_us.wrapping_sub(last.sum));
        last.sum = sum_us;
    }
}

/// Which sockets are counted: all, or (as tcpstates' `-L`/`-D`) those whose local port is
/// in one list and whose remote port is in the other, each list optional.
#[derive(Clone, Debug, Default)]
pub struct PortFilter {
    pub local: Option<PortList>,
    pub remote: Option<PortList>,
}

impl PortFilter {
    pub fn allows(&self, local: u16, remote: u16) -> bool {
        let has = |list: &Option<PortList>, port: u16| {
            list.as_ref().is_none_or(|l| l.ports().contains(&port))
        };
        has(&self.local, local) && has(&self.remote, remote)
    }
}

/// Everything the exporter has counted since it started. Nothing is ever reset.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub rtt: BTreeMap<u16, Log2Hist>,
    pub connect: BTreeMap<u16, Log2Hist>,
    /// (family, old state, new state) -> transitions.
    pub transitions: BTreeMap<(u16, i32, i32), u64>,
    /// (family, state left) -> time spent in it; only changes whose state start was seen.
    pub state_durations: BTreeMap<(u16, i32), Log2Hist>,
    /// Event source (`tcpstates`, `tcpconnlat`) -> events that never reached user space.
    pub lost: BTreeMap<&'static str, u64>,
    /// BPF program (`tcpstates`, `tcpconnlat`, `tcprtt`) -> runs the kernel skipped.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Records too short to decode, by source.
    pub malformed: BTreeMap<&'static str, u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let per_family = |slots| {
            FAMILIES
                .iter()
                .map(|&f| (f, Log2Hist::new(slots)))
                .collect()
        };
        let sources = |names: &[&'static str]| names.iter().map(|&n| (n, 0)).collect();
        Metrics {
            rtt: per_family(RTT_SLOTS),
            connect: per_family(CONNECT_SLOTS),
            transitions: BTreeMap::new(),
            state_durations: BTreeMap::new(),
            lost: sources(&["tcpconnlat", "tcpstates"]),
            skipped: sources(&["tcpconnlat", "tcprtt", "tcpstates"]),
            malformed: sources(&["tcpconnlat", "tcpstates"]),
        }
    }

    /// Counts one state change; `delta_known` says whether its `delta_us` is measured.
    pub fn record_state_change(&mut self, change: &StateChange, delta_known: bool) {
        let count = self
            .transitions
            .entry((change.family, change.oldstate, change.newstate))
            .or_insert(0);
        *count = count.saturating_add(1);
        if delta_known {
            self.state_durations
                .entry((change.family, change.oldstate))
                .or_insert_with(|| Log2Hist::new(STATE_SLOTS))
                .record(change.delta_us);
        }
    }

    pub fn record_connect(&mut self, connect: &ConnectLatency) {
        self.connect
            .entry(connect.family)
            .or_insert_with(|| Log2Hist::new(CONNECT_SLOTS))
            .record(connect.delta_us);
    }

    /// The whole exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let family = |f: &u16| vec![("family", family_label(*f).to_owned())];
        let hists: Vec<_> = self.rtt.iter().map(|(f, h)| (family(f), h)).collect();
        write_histogram(
            &mut out,
            "tcp_rtt_seconds",
            "Smoothed round-trip time of TCP sockets, sampled at every segment received on an established connection (tcprtt).",
            &hists,
        );
        let hists: Vec<_> = self.connect.iter().map(|(f, h)| (family(f), h)).collect();
        write_histogram(
            &mut out,
            "tcp_connect_latency_seconds",
            "Time from a TCP connect's SYN to its answer, a SYN-ACK or a refusal (tcpconnlat).",
            &hists,
        );
        let counts: Vec<_> = self
            .transitions
            .iter()
            .map(|((f, old, new), &n)| {
                let mut labels = family(f);
                labels.push(("old_state", state_name(*old).to_string()));
                labels.push(("new_state", state_name(*new).to_string()));
                (labels, n)
            })
            .collect();
        write_counter(
            &mut out,
            "tcp_state_transitions_total",
            "TCP state changes (tcpstates).",
            &counts,
        );
        let hists: Vec<_> = self
            .state_durations
            .iter()
            .map(|((f, state), h)| {
                let mut labels = family(f);
                labels.push(("state", state_name(*state).to_string()));
                (labels, h)
            })
            .collect();
        write_histogram(
            &mut out,
            "tcp_state_duration_seconds",
            "Time TCP sockets spent in a state, counted when they leave it; only states whose start the exporter saw (tcpstates).",
            &hists,
        );
        let by_source = |map: &BTreeMap<&'static str, u64>, key: &'static str| -> Vec<_> {
            map.iter()
                .map(|(&s, &n)| (vec![(key, s.to_owned())], n))
                .collect()
        };
        write_counter(
            &mut out,
            "tcptools_exporter_events_lost_total",
            "Events the kernel could not hand to the exporter (buffer full); they are missing from the metrics.",
            &by_source(&self.lost, "source"),
        );
        write_counter(
            &mut out,
            "tcptools_exporter_events_skipped_total",
            "Runs of a BPF program the kernel skipped because another BPF program was running on that CPU; they are missing from the metrics.",
            &by_source(&self.skipped, "program"),
        );
        write_counter(
            &mut out,
            "tcptools_exporter_events_malformed_total",
            "Event records too short to decode; they are missing from the metrics.",
            &by_source(&self.malformed, "source"),
        );
        out
    }
}

/// Label pairs of one series, in order.
pub type Labels = Vec<(&'static str, String)>;

/// A label value with `\`, `"` and newlines escaped as the text format requires.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text with `\` and newlines escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn write_labels(out: &mut String, labels: &[(&str, String)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let le = le.map(|v| ("le", v.to_owned()));
    for (name, value) in labels
        .iter()
        .map(|(n, v)| (*n, v))
        .chain(le.iter().map(|(n, v)| (*n, v)))
    {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{name}=\"{}\"", escape_label_value(value));
    }
    out.push('}');
}

/// Microseconds as seconds, in the shortest decimal that reads back as the same number.
pub fn seconds(us: u64) -> String {
    format!("{}", us as f64 / 1e6)
}

/// The `le` of log2 slot `i`: its inclusive upper bound, `2^(i+1) - 1` microseconds.
pub fn slot_le(i: usize) -> String {
    let (_, high) = crate::hist::slot_range(i);
    seconds(high)
}

/// A counter family: HELP, TYPE and one line per series. Nothing but the header when
/// there is no series yet.
pub fn write_counter(out: &mut String, name: &str, help: &str, series: &[(Labels, u64)]) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} counter");
    for (labels, value) in series {
        out.push_str(name);
        write_labels(out, labels, None);
        let _ = writeln!(out, " {value}");
    }
}

/// A histogram family: per series, one cumulative `_bucket` per finite slot, `+Inf`,
/// `_sum` in seconds and `_count`.
pub fn write_histogram(out: &mut String, name: &str, help: &str, series: &[(Labels, &Log2Hist)]) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (labels, hist) in series {
        let mut cumulative = 0u64;
        let finite = hist.slots.len().saturating_sub(1);
        for (i, &count) in hist.slots.iter().enumerate().take(finite) {
            cumulative = cumulative.saturating_add(count);
            let _ = write!(out, "{name}_bucket");
            write_labels(out, labels, Some(&slot_le(i)));
            let _ = writeln!(out, " {cumulative}");
        }
        let total = hist.count();
        let _ = write!(out, "{name}_bucket");
        write_labels(out, labels, Some("+Inf"));
        let _ = writeln!(out, " {total}");
        let _ = write!(out, "{name}_sum");
        write_labels(out, labels, None);
        let _ = writeln!(out, " {}", seconds(hist.sum_us));
        let _ = write!(out, "{name}_count");
        write_labels(out, labels, None);
        let _ = writeln!(out, " {total}");
    }
}

/// Whether a tcpstates record's `delta_us` was measured from a state start the BPF
/// program saw (the tools print an unseen start as 0); None if the record is too short.
pub fn state_change_delta_known(data: &[u8]) -> Option<bool> {
    let mut raw = crate::skel::tcpstates::types::state_change::default();
    plain::copy_from_bytes(&mut raw, data).ok()?;
    Some(raw.delta_known != 0)
}
