//! Time as the tools print it: wall-clock `HH:MM:SS`, RFC 3339, and relative seconds.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local, SecondsFormat};

/// RFC 3339 with microseconds, for JSON output.
pub fn rfc3339(at: DateTime<Local>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Wall-clock time for event lines, read only when a layout shows it; `HH:MM:SS` is
/// formatted once per second, not once per event.
pub struct WallClock {
    fixed: Option<DateTime<Local>>,
    second: u64,
    hms: String,
}

impl WallClock {
    /// The system's clock.
    pub fn system() -> Self {
        WallClock {
            fixed: None,
            second: u64::MAX,
            hms: String::new(),
        }
    }

    /// A clock stopped at `at`, for golden tests.
    pub fn fixed(at: DateTime<Local>) -> Self {
        WallClock {
            fixed: Some(at),
            second: u64::MAX,
            hms: at.format("%H:%M:%S").to_string(),
        }
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
