//! Benchmarks, run with `dtbridge bench ...`; results and how to reproduce them are in
//! BENCHMARKS.md.
//!
//! - [`transport`]: data track throughput, loss and latency through a LiveKit server, this
//!   crate's publisher side by side with the official Python SDK's.
//! - [`codec`]: what the publish pipeline's encoder costs per camera frame, in-process.
//! - [`e2ee`]: what end-to-end encryption costs per frame, in-process.
//! - [`run`]: `dtbridge run` end to end through a LiveKit server: received rate, latency, CPU.
//! - [`recorder`]: how fast the recorder writes frames to MCAP, and the latency it adds.

pub mod codec;
pub mod e2ee;
pub mod recorder;
pub mod run;
pub mod transport;

pub use transport::{Case, DEFAULT_CASES, TransportBench};

use dtbridge::util::{now_ns, percentile};

/// Now, as UNIX microseconds.
fn now_us() -> u64 {
    now_ns() / 1000
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
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!(median(Vec::new()).is_nan());
    }
}
