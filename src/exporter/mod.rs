//! tcptools-exporter: TCP state changes, connect outcomes and latency, time in states and
//! RTT, counted in the kernel (bpf/exporter.bpf.c) and served in the Prometheus text
//! format, or in the protobuf format with native histograms. Options, the kernel side, the
//! metrics model, a scrape, its exposition (text and protobuf) and the HTTP side, one
//! module each.

pub mod auth;
pub mod collect;
pub mod connections;
pub mod exposition;
pub mod http;
pub mod label_sets;
pub mod listen;
pub mod metrics;
pub mod options;
pub mod protobuf;
pub mod scrape;
pub mod tls_policy;
pub mod web_config;
pub mod web_reload;

pub use exposition::{encode, family_label, render, Format, Own, Series, CONTENT_TYPE};
pub use metrics::{slot_of, Counts, Groups, Hist, HistKind, Outcome};
pub use options::{Config, GroupBy, Options};

/// Default address of the `/metrics` endpoint.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10187";
