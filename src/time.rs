//! Time as the tools print it: wall-clock `HH:MM:SS`, RFC 3339, and relative seconds.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local, SecondsFormat};
use nix::time::ClockId;

/// RFC 3339 with microseconds, for JSON output.
pub fn rfc3339(at: DateTime<Local>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Wall-clock time for event lines, read only when a layout shows it; `HH:MM:SS` is
/// formatted once per second, not once per event. Also the wall-clock time of an event's
/// kernel time.
pub struct WallClock {
    fixed: Option<DateTime<Local>>,
    second: u64,
    hms: String,
    boot: KernelEpoch,
}

impl WallClock {
    /// The system's clock.
    pub fn system() -> Self {
        WallClock {
            fixed: None,
            second: u64::MAX,
            hms: String::new(),
            boot: KernelEpoch::measure(),
        }
    }

    /// A clock stopped at `at`, for golden tests.
    pub fn fixed(at: DateTime<Local>) -> Self {
        WallClock {
            fixed: Some(at),
            second: u64::MAX,
            hms: at.format("%H:%M:%S").to_string(),
            boot: KernelEpoch::default(),
        }
    }

    /// The wall-clock time of kernel monotonic time `ts_us` (a stopped clock's time).
    pub fn at_kernel_us(&self, ts_us: u64) -> DateTime<Local> {
        self.fixed.unwrap_or_else(|| self.boot.wall_clock(ts_us))
    }

    pub fn now(&self) -> DateTime<Local> {
        self.fixed.unwrap_or_else(Local::now)
    }

    /// Local time now as `%H:%M:%S`.
    pub fn hms(&mut self) -> &str {
        if self.fixed.is_none() {
            let second = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if second != self.second {
                self.second = second;
                self.hms = Local::now().format("%H:%M:%S").to_string();
            }
        }
        &self.hms
    }
}

/// Where CLOCK_MONOTONIC's zero is on the wall clock (CLOCK_REALTIME), measured once: an
/// event's kernel time maps to the wall clock with no clock read per event, and events
/// print in the order of their times. A wall clock set later is not followed.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelEpoch {
    realtime_minus_monotonic_ns: i128,
}

impl KernelEpoch {
    /// Reads the two clocks a few times, keeping the pair read closest together.
    pub fn measure() -> Self {
        let best = (0..5)
            .map(|_| {
                let before = clock_ns(ClockId::CLOCK_MONOTONIC);
                let real = clock_ns(ClockId::CLOCK_REALTIME);
                let after = clock_ns(ClockId::CLOCK_MONOTONIC);
                (after - before, real - (before + after) / 2)
            })
            .min_by_key(|&(spread, _)| spread)
            .map_or(0, |(_, offset)| offset);
        KernelEpoch {
            realtime_minus_monotonic_ns: best,
        }
    }

    pub fn wall_clock(&self, ts_us: u64) -> DateTime<Local> {
        let ns = self.realtime_minus_monotonic_ns + i128::from(ts_us) * 1000;
        let ns = i64::try_from(ns).unwrap_or(i64::MAX);
        DateTime::from_timestamp_nanos(ns).with_timezone(&Local)
    }
}

fn clock_ns(clock: ClockId) -> i128 {
    clock.now().map_or(0, |t| {
        i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
    })
}

/// CLOCK_MONOTONIC in microseconds: the clock of the events' kernel times
/// (bpf_ktime_get_ns).
pub fn monotonic_us() -> u64 {
    u64::try_from(clock_ns(ClockId::CLOCK_MONOTONIC) / 1000).unwrap_or(0)
}

/// Seconds from the first event to this one, both in kernel microseconds. A signed
/// difference: an event from another CPU may be older than the first one printed.
pub fn seconds_since(first_us: u64, now_us: u64) -> f64 {
    (now_us as i128 - first_us as i128) as f64 / 1_000_000.0
}

/// `-t`'s clock: seconds since the first event printed, from the events' kernel times.
#[derive(Default)]
pub struct SinceFirst {
    first_us: Option<u64>,
}

impl SinceFirst {
    /// Seconds from the first event seen to the one at `ts_us` (the first one: 0).
    pub fn seconds(&mut self, ts_us: u64) -> f64 {
        seconds_since(*self.first_us.get_or_insert(ts_us), ts_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_seconds_are_signed() {
        assert_eq!(seconds_since(1_000_000, 2_500_000), 1.5);
        assert_eq!(seconds_since(2_000_000, 1_000_000), -1.0);
    }
}
