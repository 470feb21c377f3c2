//! The Prometheus text exposition format (version 0.0.4) of tcptools-exporter's metrics.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::family_label;
use super::metrics::{Log2Hist, Metrics};
use crate::tcpstates::state_name;

/// The whole exposition of `metrics`.
pub fn render(metrics: &Metrics) -> String {
    let mut out = String::with_capacity(16 * 1024);
    write_tcp_histograms(&mut out, metrics);
    write_state_families(&mut out, metrics);
    write_own_counters(&mut out, metrics);
    out
}

fn family(f: u16) -> Labels {
    vec![("family", family_label(f).to_owned())]
}

fn write_tcp_histograms(out: &mut String, m: &Metrics) {
    let hists: Vec<_> = m.rtt.iter().map(|(&f, h)| (family(f), h)).collect();
    write_histogram(
        out,
        "tcp_rtt_seconds",
        "Smoothed round-trip time of TCP sockets, sampled at every segment received on an established connection (tcprtt).",
        &hists,
    );
    let hists: Vec<_> = m.connect.iter().map(|(&f, h)| (family(f), h)).collect();
    write_histogram(
        out,
        "tcp_connect_latency_seconds",
        "Time from a TCP connect's SYN to its answer, a SYN-ACK or a refusal (tcpconnlat).",
        &hists,
    );
}

fn write_state_families(out: &mut String, m: &Metrics) {
    let counts: Vec<_> = m
        .transitions
        .iter()
        .map(|(&(f, old, new), &n)| {
            let mut labels = family(f);
            labels.push(("old_state", state_name(old).into_owned()));
            labels.push(("new_state", state_name(new).into_owned()));
            (labels, n)
        })
        .collect();
    write_counter(
        out,
        "tcp_state_transitions_total",
        "TCP state changes (tcpstates).",
        &counts,
    );
    let hists: Vec<_> = m
        .state_durations
        .iter()
        .map(|(&(f, state), h)| {
            let mut labels = family(f);
            labels.push(("state", state_name(state).into_owned()));
            (labels, h)
        })
        .collect();
    write_histogram(
        out,
        "tcp_state_duration_seconds",
        "Time TCP sockets spent in a state, counted when they leave it; only states whose start the exporter saw (tcpstates).",
        &hists,
    );
}

/// The exporter's own counters: what never reached the metrics, and why.
fn write_own_counters(out: &mut String, m: &Metrics) {
    let by = |map: &BTreeMap<&'static str, u64>, key: &'static str| -> Vec<_> {
        map.iter()
            .map(|(&s, &n)| (vec![(key, s.to_owned())], n))
            .collect()
    };
    write_counter(
        out,
        "tcptools_exporter_events_lost_total",
        "Events the kernel could not hand to the exporter (buffer full); they are missing from the metrics.",
        &by(&m.lost, "source"),
    );
    write_counter(
        out,
        "tcptools_exporter_events_skipped_total",
        "Events the kernel skipped a BPF program for (it was already running on that CPU) that its catcher program could not count either; they are missing from the metrics.",
        &by(&m.skipped, "program"),
    );
    write_counter(
        out,
        "tcptools_exporter_events_malformed_total",
        "Event records too short to decode; they are missing from the metrics.",
        &by(&m.malformed, "source"),
    );
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
