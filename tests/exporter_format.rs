//! Golden tests of tcptools-exporter's exposition of the kernel's counts (no BPF, no root):
//! the histograms' grid, the text format and the protobuf format with native histograms.

use prost::Message;
use tcptools::exporter::http::Serving;
use tcptools::exporter::metrics::{
    attempt_index, bound_seconds, hist_index, kernel_bounds, transition_index, GroupedHists,
    HIST_BOUNDS, HIST_SLOTS,
};
use tcptools::exporter::protobuf::MetricFamily;
use tcptools::exporter::{
    encode, render, slot_of, Counts, Format, Hist, HistKind, Outcome, Own, Series,
};
use tcptools::net::{Endpoints, PortFilter, PortList};

#[test]
fn kernel_bounds_are_the_native_grid_in_ns() {
    let table = kernel_bounds();
    // 2^-20 s, 2^-19.5 s, ..., 1 s, ..., 2^16 s, each rounded down to a whole ns.
    assert_eq!(&table[..4], &[953, 1348, 1907, 2697]);
    assert_eq!(table[40], 1_000_000_000);
    assert_eq!(table[41], 1_414_213_562);
    assert_eq!(table[HIST_BOUNDS - 1], 65_536_000_000_000);
    assert!(table[HIST_BOUNDS..].iter().all(|&b| b == u64::MAX));
    assert!(table[..HIST_BOUNDS].windows(2).all(|w| w[0] < w[1]));
    // A value lands in the first slot whose bound is at or above it, as the kernel's
    // binary search puts it; above the last bound, the last slot.
    for (ns, slot) in [
        (0, 0),
        (953, 0),
        (954, 1),
        (1348, 1),
        (1349, 2),
        (999_999_999, 40),
        (1_000_000_000, 40),
        (1_000_000_001, 41),
        (65_536_000_000_000, HIST_BOUNDS - 1),
        (65_536_000_000_001, HIST_SLOTS - 1),
        (u64::MAX, HIST_SLOTS - 1),
    ] {
        assert_eq!(slot_of(ns), slot, "{ns} ns");
    }
}

#[test]
fn classic_le_are_every_fourth_native_bound() {
    let mut hist = Hist::default();
    for slot in 0..HIST_SLOTS {
        hist.slots[slot] = 1;
    }
    let rtt = hist.classic(HistKind::Rtt);
    let state = hist.classic(HistKind::State(1));
    assert_eq!((rtt.len(), state.len()), (14, 19));
    for (n, (le, cumulative)) in state.iter().enumerate() {
        // Powers of 4 from 2^-20 s, exact; the count at each is the native buckets' sum
        // up to that bound, zero bucket included.
        assert_eq!(*le, 4f64.powi(n as i32 - 10));
        assert_eq!(*le, bound_seconds(4 * n));
        assert_eq!(*cumulative, 4 * n as u64 + 1);
    }
    assert_eq!(rtt.last(), Some(&(64.0, 53)));
}

fn kernel_hist(values_us: &[u64]) -> Hist {
    let mut hist = Hist::default();
    for &us in values_us {
        record(&mut hist, us);
    }
    hist
}

/// What the kernel does with a value: one more in its slot, and the value in the sum.
fn record(hist: &mut Hist, value_us: u64) {
    let slot = slot_of(value_us.saturating_mul(1000));
    hist.slots[slot] = hist.slots[slot].wrapping_add(1);
    hist.sum_us = hist.sum_us.wrapping_add(value_us);
}

/// Counts as the kernel would hold them after a few connects and state changes.
fn some_counts() -> Counts {
    let mut c = Counts::default();
    c.counters[transition_index(0, 7, 2)] = 3; // CLOSE -> SYN_SENT
    c.counters[transition_index(0, 2, 1)] = 2; // SYN_SENT -> ESTABLISHED
    c.counters[transition_index(0, 2, 7)] = 1; // SYN_SENT -> CLOSE
    c.counters[transition_index(1, 15, 1)] = 1; // an unnamed state: its number
    c.counters[attempt_index(0, Outcome::Established)] = 2;
    c.counters[attempt_index(0, Outcome::Timeout)] = 1;
    c.hists[hist_index(0, HistKind::Connect(Outcome::Established))] = kernel_hist(&[40, 1500]);
    c.hists[hist_index(0, HistKind::State(2))] = kernel_hist(&[40, 1500, 3_000_000]);
    c.hists[hist_index(1, HistKind::Rtt)] = kernel_hist(&[0, 1 << 30]);
    c
}

fn own() -> Own {
    Own {
        hook: "tp_btf".to_owned(),
        sk_storage: true,
        ..Own::default()
    }
}

/// build_info's line: build.rs sets the revision, rustc version and target.
fn build_info() -> String {
    format!(
        "tcptools_exporter_build_info{{version=\"0.1.0\",revision=\"{}\",rustc_version=\"{}\",target=\"{}\"}} 1",
        env!("TCPTOOLS_REVISION"),
        env!("TCPTOOLS_RUSTC_VERSION"),
        env!("TCPTOOLS_TARGET")
    )
}

/// The HTTP side's figures, golden.
#[test]
fn serving_figures() {
    let own = Own {
        serving: Some(Serving {
            responses: vec![(200, 7), (401, 2), (500, 1), (503, 0)],
            scrape_errors: 1,
            last_scrape_seconds: 0.0025,
            connections_shed: 976,
            connections_refused: 3,
        }),
        ..own()
    };
    let text = render(&[], &own);
    assert_lines(
        &text,
        &[
            "# HELP tcptools_exporter_scrape_duration_seconds Time the previous scrape took to read the kernel's counts and render them.",
            "# TYPE tcptools_exporter_scrape_duration_seconds gauge",
            "tcptools_exporter_scrape_duration_seconds 0.0025",
            "# TYPE tcptools_exporter_scrape_errors_total counter",
            "tcptools_exporter_scrape_errors_total 1",
            "# TYPE tcptools_exporter_http_requests_total counter",
            "tcptools_exporter_http_requests_total{code=\"200\"} 7",
            "tcptools_exporter_http_requests_total{code=\"401\"} 2",
            "tcptools_exporter_http_requests_total{code=\"500\"} 1",
            "tcptools_exporter_http_requests_total{code=\"503\"} 0",
            "tcptools_exporter_http_connections_shed_total 976",
            "tcptools_exporter_http_connections_refused_total 3",
        ],
    );
    assert!(!render(&[], &self::own()).contains("tcptools_exporter_http_"));
}

fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn every_socket_s_series() {
    let counts = some_counts();
    let text = render(&[Series::new(Vec::new(), &counts)], &own());
    assert_lines(
        &text,
        &[
            "# HELP tcp_connect_attempts_total TCP connects by how they left SYN_SENT: established, refused (an RST), timeout (the SYN retries ran out) or other.",
            "# TYPE tcp_connect_attempts_total counter",
            "tcp_connect_attempts_total{family=\"ipv4\",outcome=\"established\"} 2",
            "tcp_connect_attempts_total{family=\"ipv4\",outcome=\"timeout\"} 1",
            "tcp_connect_attempts_total{family=\"ipv6\",outcome=\"refused\"} 0",
            "tcp_state_transitions_total{family=\"ipv4\",old_state=\"CLOSE\",new_state=\"SYN_SENT\"} 3",
            "tcp_state_transitions_total{family=\"ipv4\",old_state=\"SYN_SENT\",new_state=\"ESTABLISHED\"} 2",
            "tcp_state_transitions_total{family=\"ipv6\",old_state=\"15\",new_state=\"ESTABLISHED\"} 1",
            // Classic le: powers of 4 from 2^-20 s, a subset of the native bounds.
            "tcp_connect_latency_seconds_bucket{family=\"ipv4\",outcome=\"established\",le=\"0.0000152587890625\"} 0",
            "tcp_connect_latency_seconds_bucket{family=\"ipv4\",outcome=\"established\",le=\"0.00006103515625\"} 1",
            "tcp_connect_latency_seconds_bucket{family=\"ipv4\",outcome=\"established\",le=\"0.0009765625\"} 1",
            "tcp_connect_latency_seconds_bucket{family=\"ipv4\",outcome=\"established\",le=\"0.00390625\"} 2",
            "tcp_connect_latency_seconds_bucket{family=\"ipv4\",outcome=\"established\",le=\"+Inf\"} 2",
            "tcp_connect_latency_seconds_sum{family=\"ipv4\",outcome=\"established\"} 0.00154",
            "tcp_connect_latency_seconds_count{family=\"ipv4\",outcome=\"established\"} 2",
            // Histograms of both families and answered outcomes exist before any sample.
            "tcp_connect_latency_seconds_count{family=\"ipv6\",outcome=\"refused\"} 0",
            "tcp_rtt_seconds_bucket{family=\"ipv4\",le=\"+Inf\"} 0",
            // 0 is in the zero bucket, the first le; above the RTT's last le (64 s), +Inf.
            "tcp_rtt_seconds_bucket{family=\"ipv6\",le=\"0.00000095367431640625\"} 1",
            "tcp_rtt_seconds_bucket{family=\"ipv6\",le=\"64\"} 1",
            "tcp_rtt_seconds_bucket{family=\"ipv6\",le=\"+Inf\"} 2",
            "tcp_rtt_seconds_sum{family=\"ipv6\"} 1073.741824",
            "tcp_state_duration_seconds_bucket{family=\"ipv4\",state=\"SYN_SENT\",le=\"1\"} 2",
            "tcp_state_duration_seconds_bucket{family=\"ipv4\",state=\"SYN_SENT\",le=\"4\"} 3",
            "tcp_state_duration_seconds_bucket{family=\"ipv4\",state=\"SYN_SENT\",le=\"65536\"} 3",
            "tcp_state_duration_seconds_count{family=\"ipv4\",state=\"SYN_SENT\"} 3",
            &build_info(),
            "tcptools_exporter_attach_info{hook=\"tp_btf\",socket_storage=\"true\"} 1",
            "tcptools_exporter_sockets_untracked_total 0",
        ],
    );
    // No state without samples, no timeout latency, and no group families.
    assert!(!text.contains(",state=\"CLOSE\""), "{text}");
    assert!(!text.contains("outcome=\"timeout\",le"), "{text}");
    assert!(!text.contains("tcptools_exporter_groups"), "{text}");
    assert_eq!(
        text.matches("# TYPE tcp_state_duration_seconds ").count(),
        1
    );
}

#[test]
fn group_series_show_only_what_they_counted() {
    let counts = some_counts();
    let quiet = Counts::default();
    let series = [
        Series::new(vec![("cgroup", "/a \"b\"".to_owned())], &counts),
        Series::new(vec![("cgroup", "other".to_owned())], &quiet),
    ];
    let own = Own {
        groups: Some((1, 0)),
        group_overflow: 7,
        ..own()
    };
    let text = render(&series, &own);
    assert_lines(
        &text,
        &[
            "tcp_connect_attempts_total{family=\"ipv4\",outcome=\"established\",cgroup=\"/a \\\"b\\\"\"} 2",
            "tcptools_exporter_group_overflow_total 7",
            "tcptools_exporter_groups{kind=\"labeled\"} 1",
            "tcptools_exporter_groups{kind=\"other\"} 0",
        ],
    );
    assert!(!text.contains("cgroup=\"other\""), "{text}");
    assert!(!text.contains("outcome=\"refused\""), "{text}");
}

/// `--group-by pod`: a named pod, one the runtime does not name (by uid, namespace ""),
/// the node's own sockets (empty names) and "other" in each label; the runtime's metrics.
#[test]
fn pod_series_carry_namespace_and_pod() {
    let counts = some_counts();
    let quiet = Counts::default();
    let pod = |namespace: &str, pod: &str| {
        vec![("namespace", namespace.to_owned()), ("pod", pod.to_owned())]
    };
    let uid = "3f2a9c1e-5b7d-4e8f-a012-6c3d4e5f6a7b";
    let series = [
        Series::new(pod("shop", "web-0"), &counts),
        Series::new(pod("", uid), &counts),
        Series::new(pod("", ""), &counts),
        Series::new(pod("other", "other"), &quiet),
    ];
    let runtime = tcptools::runtime::Status {
        endpoints: vec!["unix:///run/containerd/containerd.sock".to_owned()],
        up: false,
        errors: 3,
    };
    let own = Own {
        groups: Some((3, 0)),
        runtime: Some(runtime),
        ..own()
    };
    let text = render(&series, &own);
    assert_lines(
        &text,
        &[
            "tcp_connect_attempts_total{family=\"ipv4\",outcome=\"established\",namespace=\"shop\",pod=\"web-0\"} 2",
            "tcp_connect_attempts_total{family=\"ipv4\",outcome=\"established\",namespace=\"\",pod=\"3f2a9c1e-5b7d-4e8f-a012-6c3d4e5f6a7b\"} 2",
            "tcp_connect_attempts_total{family=\"ipv4\",outcome=\"established\",namespace=\"\",pod=\"\"} 2",
            "tcp_state_transitions_total{family=\"ipv4\",old_state=\"CLOSE\",new_state=\"SYN_SENT\",namespace=\"shop\",pod=\"web-0\"} 3",
            "tcp_rtt_seconds_bucket{family=\"ipv6\",namespace=\"shop\",pod=\"web-0\",le=\"+Inf\"} 2",
            "tcp_rtt_seconds_sum{family=\"ipv6\",namespace=\"\",pod=\"\"} 1073.741824",
            "tcp_state_duration_seconds_count{family=\"ipv4\",state=\"SYN_SENT\",namespace=\"\",pod=\"3f2a9c1e-5b7d-4e8f-a012-6c3d4e5f6a7b\"} 3",
            "# HELP tcptools_exporter_runtime_up Whether the container runtimes answered the last refresh of their pods' and containers' names: 1 or 0 (with --group-by namespace, pod or container).",
            "# TYPE tcptools_exporter_runtime_up gauge",
            "tcptools_exporter_runtime_up 0",
            "# TYPE tcptools_exporter_runtime_errors_total counter",
            "tcptools_exporter_runtime_errors_total 3",
            "tcptools_exporter_groups{kind=\"labeled\"} 3",
        ],
    );
    // "other" counted nothing: no series yet.
    assert!(!text.contains("pod=\"other\""), "{text}");
}

/// `--group-by container`: three labels, "other" in each, values escaped.
#[test]
fn container_series_carry_three_labels() {
    let counts = some_counts();
    let container = |values: [&str; 3]| {
        let names = ["namespace", "pod", "container"];
        names.into_iter().zip(values.map(str::to_owned)).collect()
    };
    let series = [
        Series::new(container(["", "", "we\\ird \"name\""]), &counts),
        Series::new(container(["other", "other", "other"]), &counts),
    ];
    let text = render(&series, &own());
    assert_lines(
        &text,
        &[
            "tcp_connect_attempts_total{family=\"ipv4\",outcome=\"timeout\",namespace=\"\",pod=\"\",container=\"we\\\\ird \\\"name\\\"\"} 1",
            "tcp_connect_attempts_total{family=\"ipv4\",outcome=\"timeout\",namespace=\"other\",pod=\"other\",container=\"other\"} 1",
        ],
    );
    // Without --group-by namespace, pod or container, no runtime metrics.
    assert!(!text.contains("tcptools_exporter_runtime_"), "{text}");
}

/// Whether the kernel counts `socket` under `filter`: each list given holds its port (in the
/// bitmap the BPF side tests), as tcpstates' -L and -D.
fn allows(filter: &PortFilter, socket: &Endpoints) -> bool {
    let has = |list: &Option<PortList>, port: u16| {
        list.as_ref()
            .is_none_or(|l| l.bitmap()[usize::from(port >> 6)] & (1 << (port & 63)) != 0)
    };
    has(&filter.local, socket.lport) && has(&filter.remote, socket.rport)
}

#[test]
fn port_filter_is_tcpstates_l_and_d() {
    let list = |s: &str| PortList::parse(s);
    let ports = |lport, rport| Endpoints {
        lport,
        rport,
        ..Endpoints::default()
    };
    assert!(allows(&PortFilter::default(), &ports(1, 2)));
    let remote = PortFilter {
        local: None,
        remote: list("80,443"),
    };
    assert!(allows(&remote, &ports(50000, 443)));
    assert!(!allows(&remote, &ports(443, 50000)));
    let both = PortFilter {
        local: list("5000"),
        remote: list("80"),
    };
    assert!(allows(&both, &ports(5000, 80)));
    assert!(!allows(&both, &ports(5000, 81)));
    assert!(!allows(&both, &ports(5001, 80)));
}

/// The protobuf exposition read back with the messages' own decoder: delimited families,
/// the same classic buckets as the text, and native buckets (schema 1, zero bucket, spans,
/// deltas) whose counts add up to the classic ones.
#[test]
fn protobuf_exposition_has_native_histograms() {
    let counts = some_counts();
    let series = [Series::new(Vec::new(), &counts)];
    let mut body = &encode(&series, &own(), Format::Protobuf)[..];
    let mut families = Vec::new();
    while !body.is_empty() {
        families.push(MetricFamily::decode_length_delimited(&mut body).expect("a family"));
    }
    let named = |name: &str| {
        let found = families.iter().find(|f| f.name.as_deref() == Some(name));
        found.unwrap_or_else(|| panic!("no {name}"))
    };
    let state = named("tcp_state_duration_seconds");
    assert_eq!(state.r#type, Some(4));
    assert_eq!(state.metric.len(), 1);
    let h = state.metric[0].histogram.as_ref().expect("a histogram");
    // 40 us, 1500 us and 3 s: native buckets -29 (2^-14.5 s, 42.9 us, to 2^-14 s), -18
    // (1.381 ms to 1.953 ms) and 4 (2.83 s to 4 s).
    assert_eq!(
        (h.schema, h.zero_threshold),
        (Some(1), Some(2f64.powi(-20)))
    );
    assert_eq!((h.sample_count, h.sample_sum), (Some(3), Some(3.00154)));
    let spans: Vec<(i32, u32)> = h
        .positive_span
        .iter()
        .map(|s| (s.offset.unwrap_or(0), s.length.unwrap_or(0)))
        .collect();
    assert_eq!(spans, vec![(-29, 1), (10, 1), (21, 1)]);
    assert_eq!(h.positive_delta, vec![1, 0, 0]);
    assert_eq!(h.zero_count, Some(0));
    // The classic buckets are the text's: 40 us by 2^-14 s, all three by 4 s.
    let classic: Vec<(f64, u64)> = h
        .bucket
        .iter()
        .map(|b| (b.upper_bound.unwrap(), b.cumulative_count.unwrap()))
        .collect();
    assert_eq!(classic.len(), 19);
    assert_eq!(classic[3], (2f64.powi(-14), 1));
    assert_eq!(classic[11], (4.0, 3));
    // An RTT histogram without samples is still native: the no-op span.
    let rtt = named("tcp_rtt_seconds");
    let empty = rtt.metric[0].histogram.as_ref().expect("a histogram");
    assert_eq!(empty.sample_count, Some(0));
    assert_eq!(
        (empty.positive_span[0].offset, empty.positive_span[0].length),
        (Some(0), Some(0))
    );
    let attempts = named("tcp_connect_attempts_total");
    assert_eq!(attempts.r#type, Some(0));
    assert_eq!(
        attempts.metric[0].counter.as_ref().unwrap().value,
        Some(2.0)
    );
    // A native histogram is one series: fewer than in the text.
    let series_of = |format| {
        let f = encode(&series, &own(), format);
        if format == Format::Text {
            let text = String::from_utf8(f).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("tcptools_exporter_series "));
            return line
                .unwrap()
                .split(' ')
                .nth(1)
                .unwrap()
                .parse::<f64>()
                .unwrap();
        }
        let mut body = &f[..];
        let mut value = None;
        while !body.is_empty() {
            let family = MetricFamily::decode_length_delimited(&mut body).unwrap();
            if family.name.as_deref() == Some("tcptools_exporter_series") {
                value = family.metric[0].gauge.as_ref().unwrap().value;
            }
        }
        value.unwrap()
    };
    assert!(series_of(Format::Protobuf) < series_of(Format::Text));
}

/// tcptools_exporter_series is the number of sample lines of the text, itself included.
#[test]
fn series_counts_the_text_s_samples() {
    let counts = some_counts();
    let series = [Series::new(vec![("cgroup", "/a".to_owned())], &counts)];
    let text = render(&series, &own());
    let samples = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_lines(&text, &[&format!("tcptools_exporter_series {samples}")]);
}

/// --group-histograms rtt,connect: groups keep RTT and connect latency; the durations of
/// states are the node's, without group labels; the node's series has no counters.
#[test]
fn state_durations_kept_node_wide() {
    let counts = some_counts();
    let node = some_counts();
    let kept = GroupedHists::parse("rtt,connect").expect("valid");
    let series = [
        Series {
            hists: kept,
            ..Series::new(vec![("pod", "web-0".to_owned())], &counts)
        },
        Series::node_hists(&node, kept),
    ];
    let text = render(&series, &own());
    assert_lines(
        &text,
        &[
            "tcp_state_duration_seconds_count{family=\"ipv4\",state=\"SYN_SENT\"} 3",
            "tcp_connect_latency_seconds_count{family=\"ipv4\",outcome=\"established\",pod=\"web-0\"} 2",
            "tcp_state_transitions_total{family=\"ipv4\",old_state=\"CLOSE\",new_state=\"SYN_SENT\",pod=\"web-0\"} 3",
        ],
    );
    assert!(!text.contains("seconds_count{family=\"ipv4\",state=\"SYN_SENT\",pod="));
    assert!(
        !text.contains("tcp_rtt_seconds_count{family=\"ipv4\"}"),
        "{text}"
    );
    assert_eq!(text.matches("tcp_state_transitions_total{").count(), 4);
    assert_eq!(GroupedHists::parse("rtt,bogus"), None);
    assert_eq!(GroupedHists::parse("none").map(|k| k.bits()), Some(0));
    assert_eq!(GroupedHists::ALL.bits(), 7);
}
