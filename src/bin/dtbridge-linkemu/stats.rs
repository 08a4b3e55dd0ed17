//! Per-direction counters and latency histograms, reported as JSON.

use serde_json::{Value, json};

/// A histogram of durations in 100 µs buckets up to 10 s (the last bucket holds the rest):
/// fixed memory, constant-time recording, percentiles good to 0.1 ms.
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

const BUCKET_NS: u64 = 100_000;
const BUCKETS: usize = 100_000;

impl Histogram {
    pub fn new() -> Self {
        Histogram { buckets: vec![0; BUCKETS], count: 0 }
    }

    pub fn record(&mut self, nanos: u64) {
        let bucket = ((nanos / BUCKET_NS) as usize).min(BUCKETS - 1);
        self.buckets[bucket] += 1;
        self.count += 1;
    }

    /// The upper edge of the bucket holding the `fraction` quantile, in ms; `None` if empty.
    pub fn quantile_ms(&self, fraction: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64 * fraction).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        let bucket = self.buckets.iter().position(|&n| {
            seen += n;
            seen >= rank
        })?;
        Some((bucket as u64 + 1) as f64 * BUCKET_NS as f64 / 1e6)
    }

    fn to_json(&self) -> Value {
        json!({ "p50": self.quantile_ms(0.5), "p99": self.quantile_ms(0.99) })
    }
}

/// What happened to the frames of one direction.
pub struct Counters {
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    pub dropped_loss: u64,
    pub dropped_queue: u64,
    pub dropped_cut: u64,
    /// Frames dropped because the emulator itself held [`crate::shaper::MAX_IN_FLIGHT`]
    /// frames (a link with no rate limit and a long delay under a flood).
    pub dropped_overflow: u64,
    /// Frames the kernel refused to send (too big for the interface, no buffer space).
    pub send_errors: u64,
    /// Time from arrival until serialization began.
    pub queue_delay: Histogram,
    /// How late frames left compared with their scheduled departure: the emulator's own
    /// timing error (scheduling latency of its sending thread).
    pub send_lateness: Histogram,
}

impl Counters {
    pub fn new() -> Self {
        Counters {
            forwarded_packets: 0,
            forwarded_bytes: 0,
            dropped_loss: 0,
            dropped_queue: 0,
            dropped_cut: 0,
            dropped_overflow: 0,
            send_errors: 0,
            queue_delay: Histogram::new(),
            send_lateness: Histogram::new(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "forwarded_packets": self.forwarded_packets,
            "forwarded_bytes": self.forwarded_bytes,
            "dropped_loss": self.dropped_loss,
            "dropped_queue": self.dropped_queue,
            "dropped_cut": self.dropped_cut,
            "dropped_overflow": self.dropped_overflow,
            "send_errors": self.send_errors,
            "queue_delay_ms": self.queue_delay.to_json(),
            "send_lateness_ms": self.send_lateness.to_json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_bucket_edges() {
        let mut histogram = Histogram::new();
        assert_eq!(histogram.quantile_ms(0.5), None);
        for ms in 1..=100 {
            histogram.record(ms * 1_000_000 - 1);
        }
        assert_eq!(histogram.quantile_ms(0.5), Some(50.0));
        assert_eq!(histogram.quantile_ms(0.99), Some(99.0));
        histogram.record(u64::MAX);
        assert_eq!(histogram.quantile_ms(1.0), Some(10_000.0));
    }
}
