//! Golden tests of tcptools-exporter's exposition of the kernel's counts (no BPF, no root).

use tcptools::exporter::http::Serving;
use tcptools::exporter::metrics::{attempt_index, hist_index, transition_index, HIST_SLOTS};
use tcptools::exporter::{
    render, slot_le, slot_of, Counts, HistKind, Log2Hist, Outcome, Own, Series,
};
use tcptools::net::{Endpoints, PortFilter, PortList};

#[test]
fn le_is_each_slots_inclusive_upper_bound_in_seconds() {
    assert_eq!(slot_le(0), 0.000001);
    assert_eq!(slot_le(1), 0.000003);
    assert_eq!(slot_le(9), 0.001023);
    assert_eq!(slot_le(19), 1.048575);
    assert_eq!(slot_le(25), 67.108863);
    assert_eq!(slot_le(34), 34359.738367);
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

fn kernel_hist(values_us: &[u64]) -> Log2Hist {
    let mut hist = Log2Hist::new(HIST_SLOTS);
    for &us in values_us {
        record(&mut hist, us);
    }
    hist
}

/// What the kernel does with a value: one more in its log2 slot, and the value in the sum.
fn record(hist: &mut Log2Hist, value_us: u64) {
    let slot = slot_of(value_us, hist.slots.len());
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
    let text = render(
        &[Series {
            group: Vec::new(),
            counts: &counts,
        }],
        &own(),
    );
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
            "tcp_connect_latency_seconds_bucket{family=\"ipv4\",outcome=\"established\",le=\"0.000063\"} 1",
            "tcp_connect_latency_seconds_bucket{family=\"ipv4\",outcome=\"established\",le=\"0.002047\"} 2",
            "tcp_connect_latency_seconds_bucket{family=\"ipv4\",outcome=\"established\",le=\"+Inf\"} 2",
            "tcp_connect_latency_seconds_sum{family=\"ipv4\",outcome=\"established\"} 0.00154",
            "tcp_connect_latency_seconds_count{family=\"ipv4\",outcome=\"established\"} 2",
            // Histograms of both families and answered outcomes exist before any sample.
            "tcp_connect_latency_seconds_count{family=\"ipv6\",outcome=\"refused\"} 0",
            "tcp_rtt_seconds_bucket{family=\"ipv4\",le=\"+Inf\"} 0",
            // The kernel's slots past the RTT's last (2^26 us) fold into +Inf.
            "tcp_rtt_seconds_bucket{family=\"ipv6\",le=\"67.108863\"} 1",
            "tcp_rtt_seconds_bucket{family=\"ipv6\",le=\"+Inf\"} 2",
            "tcp_rtt_seconds_sum{family=\"ipv6\"} 1073.741824",
            "tcp_state_duration_seconds_bucket{family=\"ipv4\",state=\"SYN_SENT\",le=\"2.097151\"} 2",
            "tcp_state_duration_seconds_bucket{family=\"ipv4\",state=\"SYN_SENT\",le=\"4.194303\"} 3",
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
        Series {
            group: vec![("cgroup", "/a \"b\"".to_owned())],
            counts: &counts,
        },
        Series {
            group: vec![("cgroup", "other".to_owned())],
            counts: &quiet,
        },
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
        Series {
            group: pod("shop", "web-0"),
            counts: &counts,
        },
        Series {
            group: pod("", uid),
            counts: &counts,
        },
        Series {
            group: pod("", ""),
            counts: &counts,
        },
        Series {
            group: pod("other", "other"),
            counts: &quiet,
        },
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
        Series {
            group: container(["", "", "we\\ird \"name\""]),
            counts: &counts,
        },
        Series {
            group: container(["other", "other", "other"]),
            counts: &counts,
        },
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
