//! tcpconnlat: how long each active TCP connect waited for its answer. Options, BPF
//! loading, the decoded record and its printer, one module each.

pub mod bpf;
pub mod event;
pub mod options;
pub mod print;

pub use event::ConnectLatency;
pub use options::{Config, Options};
pub use print::{Format, Printer};
