//! What a link does in one direction, the named profiles, and the parsers for the values a
//! user types (`8mbit`, `2%`).

use serde_json::{Value, json};
use std::fmt;

/// One way through the link: robot to server (`Up`) or server to robot (`Down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Up,
    Down,
}

impl Way {
    pub const BOTH: [Way; 2] = [Way::Up, Way::Down];

    pub fn name(self) -> &'static str {
        match self {
            Way::Up => "up",
            Way::Down => "down",
        }
    }
}

/// How much a direction may queue for serialization before it drops at the tail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueueLimit {
    /// [`AUTO_QUEUE_SECONDS`] at the current rate, following rate changes.
    Auto,
    Bytes(u64),
}

/// The automatic queue holds this long at the link rate (a typical modem buffer).
const AUTO_QUEUE_SECONDS: f64 = 0.1;
/// The automatic queue always holds two full-size frames, so a slow link still passes
/// back-to-back packets.
const MIN_AUTO_QUEUE_BYTES: u64 = 2 * 1514;

/// The behaviour of one direction of the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirectionParams {
    /// Serialization rate in bit/s of Ethernet frame bytes; `None`: no rate limit, no queue.
    pub rate_bps: Option<u64>,
    pub queue_limit: QueueLimit,
    /// One-way propagation delay added after serialization.
    pub delay_ms: f64,
    /// Each packet's delay is `delay_ms` plus uniform(-jitter_ms, +jitter_ms), at least 0;
    /// packets still leave in order.
    pub jitter_ms: f64,
    /// Probability in percent that a packet is dropped on arrival.
    pub loss_percent: f64,
}

impl DirectionParams {
    /// A plain wire: no rate limit, no delay, no loss.
    pub const WIRE: DirectionParams = DirectionParams {
        rate_bps: None,
        queue_limit: QueueLimit::Auto,
        delay_ms: 0.0,
        jitter_ms: 0.0,
        loss_percent: 0.0,
    };

    /// Bytes that may wait for serialization, `None` without a rate limit.
    pub fn queue_limit_bytes(&self) -> Option<u64> {
        let rate = self.rate_bps?;
        Some(match self.queue_limit {
            QueueLimit::Bytes(bytes) => bytes,
            QueueLimit::Auto => {
                let bytes = (rate as f64 / 8.0 * AUTO_QUEUE_SECONDS) as u64;
                bytes.max(MIN_AUTO_QUEUE_BYTES)
            }
        })
    }

    pub fn to_json(self) -> Value {
        json!({
            "rate_bps": self.rate_bps,
            "queue_limit_bytes": self.queue_limit_bytes(),
            "delay_ms": self.delay_ms,
            "jitter_ms": self.jitter_ms,
            "jitter_distribution": "uniform",
            "loss_percent": self.loss_percent,
        })
    }
}

/// Both directions of the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkParams {
    pub up: DirectionParams,
    pub down: DirectionParams,
}

impl LinkParams {
    pub fn get(&self, way: Way) -> &DirectionParams {
        match way {
            Way::Up => &self.up,
            Way::Down => &self.down,
        }
    }

    pub fn get_mut(&mut self, way: Way) -> &mut DirectionParams {
        match way {
            Way::Up => &mut self.up,
            Way::Down => &mut self.down,
        }
    }

    pub fn to_json(self) -> Value {
        json!({ "up": self.up.to_json(), "down": self.down.to_json() })
    }
}

/// Named link profiles (issue 11). Delay and loss apply to both directions; only `lte` has a
/// faster downlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// No rate limit, no delay, no loss.
    Lan,
    /// 30 Mbit/s, 4 ms one way, 0.5% loss, both directions.
    Wifi,
    /// 8 Mbit/s up, 30 Mbit/s down, 25 ms one way, 5 ms jitter, 1% loss.
    Lte,
    /// 15 Mbit/s, 30 ms one way, 2% loss, both directions.
    Satellite,
    /// 3 Mbit/s, 40 ms one way, 2% loss, both directions.
    Congested,
}

impl Profile {
    pub fn params(self) -> LinkParams {
        let symmetric = |rate_bps: u64, delay_ms: f64, loss_percent: f64| {
            let way = DirectionParams {
                rate_bps: Some(rate_bps),
                delay_ms,
                loss_percent,
                ..DirectionParams::WIRE
            };
            LinkParams { up: way, down: way }
        };
        match self {
            Profile::Lan => LinkParams { up: DirectionParams::WIRE, down: DirectionParams::WIRE },
            Profile::Wifi => symmetric(30_000_000, 4.0, 0.5),
            Profile::Lte => {
                let up = DirectionParams {
                    rate_bps: Some(8_000_000),
                    delay_ms: 25.0,
                    jitter_ms: 5.0,
                    loss_percent: 1.0,
                    ..DirectionParams::WIRE
                };
                LinkParams { up, down: DirectionParams { rate_bps: Some(30_000_000), ..up } }
            }
            Profile::Satellite => symmetric(15_000_000, 30.0, 2.0),
            Profile::Congested => symmetric(3_000_000, 40.0, 2.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Lan => "lan",
            Profile::Wifi => "wifi",
            Profile::Lte => "lte",
            Profile::Satellite => "satellite",
            Profile::Congested => "congested",
        }
    }

    pub fn from_name(name: &str) -> Option<Profile> {
        [Profile::Lan, Profile::Wifi, Profile::Lte, Profile::Satellite, Profile::Congested]
            .into_iter()
            .find(|profile| profile.name() == name)
    }
}

/// A value the user typed that does not parse; says what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct BadValue {
    pub value: String,
    pub expected: &'static str,
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: expected {}", self.value, self.expected)
    }
}

impl std::error::Error for BadValue {}

const RATE_EXPECTED: &str = "a rate in bit/s such as 8mbit, 2.5mbit, 500kbit, 1gbit, 64000 or \
                             none (no limit)";

/// `8mbit`, `500kbit`, `1gbit`, `64000` (bit/s) or `none`/`unlimited`. Units are decimal
/// (1mbit = 1 000 000 bit/s), case-insensitive, an optional `/s` or `ps` is accepted.
pub fn parse_rate(text: &str) -> Result<Option<u64>, BadValue> {
    let bad = || BadValue { value: text.into(), expected: RATE_EXPECTED };
    let lower = text.trim().to_ascii_lowercase();
    if lower == "none" || lower == "unlimited" {
        return Ok(None);
    }
    let unitless = lower.trim_end_matches("/s").trim_end_matches("ps");
    let (number, scale) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .into_iter()
        .find_map(|(unit, scale)| unitless.strip_suffix(unit).map(|n| (n, scale)))
        .unwrap_or((unitless, 1.0));
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    let bps = value * scale;
    // Below 1 kbit/s one full-size frame takes over 12 s: a typo rather than a link.
    if !bps.is_finite() || !(1000.0..=1e12).contains(&bps) {
        return Err(bad());
    }
    Ok(Some(bps.round() as u64))
}

/// A loss probability in percent, `2` or `2%`, from 0 to 100.
pub fn parse_loss(text: &str) -> Result<f64, BadValue> {
    let bad = || BadValue { value: text.into(), expected: "a percentage from 0 to 100, e.g. 2%" };
    let value: f64 = text.trim().trim_end_matches('%').trim().parse().map_err(|_| bad())?;
    if (0.0..=100.0).contains(&value) { Ok(value) } else { Err(bad()) }
}

/// Milliseconds, at least 0 and at most 60 s (`25`, `2.5`, `25ms`).
pub fn parse_millis(text: &str) -> Result<f64, BadValue> {
    let bad = || BadValue { value: text.into(), expected: "milliseconds from 0 to 60000, e.g. 25" };
    let value: f64 = text.trim().trim_end_matches("ms").trim().parse().map_err(|_| bad())?;
    if (0.0..=60_000.0).contains(&value) { Ok(value) } else { Err(bad()) }
}

/// A queue limit in bytes (`64000`, `64kb`, `1mb`) or `auto` (100 ms at the link rate).
pub fn parse_queue(text: &str) -> Result<QueueLimit, BadValue> {
    let bad = || BadValue {
        value: text.into(),
        expected: "bytes such as 64000, 64kb, 1mb, or auto (100 ms at the link rate)",
    };
    let lower = text.trim().to_ascii_lowercase();
    if lower == "auto" {
        return Ok(QueueLimit::Auto);
    }
    let (number, scale) = [("mb", 1_000_000), ("kb", 1000), ("b", 1)]
        .into_iter()
        .find_map(|(unit, scale)| lower.strip_suffix(unit).map(|n| (n, scale)))
        .unwrap_or((&lower, 1));
    let value: u64 = number.trim().parse().map_err(|_| bad())?;
    match value.checked_mul(scale) {
        // At least one full-size frame, or nothing could ever pass.
        Some(bytes) if bytes >= 1514 => Ok(QueueLimit::Bytes(bytes)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units_and_reject_nonsense() {
        assert_eq!(parse_rate("8mbit"), Ok(Some(8_000_000)));
        assert_eq!(parse_rate("2.5Mbit/s"), Ok(Some(2_500_000)));
        assert_eq!(parse_rate("500kbit"), Ok(Some(500_000)));
        assert_eq!(parse_rate("1gbit"), Ok(Some(1_000_000_000)));
        assert_eq!(parse_rate("64000"), Ok(Some(64_000)));
        assert_eq!(parse_rate("none"), Ok(None));
        for bad in ["fast", "", "-3mbit", "10bit", "nanmbit", "8 mb"] {
            assert!(parse_rate(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn loss_delay_and_queue_parse_within_bounds() {
        assert_eq!(parse_loss("2%"), Ok(2.0));
        assert!(parse_loss("101").is_err());
        assert_eq!(parse_millis("25ms"), Ok(25.0));
        assert!(parse_millis("-1").is_err());
        assert_eq!(parse_queue("64kb"), Ok(QueueLimit::Bytes(64_000)));
        assert_eq!(parse_queue("auto"), Ok(QueueLimit::Auto));
        assert!(parse_queue("100").is_err());
    }

    #[test]
    fn automatic_queue_holds_100_ms_at_the_rate() {
        let lte = Profile::Lte.params();
        assert_eq!(lte.up.queue_limit_bytes(), Some(100_000));
        assert_eq!(lte.down.queue_limit_bytes(), Some(375_000));
        assert_eq!(Profile::Lan.params().up.queue_limit_bytes(), None);
        assert_eq!(Profile::from_name("satellite"), Some(Profile::Satellite));
    }
}
