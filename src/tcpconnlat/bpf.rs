//! tcpconnlat's BPF side: its settings, loaded and attached on sock:inet_sock_set_state.

use anyhow::Result;

use crate::attach::{self, Attached};
use crate::skel::tcpconnlat::{types, TcpconnlatSkel, TcpconnlatSkelBuilder};
use crate::stream::Transport;

/// Which connects are sent. The default sends every answered connect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// AF_INET or AF_INET6; 0: both.
    pub family: u16,
    /// `-p`: only this process; 0: every process.
    pub pid: u32,
    /// The minimum latency in microseconds; 0: every connect.
    pub min_us: u64,
}

/// Loads and attaches the programs that send every connect `filter` lets through.
pub fn load(filter: &Filter, transport: Transport) -> Result<Attached<TcpconnlatSkel<'static>>> {
    attach::load(TcpconnlatSkelBuilder::default, |open| {
        let rodata = attach::rodata(&mut open.maps.rodata_data)?;
        transport.prepare(&mut open.maps.events, &mut rodata.use_ringbuf)?;
        rodata.settings = types::tcpconnlat_settings {
            family: filter.family,
            pid: filter.pid,
            min_us: filter.min_us,
            ..Default::default()
        };
        Ok(())
    })
}
