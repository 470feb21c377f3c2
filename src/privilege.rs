//! The up-front check that the tool may load and attach BPF programs.

use std::fs;

use anyhow::{bail, Result};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Fails with a message naming the missing privilege unless this process holds
/// CAP_SYS_ADMIN, or CAP_BPF together with CAP_PERFMON.
pub fn require_bpf() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    // Without /proc we cannot tell; let the kernel decide and report its own error.
    let Some(caps) = effective else {
        return Ok(());
    };
    if has_bpf_privilege(caps) {
        return Ok(());
    }
    bail!("tracing the kernel needs root, or the capabilities CAP_BPF and CAP_PERFMON")
}

fn has_bpf_privilege(caps: u64) -> bool {
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_or_bpf_with_perfmon() {
        assert!(has_bpf_privilege(1 << CAP_SYS_ADMIN));
        assert!(has_bpf_privilege((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!has_bpf_privilege(1 << CAP_BPF));
        assert!(!has_bpf_privilege(1 << CAP_PERFMON));
        assert!(!has_bpf_privilege(0));
    }
}
