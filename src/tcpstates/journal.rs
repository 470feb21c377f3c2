//! tcpstates `-Y`: each state change also goes to the systemd journal, with the fields
//! bcc's Python tcpstates sends.

use std::path::Path;

use anyhow::{bail, Result};
use libsystemd::logging::{journal_send, Priority};

use super::event::{state_name, StateChange};
use crate::net::{format_addr, AF_INET};

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

pub struct Journal {
    is_root: bool,
}

impl Journal {
    /// Fails when this machine has no journal to write to.
    pub fn connect() -> Result<Journal> {
        if !Path::new(JOURNAL_SOCKET).exists() {
            bail!(
                "journal logging (-Y) needs systemd-journald, but {JOURNAL_SOCKET} does not exist"
            );
        }
        Ok(Journal {
            is_root: nix::unistd::geteuid().is_root(),
        })
    }

    /// Sends one record; a journal that went away is not worth stopping the trace for.
    pub fn send(&self, ev: &StateChange) {
        let _ = journal_send(Priority::Notice, &message(ev), self.fields(ev).into_iter());
    }

    fn fields(&self, ev: &StateChange) -> Vec<(&'static str, String)> {
        let (source, destination) = if ev.endpoints.family == AF_INET {
            (
                "OBJECT_IPV4_SOURCE_ADDRESS",
                "OBJECT_IPV4_DESTINATION_ADDRESS",
            )
        } else {
            (
                "OBJECT_IPV6_SOURCE_ADDRESS",
                "OBJECT_IPV6_DESTINATION_ADDRESS",
            )
        };
        let mut fields = vec![
            ("SYSLOG_IDENTIFIER", "tcpstates".to_owned()),
            ("OBJECT_PID", ev.pid.to_string()),
            (
                source,
                format_addr(ev.endpoints.family, &ev.endpoints.laddr),
            ),
            ("OBJECT_TCP_SOURCE_PORT", ev.endpoints.lport.to_string()),
            (
                destination,
                format_addr(ev.endpoints.family, &ev.endpoints.raddr),
            ),
            (
                "OBJECT_TCP_DESTINATION_PORT",
                ev.endpoints.rport.to_string(),
            ),
            ("OBJECT_TCP_OLD_STATE", state_name(ev.oldstate).into_owned()),
            ("OBJECT_TCP_NEW_STATE", state_name(ev.newstate).into_owned()),
            ("OBJECT_TCP_SPAN_TIME", (ev.delta_ns / 1000).to_string()),
        ];
        // journald fills OBJECT_COMM in itself for root's records.
        if !self.is_root {
            fields.push(("OBJECT_COMM", ev.comm.to_text()));
        }
        fields
    }
}

/// PY's MESSAGE: `comm saddr sport → daddr dport OLD → NEW`.
pub fn message(ev: &StateChange) -> String {
    format!(
        "{} {} {} \u{2192} {} {} {} \u{2192} {}",
        ev.comm.to_text(),
        format_addr(ev.endpoints.family, &ev.endpoints.laddr),
        ev.endpoints.lport,
        format_addr(ev.endpoints.family, &ev.endpoints.raddr),
        ev.endpoints.rport,
        state_name(ev.oldstate),
        state_name(ev.newstate)
    )
}
