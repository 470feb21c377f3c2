//! tcpstates' events and how they are printed: bcc's column layouts, PY's CSV, and JSON.

pub mod options;

use std::borrow::Cow;
use std::io::{self, Write};

use serde_json::json;

use crate::net::{AddrText, AF_INET};
use crate::out::{Comm, Line};
use crate::skel::tcpstates::types;
use crate::time::{rfc3339, seconds_since, WallClock};

/// One TCP state change, as the BPF program saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub skaddr: u64,
    pub pid: u32,
    pub comm: Comm,
    pub family: u16,
    pub laddr: [u8; 16],
    pub lport: u16,
    pub raddr: [u8; 16],
    pub rport: u16,
    pub oldstate: i32,
    pub newstate: i32,
    /// Time spent in `oldstate`, 0 when its start was not seen.
    pub delta_us: u64,
    /// Whether `delta_us` counts from a state start the program saw (the tools print an
    /// unseen start as 0; the exporter must tell it from 0 us).
    pub delta_known: bool,
    /// Kernel monotonic time of the change.
    pub ts_us: u64,
}

impl StateChange {
    /// Decodes a record of the BPF side's `struct state_change`; None if it is too short.
    pub fn decode(data: &[u8]) -> Option<StateChange> {
        let mut raw = types::state_change::default();
        plain::copy_from_bytes(&mut raw, data).ok()?;
        Some(StateChange {
            skaddr: raw.skaddr,
            pid: raw.pid,
            comm: Comm::from_kernel(&raw.comm),
            family: raw.family,
            laddr: raw.saddr,
            lport: raw.sport,
            raddr: raw.daddr,
            rport: raw.dport,
            oldstate: raw.oldstate,
            newstate: raw.newstate,
            delta_us: raw.delta_us,
            delta_known: raw.delta_known != 0,
            ts_us: raw.ts_us,
        })
    }
}

/// The kernel's TCP state names as bcc prints them; a number with no name prints as itself.
pub fn state_name(state: i32) -> Cow<'static, str> {
    const NAMES: [&str; 13] = [
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
        "NEW_SYN_RECV",
        "UNKNOWN",
    ];
    usize::try_from(state)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| NAMES.get(i))
        .map_or_else(
            || Cow::Owned(state.to_string()),
            |name| Cow::Borrowed(*name),
        )
}

/// How lines are laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Format {
    /// `-T`: wall-clock `HH:MM:SS` column.
    pub clock: bool,
    /// `-t`: seconds since the first printed event.
    pub seconds: bool,
    /// `-w`: wide columns with the IP version.
    pub wide: bool,
    /// `-s`: comma-separated values (overrides `wide`).
    pub csv: bool,
    /// `--json`: one object per line (overrides the others' layouts).
    pub json: bool,
}

/// Renders the header and event lines for one run; remembers the first event for `-t`.
pub struct Printer {
    format: Format,
    first_ts_us: Option<u64>,
    line: Line,
}

impl Printer {
    pub fn new(format: Format) -> Self {
        Printer {
            format,
            first_ts_us: None,
            line: Line::default(),
        }
    }

    /// The header line (none for JSON).
    pub fn header(&self, w: &mut dyn Write) -> io::Result<()> {
        let f = self.format;
        if f.json {
            return Ok(());
        }
        if f.csv {
            if f.clock {
                w.write_all(b"TIME,")?;
            }
            if f.seconds {
                w.write_all(b"TIME(s),")?;
            }
            return writeln!(
                w,
                "SKADDR,C-PID,C-COMM,IP,LADDR,LPORT,RADDR,RPORT,OLDSTATE,NEWSTATE,MS"
            );
        }
        if f.clock {
            write!(w, "{:<8} ", "TIME(s)")?;
        }
        if f.seconds {
            write!(w, "{:<9} ", "TIME(s)")?;
        }
        if f.wide {
            writeln!(
                w,
                "{:<16} {:<7} {:<16} {:<2} {:<39} {:<5} {:<39} {:<5} {:<11} -> {:<11} MS",
                "SKADDR",
                "PID",
                "COMM",
                "IP",
                "LADDR",
                "LPORT",
                "RADDR",
                "RPORT",
                "OLDSTATE",
                "NEWSTATE"
            )
        } else {
            writeln!(
                w,
                "{:<16} {:<7} {:<10} {:<15} {:<5} {:<15} {:<5} {:<11} -> {:<11} MS",
                "SKADDR", "PID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT", "OLDSTATE", "NEWSTATE"
            )
        }
    }

    /// One event, printed at the time `clock` tells.
    pub fn line(
        &mut self,
        ev: &StateChange,
        clock: &mut WallClock,
        w: &mut dyn Write,
    ) -> io::Result<()> {
        let first = *self.first_ts_us.get_or_insert(ev.ts_us);
        let seconds = seconds_since(first, ev.ts_us);
        let f = self.format;
        let laddr = AddrText::new(ev.family, &ev.laddr);
        let raddr = AddrText::new(ev.family, &ev.raddr);
        let ip: u8 = if ev.family == AF_INET { 4 } else { 6 };
        let ms = ev.delta_us as f64 / 1000.0;
        let (old, new) = (state_name(ev.oldstate), state_name(ev.newstate));

        if f.json {
            let mut object = json!({
                "time": rfc3339(clock.now()),
                "skaddr": format!("{:x}", ev.skaddr),
                "pid": ev.pid,
                "comm": ev.comm.to_text(),
                "ip": ip,
                "laddr": laddr.as_str(),
                "lport": ev.lport,
                "raddr": raddr.as_str(),
                "rport": ev.rport,
                "oldstate": old,
                "newstate": new,
                "ms": ms,
            });
            if f.seconds {
                object["seconds"] = json!(seconds);
            }
            serde_json::to_writer(&mut *w, &object)?;
            return w.write_all(b"\n");
        }
        if f.csv {
            let mut fields = Vec::with_capacity(13);
            if f.clock {
                fields.push(clock.hms().to_owned());
            }
            if f.seconds {
                fields.push(format!("{seconds:.6}"));
            }
            fields.extend([
                format!("{:x}", ev.skaddr),
                ev.pid.to_string(),
                ev.comm.to_text(),
                ip.to_string(),
                laddr.to_string(),
                ev.lport.to_string(),
                raddr.to_string(),
                ev.rport.to_string(),
                old.into_owned(),
                new.into_owned(),
                format!("{ms:.3}"),
            ]);
            let mut csv = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(&mut *w);
            csv.write_record(&fields).map_err(io::Error::other)?;
            return csv.flush();
        }
        // The line is built in a reused buffer and written once: this runs for every
        // event, hundreds of thousands a second under load.
        let line = &mut self.line;
        line.clear();
        if f.clock {
            line.right(clock.hms().as_bytes(), 8).text(" ");
        }
        if f.seconds {
            write!(line.buf(), "{seconds:<9.6} ")?;
        }
        line.hex(ev.skaddr, 16)
            .text(" ")
            .dec(ev.pid.into(), 7)
            .text(" ");
        let (comm_width, addr_width) = if f.wide { (16, 39) } else { (10, 15) };
        line.left(
            &ev.comm.as_bytes()[..ev.comm.as_bytes().len().min(comm_width)],
            comm_width,
        )
        .text(" ");
        if f.wide {
            line.dec(ip.into(), 2).text(" ");
        }
        line.left(laddr.as_str().as_bytes(), addr_width)
            .text(" ")
            .dec(ev.lport.into(), 5)
            .text(" ")
            .left(raddr.as_str().as_bytes(), addr_width)
            .text(" ")
            .dec(ev.rport.into(), 5)
            .text(" ")
            .left(old.as_bytes(), 11)
            .text(" -> ")
            .left(new.as_bytes(), 11)
            .text(" ")
            // bcc prints delta_us / 1000.0 with %.3f: for whole microseconds that is
            // exactly the quotient and the 3-digit remainder.
            .dec(ev.delta_us / 1000, 0)
            .text(".");
        let frac = ev.delta_us % 1000;
        if frac < 100 {
            line.text(if frac < 10 { "00" } else { "0" });
        }
        line.dec(frac, 0).text("\n");
        w.write_all(line.as_bytes())
    }
}
