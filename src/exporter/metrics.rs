//! tcptools-exporter's metrics model: cumulative counters and log2 histograms, fed by the
//! tools' records and the kernel's RTT histograms. Nothing is ever reset.

use std::collections::BTreeMap;

use super::{CONNECT_SLOTS, FAMILIES, RTT_SLOTS, STATE_SLOTS};
use crate::tcpconnlat::ConnectLatency;
use crate::tcpstates::StateChange;

/// The log2 slot bcc puts `value` in: 0 for 0 and 1, else floor(log2(value)); values past
/// the last slot go to the last slot.
pub fn slot_of(value: u64, slots: usize) -> usize {
    let slot = if value == 0 {
        0
    } else {
        63 - value.leading_zeros() as usize
    };
    slot.min(slots.saturating_sub(1))
}

/// A cumulative log2 histogram of microsecond values. Slot `i` holds `2^i ..= 2^(i+1)-1`
/// (slot 0 holds 0 and 1); the last slot also holds everything above, so it has no finite
/// upper bound and appears only in the `+Inf` bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log2Hist {
    pub slots: Vec<u64>,
    /// Sum of the recorded values, in microseconds.
    pub sum_us: u64,
}

impl Log2Hist {
    pub fn new(slots: usize) -> Log2Hist {
        Log2Hist {
            slots: vec![0; slots.max(1)],
            sum_us: 0,
        }
    }

    pub fn record(&mut self, value_us: u64) {
        let slot = slot_of(value_us, self.slots.len());
        if let Some(count) = self.slots.get_mut(slot) {
            *count = count.saturating_add(1);
        }
        self.sum_us = self.sum_us.saturating_add(value_us);
    }

    /// Number of values: the sum of the slots, so `_count` always equals the `+Inf` bucket.
    pub fn count(&self) -> u64 {
        self.slots.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }
}

/// Cumulative RTT histograms built from the kernel's per-family `hists` entries, whose
/// slots are 32-bit and wrap: each read adds the difference to the last read (modulo
/// 2^32), which is exact as long as no slot gains 2^32 samples between two reads.
#[derive(Clone, Debug, Default)]
pub struct RttTotals {
    last: BTreeMap<u16, KernelHist>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KernelHist {
    slots: Vec<u32>,
    sum: u64,
}

impl RttTotals {
    /// Adds what the kernel's histogram of `family` gained since the last call to `into`.
    pub fn update(&mut self, family: u16, slots: &[u32], sum_us: u64, into: &mut Log2Hist) {
        let last = self.last.entry(family).or_default();
        last.slots.resize(slots.len(), 0);
        let top = into.slots.len().saturating_sub(1);
        for (i, (&now, before)) in slots.iter().zip(last.slots.iter_mut()).enumerate() {
            let gained = u64::from(now.wrapping_sub(*before));
            if let Some(total) = into.slots.get_mut(i.min(top)) {
                *total = total.saturating_add(gained);
            }
            *before = now;
        }
        into.sum_us = into.sum_us.saturating_add(sum_us.wrapping_sub(last.sum));
        last.sum = sum_us;
    }
}

/// Everything the exporter has counted since it started. Nothing is ever reset.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub rtt: BTreeMap<u16, Log2Hist>,
    pub connect: BTreeMap<u16, Log2Hist>,
    /// (family, old state, new state) -> transitions.
    pub transitions: BTreeMap<(u16, i32, i32), u64>,
    /// (family, state left) -> time spent in it; only changes whose state start was seen.
    pub state_durations: BTreeMap<(u16, i32), Log2Hist>,
    /// Event source (`tcpstates`, `tcpconnlat`) -> events that never reached user space.
    pub lost: BTreeMap<&'static str, u64>,
    /// BPF program (`tcpstates`, `tcpconnlat`, `tcprtt`) -> runs the kernel skipped.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Records too short to decode, by source.
    pub malformed: BTreeMap<&'static str, u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let per_family = |slots| {
            FAMILIES
                .iter()
                .map(|&f| (f, Log2Hist::new(slots)))
                .collect()
        };
        let sources = |names: &[&'static str]| names.iter().map(|&n| (n, 0)).collect();
        Metrics {
            rtt: per_family(RTT_SLOTS),
            connect: per_family(CONNECT_SLOTS),
            transitions: BTreeMap::new(),
            state_durations: BTreeMap::new(),
            lost: sources(&["tcpconnlat", "tcpstates"]),
            skipped: sources(&["tcpconnlat", "tcprtt", "tcpstates"]),
            malformed: sources(&["tcpconnlat", "tcpstates"]),
        }
    }

    /// Counts one state change, and its duration when its start was seen.
    pub fn record_state_change(&mut self, change: &StateChange) {
        let count = self
            .transitions
            .entry((change.endpoints.family, change.oldstate, change.newstate))
            .or_insert(0);
        *count = count.saturating_add(1);
        if change.delta_known {
            self.state_durations
                .entry((change.endpoints.family, change.oldstate))
                .or_insert_with(|| Log2Hist::new(STATE_SLOTS))
                .record(change.delta_ns / 1000);
        }
    }

    /// Counts a record of `source` too short to decode.
    pub fn count_malformed(&mut self, source: &'static str) {
        let count = self.malformed.entry(source).or_insert(0);
        *count = count.saturating_add(1);
    }

    pub fn record_connect(&mut self, connect: &ConnectLatency) {
        self.connect
            .entry(connect.endpoints.family)
            .or_insert_with(|| Log2Hist::new(CONNECT_SLOTS))
            .record(connect.delta_us);
    }
}
