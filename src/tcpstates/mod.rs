//! tcpstates: every TCP state change of any socket, with the time spent in the state it
//! left. Options, BPF loading, the decoded record and its printers, one module each.

pub mod bpf;
pub mod event;
pub mod journal;
pub mod options;
pub mod print;

pub use event::{state_name, StateChange};
pub use options::{Config, Options};
pub use print::{Format, Printer};
