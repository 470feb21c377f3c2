//! How tcpstates prints a state change: bcc's column layouts, PY's CSV, and JSON.

use std::io::{self, Write};

use serde_json::json;

use super::event::{state_name, StateChange};
use crate::comm::Comm;
use crate::container::{AddedColumns, Shows};
use crate::net::AddrText;
use crate::out::Line;
use crate::pods::{Identities, Shown};
use crate::time::{rfc3339, WallClock};

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
    /// `--owner`: PID and COMM are the socket's owner's (`-` where it is not known).
    pub owner: bool,
    /// `--show-cgroup`: a trailing CGROUP column with the socket's cgroup v2 path.
    pub cgroup: bool,
    /// `--show-pod`: a trailing NAMESPACE/POD/CONTAINER column.
    pub pod: bool,
}

impl Format {
    /// What lines show of a socket's cgroup (JSON its path and names, --show-cgroup its
    /// path, --show-pod its names).
    pub fn shows(&self) -> Shows {
        Shows::of(self.json, self.cgroup, self.pod)
    }

    /// Whether the records must carry the sockets' owners (`--owner`, or JSON's
    /// owner_pid and owner_comm).
    pub fn needs_owner(&self) -> bool {
        self.json || self.owner
    }
}

/// What a line is: `--json` overrides `-s`, which overrides bcc's columns (`-w` or not).
enum Layout {
    Json,
    Csv,
    Columns,
}

impl Format {
    fn layout(&self) -> Layout {
        if self.json {
            Layout::Json
        } else if self.csv {
            Layout::Csv
        } else {
            Layout::Columns
        }
    }
}

/// Renders the header and event lines for one run; remembers the first event for `-t`.
pub struct Printer {
    format: Format,
    line: Line,
    added: AddedColumns,
}

impl Printer {
    /// A printer naming cgroups from `identities` (the system's, or fixed paths in tests).
    pub fn new(format: Format, identities: impl Into<Identities>) -> Self {
        Printer {
            format,
            line: Line::default(),
            added: AddedColumns::new(format.shows(), identities),
        }
    }

    /// The header line (none for JSON).
    pub fn header(&self, w: &mut dyn Write) -> io::Result<()> {
        match self.format.layout() {
            Layout::Json => Ok(()),
            Layout::Csv => csv_header(self.format, w),
            Layout::Columns => columns_header(self.format, w),
        }
    }

    /// One event, printed at the time `clock` tells.
    pub fn line(
        &mut self,
        ev: &StateChange,
        clock: &mut WallClock,
        w: &mut dyn Write,
    ) -> io::Result<()> {
        let (seconds, shown) = self.added.of(ev.ts_us, &ev.container);
        match self.format.layout() {
            Layout::Json => {
                let seconds = self.format.seconds.then_some(seconds);
                json_line(ev, &shown, clock, seconds, w)
            }
            Layout::Csv => csv_line(ev, self.format, &shown, clock, seconds, w),
            Layout::Columns => self.text_line(ev, &shown, clock, seconds, w),
        }
    }

    /// bcc's columns. The line is built in a reused buffer and written once: this runs for
    /// every event, hundreds of thousands a second under load.
    fn text_line(
        &mut self,
        ev: &StateChange,
        shown: &Shown,
        clock: &mut WallClock,
        seconds: f64,
        w: &mut dyn Write,
    ) -> io::Result<()> {
        let f = self.format;
        let line = &mut self.line;
        line.clear();
        if f.clock {
            line.right(clock.hms().as_bytes(), 8).text(" ");
        }
        if f.seconds {
            write!(line.buf(), "{seconds:<9.6} ")?;
        }
        line.hex(ev.skaddr, 16).text(" ");
        let (comm_width, addr_width) = if f.wide { (16, 39) } else { (10, 15) };
        match shown_process(ev, f) {
            Some((pid, comm)) => {
                let comm = comm.as_bytes();
                line.dec(pid.into(), 7)
                    .text(" ")
                    .left(&comm[..comm.len().min(comm_width)], comm_width)
            }
            None => line.left(b"-", 7).text(" ").left(b"-", comm_width),
        }
        .text(" ");
        if f.wide {
            line.dec(ev.endpoints.ip_version().into(), 2).text(" ");
        }
        let e = &ev.endpoints;
        let (laddr, raddr) = (
            AddrText::new(e.family, &e.laddr),
            AddrText::new(e.family, &e.raddr),
        );
        line.left(laddr.as_str().as_bytes(), addr_width)
            .text(" ")
            .dec(e.lport.into(), 5)
            .text(" ")
            .left(raddr.as_str().as_bytes(), addr_width)
            .text(" ")
            .dec(e.rport.into(), 5)
            .text(" ")
            .left(state_name(ev.oldstate).as_bytes(), 11)
            .text(" -> ")
            .left(state_name(ev.newstate).as_bytes(), 11)
            .text(" ");
        write_ms(line, ev.delta_ns / 1000);
        if f.cgroup {
            line.text(" ").text(&shown.cgroup);
        }
        if f.pod {
            line.text(" ").text(&shown.column());
        }
        line.text("\n");
        w.write_all(line.as_bytes())
    }
}

/// PY's CSV header.
fn csv_header(f: Format, w: &mut dyn Write) -> io::Result<()> {
    if f.clock {
        w.write_all(b"TIME,")?;
    }
    if f.seconds {
        w.write_all(b"TIME(s),")?;
    }
    w.write_all(b"SKADDR,C-PID,C-COMM,IP,LADDR,LPORT,RADDR,RPORT,OLDSTATE,NEWSTATE,MS")?;
    added_header(f, b',', w)
}

/// bcc's column header (bcc labels -T's column TIME(s) too).
fn columns_header(f: Format, w: &mut dyn Write) -> io::Result<()> {
    if f.clock {
        write!(w, "{:<8} ", "TIME(s)")?;
    }
    if f.seconds {
        write!(w, "{:<9} ", "TIME(s)")?;
    }
    if f.wide {
        write!(
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
        )?;
    } else {
        write!(
            w,
            "{:<16} {:<7} {:<10} {:<15} {:<5} {:<15} {:<5} {:<11} -> {:<11} MS",
            "SKADDR", "PID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT", "OLDSTATE", "NEWSTATE"
        )?;
    }
    added_header(f, b' ', w)
}

/// The added columns' headers, after bcc's, and the line's end.
fn added_header(f: Format, separator: u8, w: &mut dyn Write) -> io::Result<()> {
    if f.cgroup {
        w.write_all(&[separator])?;
        w.write_all(b"CGROUP")?;
    }
    if f.pod {
        w.write_all(&[separator])?;
        w.write_all(b"NAMESPACE/POD/CONTAINER")?;
    }
    w.write_all(b"\n")
}

/// bcc prints `delta_us / 1000.0` with `%.3f`: for whole microseconds that is exactly the
/// quotient and the 3-digit remainder.
fn write_ms(line: &mut Line, delta_us: u64) {
    line.dec(delta_us / 1000, 0).text(".");
    let frac = delta_us % 1000;
    if frac < 100 {
        line.text(if frac < 10 { "00" } else { "0" });
    }
    line.dec(frac, 0);
}

/// The PID and COMM columns: the task on the CPU, or with `--owner` the socket's owner
/// (None where it is not known).
fn shown_process(ev: &StateChange, f: Format) -> Option<(u32, &Comm)> {
    if f.owner {
        ev.owner.as_ref().map(|o| (o.pid, &o.comm))
    } else {
        Some((ev.pid, &ev.comm))
    }
}

/// The fields of a `--json` object and what each holds (the man page's JSON FIELDS).
pub const JSON_FIELDS: &[(&str, &str)] = &[
    (
        "time",
        "The wall-clock time of the event, RFC 3339 with microseconds: its kernel time, \
mapped to the wall clock once at start, so that lines in time order have times in order.",
    ),
    ("skaddr", "The kernel's socket address, lowercase hex."),
    (
        "pid",
        "The PID of the task on the CPU when the state changed (also with --owner).",
    ),
    ("comm", "That task's name."),
    ("ip", "4 for AF_INET, else 6."),
    ("laddr", "The local address."),
    ("lport", "The local port."),
    ("raddr", "The remote address."),
    ("rport", "The remote port."),
    (
        "oldstate",
        "The state left, named as in the columns (a state with no name: its number as text).",
    ),
    ("newstate", "The state entered, named likewise."),
    (
        "ms",
        "Milliseconds spent in oldstate, to the nanosecond (the MS column truncates to the \
microsecond, as bcc does); 0 when its start was not seen.",
    ),
    (
        "seconds",
        "With -t only: seconds since the first printed event.",
    ),
    (
        "netns",
        "The socket's network namespace inode (as lsns and stat -L /proc/PID/ns/net print it).",
    ),
    (
        "cgroup",
        "The socket's cgroup v2 path from the hierarchy's root (/ for the root); its id as \
text if no directory has it any more.",
    ),
    (
        "owner_pid",
        "The socket's owner's PID, only where the owner is known (see --owner).",
    ),
    ("owner_comm", "The socket's owner's name, likewise."),
];

/// `--json`: one object per change; `pid`/`comm` are always the task on the CPU.
fn json_line(
    ev: &StateChange,
    shown: &Shown,
    clock: &WallClock,
    seconds: Option<f64>,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut object = json!({
        "time": rfc3339(clock.at_kernel_us(ev.ts_us)),
        "skaddr": format!("{:x}", ev.skaddr),
        "pid": ev.pid,
        "comm": ev.comm.to_text(),
        "ip": ev.endpoints.ip_version(),
        "laddr": AddrText::new(ev.endpoints.family, &ev.endpoints.laddr).as_str(),
        "lport": ev.endpoints.lport,
        "raddr": AddrText::new(ev.endpoints.family, &ev.endpoints.raddr).as_str(),
        "rport": ev.endpoints.rport,
        "oldstate": state_name(ev.oldstate),
        "newstate": state_name(ev.newstate),
        "ms": ev.delta_ns as f64 / 1e6,
        "netns": ev.container.netns,
        "cgroup": shown.cgroup,
    });
    shown.add_to_json(&mut object);
    if let Some(seconds) = seconds {
        object["seconds"] = json!(seconds);
    }
    if let Some(owner) = &ev.owner {
        object["owner_pid"] = json!(owner.pid);
        object["owner_comm"] = json!(owner.comm.to_text());
    }
    serde_json::to_writer(&mut *w, &object)?;
    w.write_all(b"\n")
}

/// `-s`: PY's CSV row, quoted as RFC 4180 says where a field needs it.
fn csv_line(
    ev: &StateChange,
    f: Format,
    shown: &Shown,
    clock: &mut WallClock,
    seconds: f64,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut fields = Vec::with_capacity(13);
    if f.clock {
        fields.push(clock.hms().to_owned());
    }
    if f.seconds {
        fields.push(format!("{seconds:.6}"));
    }
    let (pid, comm) = shown_process(ev, f)
        .map_or(("-".to_owned(), "-".to_owned()), |(pid, comm)| {
            (pid.to_string(), comm.to_text())
        });
    fields.extend([
        format!("{:x}", ev.skaddr),
        pid,
        comm,
        ev.endpoints.ip_version().to_string(),
        AddrText::new(ev.endpoints.family, &ev.endpoints.laddr).to_string(),
        ev.endpoints.lport.to_string(),
        AddrText::new(ev.endpoints.family, &ev.endpoints.raddr).to_string(),
        ev.endpoints.rport.to_string(),
        state_name(ev.oldstate).into_owned(),
        state_name(ev.newstate).into_owned(),
        format!("{:.3}", (ev.delta_ns / 1000) as f64 / 1000.0),
    ]);
    if f.cgroup {
        fields.push(shown.cgroup.clone());
    }
    if f.pod {
        fields.push(shown.column());
    }
    let mut csv = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(&mut *w);
    csv.write_record(&fields).map_err(io::Error::other)?;
    csv.flush()
}
