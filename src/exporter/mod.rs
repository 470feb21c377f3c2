//! tcptools-exporter: TCP state changes, connect outcomes and latency, time in states and
//! RTT, counted in the kernel (bpf/exporter.bpf.c) and served in the Prometheus text
//! format. Options, the kernel side, the metrics model, a scrape, its exposition and the
//! HTTP side, one module each.

pub mod auth;
pub mod collect;
pub mod exposition;
pub mod http;
pub mod label_sets;
pub mod metrics;
pub mod options;
pub mod scrape;
pub mod tls_policy;
pub mod web_config;
pub mod web_reload;

pub use exposition::{family_label, render, slot_le, Own, Series, CONTENT_TYPE};
pub use metrics::{slot_of, Counts, Groups, HistKind, Log2Hist, Outcome};
pub use options::{Config, GroupBy, Options};

/// Default address of the `/metrics` endpoint.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10187";

/// Log2 slots of the RTT histogram: the tools' (bpf/tcprtt.h `MAX_SLOTS`).
pub const RTT_SLOTS: usize = crate::tcprtt::MAX_SLOTS;
/// Connect latency slots: as RTT, the last one holds 2^26 us (67 s) and more.
pub const CONNECT_SLOTS: usize = 27;
/// State duration slots: states last up to hours, so the last finite bucket is ~9.5 h.
pub const STATE_SLOTS: usize = 36;
