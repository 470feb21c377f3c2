//! tcptools-exporter's metrics model: the counters and log2 histograms the kernel keeps
//! (bpf/exporter.h), summed over the CPUs, per group; and which groups get a label of
//! their own. Nothing is ever reset: every value is the kernel's running total.

use std::collections::{BTreeMap, BTreeSet};

use super::{CONNECT_SLOTS, RTT_SLOTS, STATE_SLOTS};
use crate::skel::exporter::types::{connect_outcome, exporter_layout as layout};

/// The layout of bpf/exporter.h (`enum exporter_layout`): families (0 AF_INET, 1 AF_INET6),
/// states, outcomes.
pub const FAMILIES: usize = layout::FAMILIES.0 as usize;
pub const STATES: usize = layout::STATES.0 as usize;
pub const OUTCOMES: usize = connect_outcome::OUTCOMES.0 as usize;
pub const TRANSITIONS: usize = layout::TRANSITIONS.0 as usize;
pub const COUNTERS_PER_FAMILY: usize = layout::COUNTERS_PER_FAMILY.0 as usize;
pub const COUNTERS: usize = layout::COUNTERS.0 as usize;
pub const HISTS_PER_FAMILY: usize = layout::HISTS_PER_FAMILY.0 as usize;
pub const HISTS: usize = layout::HISTS.0 as usize;
/// The kernel's log2 slots per histogram (the most any metric has).
pub const HIST_SLOTS: usize = layout::HIST_SLOTS.0 as usize;

/// How a connect left SYN_SENT: `enum connect_outcome`, and the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Established = connect_outcome::OUTCOME_ESTABLISHED.0 as isize,
    Refused = connect_outcome::OUTCOME_REFUSED.0 as isize,
    Timeout = connect_outcome::OUTCOME_TIMEOUT.0 as isize,
    Other = connect_outcome::OUTCOME_OTHER.0 as isize,
}

impl Outcome {
    pub const ALL: [Outcome; OUTCOMES] = [
        Outcome::Established,
        Outcome::Refused,
        Outcome::Timeout,
        Outcome::Other,
    ];
    /// The outcomes whose latency is measured: an answer came.
    pub const ANSWERED: [Outcome; 2] = [Outcome::Established, Outcome::Refused];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Established => "established",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Other => "other",
        }
    }
}

/// A histogram of the kernel's: rtt, connect latency by outcome, or time in a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistKind {
    Rtt,
    Connect(Outcome),
    State(usize),
}

impl HistKind {
    fn offset(self) -> usize {
        match self {
            HistKind::Rtt => layout::HIST_RTT.0 as usize,
            HistKind::Connect(outcome) => layout::HIST_CONNECT.0 as usize + outcome as usize,
            HistKind::State(state) => layout::HIST_STATE.0 as usize + state,
        }
    }

    /// The metric's slots: the kernel's beyond them are folded into the last.
    pub fn slots(self) -> usize {
        match self {
            HistKind::Rtt => RTT_SLOTS,
            HistKind::Connect(_) => CONNECT_SLOTS,
            HistKind::State(_) => STATE_SLOTS,
        }
    }
}

pub fn transition_index(family: usize, old: usize, new: usize) -> usize {
    family * COUNTERS_PER_FAMILY + old * STATES + new
}

pub fn attempt_index(family: usize, outcome: Outcome) -> usize {
    family * COUNTERS_PER_FAMILY + TRANSITIONS + outcome as usize
}

pub fn hist_index(family: usize, kind: HistKind) -> usize {
    family * HISTS_PER_FAMILY + kind.offset()
}

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

    /// Number of values: the sum of the slots, so `_count` always equals the `+Inf` bucket.
    pub fn count(&self) -> u64 {
        self.slots.iter().fold(0u64, |a, &b| a.wrapping_add(b))
    }

    /// Adds `other`'s values; its slots beyond this one's last go to the last.
    pub fn add(&mut self, other: &Log2Hist) {
        let top = self.slots.len() - 1;
        for (i, &n) in other.slots.iter().enumerate() {
            self.slots[i.min(top)] = self.slots[i.min(top)].wrapping_add(n);
        }
        self.sum_us = self.sum_us.wrapping_add(other.sum_us);
    }

    /// The same values in `slots` slots.
    pub fn folded(&self, slots: usize) -> Log2Hist {
        let mut folded = Log2Hist::new(slots);
        folded.add(self);
        folded
    }
}

/// Everything the kernel counted for one group (or for all sockets), summed over CPUs.
/// Sums wrap like the kernel's u64 values: they never get there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counts {
    pub counters: Vec<u64>,
    pub hists: Vec<Log2Hist>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            counters: vec![0; COUNTERS],
            hists: vec![Log2Hist::new(HIST_SLOTS); HISTS],
        }
    }
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        for (a, &b) in self.counters.iter_mut().zip(&other.counters) {
            *a = a.wrapping_add(b);
        }
        for (a, b) in self.hists.iter_mut().zip(&other.hists) {
            a.add(b);
        }
    }

    pub fn transitions(&self, family: usize, old: usize, new: usize) -> u64 {
        self.counters[transition_index(family, old, new)]
    }

    pub fn attempts(&self, family: usize, outcome: Outcome) -> u64 {
        self.counters[attempt_index(family, outcome)]
    }

    /// Histogram `kind` of `family`, in the metric's own slots.
    pub fn hist(&self, family: usize, kind: HistKind) -> Log2Hist {
        self.hists[hist_index(family, kind)].folded(kind.slots())
    }

    /// How busy the group was: every count and sample it holds.
    pub fn activity(&self) -> u64 {
        let counted = self.counters.iter().fold(0u64, |a, &b| a.wrapping_add(b));
        self.hists
            .iter()
            .fold(counted, |a, h| a.wrapping_add(h.count()))
    }
}

/// Which groups get a label of their own. A group keeps its place once it has one, so no
/// series ever goes down: a labeled group stays labeled, a group summed into "other"
/// stays there. New groups, busiest first, get a label while fewer than `max` have one.
#[derive(Clone, Debug, Default)]
pub struct Groups {
    max: usize,
    labeled: BTreeSet<u64>,
    other: BTreeSet<u64>,
    /// What retired groups of "other" had counted: "other" keeps it.
    retired: Counts,
}

/// The series of one scrape: each labeled group's counts, and "other"'s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grouped {
    pub labeled: Vec<(u64, Counts)>,
    pub other: Counts,
}

impl Groups {
    pub fn new(max: usize) -> Groups {
        Groups {
            max,
            ..Default::default()
        }
    }

    /// Splits the kernel's groups; `overflow` (the kernel's counts of groups it had no
    /// room for) is "other" from the start.
    pub fn split(&mut self, groups: BTreeMap<u64, Counts>, overflow: Counts) -> Grouped {
        self.place_new(&groups);
        let mut grouped = Grouped {
            labeled: Vec::new(),
            other: overflow,
        };
        grouped.other.add(&self.retired);
        for (id, counts) in groups {
            if self.labeled.contains(&id) {
                grouped.labeled.push((id, counts));
            } else {
                grouped.other.add(&counts);
            }
        }
        grouped
    }

    fn place_new(&mut self, groups: &BTreeMap<u64, Counts>) {
        let mut new: Vec<(u64, u64)> = groups
            .iter()
            .filter(|(id, _)| !self.labeled.contains(id) && !self.other.contains(id))
            .map(|(&id, counts)| (counts.activity(), id))
            .collect();
        new.sort_by(|a, b| b.cmp(a));
        for (_, id) in new {
            if self.labeled.len() < self.max {
                self.labeled.insert(id);
            } else {
                self.other.insert(id);
            }
        }
    }

    /// Forgets group `id`, gone with everything it counted (`counts`), whose kernel entries
    /// are deleted next: a labeled group's series end and its label goes to the next new
    /// group; a group of "other" leaves its counts there.
    pub fn retire(&mut self, id: u64, counts: &Counts) {
        if !self.labeled.remove(&id) && self.other.remove(&id) {
            self.retired.add(counts);
        }
    }

    /// Groups with a label, and groups summed into "other".
    pub fn sizes(&self) -> (usize, usize) {
        (self.labeled.len(), self.other.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(n: u64) -> Counts {
        let mut counts = Counts::default();
        counts.counters[transition_index(0, 1, 4)] = n;
        counts
    }

    #[test]
    fn busiest_new_groups_get_labels_and_keep_them() {
        let mut groups = Groups::new(2);
        let first: BTreeMap<u64, Counts> = [(10, busy(1)), (11, busy(50)), (12, busy(20))].into();
        let grouped = groups.split(first, busy(3));
        let ids: Vec<u64> = grouped.labeled.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![11, 12]);
        assert_eq!(grouped.other.transitions(0, 1, 4), 4);
        // Group 10 grows past the others: it stays in "other", so no series goes down.
        let later: BTreeMap<u64, Counts> = [
            (10, busy(900)),
            (11, busy(51)),
            (12, busy(20)),
            (13, busy(7)),
        ]
        .into();
        let grouped = groups.split(later, busy(3));
        let ids: Vec<u64> = grouped.labeled.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![11, 12]);
        assert_eq!(grouped.other.transitions(0, 1, 4), 910);
        assert_eq!(groups.sizes(), (2, 2));
    }

    #[test]
    fn retired_groups_free_their_label_and_stay_in_other() {
        let mut groups = Groups::new(1);
        let first: BTreeMap<u64, Counts> = [(10, busy(5)), (11, busy(2))].into();
        groups.split(first, Counts::default());
        groups.retire(10, &busy(5));
        groups.retire(11, &busy(2));
        let later: BTreeMap<u64, Counts> = [(12, busy(1))].into();
        let grouped = groups.split(later, Counts::default());
        assert_eq!(grouped.labeled, vec![(12, busy(1))]);
        assert_eq!(grouped.other.transitions(0, 1, 4), 2);
    }

    #[test]
    fn kernel_slots_fold_into_the_metric_s_last() {
        let mut kernel = Log2Hist::new(HIST_SLOTS);
        for us in [0, 3, 1 << 26, 1 << 30, u64::from(u32::MAX)] {
            kernel.slots[slot_of(us, HIST_SLOTS)] += 1;
            kernel.sum_us += us;
        }
        let rtt = kernel.folded(RTT_SLOTS);
        assert_eq!(rtt.slots.len(), RTT_SLOTS);
        assert_eq!((rtt.slots[0], rtt.slots[1], rtt.slots[26]), (1, 1, 3));
        assert_eq!(rtt.count(), 5);
        assert_eq!(rtt.sum_us, kernel.sum_us);
    }

    #[test]
    fn indexes_match_the_kernel_layout() {
        assert_eq!(
            transition_index(1, 15, 15),
            COUNTERS_PER_FAMILY + TRANSITIONS - 1
        );
        assert_eq!(attempt_index(1, Outcome::Other), COUNTERS - 1);
        assert_eq!(hist_index(1, HistKind::State(STATES - 1)), HISTS - 1);
        assert_eq!(hist_index(0, HistKind::Connect(Outcome::Refused)), 2);
    }
}
