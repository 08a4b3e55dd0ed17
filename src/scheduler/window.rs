//! How many bytes may be in flight on the link: enough to keep it busy, little enough that a
//! small high-priority frame never waits behind a queue of camera frames.
//!
//! The window follows the round trip the transport measures. While the recent round trip
//! stays within [`TARGET_QUEUEING`] of the link's minimum and the scheduler has frames
//! waiting, the window grows; once the queue grows past the target, the window shrinks in
//! proportion, to what the link delivers in a minimum round trip plus the target. This is the
//! delay-based control of TCP Vegas and LEDBAT, applied to whole frames.

use crate::livekit::LinkState;
use std::time::{Duration, Instant};

/// Queueing delay the window aims for: frames of every priority meet at most about this
/// much queue in front of them on the link.
pub const TARGET_QUEUEING: Duration = Duration::from_millis(20);
/// Smallest window: a few telemetry samples in flight. Any frame, however large, can still
/// start: a frame starts whenever the bytes in flight are below the window.
pub const MIN_WINDOW: f64 = 4.0 * 1024.0;
/// Window before anything is measured: a fast link's first round trips are not held back
/// much, a slow one's first queue is short.
pub const INITIAL_WINDOW: f64 = 64.0 * 1024.0;
/// Largest window, as the transport's own send buffer (256 KiB): beyond it sends would wait
/// there.
pub const MAX_WINDOW: f64 = 256.0 * 1024.0;
/// Growth per round trip while the queue is short and frames wait.
const GROWTH: f64 = 1.25;
/// Shortest time between two adjustments: a round trip of a fast link is shorter than the
/// transport's sampling, and changes within it are noise.
const MIN_ADJUST_INTERVAL: Duration = Duration::from_millis(20);

/// The in-flight window.
#[derive(Debug, Clone)]
pub struct Window {
    bytes: f64,
    last_adjusted: Option<Instant>,
}

impl Default for Window {
    fn default() -> Self {
        Self { bytes: INITIAL_WINDOW, last_adjusted: None }
    }
}

impl Window {
    /// The window in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes as u64
    }

    /// Adjusts the window to the link's latest state, at most once per round trip.
    /// `held_back` says whether frames waited for room in the window since the last call.
    pub fn adjust(&mut self, link: &LinkState, held_back: bool, now: Instant) {
        let (Some(rtt), Some(min_rtt)) = (link.rtt, link.min_rtt) else { return };
        let interval = min_rtt.max(MIN_ADJUST_INTERVAL);
        if self.last_adjusted.is_some_and(|last| now.saturating_duration_since(last) < interval) {
            return;
        }
        let queueing = rtt.saturating_sub(min_rtt);
        if queueing > TARGET_QUEUEING {
            // The link delivers about window / rtt; keep what it delivers in min_rtt + target.
            let fits = (min_rtt + TARGET_QUEUEING).as_secs_f64() / rtt.as_secs_f64();
            self.bytes *= fits.max(0.5);
        } else if held_back && queueing < TARGET_QUEUEING / 2 {
            self.bytes *= GROWTH;
        } else {
            return;
        }
        self.bytes = self.bytes.clamp(MIN_WINDOW, MAX_WINDOW);
        self.last_adjusted = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn link(rtt_ms: u64, min_rtt_ms: u64) -> LinkState {
        LinkState {
            frames_taken: 0,
            bytes_in_flight: 0,
            delivery_rate: None,
            min_rtt: Some(MS * min_rtt_ms as u32),
            rtt: Some(MS * rtt_ms as u32),
            unlimited: false,
        }
    }

    #[test]
    fn grows_while_the_queue_is_short_and_frames_wait() {
        let mut window = Window::default();
        let start = Instant::now();
        for round in 0..5 {
            window.adjust(&link(52, 50), true, start + MS * (50 * round));
        }
        assert!(window.bytes() as f64 > INITIAL_WINDOW * 2.0, "{}", window.bytes());
    }

    #[test]
    fn does_not_grow_when_nothing_waits() {
        let mut window = Window::default();
        let start = Instant::now();
        for round in 0..5 {
            window.adjust(&link(52, 50), false, start + MS * (50 * round));
        }
        assert_eq!(window.bytes() as f64, INITIAL_WINDOW);
    }

    #[test]
    fn shrinks_to_the_target_queue_in_proportion() {
        let mut window = Window::default();
        // 120 ms round trip on a 50 ms link: 70 ms of queue; keep 70 of the 120.
        window.adjust(&link(120, 50), true, Instant::now());
        let expected = INITIAL_WINDOW * 70.0 / 120.0;
        assert!((window.bytes() as f64 - expected).abs() < 2.0, "{}", window.bytes());
    }

    #[test]
    fn halves_at_most_per_round_trip() {
        let mut window = Window::default();
        window.adjust(&link(1000, 50), true, Instant::now());
        assert_eq!(window.bytes() as f64, INITIAL_WINDOW / 2.0);
    }

    #[test]
    fn adjusts_once_per_round_trip() {
        let mut window = Window::default();
        let start = Instant::now();
        window.adjust(&link(52, 50), true, start);
        let once = window.bytes();
        window.adjust(&link(52, 50), true, start + 10 * MS);
        assert_eq!(window.bytes(), once);
    }

    #[test]
    fn stays_within_bounds() {
        let mut window = Window::default();
        let start = Instant::now();
        for round in 0..100 {
            window.adjust(&link(1000, 10), true, start + MS * (100 * round));
        }
        assert_eq!(window.bytes() as f64, MIN_WINDOW);
        for round in 100..200 {
            window.adjust(&link(10, 10), true, start + MS * (100 * round));
        }
        assert_eq!(window.bytes() as f64, MAX_WINDOW);
    }
}
