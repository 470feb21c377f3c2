//! tcpconnlat's record: one answered connect as the BPF program saw it, decoded once.

use crate::comm::Comm;
use crate::container::SocketContainer;
use crate::net::{Endpoints, AF_INET, AF_INET6};
use crate::skel::tcpconnlat::types;
use crate::{endpoints, socket_container};

/// One connect and how long it waited for its answer, as the BPF program saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectLatency {
    /// The connecting process (tgid), taken when connect() started.
    pub pid: u32,
    pub comm: Comm,
    pub endpoints: Endpoints,
    pub container: SocketContainer,
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
            pid: raw.pid,
            comm: Comm::from_kernel(&raw.comm),
            endpoints: endpoints!(raw),
            container: socket_container!(raw),
            delta_us: raw.delta_ns / 1000,
            ts_us: raw.ts_ns / 1000,
        })
    }

    /// bcc prints only IPv4 and IPv6 connects; anything else is a broken record.
    pub fn has_known_family(&self) -> bool {
        let family = self.endpoints.family;
        family == AF_INET || family == AF_INET6
    }
}

impl crate::stream::KernelTime for ConnectLatency {
    fn kernel_time_us(&self) -> u64 {
        self.ts_us
    }
}
