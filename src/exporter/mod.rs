//! tcptools-exporter: the tools' BPF programs, loaded once, counted into cumulative metrics
//! and served in the Prometheus text format. Options, loading and collecting, the metrics
//! model, its exposition and the HTTP side, one module each.

pub mod auth;
pub mod collect;
pub mod exposition;
pub mod http;
pub mod metrics;
pub mod options;
pub mod web_config;

pub use exposition::{
    escape_label_value, render, seconds, slot_le, write_counter, write_histogram, Labels,
};
pub use metrics::{slot_of, Log2Hist, Metrics, RttTotals};
pub use options::{Config, Options};

use crate::net::{AF_INET, AF_INET6};

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
