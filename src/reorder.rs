//! Records from several buffers put back in time order: a k-way merge with a bounded
//! window, as `perf` orders the events of its per-CPU buffers.
//!
//! A record is held until every buffer has been drained at least `window` after its
//! time: the writer stamps a record and commits it a few microseconds later on the same
//! CPU, so no record still to come can be older. A record that breaks that bound (its
//! writer stalled longer than the window) is handed out when seen, and counted as late.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

/// Records waiting for their turn, oldest first. The heap orders small keys; the records
/// (a few hundred bytes) stay in their slots, moved once in and once out.
pub struct Reorder<R> {
    held: BinaryHeap<Held>,
    slots: Vec<Option<R>>,
    free: Vec<usize>,
    window_us: u64,
    next_seq: u64,
    /// The time of the newest record handed out.
    released_us: u64,
    late: u64,
}

impl<R> Reorder<R> {
    pub fn new(window: Duration) -> Self {
        Reorder {
            held: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            window_us: u64::try_from(window.as_micros()).unwrap_or(u64::MAX),
            next_seq: 0,
            released_us: 0,
            late: 0,
        }
    }

    /// Holds `record`, of kernel time `ts_us`. Records of one time keep their order.
    pub fn push(&mut self, ts_us: u64, record: R) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(record);
                slot
            }
            None => {
                self.slots.push(Some(record));
                self.slots.len() - 1
            }
        };
        self.held.push(Held {
            ts_us,
            seq: self.next_seq,
            slot,
        });
        self.next_seq += 1;
    }

    /// Hands `out`, in time order, every record at least the window older than
    /// `drained_us`: a time read before every buffer was last drained.
    pub fn release(&mut self, drained_us: u64, out: impl FnMut(R)) {
        self.release_until(drained_us.saturating_sub(self.window_us), out);
    }

    /// Hands out every record held, in time order (at the end, or when the window is moot).
    pub fn release_all(&mut self, out: impl FnMut(R)) {
        self.release_until(u64::MAX, out);
    }

    fn release_until(&mut self, until_us: u64, mut out: impl FnMut(R)) {
        while self.held.peek().is_some_and(|h| h.ts_us <= until_us) {
            let Some(held) = self.held.pop() else { break };
            if held.ts_us < self.released_us {
                self.late += 1;
            }
            self.released_us = self.released_us.max(held.ts_us);
            self.free.push(held.slot);
            if let Some(record) = self.slots[held.slot].take() {
                out(record);
            }
        }
    }

    /// How long after `now_us` the oldest record held is due; None when none is held.
    pub fn due_in(&self, now_us: u64) -> Option<Duration> {
        let oldest = self.held.peek()?;
        let due = oldest.ts_us.saturating_add(self.window_us);
        Some(Duration::from_micros(due.saturating_sub(now_us)))
    }

    /// Records handed out after a newer one: they came later than the window allows.
    pub fn late(&self) -> u64 {
        self.late
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

struct Held {
    ts_us: u64,
    seq: u64,
    slot: usize,
}

impl Held {
    fn key(&self) -> (u64, u64) {
        (self.ts_us, self.seq)
    }
}

// BinaryHeap is a max-heap: the oldest record compares greatest.
impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Held {}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(20);

    fn released(reorder: &mut Reorder<&'static str>, drained_us: u64) -> Vec<&'static str> {
        let mut out = Vec::new();
        reorder.release(drained_us, |r| out.push(r));
        out
    }

    #[test]
    fn two_buffers_merge_in_time_order_once_the_window_has_passed() {
        let mut reorder = Reorder::new(WINDOW);
        // CPU 0's buffer, then CPU 1's, as one drain reads them.
        reorder.push(1_000, "a0");
        reorder.push(1_030, "c0");
        reorder.push(1_010, "b1");
        reorder.push(1_030, "d1");
        assert_eq!(released(&mut reorder, 20_999), Vec::<&str>::new());
        assert_eq!(released(&mut reorder, 21_010), ["a0", "b1"]);
        assert_eq!(reorder.due_in(21_010), Some(Duration::from_micros(20)));
        assert_eq!(released(&mut reorder, 30_000), ["c0", "d1"]);
        assert!(reorder.is_empty());
        assert_eq!(reorder.due_in(30_000), None);
        assert_eq!(reorder.late(), 0);
    }

    #[test]
    fn an_idle_buffer_holds_nothing_past_the_window() {
        let mut reorder = Reorder::new(WINDOW);
        reorder.push(5_000, "only");
        assert_eq!(reorder.due_in(6_000), Some(Duration::from_micros(19_000)));
        assert_eq!(reorder.due_in(90_000), Some(Duration::ZERO));
        assert_eq!(released(&mut reorder, 25_000), ["only"]);
    }

    #[test]
    fn a_record_later_than_the_window_is_handed_out_and_counted() {
        let mut reorder = Reorder::new(WINDOW);
        reorder.push(50_000, "new");
        assert_eq!(released(&mut reorder, 70_000), ["new"]);
        reorder.push(40_000, "stalled");
        assert_eq!(released(&mut reorder, 70_001), ["stalled"]);
        assert_eq!(reorder.late(), 1);
    }

    #[test]
    fn release_all_empties_in_order() {
        let mut reorder = Reorder::new(WINDOW);
        reorder.push(3, "c");
        reorder.push(1, "a");
        reorder.push(2, "b");
        let mut out = Vec::new();
        reorder.release_all(|r| out.push(r));
        assert_eq!(out, ["a", "b", "c"]);
        assert_eq!(reorder.len(), 0);
    }
}
