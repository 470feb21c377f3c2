//! tcpconnlat's BPF side: its settings, loaded and attached on sock:inet_sock_set_state.

use anyhow::Result;

use crate::attach::{self, Attached};
use crate::container::{CgroupSet, ContainerFilter};
use crate::sk_store::{self, Slots};
use crate::skel::tcpconnlat::{types, TcpconnlatSkel, TcpconnlatSkelBuilder};
use crate::stream::Transport;
use crate::{cgroup_set, container_settings, size_cgroup_set};

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

/// The slot table of connects in flight (bpf/slots.bpf.h): 2^10 buckets, 8,192 connects
/// (320 KiB of kernel memory) before connects go to socket storage.
const CONNECT_SLOT_BITS: u32 = 10;

/// Loads and attaches the programs that send every connect `filter` and `container` let
/// through. The cgroup set holds `container`'s cgroups before the programs are attached.
pub fn load(
    filter: &Filter,
    container: &ContainerFilter,
    transport: &Transport,
) -> Result<(Attached<TcpconnlatSkel<'static>>, CgroupSet)> {
    attach::load_events(
        TcpconnlatSkelBuilder::default,
        transport,
        |open, hook| {
            let rodata = attach::rodata(&mut open.maps.rodata_data)?;
            crate::prepare_stream!(transport, open, rodata)?;
            rodata.settings = types::tcpconnlat_settings {
                container: container_settings!(types::container_settings, container),
                family: filter.family,
                pid: filter.pid,
                min_us: filter.min_us,
                ..Default::default()
            };
            size_cgroup_set!(open, container)?;
            let store = crate::open_store!(start, open, rodata);
            sk_store::size(store, hook, Slots::Buckets(CONNECT_SLOT_BITS))
        },
        |skel| cgroup_set!(skel, container),
    )
}
