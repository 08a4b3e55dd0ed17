//! Benchmarks, run with `dtbridge bench ...`; results and how to reproduce them are in
//! BENCHMARKS.md.
//!
//! - [`transport`]: data track throughput, loss and latency through a LiveKit server, this
//!   crate's publisher side by side with the official Python SDK's.
//! - [`codec`]: what the publish pipeline's encoder costs per camera frame, in-process.
//! - [`run`]: `dtbridge run` end to end through a LiveKit server: received rate, latency, CPU.
//! - [`recorder`]: how fast the recorder writes frames to MCAP, and the latency it adds.

pub mod codec;
pub mod recorder;
pub mod run;
pub mod transport;

pub use transport::{Case, DEFAULT_CASES, TransportBench};

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as UNIX microseconds.
fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The `q` quantile (nearest rank) of ascending samples; NaN when there are none.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The median of unsorted samples; NaN when there are none.
fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    percentile(&samples, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_samples() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), 51.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert!(percentile(&[], 0.5).is_nan());
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }
}
