//! Records from several buffers put back in time order: a k-way merge with a bounded
//! window, as `perf` orders the events of its per-CPU buffers.
//!
//! A record is held until every buffer has been drained at least `window` after its
//! time: the writer stamps a record and commits it a few microseconds later on the same
//! CPU, so no record still to come can be older. A record that breaks that bound (its
//! writer stalled longer than the window) is handed out when seen, and counted as late.
//!
//! Each buffer's records wait in a queue of their own, which arrives almost in time order
//! (a CPU's records are out of order only where a program interrupted another between
//! its clock read and its commit): a record is appended, or moved back past the few newer
//! ones. Merging compares only the queues' oldest records, in a heap as large as the
//! number of buffers, so the cost per record does not grow with the records held.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

/// Records waiting for their turn, each buffer's in its own queue, oldest first.
pub struct Reorder<R> {
    queues: Vec<VecDeque<Held<R>>>,
    window_us: u64,
    next_seq: u64,
    held: usize,
    /// The time of the newest record handed out.
    released_us: u64,
    late: u64,
}

/// A record, its kernel time and its place among the records of that time.
struct Held<R> {
    ts_us: u64,
    seq: u64,
    record: R,
}

impl<R> Held<R> {
    fn key(&self) -> (u64, u64) {
        (self.ts_us, self.seq)
    }
}

impl<R> Reorder<R> {
    pub fn new(window: Duration) -> Self {
        Reorder {
            queues: Vec::new(),
            window_us: u64::try_from(window.as_micros()).unwrap_or(u64::MAX),
            next_seq: 0,
            held: 0,
            released_us: 0,
            late: 0,
        }
    }

    /// Holds `record`, of kernel time `ts_us`, read from buffer `source` (a CPU's ring,
    /// say). Records of one time keep their order.
    pub fn push(&mut self, source: usize, ts_us: u64, record: R) {
        if source >= self.queues.len() {
            self.queues.resize_with(source + 1, VecDeque::new);
        }
        let queue = &mut self.queues[source];
        let held = Held {
            ts_us,
            seq: self.next_seq,
            record,
        };
        self.next_seq += 1;
        self.held += 1;
        // Behind the newer records, counted from the back: almost always none.
        let at = queue.len() - queue.iter().rev().take_while(|h| h.ts_us > ts_us).count();
        queue.insert(at, held);
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
        // The oldest record of each queue that is due, oldest first.
        let mut heads: BinaryHeap<Reverse<((u64, u64), usize)>> = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(source, queue)| Some(Reverse((queue.front()?.key(), source))))
            .filter(|Reverse(((ts_us, _), _))| *ts_us <= until_us)
            .collect();
        while let Some(Reverse((_, source))) = heads.pop() {
            let queue = &mut self.queues[source];
            let Some(held) = queue.pop_front() else {
                continue;
            };
            if let Some(next) = queue.front().filter(|next| next.ts_us <= until_us) {
                heads.push(Reverse((next.key(), source)));
            }
            self.hand_out(held, &mut out);
        }
    }

    fn hand_out(&mut self, held: Held<R>, out: &mut impl FnMut(R)) {
        if held.ts_us < self.released_us {
            self.late += 1;
        }
        self.released_us = self.released_us.max(held.ts_us);
        self.held -= 1;
        out(held.record);
    }

    /// How long after `now_us` the oldest record held is due; None when none is held.
    pub fn due_in(&self, now_us: u64) -> Option<Duration> {
        let oldest = self
            .queues
            .iter()
            .filter_map(|q| q.front())
            .map(|h| h.ts_us)
            .min()?;
        let due = oldest.saturating_add(self.window_us);
        Some(Duration::from_micros(due.saturating_sub(now_us)))
    }

    /// Records handed out after a newer one: they came later than the window allows.
    pub fn late(&self) -> u64 {
        self.late
    }

    pub fn len(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

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
        reorder.push(0, 1_000, "a0");
        reorder.push(0, 1_030, "c0");
        reorder.push(1, 1_010, "b1");
        reorder.push(1, 1_030, "d1");
        assert_eq!(released(&mut reorder, 20_999), Vec::<&str>::new());
        assert_eq!(released(&mut reorder, 21_010), ["a0", "b1"]);
        assert_eq!(reorder.due_in(21_010), Some(Duration::from_micros(20)));
        assert_eq!(released(&mut reorder, 30_000), ["c0", "d1"]);
        assert!(reorder.is_empty());
        assert_eq!(reorder.due_in(30_000), None);
        assert_eq!(reorder.late(), 0);
    }

    #[test]
    fn a_buffer_out_of_order_is_sorted_and_equal_times_keep_their_order() {
        let mut reorder = Reorder::new(WINDOW);
        // A program interrupted between its clock read and its commit: 2 after 3 and 4.
        for (ts, r) in [(1, "a"), (3, "d"), (4, "e"), (2, "b"), (2, "c")] {
            reorder.push(0, ts, r);
        }
        reorder.push(1, 2, "b1");
        let mut out = Vec::new();
        reorder.release_all(|r| out.push(r));
        assert_eq!(out, ["a", "b", "c", "b1", "d", "e"]);
        assert_eq!(reorder.late(), 0);
    }

    #[test]
    fn an_idle_buffer_holds_nothing_past_the_window() {
        let mut reorder = Reorder::new(WINDOW);
        reorder.push(3, 5_000, "only");
        assert_eq!(reorder.due_in(6_000), Some(Duration::from_micros(19_000)));
        assert_eq!(reorder.due_in(90_000), Some(Duration::ZERO));
        assert_eq!(released(&mut reorder, 25_000), ["only"]);
    }

    #[test]
    fn a_record_later_than_the_window_is_handed_out_and_counted() {
        let mut reorder = Reorder::new(WINDOW);
        reorder.push(0, 50_000, "new");
        assert_eq!(released(&mut reorder, 70_000), ["new"]);
        reorder.push(1, 40_000, "stalled");
        assert_eq!(released(&mut reorder, 70_001), ["stalled"]);
        assert_eq!(reorder.late(), 1);
    }

    #[test]
    fn release_all_empties_in_order() {
        let mut reorder = Reorder::new(WINDOW);
        reorder.push(0, 3, "c");
        reorder.push(1, 1, "a");
        reorder.push(2, 2, "b");
        let mut out = Vec::new();
        reorder.release_all(|r| out.push(r));
        assert_eq!(out, ["a", "b", "c"]);
        assert_eq!(reorder.len(), 0);
    }

    #[test]
    fn many_records_over_many_buffers_come_out_sorted() {
        let mut reorder = Reorder::new(WINDOW);
        let mut expected = Vec::new();
        // 64 buffers, each nearly in order; a fixed pseudo-random spread of times.
        let mut x: u64 = 12345;
        for i in 0..10_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let source = (x >> 33) as usize % 64;
            let ts = i * 10 + (x >> 60);
            reorder.push(source, ts, ts);
            expected.push(ts);
        }
        expected.sort();
        let mut out = Vec::new();
        reorder.release(50_000 + 20_000, |r| out.push(r));
        reorder.release_all(|r| out.push(r));
        assert_eq!(out, expected);
    }
}
