//! How tcprtt prints an interval: bcc's sections, or JSON.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::{self, Write};

use chrono::{DateTime, Local};
use serde_json::json;

use super::event::RttHist;
use crate::hist::{slot_range, write_log2_hist};
use crate::net::{format_addr, AF_INET};
use crate::pods::Identities;
use crate::skel::tcprtt::types::hist_key_kind;
use crate::time::rfc3339;

/// What the histograms are keyed by: the values of `enum hist_key_kind` (bpf/tcprtt.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyKind {
    /// One histogram for every socket.
    #[default]
    All = hist_key_kind::KEY_ALL.0 as isize,
    /// `-b`: one per local address.
    Local = hist_key_kind::KEY_LADDR.0 as isize,
    /// `-B`: one per remote address.
    Remote = hist_key_kind::KEY_RADDR.0 as isize,
    /// `--bycgroup`: one per cgroup v2 of the sockets.
    Cgroup = hist_key_kind::KEY_CGROUP.0 as isize,
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
    /// `--bypod` (with the cgroup key): the cgroups' histograms merged per pod.
    pub bypod: bool,
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

impl RttHist {
    fn addr_text(&self) -> String {
        format_addr(self.family, &self.addr)
    }
}

/// Print order: bcc prints in hash order, which is arbitrary; this prints IPv4 keys before
/// IPv6 keys, each in address order, and cgroups in path order, so output is stable.
pub fn sort_sections(hists: &mut [RttHist]) {
    hists.sort_by(|a, b| {
        let rank = |h: &RttHist| match h.family {
            0 => 0,
            AF_INET => 1,
            _ => 2,
        };
        match rank(a).cmp(&rank(b)) {
            Ordering::Equal => (&a.cgroup, a.addr).cmp(&(&b.cgroup, b.addr)),
            other => other,
        }
    });
}

/// `--bypod`'s section key: NAMESPACE/POD, or the cgroup path outside named pods.
fn pod_key(hist: &RttHist) -> String {
    match &hist.pod {
        Some((namespace, pod)) => format!("{namespace}/{pod}"),
        None => hist.cgroup.clone(),
    }
}

/// `--bypod`: the cgroups' histograms merged per pod the runtime names; cgroups in no such
/// pod keep their own. In print order.
pub fn merge_by_pod(hists: Vec<RttHist>, identities: &mut Identities) -> Vec<RttHist> {
    let mut merged: BTreeMap<String, RttHist> = BTreeMap::new();
    for mut hist in hists {
        let shown = identities.of(hist.cgroup_id);
        hist.pod = shown.namespace.zip(shown.pod);
        hist.cgroup = shown.cgroup;
        match merged.get_mut(&pod_key(&hist)) {
            Some(into) => into.merge(&hist),
            None => drop(merged.insert(pod_key(&hist), hist)),
        }
    }
    merged.into_values().collect()
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
        KeyKind::Cgroup if format.bypod => write!(w, "Pod = {} ", pod_key(hist))?,
        KeyKind::Cgroup => write!(w, "Cgroup = {} ", hist.cgroup)?,
    }
    if format.extension {
        write!(w, "[AVG {}]", hist.average())?;
    }
    w.write_all(b"\n")
}

/// The fields of a `--json` object and what each holds (the man page's JSON FIELDS).
pub const JSON_FIELDS: &[(&str, &str)] = &[
    ("time", "The local time the interval was printed, RFC 3339."),
    ("unit", "usecs, or msecs with -m."),
    (
        "key",
        "all, local (-b), remote (-B), cgroup (--bycgroup) or pod (--bypod).",
    ),
    ("addr", "With -b or -B only: the local or remote address."),
    (
        "cgroup",
        "With --bycgroup: the cgroup v2 path (/ for the root); with --bypod, for a cgroup \
in no pod the container runtime names.",
    ),
    (
        "namespace",
        "With --bypod only: the pod's Kubernetes namespace, as the container runtime names it.",
    ),
    ("pod", "With --bypod only: the pod's name, likewise."),
    (
        "avg",
        "With -e only: sum / count in integer division, 0 when count is 0.",
    ),
    ("count", "The samples in this histogram."),
    ("sum", "The sum of the samples, in unit."),
    (
        "buckets",
        "{\"low\", \"high\", \"count\"} per log2 slot, as the text rows: from 0 -> 1 to \
the last non-empty slot.",
    ),
];

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
        KeyKind::Cgroup if format.bypod => "pod",
        KeyKind::Cgroup => "cgroup",
    };
    let total: u64 = hist.slots.iter().map(|&v| u64::from(v)).sum();
    let mut object = serde_json::Map::new();
    object.insert("time".into(), json!(time));
    object.insert("unit".into(), json!(format.unit()));
    object.insert("key".into(), json!(key));
    match format.key {
        KeyKind::All => {}
        KeyKind::Cgroup => match &hist.pod {
            Some((namespace, pod)) if format.bypod => {
                object.insert("namespace".into(), json!(namespace));
                object.insert("pod".into(), json!(pod));
            }
            _ => drop(object.insert("cgroup".into(), json!(hist.cgroup))),
        },
        _ => drop(object.insert("addr".into(), json!(hist.addr_text()))),
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
