//! tcprtt's record: one histogram of the BPF maps, decoded once.

use crate::skel::tcprtt::types;

/// Number of log2 slots the BPF side fills (bpf/tcprtt.h `MAX_SLOTS`).
pub const MAX_SLOTS: usize = 27;

/// One histogram of one interval: the samples of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttHist {
    /// 0 for the all-addresses histogram; else AF_INET or AF_INET6.
    pub family: u16,
    /// The key's address (IPv4 in the first 4 bytes); zero for all addresses.
    pub addr: [u8; 16],
    /// `--bycgroup`: the key's cgroup v2 id, and its path once resolved; else 0 and empty.
    pub cgroup_id: u64,
    pub cgroup: String,
    /// `--bypod`: the pod (namespace and name) whose cgroups' histograms this one merges;
    /// None for a cgroup in no pod the runtime names (which keeps its own).
    pub pod: Option<(String, String)>,
    /// Sum of the samples, in the histogram's unit.
    pub sum: u64,
    /// Number of samples, as counted next to the sum.
    pub count: u64,
    pub slots: [u32; MAX_SLOTS],
}

impl RttHist {
    /// Converts the BPF map's key and value.
    pub fn from_map(key: &types::hist_key, value: &types::hist) -> RttHist {
        RttHist {
            family: key.family,
            addr: key.addr,
            cgroup_id: key.cgroup_id,
            cgroup: String::new(),
            pod: None,
            sum: value.latency,
            count: value.cnt,
            slots: value.slots,
        }
    }

    /// Decodes a key and its values (every CPU's of a per-CPU map, the one of a shared map)
    /// into the key's generation and the histogram, summed; None if any is too short.
    pub fn decode_per_cpu(key: &[u8], values: &[Vec<u8>]) -> Option<(u32, RttHist)> {
        let mut k = types::hist_key::default();
        plain::copy_from_bytes(&mut k, key).ok()?;
        Some((k.generation, RttHist::sum_cpus(&k, values)?))
    }

    /// The histogram of `key` from every CPU's value of it, summed; None if a value is
    /// too short.
    pub fn sum_cpus(key: &types::hist_key, values: &[Vec<u8>]) -> Option<RttHist> {
        let mut sum = RttHist::from_map(key, &types::hist::default());
        for value in values {
            let mut v = types::hist::default();
            plain::copy_from_bytes(&mut v, value).ok()?;
            sum.merge(&RttHist::from_map(key, &v));
        }
        Some(sum)
    }

    /// `[AVG n]`: the integer mean as bcc computes it, 0 when there is no sample.
    pub fn average(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }

    /// Adds another histogram of the same key (another CPU's, or the same key seen twice
    /// in one interval).
    pub fn merge(&mut self, other: &RttHist) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.count = self.count.wrapping_add(other.count);
        for (a, b) in self.slots.iter_mut().zip(other.slots.iter()) {
            *a = a.wrapping_add(*b);
        }
    }
}
