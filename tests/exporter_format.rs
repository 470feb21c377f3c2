//! Golden tests of tcptools-exporter's Prometheus text rendering (no BPF, no root).

use tcptools::exporter::{
    escape_label_value, render, slot_le, slot_of, write_counter, write_histogram, Labels, Log2Hist,
    Metrics, RttTotals,
};
use tcptools::net::{AF_INET, AF_INET6};
use tcptools::tcpconnlat::ConnectLatency;
use tcptools::tcpstates::StateChange;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|&(n, v)| (n, v.to_owned())).collect()
}

#[test]
fn le_is_each_slots_inclusive_upper_bound_in_seconds() {
    assert_eq!(slot_le(0), "0.000001");
    assert_eq!(slot_le(1), "0.000003");
    assert_eq!(slot_le(9), "0.001023");
    assert_eq!(slot_le(19), "1.048575");
    assert_eq!(slot_le(25), "67.108863");
    assert_eq!(slot_le(34), "34359.738367");
    // A value lands in the slot whose bound is the first le at or above it.
    for (value, slot) in [
        (0, 0),
        (1, 0),
        (2, 1),
        (3, 1),
        (4, 2),
        (1023, 9),
        (1024, 10),
    ] {
        assert_eq!(slot_of(value, 27), slot, "value {value}");
    }
    assert_eq!(slot_of(u64::MAX, 27), 26);
}

#[test]
fn histogram_with_a_few_slots() {
    let mut hist = Log2Hist::new(4);
    for us in [0, 1, 3, 5, 7, 100] {
        hist.record(us);
    }
    assert_eq!(hist.slots, vec![2, 1, 2, 1]);
    let mut out = String::new();
    write_histogram(
        &mut out,
        "tcp_x_seconds",
        "Help with a \\ and a\nnewline.",
        &[(labels(&[("family", "ipv4")]), &hist)],
    );
    assert_eq!(
        out,
        "# HELP tcp_x_seconds Help with a \\\\ and a\\nnewline.
# TYPE tcp_x_seconds histogram
tcp_x_seconds_bucket{family=\"ipv4\",le=\"0.000001\"} 2
tcp_x_seconds_bucket{family=\"ipv4\",le=\"0.000003\"} 3
tcp_x_seconds_bucket{family=\"ipv4\",le=\"0.000007\"} 5
tcp_x_seconds_bucket{family=\"ipv4\",le=\"+Inf\"} 6
tcp_x_seconds_sum{family=\"ipv4\"} 0.000116
tcp_x_seconds_count{family=\"ipv4\"} 6
"
    );
}

#[test]
fn histogram_without_labels_and_empty() {
    let mut out = String::new();
    write_histogram(&mut out, "h", "H.", &[(Vec::new(), &Log2Hist::new(2))]);
    assert_eq!(
        out,
        "# HELP h H.
# TYPE h histogram
h_bucket{le=\"0.000001\"} 0
h_bucket{le=\"+Inf\"} 0
h_sum 0
h_count 0
"
    );
}

#[test]
fn counter_and_label_escaping() {
    assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    let mut out = String::new();
    write_counter(
        &mut out,
        "c_total",
        "C.",
        &[
            (labels(&[("a", "x\"y"), ("b", "back\\slash")]), 3),
            (labels(&[("a", "line\nbreak"), ("b", "")]), u64::MAX),
        ],
    );
    assert_eq!(
        out,
        "# HELP c_total C.
# TYPE c_total counter
c_total{a=\"x\\\"y\",b=\"back\\\\slash\"} 3
c_total{a=\"line\\nbreak\",b=\"\"} 18446744073709551615
"
    );
    let mut out = String::new();
    write_counter(&mut out, "none_total", "None yet.", &[]);
    assert_eq!(
        out,
        "# HELP none_total None yet.\n# TYPE none_total counter\n"
    );
}

fn change(family: u16, old: i32, new: i32, delta_us: u64, delta_known: bool) -> StateChange {
    let mut c = StateChange::decode(&[0u8; 256]).expect("zeroed record decodes");
    c.endpoints.family = family;
    c.oldstate = old;
    c.newstate = new;
    c.delta_ns = delta_us * 1000;
    c.delta_known = delta_known;
    c
}

#[test]
fn state_changes_count_every_event_and_time_only_seen_starts() {
    let mut m = Metrics::new();
    m.record_state_change(&change(AF_INET, 7, 2, 0, false)); // CLOSE -> SYN_SENT, start unseen
    m.record_state_change(&change(AF_INET, 2, 1, 40, true)); // SYN_SENT -> ESTABLISHED
    m.record_state_change(&change(AF_INET, 2, 1, 0, true)); // measured 0 us counts
    m.record_state_change(&change(AF_INET6, 99, 1, 5, true)); // unnamed state: its number
    let text = render(&m);
    for line in [
        "tcp_state_transitions_total{family=\"ipv4\",old_state=\"SYN_SENT\",new_state=\"ESTABLISHED\"} 2",
        "tcp_state_transitions_total{family=\"ipv4\",old_state=\"CLOSE\",new_state=\"SYN_SENT\"} 1",
        "tcp_state_transitions_total{family=\"ipv6\",old_state=\"99\",new_state=\"ESTABLISHED\"} 1",
        "tcp_state_duration_seconds_bucket{family=\"ipv4\",state=\"SYN_SENT\",le=\"0.000001\"} 1",
        "tcp_state_duration_seconds_bucket{family=\"ipv4\",state=\"SYN_SENT\",le=\"0.000063\"} 2",
        "tcp_state_duration_seconds_sum{family=\"ipv4\",state=\"SYN_SENT\"} 0.00004",
        "tcp_state_duration_seconds_count{family=\"ipv4\",state=\"SYN_SENT\"} 2",
        "tcp_state_duration_seconds_count{family=\"ipv6\",state=\"99\"} 1",
        "tcptools_exporter_events_lost_total{source=\"tcpstates\"} 0",
        "tcptools_exporter_events_skipped_total{program=\"tcprtt\"} 0",
        // Histograms of both families exist before any sample.
        "tcp_connect_latency_seconds_count{family=\"ipv6\"} 0",
        "tcp_rtt_seconds_bucket{family=\"ipv4\",le=\"+Inf\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // No duration for the unseen start of CLOSE.
    assert!(!text.contains(",state=\"CLOSE\""), "{text}");
    // Exactly one TYPE line per family of metrics, and every sample line parses.
    assert_eq!(
        text.matches("# TYPE tcp_state_duration_seconds ").count(),
        1
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').expect("name value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[test]
fn connects_and_rtt_totals() {
    let mut m = Metrics::new();
    let mut c = ConnectLatency::decode(&[0u8; 256]).expect("zeroed record decodes");
    c.endpoints.family = AF_INET6;
    c.delta_us = 1500;
    m.record_connect(&c);
    let text = render(&m);
    assert!(
        text.contains("tcp_connect_latency_seconds_bucket{family=\"ipv6\",le=\"0.001023\"} 0\n")
    );
    assert!(
        text.contains("tcp_connect_latency_seconds_bucket{family=\"ipv6\",le=\"0.002047\"} 1\n")
    );
    assert!(text.contains("tcp_connect_latency_seconds_sum{family=\"ipv6\"} 0.0015\n"));

    // The kernel's 32-bit slots wrap; the totals do not.
    let mut totals = RttTotals::default();
    let mut hist = Log2Hist::new(3);
    totals.update(AF_INET, &[u32::MAX - 1, 0, 5], 100, &mut hist);
    totals.update(AF_INET, &[3, 0, 5], 160, &mut hist);
    assert_eq!(hist.slots, vec![u64::from(u32::MAX) + 4, 0, 5]);
    assert_eq!(hist.sum_us, 160);
    // A read with no change adds nothing: scrapes never double count.
    totals.update(AF_INET, &[3, 0, 5], 160, &mut hist);
    assert_eq!(hist.count(), u64::from(u32::MAX) + 9);
}

#[test]
fn port_filter_is_tcpstates_l_and_d() {
    use tcptools::net::{Endpoints, PortFilter, PortList};
    let list = |s: &str| PortList::parse(s);
    let ports = |lport, rport| Endpoints {
        lport,
        rport,
        ..Endpoints::default()
    };
    assert!(PortFilter::default().allows(&ports(1, 2)));
    let remote = PortFilter {
        local: None,
        remote: list("80,443"),
    };
    assert!(remote.allows(&ports(50000, 443)));
    assert!(!remote.allows(&ports(443, 50000)));
    let both = PortFilter {
        local: list("5000"),
        remote: list("80"),
    };
    assert!(both.allows(&ports(5000, 80)));
    assert!(!both.allows(&ports(5000, 81)));
    assert!(!both.allows(&ports(5001, 80)));
}
