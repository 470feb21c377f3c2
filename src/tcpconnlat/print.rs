//! How tcpconnlat prints a connect: bcc's column layouts and JSON.

use std::io::{self, Write};

use chrono::{DateTime, Local};
use serde_json::json;

use super::event::ConnectLatency;
use crate::container::{AddedColumns, Shows};
use crate::net::format_addr;
use crate::pods::{Identities, Shown};
use crate::time::rfc3339;

/// How lines are laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Format {
    /// `-t`: seconds since the first printed event.
    pub seconds: bool,
    /// `-L`: the local port column.
    pub lport: bool,
    /// `--json`: one object per line (overrides the columns).
    pub json: bool,
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
}

/// Renders the header and event lines of one run.
pub struct Printer {
    format: Format,
    added: AddedColumns,
}

impl Printer {
    /// A printer naming cgroups from `identities` (the system's, or fixed paths in tests).
    pub fn new(format: Format, identities: impl Into<Identities>) -> Self {
        Printer {
            format,
            added: AddedColumns::new(format.shows(), identities),
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
        write!(w, "{:<16} {:<5} LAT(ms)", "DADDR", "DPORT")?;
        if f.cgroup {
            w.write_all(b" CGROUP")?;
        }
        if f.pod {
            w.write_all(b" NAMESPACE/POD/CONTAINER")?;
        }
        w.write_all(b"\n")
    }

    /// One connect, which happened at wall-clock time `at` (used by JSON only).
    pub fn line(
        &mut self,
        ev: &ConnectLatency,
        at: DateTime<Local>,
        w: &mut dyn Write,
    ) -> io::Result<()> {
        let (seconds, shown) = self.added.of(ev.ts_us, &ev.container);
        if self.format.json {
            let seconds = self.format.seconds.then_some(seconds);
            return json_line(ev, &shown, at, seconds, w);
        }
        let f = self.format;
        if f.seconds {
            write!(w, "{seconds:<9.3} ")?;
        }
        write!(w, "{:<6} ", ev.pid)?;
        ev.comm.write_padded(w, 12, 12)?;
        let e = &ev.endpoints;
        let ip = e.ip_version();
        write!(w, " {ip:<2} {:<16} ", format_addr(e.family, &e.laddr))?;
        if f.lport {
            write!(w, "{:<6} ", e.lport)?;
        }
        let daddr = format_addr(e.family, &e.raddr);
        write!(w, "{daddr:<16} {:<5} {:.2}", e.rport, lat_ms(ev))?;
        if f.cgroup {
            write!(w, " {}", shown.cgroup)?;
        }
        if f.pod {
            write!(w, " {}", shown.column())?;
        }
        w.write_all(b"\n")
    }
}

fn lat_ms(ev: &ConnectLatency) -> f64 {
    ev.delta_us as f64 / 1000.0
}

/// The fields of a `--json` object and what each holds (the man page's JSON FIELDS).
pub const JSON_FIELDS: &[(&str, &str)] = &[
    (
        "time",
        "The wall-clock time of the event, RFC 3339 with microseconds: its kernel time, \
mapped to the wall clock once at start, so that lines in time order have times in order.",
    ),
    ("pid", "The process (tgid) that called connect()."),
    ("comm", "Its name at connect() time."),
    ("ip", "4 for an AF_INET socket, else 6."),
    ("saddr", "The local address."),
    ("lport", "The local port (with or without -L)."),
    ("daddr", "The remote address."),
    ("dport", "The remote port."),
    ("lat_ms", "The latency in milliseconds, to the microsecond."),
    (
        "seconds",
        "With -t only: seconds since the first printed event.",
    ),
    ("netns", "The socket's network namespace inode."),
    ("cgroup", "The socket's cgroup v2 path (/ for the root)."),
];

/// `--json`: one object per connect.
fn json_line(
    ev: &ConnectLatency,
    shown: &Shown,
    at: DateTime<Local>,
    seconds: Option<f64>,
    w: &mut dyn Write,
) -> io::Result<()> {
    let e = &ev.endpoints;
    let mut object = json!({
        "time": rfc3339(at),
        "pid": ev.pid,
        "comm": ev.comm.to_text(),
        "ip": e.ip_version(),
        "saddr": format_addr(e.family, &e.laddr),
        "lport": e.lport,
        "daddr": format_addr(e.family, &e.raddr),
        "dport": e.rport,
        "lat_ms": lat_ms(ev),
        "netns": ev.container.netns,
        "cgroup": shown.cgroup,
    });
    if let Some(seconds) = seconds {
        object["seconds"] = json!(seconds);
    }
    shown.add_to_json(&mut object);
    serde_json::to_writer(&mut *w, &object)?;
    w.write_all(b"\n")
}
