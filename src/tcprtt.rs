//! tcprtt's histograms and how each interval is printed: bcc's sections, or JSON.

pub mod options;

use std::cmp::Ordering;
use std::io::{self, Write};

use chrono::{DateTime, Local};
use serde_json::json;

use crate::hist::{slot_range, write_log2_hist};
use crate::net::{format_addr, AF_INET};
use crate::skel::tcprtt::types;
use crate::time::rfc3339;

/// Number of log2 slots the BPF side fills (bpf/tcprtt.h `MAX_SLOTS`).
pub const MAX_SLOTS: usize = 27;

/// What the histograms are keyed by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyKind {
    /// One histogram for every socket.
    #[default]
    All,
    /// `-b`: one per local address.
    Local,
    /// `-B`: one per remote address.
    Remote,
}

/// How intervals are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Format {
    pub key: KeyKind,
    /// `-e`: `[AVG n]` after each section header.
    pub extension: bool,
    /// `-T`: an `HH:MM:SS` line at the top of each interval.
    pub timestamp: bool,
    /// `-m`: the samples are milliseconds.
    pub millisecond: bool,
    /// `--json`: one object per histogram instead of text.
    pub json: bool,
}

impl Format {
    pub fn unit(&self) -> &'static str {
        if self.millisecond {
            "msecs"
        } else {
            "usecs"
        }
    }
}

/// One histogram of one interval: the samples of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttHist {
    /// 0 for the all-addresses histogram; else AF_INET or AF_INET6.
    pub family: u16,
    /// The key's address (IPv4 in the first 4 bytes); zero for all addresses.
    pub addr: [u8; 16],
    /// Sum of the samples, in the histogram's unit.
    pub sum: u64,
    /// Number of samples, as counted next to the sum.
    pub count: u64,
    pub slots: [u32; MAX_SLOTS],
}

impl RttHist {
    /// Converts the BPF map's key and value.
    pub fn from_map(key: &types::hist_key, value: &types::hist) -> RttHist {
        RttHist {
            family: key.family,
            addr: key.addr,
            sum: value.latency,
            count: value.cnt,
            slots: value.slots,
        }
    }

    /// Decodes raw map bytes; None if either is too short.
    pub fn decode(key: &[u8], value: &[u8]) -> Option<(u32, RttHist)> {
        let mut k = types::hist_key::default();
        let mut v = types::hist::default();
        plain::copy_from_bytes(&mut k, key).ok()?;
        plain::copy_from_bytes(&mut v, value).ok()?;
        Some((k.generation, RttHist::from_map(&k, &v)))
    }

    /// `[AVG n]`: the integer mean as bcc computes it, 0 when there is no sample.
    pub fn average(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }

    /// Adds another histogram of the same key (the same key seen twice in one interval).
    pub fn merge(&mut self, other: &RttHist) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.count = self.count.wrapping_add(other.count);
        for (a, b) in self.slots.iter_mut().zip(other.slots.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    fn addr_text(&self) -> String {
        format_addr(self.family, &self.addr)
    }
}

/// Print order: bcc prints in hash order, which is arbitrary; this prints IPv4 keys before
/// IPv6 keys, each in address order, so output is stable.
pub fn sort_sections(hists: &mut [RttHist]) {
    hists.sort_by(|a, b| {
        let rank = |h: &RttHist| match h.family {
            0 => 0,
            AF_INET => 1,
            _ => 2,
        };
        match rank(a).cmp(&rank(b)) {
            Ordering::Equal => a.addr.cmp(&b.addr),
            other => other,
        }
    });
}

/// The line printed once at start.
pub fn banner(w: &mut dyn Write, duration_secs: Option<u64>, format: &Format) -> io::Result<()> {
    if format.json {
        return Ok(());
    }
    match duration_secs {
        Some(secs) => writeln!(w, "Tracing TCP RTT for {secs} secs."),
        None => writeln!(w, "Tracing TCP RTT... Hit Ctrl-C to end."),
    }
}

/// One interval, printed at `at`: bcc's empty line, the `-T` time line, then one section
/// per histogram (header, histogram), back to back. JSON: one object per histogram.
pub fn write_interval(
    w: &mut dyn Write,
    format: &Format,
    at: DateTime<Local>,
    hists: &[RttHist],
) -> io::Result<()> {
    if format.json {
        let time = rfc3339(at);
        for hist in hists {
            write_json(w, format, &time, hist)?;
        }
        return Ok(());
    }
    w.write_all(b"\n")?;
    if format.timestamp {
        writeln!(w, "{:<8}", at.format("%H:%M:%S").to_string())?;
    }
    for hist in hists {
        write_section_header(w, format, hist)?;
        write_log2_hist(w, &hist.slots, format.unit())?;
    }
    Ok(())
}

/// `All Addresses = ****** `, `Local Address = IP `, `Remote Address = IP `, each with
/// bcc's trailing space, then `[AVG n]` under `-e`.
pub fn write_section_header(w: &mut dyn Write, format: &Format, hist: &RttHist) -> io::Result<()> {
    match format.key {
        KeyKind::All => w.write_all(b"All Addresses = ****** ")?,
        KeyKind::Local => write!(w, "Local Address = {} ", hist.addr_text())?,
        KeyKind::Remote => write!(w, "Remote Address = {} ", hist.addr_text())?,
    }
    if format.extension {
        write!(w, "[AVG {}]", hist.average())?;
    }
    w.write_all(b"\n")
}

/// `{"time", "unit", "key", "addr" (not for all), "avg" (with -e), "count", "sum",
/// "buckets": [{"low", "high", "count"}, ...]}`, buckets as the text rows: `0 -> 1` up to
/// the last non-empty slot.
fn write_json(w: &mut dyn Write, format: &Format, time: &str, hist: &RttHist) -> io::Result<()> {
    let rows = hist.slots.iter().rposition(|&v| v > 0).map_or(0, |i| i + 1);
    let buckets: Vec<_> = hist.slots[..rows]
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let (low, high) = slot_range(i);
            json!({"low": low, "high": high, "count": count})
        })
        .collect();
    let key = match format.key {
        KeyKind::All => "all",
        KeyKind::Local => "local",
        KeyKind::Remote => "remote",
    };
    let total: u64 = hist.slots.iter().map(|&v| u64::from(v)).sum();
    let mut object = serde_json::Map::new();
    object.insert("time".into(), json!(time));
    object.insert("unit".into(), json!(format.unit()));
    object.insert("key".into(), json!(key));
    if format.key != KeyKind::All {
        object.insert("addr".into(), json!(hist.addr_text()));
    }
    if format.extension {
        object.insert("avg".into(), json!(hist.average()));
    }
    object.insert("count".into(), json!(total));
    object.insert("sum".into(), json!(hist.sum));
    object.insert("buckets".into(), json!(buckets));
    serde_json::to_writer(&mut *w, &object)?;
    w.write_all(b"\n")
}
