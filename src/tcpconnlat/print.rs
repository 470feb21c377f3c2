//! How tcpconnlat prints a connect: bcc's column layouts and JSON.

use std::io::{self, Write};

use chrono::{DateTime, Local};
use serde_json::json;

use super::event::ConnectLatency;
use crate::net::format_addr;
use crate::time::{rfc3339, seconds_since};

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
        let saddr = format_addr(ev.endpoints.family, &ev.endpoints.laddr);
        let daddr = format_addr(ev.endpoints.family, &ev.endpoints.raddr);
        let ip = ev.endpoints.ip_version();
        let lat_ms = ev.delta_us as f64 / 1000.0;

        if f.json {
            let mut object = json!({
                "time": rfc3339(at),
                "pid": ev.pid,
                "comm": ev.comm.to_text(),
                "ip": ip,
                "saddr": saddr,
                "lport": ev.endpoints.lport,
                "daddr": daddr,
                "dport": ev.endpoints.rport,
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
            write!(w, "{:<6} ", ev.endpoints.lport)?;
        }
        writeln!(w, "{daddr:<16} {:<5} {lat_ms:.2}", ev.endpoints.rport)
    }
}
