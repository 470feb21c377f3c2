//! tcprtt: the smoothed RTT of received TCP segments as log2 histograms, per interval.
//! Options, BPF loading and reading, the decoded histogram and its printers, one module
//! each.

pub mod bpf;
pub mod event;
pub mod options;
pub mod print;

pub use event::{RttHist, MAX_SLOTS};
pub use options::{Config, Options};
pub use print::{banner, merge_by_pod, sort_sections, write_interval, Format, KeyKind};
