//! tcpstates' BPF side: its settings, loaded and attached on sock:inet_sock_set_state.

use anyhow::Result;

use crate::attach::{self, Attached};
use crate::container::{CgroupSet, ContainerFilter};
use crate::net::PortList;
use crate::sk_store::{self, Slots};
use crate::skel::tcpstates::{types, TcpstatesSkel, TcpstatesSkelBuilder};
use crate::stream::Transport;
use crate::{cgroup_set, container_settings, size_cgroup_set};

/// Which sockets are traced. The default traces every TCP socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// AF_INET or AF_INET6; 0: both.
    pub family: u16,
    pub local_ports: Option<PortList>,
    pub remote_ports: Option<PortList>,
}

impl Filter {
    fn settings(&self) -> types::tcpstates_settings {
        let mut settings = types::tcpstates_settings {
            family: self.family,
            ..Default::default()
        };
        if let Some(ports) = &self.local_ports {
            settings.filter_lports = 1;
            settings.lports = ports.bitmap();
        }
        if let Some(ports) = &self.remote_ports {
            settings.filter_rports = 1;
            settings.rports = ports.bitmap();
        }
        settings
    }
}

/// The slot table of sockets' state starts where no owners are kept (bpf/slots.bpf.h):
/// 2^11 buckets, 16,384 sockets (768 KiB of kernel memory) before sockets go to socket
/// storage.
const STATE_SLOT_BITS: u32 = 11;

/// Loads and attaches the programs that send every state change `filter` and `container`
/// let through; with `owners`, records carry the sockets' owners. The cgroup set holds
/// `container`'s cgroups before the programs are attached.
pub fn load(
    filter: &Filter,
    container: &ContainerFilter,
    owners: bool,
    transport: &Transport,
) -> Result<(Attached<TcpstatesSkel<'static>>, CgroupSet)> {
    attach::load_events(
        TcpstatesSkelBuilder::default,
        transport,
        |open, hook| {
            let rodata = attach::rodata(&mut open.maps.rodata_data)?;
            crate::prepare_stream!(transport, open, rodata)?;
            rodata.settings = filter.settings();
            rodata.settings.container = container_settings!(types::container_settings, container);
            size_cgroup_set!(open, container)?;
            rodata.settings.owners = u8::from(owners);
            // An accepted socket learns its owner from its listener's cloned socket storage.
            let slots = if owners {
                Slots::None
            } else {
                Slots::Buckets(STATE_SLOT_BITS)
            };
            let store = crate::open_store!(state, open, rodata);
            sk_store::size(store, hook, slots)
        },
        |skel| cgroup_set!(skel, container),
    )
}
