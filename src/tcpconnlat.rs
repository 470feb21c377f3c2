//! tcpconnlat's events and how they are printed: bcc's column layouts and JSON.

pub mod options;

use std::io::{self, Write};

use chrono::{DateTime, Local};
use serde_json::json;

use crate::net::{format_addr, AF_INET, AF_INET6};
use crate::out::Comm;
use crate::skel::tcpconnlat::types;
use crate::time::{rfc3339, seconds_since};

/// One connect and how long it waited for its answer, as the BPF program saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectLatency {
    /// The connecting process (tgid), taken when connect() started.
    pub pid: u32,
    pub comm: Comm,
    pub family: u16,
    pub saddr: [u8; 16],
    pub lport: u16,
    pub daddr: [u8; 16],
    pub dport: u16,
    /// From SYN_SENT to the SYN-ACK (or the RST of a refused connect).
    pub delta_us: u64,
    /// Kernel monotonic time of the answer.
    pub ts_us: u64,
}

impl ConnectLatency {
    /// Decodes a record of the BPF side's `struct connect_latency`; None if it is too short.
    pub fn decode(data: &[u8]) -> Option<ConnectLatency> {
        let mut raw = types::connect_latency::default();
        plain::copy_from_bytes(&mut raw, data).ok()?;
        Some(ConnectLatency {
            pid: raw.tgid,
            comm: Comm::from_kernel(&raw.comm),
            family: raw.family,
            saddr: raw.saddr,
            lport: raw.lport,
            daddr: raw.daddr,
            dport: raw.dport,
            delta_us: raw.delta_us,
            ts_us: raw.ts_us,
        })
    }

    /// bcc prints only IPv4 and IPv6 connects; anything else is a broken record.
    pub fn has_known_family(&self) -> bool {
        self.family == AF_INET || self.family == AF_INET6
    }
}

/// How lines are laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Format {
    /// `-t`: seconds since the first printed event.
    pub seconds: bool,
    /// `-L`: the local port column.
    pub lport: bool,
    /// `--json`: one object per line (overrides the columns).
    pub json: bool,
}

/// Renders the header and event lines for one run; remembers the first event for `-t`.
pub struct Printer {
    format: Format,
    first_ts_us: Option<u64>,
}

impl Printer {
    pub fn new(format: Format) -> Self {
        Printer {
            format,
            first_ts_us: None,
        }
    }

    /// The header line (none for JSON).
    pub fn header(&self, w: &mut dyn Write) -> io::Result<()> {
        let f = self.format;
        if f.json {
            return Ok(());
        }
        if f.seconds {
            write!(w, "{:<9} ", "TIME(s)")?;
        }
        write!(
            w,
            "{:<6} {:<12} {:<2} {:<16} ",
            "PID", "COMM", "IP", "SADDR"
        )?;
        if f.lport {
            write!(w, "{:<6} ", "LPORT")?;
        }
        writeln!(w, "{:<16} {:<5} LAT(ms)", "DADDR", "DPORT")
    }

    /// One connect, printed at wall-clock time `at` (used by JSON only).
    pub fn line(
        &mut self,
        ev: &ConnectLatency,
        at: DateTime<Local>,
        w: &mut dyn Write,
    ) -> io::Result<()> {
        let first = *self.first_ts_us.get_or_insert(ev.ts_us);
        let seconds = seconds_since(first, ev.ts_us);
        let f = self.format;
        let saddr = format_addr(ev.family, &ev.saddr);
        let daddr = format_addr(ev.family, &ev.daddr);
        let ip = if ev.family == AF_INET { 4 } else { 6 };
        let lat_ms = ev.delta_us as f64 / 1000.0;

        if f.json {
            let mut object = json!({
                "time": rfc3339(at),
                "pid": ev.pid,
                "comm": ev.comm.to_text(),
                "ip": ip,
                "saddr": saddr,
                "lport": ev.lport,
                "daddr": daddr,
                "dport": ev.dport,
                "lat_ms": lat_ms,
            });
            if f.seconds {
                object["seconds"] = json!(seconds);
            }
            serde_json::to_writer(&mut *w, &object)?;
            return w.write_all(b"\n");
        }
        if f.seconds {
            write!(w, "{seconds:<9.3} ")?;
        }
        write!(w, "{:<6} ", ev.pid)?;
        ev.comm.write_padded(w, 12, 12)?;
        write!(w, " {ip:<2} {saddr:<16} ")?;
        if f.lport {
            write!(w, "{:<6} ", ev.lport)?;
        }
        writeln!(w, "{daddr:<16} {:<5} {lat_ms:.2}", ev.dport)
    }
}
