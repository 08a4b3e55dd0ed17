//! A data track frame's user timestamp, read whatever unit its publisher used. LiveKit leaves
//! the unit to the application: dtbridge and LiveKit's SDK examples send UNIX milliseconds,
//! LiveKit's C++ examples microseconds, Foxglove's remote access nanoseconds. The magnitude
//! tells them apart for any time after March 1973: below 10^14 it is milliseconds (until the
//! year 5138), below 10^17 microseconds, from there nanoseconds. A time after 2262 (beyond
//! signed 64-bit nanoseconds) is no time at all: the frame is recorded at its receive time.

/// The unit a user timestamp was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl std::fmt::Display for TimestampUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Milliseconds => "milliseconds",
            Self::Microseconds => "microseconds",
            Self::Nanoseconds => "nanoseconds",
        })
    }
}

/// Below this, a user timestamp is UNIX milliseconds.
const MICROSECONDS_FROM: u64 = 100_000_000_000_000;
/// From this on, a user timestamp is UNIX nanoseconds.
const NANOSECONDS_FROM: u64 = 100_000_000_000_000_000;

/// The latest time a user timestamp may stand for: 2262-04-11, the most signed 64-bit
/// nanoseconds hold (ROS 2's and most readers' time types); `u64::MAX`, what a saturating
/// conversion leaves, is beyond it.
const LATEST_NS: u64 = i64::MAX as u64;

/// The UNIX time in nanoseconds a user timestamp stands for, and the unit it was read in;
/// `None` for a time after [`LATEST_NS`] (2262), which no clock gives.
pub fn user_timestamp_ns(raw: u64) -> (Option<u64>, TimestampUnit) {
    let (ns, unit) = if raw < MICROSECONDS_FROM {
        (raw.checked_mul(1_000_000), TimestampUnit::Milliseconds)
    } else if raw < NANOSECONDS_FROM {
        (raw.checked_mul(1_000), TimestampUnit::Microseconds)
    } else {
        (Some(raw), TimestampUnit::Nanoseconds)
    };
    (ns.filter(|&ns| ns <= LATEST_NS), unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-26 06:00:00 UTC in nanoseconds.
    const NOW_NS: u64 = 1_795_672_800_000_000_000;

    #[test]
    fn reads_each_unit_from_its_magnitude() {
        let ms = user_timestamp_ns(NOW_NS / 1_000_000);
        assert_eq!(ms, (Some(NOW_NS), TimestampUnit::Milliseconds));
        let us = user_timestamp_ns(NOW_NS / 1_000);
        assert_eq!(us, (Some(NOW_NS), TimestampUnit::Microseconds));
        assert_eq!(user_timestamp_ns(NOW_NS), (Some(NOW_NS), TimestampUnit::Nanoseconds));
    }

    #[test]
    fn never_saturates_and_never_passes_2262() {
        // Milliseconds and microseconds past 2262 (or past 2554, beyond u64 nanoseconds).
        assert_eq!(user_timestamp_ns(MICROSECONDS_FROM - 1).0, None);
        assert_eq!(user_timestamp_ns(NANOSECONDS_FROM - 1).0, None);
        assert_eq!(user_timestamp_ns(LATEST_NS / 1_000_000 + 1).0, None);
        assert_eq!(
            user_timestamp_ns(LATEST_NS / 1_000_000).0,
            Some(LATEST_NS / 1_000_000 * 1_000_000)
        );
        // Nanoseconds: found by the recorder_frames fuzz target, recorded as year 2554.
        assert_eq!(user_timestamp_ns(u64::MAX).0, None);
        assert_eq!(user_timestamp_ns(LATEST_NS).0, Some(LATEST_NS));
        assert_eq!(user_timestamp_ns(0).0, Some(0));
    }
}
