//! Time as the tools print it: wall-clock `HH:MM:SS`, RFC 3339, and relative seconds.

use chrono::{DateTime, Local, SecondsFormat};

/// Local wall-clock time now, `%H:%M:%S`, as bcc's `-T` prints it.
pub fn clock_hms() -> String {
    Local::now().format("%H:%M:%S").to_string()
}

/// Local wall-clock time now in RFC 3339 with microseconds, for JSON output.
pub fn now_rfc3339() -> String {
    rfc3339(Local::now())
}

pub fn rfc3339(at: DateTime<Local>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Seconds from the first event to this one, both in kernel microseconds. A signed
/// difference: an event from another CPU may be older than the first one printed.
pub fn seconds_since(first_us: u64, now_us: u64) -> f64 {
    (now_us as i128 - first_us as i128) as f64 / 1_000_000.0
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
