//! Addresses and ports: `inet_ntop`-exact formatting and the port lists of `-L`/`-D`.

use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// A TCP socket's family, addresses and ports, as the tools' records carry them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub family: u16,
    /// IPv4 in the first 4 bytes, network order.
    pub laddr: [u8; 16],
    pub lport: u16,
    pub raddr: [u8; 16],
    pub rport: u16,
}

impl Endpoints {
    /// `4` or `6`, as bcc prints the IP column: anything but AF_INET is IPv6.
    pub fn ip_version(&self) -> u8 {
        if self.family == AF_INET {
            4
        } else {
            6
        }
    }
}

/// The [`Endpoints`] of a BPF record with the fields `family`, `laddr`, `lport`, `raddr`
/// and `rport` (every record of bpf/*.h that describes a socket).
#[macro_export]
macro_rules! endpoints {
    ($raw:expr) => {
        $crate::same_fields!(
            $crate::net::Endpoints,
            $raw,
            family,
            laddr,
            lport,
            raddr,
            rport
        )
    };
}

/// A `$ty` whose fields are copies of the same-named fields of `$raw`, a record of a tool's
/// skeleton: how what several tools' records share is taken out of their generated types.
#[macro_export]
macro_rules! same_fields {
    ($ty:path, $raw:expr, $($field:ident),+) => {{
        let raw = &$raw;
        $ty { $($field: raw.$field),+ }
    }};
}

/// Formats an address as glibc's `inet_ntop` does: IPv4 from the first 4 bytes when
/// `family` is AF_INET, otherwise RFC 5952 IPv6 (with `::ffff:a.b.c.d` and `::a.b.c.d`
/// for the IPv4-mapped and IPv4-compatible forms).
pub fn format_addr(family: u16, addr: &[u8; 16]) -> String {
    AddrText::new(family, addr).as_str().to_owned()
}

/// An address formatted as [`format_addr`] does, held on the stack: printing one per
/// event allocates nothing. Its `Display` honours width and alignment (`{:<15}`).
pub struct AddrText {
    buf: [u8; 46],
    len: usize,
}

impl AddrText {
    pub fn new(family: u16, addr: &[u8; 16]) -> Self {
        let mut text = AddrText {
            buf: [0; 46],
            len: 0,
        };
        // Cannot fail: INET6_ADDRSTRLEN (46) holds every form.
        let _ = if family == AF_INET {
            text.dotted_quad(&addr[..4])
        } else {
            let v6 = Ipv6Addr::from(*addr);
            let words = v6.segments();
            // glibc prints ::/96 addresses with an embedded dotted quad unless word 6 is zero.
            if words[..6].iter().all(|&w| w == 0) && words[6] != 0 {
                write!(
                    text,
                    "::{}",
                    Ipv4Addr::new(addr[12], addr[13], addr[14], addr[15])
                )
            } else {
                write!(text, "{v6}")
            }
        };
        text
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// By hand: Ipv4Addr's Display costs about 1000 instructions per address, and one
    /// is printed twice per event.
    fn dotted_quad(&mut self, octets: &[u8]) -> fmt::Result {
        let mut digits = itoa::Buffer::new();
        for (i, &octet) in octets.iter().enumerate() {
            if i > 0 {
                self.write_str(".")?;
            }
            self.write_str(digits.format(octet))?;
        }
        Ok(())
    }
}

impl fmt::Write for AddrText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl fmt::Display for AddrText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A set of TCP ports given as a comma-separated list (`-L 80,443`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortList {
    ports: Vec<u16>,
}

impl PortList {
    /// Parses `80,443`. Empty tokens between commas are skipped, as bcc does; a list with no
    /// port at all, or any token that is not a decimal number in 1..=65535, is an error.
    pub fn parse(arg: &str) -> Option<PortList> {
        let mut ports = Vec::new();
        for token in arg.split(',').filter(|t| !t.is_empty()) {
            if !token.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            match token.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return None,
            }
        }
        if ports.is_empty() {
            return None;
        }
        Some(PortList { ports })
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The set as a 65536-bit bitmap, the form the BPF programs test with one load.
    pub fn bitmap(&self) -> [u64; 1024] {
        let mut bits = [0u64; 1024];
        for &port in &self.ports {
            bits[usize::from(port >> 6)] |= 1u64 << (port & 63);
        }
        bits
    }
}

/// Which sockets are counted: all, or (as tcpstates' `-L`/`-D`) those whose local port is
/// in one list and whose remote port is in the other, each list optional.
#[derive(Clone, Debug, Default)]
pub struct PortFilter {
    pub local: Option<PortList>,
    pub remote: Option<PortList>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_inet_ntop() {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(format_addr(AF_INET, &a), "127.0.0.1");
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(format_addr(AF_INET6, &v6("::1")), "::1");
        assert_eq!(format_addr(AF_INET6, &v6("::")), "::");
        assert_eq!(
            format_addr(AF_INET6, &v6("::ffff:127.0.0.1")),
            "::ffff:127.0.0.1"
        );
        assert_eq!(format_addr(AF_INET6, &v6("::7f00:1")), "::127.0.0.1");
        assert_eq!(format_addr(AF_INET6, &v6("::2")), "::2");
        assert_eq!(
            format_addr(AF_INET6, &v6("2001:db8:0:0:1:0:0:1")),
            "2001:db8::1:0:0:1"
        );
        assert_eq!(
            format_addr(AF_INET6, &v6("2001:db8:1234:5678:9abc:def0:1234:5678")),
            "2001:db8:1234:5678:9abc:def0:1234:5678"
        );
    }

    #[test]
    fn port_lists() {
        assert_eq!(PortList::parse("80").unwrap().ports(), &[80]);
        assert_eq!(PortList::parse("80,,443,").unwrap().ports(), &[80, 443]);
        assert_eq!(PortList::parse("65535").unwrap().ports(), &[65535]);
        for bad in [
            "", ",", ",,,", "0", "65536", "-1", "80abc", " 80", "+80", "0x50", "80,abc",
        ] {
            assert_eq!(PortList::parse(bad), None, "{bad:?}");
        }
        let bits = PortList::parse("1,64,65535").unwrap().bitmap();
        assert_eq!(bits[0], 1 << 1);
        assert_eq!(bits[1], 1);
        assert_eq!(bits[1023], 1 << 63);
    }
}
