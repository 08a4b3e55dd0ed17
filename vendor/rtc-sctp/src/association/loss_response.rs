//! dtbridge patch: tells random loss from congestion before fast retransmit cuts cwnd.
//!
//! RFC 9260 halves cwnd on every loss, so on a radio link that loses 1% of its packets at
//! random the association carries about a third of the link (the Mathis bound, ~2.3 Mbit/s
//! at a 50 ms round trip) whatever the link's rate. A loss is taken as congestion only when
//! the round trip shows a queue (the smallest of the last `RECENT_RTTS` samples, one per
//! round trip, more than `QUEUE_MS` above the smallest of the last 5 to 10 s) or when more than `CONGESTION_LOSS_FRACTION` of the chunks sent in
//! the last 1 to 2 s were lost (a queue too short to show in the round trip overflowing);
//! otherwise cwnd is kept. dtbridge's own link scheduler keeps what it hands to SCTP under a
//! delay-based window (TCP Vegas / LEDBAT), so a queue building at the bottleneck still slows
//! it down; T3-rtx timeouts keep RFC 9260's response.

use std::time::{Duration, Instant};

/// A round trip this far above the smallest of the last seconds means a queue at the
/// bottleneck: dtbridge's link scheduler aims at about 20 ms of queue, and radio links add
/// a few ms of jitter each way.
const QUEUE_MS: u64 = 30;
/// The queue is judged by the smallest of this many samples, so that one delayed SACK does
/// not look like a queue.
const RECENT_RTTS: usize = 3;
/// More than this share of chunks lost is congestion, whatever the round trip says.
const CONGESTION_LOSS_FRACTION: f64 = 0.05;
/// The smallest round trip is kept over two of these (so 5 to 10 s).
const RTT_MIN_PERIOD: Duration = Duration::from_secs(5);
/// Sent and lost chunks are counted over two of these (so 1 to 2 s).
const LOSS_PERIOD: Duration = Duration::from_secs(1);

/// Two periods of a running count: the current one and the one before it.
#[derive(Debug, Default, Clone, Copy)]
struct Periods<T> {
    current: T,
    previous: T,
    started: Option<Instant>,
}

impl<T: Copy + Default> Periods<T> {
    /// Starts a new period when the current one is `period` old.
    fn roll(&mut self, now: Instant, period: Duration) {
        match self.started {
            Some(started) if now.duration_since(started) < period => {}
            Some(started) if now.duration_since(started) < 2 * period => {
                self.previous = self.current;
                self.current = T::default();
                self.started = Some(now);
            }
            _ => {
                self.previous = T::default();
                self.current = T::default();
                self.started = Some(now);
            }
        }
    }
}

/// What the association has seen of the path, for its response to a loss.
#[derive(Debug, Default, Clone)]
pub(crate) struct LossResponse {
    rtt_min_ms: Periods<Option<u64>>,
    /// The last `RECENT_RTTS` samples, the newest at `rtt_next % RECENT_RTTS`.
    rtt_recent_ms: [Option<u64>; RECENT_RTTS],
    rtt_next: usize,
    /// (chunks sent for the first time, chunks found lost)
    chunks: Periods<(u64, u64)>,
}

impl LossResponse {
    /// A round-trip sample (RFC 9260 6.3.1 rules C4 and C5 decide which chunks give one).
    pub(crate) fn on_rtt(&mut self, now: Instant, rtt_ms: u64) {
        self.rtt_min_ms.roll(now, RTT_MIN_PERIOD);
        let current = &mut self.rtt_min_ms.current;
        *current = Some(current.map_or(rtt_ms, |min| min.min(rtt_ms)));
        self.rtt_recent_ms[self.rtt_next % RECENT_RTTS] = Some(rtt_ms);
        self.rtt_next = self.rtt_next.wrapping_add(1);
    }

    /// A DATA chunk sent for the first time.
    pub(crate) fn on_chunk_sent(&mut self, now: Instant) {
        self.chunks.roll(now, LOSS_PERIOD);
        self.chunks.current.0 += 1;
    }

    /// A DATA chunk reported missing three times (fast retransmit).
    pub(crate) fn on_chunk_lost(&mut self, now: Instant) {
        self.chunks.roll(now, LOSS_PERIOD);
        self.chunks.current.1 += 1;
    }

    /// Whether the loss just seen should cut cwnd.
    pub(crate) fn is_congestion(&mut self, now: Instant) -> bool {
        self.chunks.roll(now, LOSS_PERIOD);
        self.rtt_min_ms.roll(now, RTT_MIN_PERIOD);
        let (sent, lost) = (
            self.chunks.current.0 + self.chunks.previous.0,
            self.chunks.current.1 + self.chunks.previous.1,
        );
        if sent == 0 || lost as f64 > CONGESTION_LOSS_FRACTION * sent as f64 {
            return true;
        }
        let min = match (self.rtt_min_ms.current, self.rtt_min_ms.previous) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(min) => min,
                None => return true,
            },
        };
        let recent = self.rtt_recent_ms.iter().flatten().min();
        recent.is_none_or(|recent| *recent > min + QUEUE_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(rtts: &[u64], sent: u64, lost: u64) -> (LossResponse, Instant) {
        let now = Instant::now();
        let mut r = LossResponse::default();
        for &rtt in rtts {
            r.on_rtt(now, rtt);
        }
        for _ in 0..sent {
            r.on_chunk_sent(now);
        }
        for _ in 0..lost {
            r.on_chunk_lost(now);
        }
        (r, now)
    }

    #[test]
    fn a_loss_without_a_queue_is_random() {
        let (mut r, now) = path(&[50, 52, 61, 79, 95], 1000, 10);
        assert!(!r.is_congestion(now));
    }

    #[test]
    fn a_loss_with_a_queue_is_congestion() {
        let (mut r, now) = path(&[50, 52, 81, 85, 90], 1000, 10);
        assert!(r.is_congestion(now));
    }

    #[test]
    fn many_losses_are_congestion_without_a_queue() {
        let (mut r, now) = path(&[50, 50], 1000, 60);
        assert!(r.is_congestion(now));
    }

    #[test]
    fn without_samples_every_loss_is_congestion() {
        let (mut r, now) = path(&[], 1000, 1);
        assert!(r.is_congestion(now));
        let (mut r, now) = path(&[50], 0, 0);
        assert!(r.is_congestion(now));
    }

    #[test]
    fn old_periods_are_forgotten() {
        let (mut r, now) = path(&[20, 90, 90, 90], 100, 50);
        let later = now + RTT_MIN_PERIOD * 3;
        r.on_rtt(later, 90);
        for _ in 0..100 {
            r.on_chunk_sent(later);
        }
        // The 20 ms round trip and the 50% loss are more than two periods old.
        assert!(!r.is_congestion(later));
    }
}
