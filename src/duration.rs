//! Durations from configuration files and the command line, checked where they are read:
//! `Duration::from_secs_f64` panics on NaN, negative and overflowing values, and a daemon must
//! answer `connect_timeout_s = 1e300` with an error naming the key, not a crash.

use std::time::Duration;

/// The longest duration any setting takes: a year, far beyond any timeout, interval or file
/// length worth configuring, and far below what `Duration` holds.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// `value` seconds as a duration, or why it is none: not a number, negative, or longer than
/// [`MAX_SECONDS`].
pub fn seconds(value: f64) -> Result<Duration, String> {
    if value.is_finite() && (0.0..=MAX_SECONDS).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!("{value} s is not a duration from 0 to {MAX_SECONDS} s (a year)"))
    }
}

/// [`seconds`], also refusing zero.
pub fn positive_seconds(value: f64) -> Result<Duration, String> {
    match seconds(value)? {
        zero if zero.is_zero() => Err(format!("{value} s: must be greater than 0")),
        duration => Ok(duration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn any_f64_gives_a_duration_or_an_error_never_a_panic() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let mut values = vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, -1.0, 1e300];
        values.extend((0..100_000).map(|_| f64::from_bits(rng.random())));
        // Plausible magnitudes too, where the bound matters.
        values.extend((0..10_000).map(|_| rng.random_range(-10.0..2.0 * MAX_SECONDS)));
        for value in values {
            let in_range = value.is_finite() && (0.0..=MAX_SECONDS).contains(&value);
            match seconds(value) {
                Ok(duration) => {
                    assert!(in_range, "{value}");
                    assert!((duration.as_secs_f64() - value).abs() <= 1e-9 * value.max(1.0));
                }
                Err(message) => {
                    assert!(!in_range, "{value}");
                    assert!(message.contains("not a duration"), "{message}");
                }
            }
            // Below a nanosecond is zero, too.
            let nonzero = seconds(value).is_ok_and(|duration| !duration.is_zero());
            assert_eq!(positive_seconds(value).is_ok(), nonzero, "{value}");
        }
    }
}
