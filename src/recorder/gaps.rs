//! Frames a track lost on the way, as far as the recorder can see them: data tracks carry no
//! frame number a subscriber can read, but most robot data comes at a steady rate, so a gap
//! of several frame intervals between two publish timestamps is frames that never arrived,
//! unless frames follow it closer together than usual: a busy robot's timer that fell behind
//! and caught up.

use std::collections::VecDeque;

/// Intervals the typical one is taken from.
const INTERVALS: usize = 32;
/// A gap counts as frames missing once it is this many typical intervals long, and at least
/// [`MIN_GAP_EXCESS_MS`] longer than one: a lost frame doubles an interval, while timer jitter
/// on a busy robot and millisecond timestamps stretch a 5 ms interval by a few milliseconds.
const GAP_FACTOR: f64 = 1.5;
const MIN_GAP_EXCESS_MS: u64 = 3;
/// How far behind the newest frame a frame may arrive and still be a late one of the same run
/// rather than a timestamp that went back: beyond how long SCTP retransmits a data track
/// packet, with room for the queues before it.
const LATE_ARRIVAL_MS: u64 = 1_000;

/// Counts the frames missing between received ones of one track, from their timestamps.
#[derive(Debug, Clone, Default)]
pub struct GapCounter {
    last_ms: Option<u64>,
    intervals: VecDeque<u64>,
    /// Frames the gaps so far stand for.
    gap_frames: u64,
    /// Frames that came less than half an interval after the one before: caught up.
    caught_up: u64,
}

impl GapCounter {
    /// Takes the publish timestamp (UNIX ms) of the next frame received.
    pub fn observe(&mut self, stamp_ms: u64) {
        let Some(last) = self.last_ms else {
            self.last_ms = Some(stamp_ms);
            return;
        };
        let Some(interval) = stamp_ms.checked_sub(last) else {
            if last - stamp_ms <= LATE_ARRIVAL_MS {
                // A frame whose lost piece SCTP retransmitted arrives after later ones: it
                // fills the gap its absence opened.
                self.gap_frames = self.gap_frames.saturating_sub(1);
            } else {
                // A publisher that restarted, a replay that loops: start over, count nothing.
                self.last_ms = Some(stamp_ms);
            }
            return;
        };
        self.last_ms = Some(stamp_ms);
        if let Some(typical) = self.typical_interval()
            && typical > 0
        {
            if interval as f64 > GAP_FACTOR * typical as f64
                && interval >= typical + MIN_GAP_EXCESS_MS
            {
                self.gap_frames += (interval as f64 / typical as f64).round() as u64 - 1;
            } else if (interval as f64) < typical as f64 / 2.0 {
                self.caught_up += 1;
            }
        }
        if self.intervals.len() == INTERVALS {
            self.intervals.pop_front();
        }
        self.intervals.push_back(interval);
    }

    /// The median of the recent intervals, once there are enough to trust it.
    fn typical_interval(&self) -> Option<u64> {
        if self.intervals.len() < INTERVALS / 2 {
            return None;
        }
        let mut sorted: Vec<u64> = self.intervals.iter().copied().collect();
        sorted.sort_unstable();
        Some(sorted[sorted.len() / 2])
    }

    /// Frames missing so far.
    pub fn missing(&self) -> u64 {
        self.gap_frames.saturating_sub(self.caught_up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(stamps: impl IntoIterator<Item = u64>) -> u64 {
        let mut gaps = GapCounter::default();
        for stamp in stamps {
            gaps.observe(stamp);
        }
        gaps.missing()
    }

    #[test]
    fn a_steady_track_misses_nothing() {
        assert_eq!(count((0..300).map(|n| n * 33 + n % 3)), 0);
    }

    #[test]
    fn counts_the_frames_of_each_gap() {
        // 30 Hz with frames 100..103 and 200 missing.
        let stamps = (0..300u64).filter(|n| !(100..104).contains(n) && *n != 200).map(|n| n * 33);
        assert_eq!(count(stamps), 5);
    }

    #[test]
    fn jitter_of_a_fast_track_is_not_a_gap() {
        // 200 Hz with millisecond stamps, some intervals stretched to 7 ms and caught up.
        let stamps = (0..400u64).map(|n| n * 5 + if n % 10 == 3 { 2 } else { 0 });
        assert_eq!(count(stamps), 0);
        // A lost frame of the same track is.
        let stamps = (0..400u64).filter(|n| *n != 300).map(|n| n * 5);
        assert_eq!(count(stamps), 1);
    }

    #[test]
    fn a_timer_that_falls_behind_and_catches_up_misses_nothing() {
        // 200 Hz; at frame 100 the robot's timer is 20 ms late, then sends the 4 overdue
        // samples at once.
        let stamps = (0..400u64).map(|n| if (100..104).contains(&n) { 520 } else { n * 5 });
        assert_eq!(count(stamps), 0);
    }

    #[test]
    fn a_timestamp_going_back_counts_nothing() {
        let first = (0..50u64).map(|n| n * 10);
        let again = (0..50u64).map(|n| n * 10);
        assert_eq!(count(first.chain(again)), 0);
    }

    #[test]
    fn a_frame_arriving_after_later_ones_is_not_missing() {
        // 30 Hz; frames 100 and 200 arrive three frames late (retransmitted), 250 never.
        let mut order: Vec<u64> = (0..300u64).filter(|n| ![100, 200, 250].contains(n)).collect();
        for late in [100, 200] {
            let at = order.iter().position(|n| *n == late + 3).unwrap();
            order.insert(at + 1, late);
        }
        assert_eq!(count(order.into_iter().map(|n| n * 33)), 1);
    }
}
