//! Which machine an ELF file is for, read from its header: the delivery tests check that each
//! architecture's package and image carry that architecture's binaries and C library.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The architectures tcptools builds for, by Debian's name, with their ELF machine.
pub const MACHINES: [(&str, Machine); 2] =
    [("amd64", Machine::X86_64), ("arm64", Machine::Aarch64)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
    Other(u16),
}

/// The `e_machine` of a 64-bit little-endian ELF file; panics on anything else.
pub fn machine(path: &Path) -> Machine {
    let mut header = [0u8; 20];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(&header[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(
        (header[4], header[5]),
        (2, 1),
        "{}: not ELF64 LSB",
        path.display()
    );
    match u16::from_le_bytes([header[18], header[19]]) {
        62 => Machine::X86_64,
        183 => Machine::Aarch64,
        other => Machine::Other(other),
    }
}
