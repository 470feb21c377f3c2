//! Where the exporter listens: the sockets it binds (`--web.listen-address`) or those
//! systemd passes (`--web.systemd-socket`), and the descriptors its connections may take.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd};

use anyhow::{bail, Context, Result};
use libsystemd::activation::{self, IsType};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use socket2::{Domain, Socket, Type};

use super::options::ListenAddress;

/// Pending connections the kernel queues for each listener.
const BACKLOG: i32 = 1024;
/// Descriptors kept for what is not a connection: BPF maps, programs and links, the
/// runtimes' sockets, files read at a scrape.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// Binds every address, in order; the first that fails stops it.
pub fn bind(addresses: &[ListenAddress]) -> Result<Vec<TcpListener>> {
    let bind_one = |address: &ListenAddress| {
        bound(address).with_context(|| format!("cannot listen on {address}"))
    };
    addresses.iter().map(bind_one).collect()
}

fn bound(address: &ListenAddress) -> Result<TcpListener> {
    match address {
        ListenAddress::Socket(addr) => listener(*addr, false),
        // As Go's net.Listen(":PORT"): one IPv6 socket that takes IPv4 too, or IPv4 alone
        // on a kernel without IPv6.
        ListenAddress::Every(port) => listener(SocketAddr::from(([0u16; 8], *port)), true)
            .or_else(|_| listener(SocketAddr::from(([0u8; 4], *port)), false)),
        ListenAddress::Host(host, port) => {
            let mut found = (host.as_str(), *port).to_socket_addrs()?;
            let Some(addr) = found.next() else {
                bail!("{host} has no address");
            };
            listener(addr, false)
        }
    }
}

fn listener(addr: SocketAddr, dual_stack: bool) -> Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The listening TCP sockets systemd passed (LISTEN_FDS for this LISTEN_PID), at least one.
/// Call it before any thread starts: it clears those variables from the environment.
pub fn from_systemd() -> Result<Vec<TcpListener>> {
    let passed =
        activation::receive_descriptors(true).context("cannot take the sockets systemd passed")?;
    if passed.is_empty() {
        bail!("--web.systemd-socket: systemd passed no socket (LISTEN_FDS, LISTEN_PID)");
    }
    let mut listeners = Vec::with_capacity(passed.len());
    for descriptor in passed {
        let inet = descriptor.is_inet();
        // SAFETY: systemd passed this descriptor to this process alone; it is owned here.
        let socket = unsafe { Socket::from_raw_fd(descriptor.into_raw_fd()) };
        let listening = socket.is_listener().unwrap_or(false);
        if !inet || socket.r#type().ok() != Some(Type::STREAM) || !listening {
            bail!("--web.systemd-socket: a socket systemd passed is not a listening TCP socket");
        }
        listeners.push(socket.into());
    }
    Ok(listeners)
}

/// Raises the soft limit on open descriptors to the hard one, and returns how many
/// connections fit in it besides `RESERVED_DESCRIPTORS` (no bound if it cannot be read).
pub fn raise_descriptor_limit() -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return u64::MAX;
    };
    let limit = match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => hard,
        Err(_) => soft,
    };
    limit.saturating_sub(RESERVED_DESCRIPTORS)
}

/// Where each listener is bound, for the ready line.
pub fn local_addresses(listeners: &[TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}
