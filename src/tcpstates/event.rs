//! tcpstates' record: one state change as the BPF program saw it, decoded once.

use std::borrow::Cow;

use crate::comm::Comm;
use crate::container::SocketContainer;
use crate::net::Endpoints;
use crate::skel::tcpstates::types;
use crate::{endpoints, socket_container};

/// One TCP state change, as the BPF program saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub skaddr: u64,
    pub pid: u32,
    pub comm: Comm,
    pub endpoints: Endpoints,
    pub container: SocketContainer,
    /// The process that connected or listened on the socket (or on its listener), where
    /// the program keeps owners (tp_btf with socket storage) and saw it do so.
    pub owner: Option<Owner>,
    pub oldstate: i32,
    pub newstate: i32,
    /// Time spent in `oldstate` in nanoseconds, 0 when its start was not seen. The
    /// columns print it truncated to microseconds, as bcc does; JSON to the nanosecond.
    pub delta_ns: u64,
    /// Whether `delta_ns` counts from a state start the program saw (the tools print an
    /// unseen start as 0; the exporter must tell it from 0 us).
    pub delta_known: bool,
    /// Kernel monotonic time of the change.
    pub ts_us: u64,
}

impl StateChange {
    /// Decodes a record of the BPF side's `struct state_change`, whole or short (ending
    /// before `cgroup_id`: the fields after it read as zero); None if it is shorter still.
    pub fn decode(data: &[u8]) -> Option<StateChange> {
        const SHORT: usize = std::mem::offset_of!(types::state_change, cgroup_id);
        let mut bytes = [0u8; std::mem::size_of::<types::state_change>()];
        let len = data.len().min(bytes.len());
        if len < SHORT {
            return None;
        }
        bytes[..len].copy_from_slice(&data[..len]);
        let mut raw = types::state_change::default();
        plain::copy_from_bytes(&mut raw, &bytes).ok()?;
        Some(StateChange {
            skaddr: raw.skaddr,
            pid: raw.pid,
            comm: Comm::from_kernel(&raw.comm),
            endpoints: endpoints!(raw),
            container: socket_container!(raw),
            owner: (raw.owner.known != 0).then(|| Owner {
                pid: raw.owner.pid,
                comm: Comm::from_kernel(&raw.owner.comm),
            }),
            oldstate: raw.oldstate,
            newstate: raw.newstate,
            delta_ns: raw.delta_ns,
            delta_known: raw.delta_known != 0,
            ts_us: raw.ts_ns / 1000,
        })
    }
}

impl crate::stream::KernelTime for StateChange {
    fn kernel_time_us(&self) -> u64 {
        self.ts_us
    }
}

/// Who acted on a socket: the connect() or listen() caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub comm: Comm,
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
