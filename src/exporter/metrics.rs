//! tcptools-exporter's metrics model: the counters and histograms the kernel keeps
//! (bpf/exporter.h), summed over the CPUs, per group; the histograms' grid (native buckets,
//! and the classic `le` bounds among them); and which groups get a label of their own.
//! Nothing is ever reset: every value is the kernel's running total.

use std::collections::{BTreeMap, BTreeSet};

use crate::skel::exporter::types::{connect_outcome, exporter_layout as layout, grouped_hists};

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
/// The kernel's slots per histogram, and its table of their bounds.
pub const HIST_SLOTS: usize = layout::HIST_SLOTS.0 as usize;
pub const HIST_BOUNDS: usize = layout::HIST_BOUNDS.0 as usize;
pub const HIST_BOUND_TABLE: usize = layout::HIST_BOUND_TABLE.0 as usize;

/// The native histograms' schema: bucket `k` holds the values above 2^((k-1)/2) seconds up
/// to 2^(k/2), a factor of sqrt(2) where the tools' log2 slots have 2.
pub const SCHEMA: i32 = 1;
/// The native bucket of the kernel's slot 1: slot 0 holds everything up to 2^(-40/2) s
/// (954 ns), the native zero bucket; slot i, 1 <= i < HIST_BOUNDS, native bucket
/// `FIRST_BUCKET - 1 + i`; the last bound is 2^(32/2) s (18.2 h). Values above it are in
/// the kernel's last slot, which the native buckets show as the bucket above the last bound
/// and the classic ones in `+Inf` alone.
pub const FIRST_BUCKET: i32 = -39;
/// Every CLASSIC_STEP-th bound is a classic `le` (2^(4k/2) s: powers of 4 from 2^-20 s):
/// the classic buckets are a subset of the native ones, a quarter as many.
pub const CLASSIC_STEP: usize = 4;

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

    /// The kernel slot of the metric's last classic `le`: 2^6 s (64 s, beyond the SYN
    /// retries and any RTT) for RTT and connect latency; 2^16 s (18.2 h) for states.
    pub fn classic_top(self) -> usize {
        match self {
            HistKind::Rtt | HistKind::Connect(_) => 52,
            HistKind::State(_) => HIST_BOUNDS - 1,
        }
    }
}

/// With --group-by, the histograms kept per group (`--group-histograms`); the others are
/// kept node-wide, without group labels, which bounds the series a group adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupedHists {
    pub rtt: bool,
    pub connect: bool,
    pub state: bool,
}

impl GroupedHists {
    pub const ALL: GroupedHists = GroupedHists {
        rtt: true,
        connect: true,
        state: true,
    };

    /// `rtt,connect,state` (any of them, comma-separated) or `none`.
    pub fn parse(list: &str) -> Option<GroupedHists> {
        let mut kinds = GroupedHists {
            rtt: false,
            connect: false,
            state: false,
        };
        if list == "none" {
            return Some(kinds);
        }
        for name in list.split(',') {
            match name {
                "rtt" => kinds.rtt = true,
                "connect" => kinds.connect = true,
                "state" => kinds.state = true,
                _ => return None,
            }
        }
        Some(kinds)
    }

    /// Whether histograms of `kind` are kept per group.
    pub fn grouped(self, kind: HistKind) -> bool {
        match kind {
            HistKind::Rtt => self.rtt,
            HistKind::Connect(_) => self.connect,
            HistKind::State(_) => self.state,
        }
    }

    /// `enum grouped_hists`, or'ed: the kernel's setting.
    pub fn bits(self) -> u8 {
        let bit = |on: bool, kind: grouped_hists| if on { kind.0 as u8 } else { 0 };
        bit(self.rtt, grouped_hists::GROUPED_RTT)
            | bit(self.connect, grouped_hists::GROUPED_CONNECT)
            | bit(self.state, grouped_hists::GROUPED_STATE)
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

/// The upper bound of the kernel's slot `i` (`i < HIST_BOUNDS`) in seconds: the native
/// bucket bound 2^((FIRST_BUCKET - 1 + i) / 2^SCHEMA).
pub fn bound_seconds(i: usize) -> f64 {
    let k = FIRST_BUCKET - 1 + i as i32;
    // Exact at whole powers of two (the classic bounds), as Prometheus' own.
    let per_octave = 1 << SCHEMA;
    let (whole, part) = (k.div_euclid(per_octave), k.rem_euclid(per_octave));
    2f64.powi(whole) * 2f64.powf(f64::from(part) / f64::from(per_octave))
}

/// The kernel's table of bounds in ns (exporter_settings.hist_bounds): bound `i` rounded
/// down (a whole number of ns is at most the bound exactly when it is at most its floor),
/// then ~0 to the table's end.
pub fn kernel_bounds() -> [u64; HIST_BOUND_TABLE] {
    let mut table = [u64::MAX; HIST_BOUND_TABLE];
    for (i, bound) in table.iter_mut().take(HIST_BOUNDS).enumerate() {
        *bound = (bound_seconds(i) * 1e9).floor() as u64;
    }
    table
}

/// The kernel's slot of `ns` nanoseconds (bpf/exporter.bpf.c `hist_slot`): how many bounds
/// lie below it.
pub fn slot_of(ns: u64) -> usize {
    kernel_bounds()[..HIST_BOUNDS]
        .iter()
        .take_while(|&&bound| bound < ns)
        .count()
}

/// A histogram as the kernel keeps it: a count per slot of the native grid (see
/// FIRST_BUCKET), and the values' sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hist {
    pub slots: Vec<u64>,
    /// Sum of the recorded values, in microseconds.
    pub sum_us: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            slots: vec![0; HIST_SLOTS],
            sum_us: 0,
        }
    }
}

impl Hist {
    /// Number of values: the sum of the slots, so `_count` always equals the `+Inf` bucket.
    pub fn count(&self) -> u64 {
        self.slots.iter().fold(0u64, |a, &b| a.wrapping_add(b))
    }

    pub fn add(&mut self, other: &Hist) {
        for (a, &b) in self.slots.iter_mut().zip(&other.slots) {
            *a = a.wrapping_add(b);
        }
        self.sum_us = self.sum_us.wrapping_add(other.sum_us);
    }

    /// The classic buckets of `kind`: each `le` (in seconds) and the values at or below it.
    pub fn classic(&self, kind: HistKind) -> Vec<(f64, u64)> {
        let mut cumulative = 0u64;
        let mut buckets = Vec::new();
        for (i, &n) in self.slots.iter().enumerate().take(kind.classic_top() + 1) {
            cumulative = cumulative.wrapping_add(n);
            if i % CLASSIC_STEP == 0 {
                buckets.push((bound_seconds(i), cumulative));
            }
        }
        buckets
    }

    /// The values at or below the zero threshold (the native zero bucket), and the other
    /// slots' counts by native bucket index, empty ones left out.
    pub fn native(&self) -> (u64, Vec<(i32, u64)>) {
        let buckets = self.slots.iter().enumerate().skip(1);
        let counted = buckets.filter(|(_, &n)| n > 0);
        let indexed = counted.map(|(i, &n)| (FIRST_BUCKET - 1 + i as i32, n));
        (self.slots[0], indexed.collect())
    }
}

/// Everything the kernel counted for one group (or for all sockets), summed over CPUs.
/// Sums wrap like the kernel's u64 values: they never get there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counts {
    pub counters: Vec<u64>,
    pub hists: Vec<Hist>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            counters: vec![0; COUNTERS],
            hists: vec![Hist::default(); HISTS],
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

    /// Histogram `kind` of `family`.
    pub fn hist(&self, family: usize, kind: HistKind) -> &Hist {
        &self.hists[hist_index(family, kind)]
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
    fn slots_are_the_native_buckets_and_classic_le_a_subset() {
        // Slot 0 is the zero bucket: up to 2^-20 s, 953.67 ns.
        assert_eq!((slot_of(0), slot_of(953), slot_of(954)), (0, 0, 1));
        // 1 ms lies in native bucket 2^-10 s (976.6 us) .. 2^-9.5 s (1381 us): k = -19.
        let ms = slot_of(1_000_000);
        assert_eq!(FIRST_BUCKET - 1 + ms as i32, -19);
        // Bound 40 is 2^0: one second, in ns exactly; above it the next slot.
        assert_eq!(bound_seconds(40), 1.0);
        assert_eq!((slot_of(1_000_000_000), slot_of(1_000_000_001)), (40, 41));
        assert_eq!(slot_of(u64::MAX), HIST_SLOTS - 1);
        let mut hist = Hist::default();
        for ns in [
            500,
            1_000_000,
            1_000_000_000,
            1_000_000_001,
            100_000_000_000,
        ] {
            hist.slots[slot_of(ns)] += 1;
            hist.sum_us += ns / 1000;
        }
        let classic = hist.classic(HistKind::Rtt);
        assert_eq!(classic.len(), 14);
        assert_eq!(classic[0], (2f64.powi(-20), 1));
        // le 1 (4^0) holds the second too; 100 s is above the RTT's last le, 64 s.
        assert_eq!(classic[10], (1.0, 3));
        assert_eq!(classic[13], (64.0, 4));
        assert_eq!(hist.classic(HistKind::State(1)).last(), Some(&(65536.0, 5)));
        let (zero, native) = hist.native();
        assert_eq!(zero, 1);
        assert_eq!(native, vec![(-19, 1), (0, 1), (1, 1), (14, 1)]);
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
