//! Time as the datapath keeps it and as people read it. The datapath stamps
//! with bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC at tick resolution.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::time::{clock_gettime, ClockId};

fn clock_ns(clock: ClockId) -> u64 {
    clock_gettime(clock)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Now on the datapath's clock (CLOCK_MONOTONIC_COARSE reads the same
/// coarse clock), for ages and idle times.
pub fn datapath_clock_ns() -> u64 {
    clock_ns(ClockId::CLOCK_MONOTONIC_COARSE)
}

/// A datapath timestamp as Unix time in ns.
pub fn wall_clock_ns(ts_ns: u64) -> u64 {
    let age = clock_ns(ClockId::CLOCK_MONOTONIC).saturating_sub(ts_ns);
    clock_ns(ClockId::CLOCK_REALTIME).saturating_sub(age)
}

/// Unix milliseconds as RFC 3339 UTC: `2024-05-01T12:00:00.123Z`.
pub fn rfc3339_utc(unix_ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Now, as unix milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert_eq!(rfc3339_utc(4_102_444_799_000), "2099-12-31T23:59:59.000Z");
    }
}
