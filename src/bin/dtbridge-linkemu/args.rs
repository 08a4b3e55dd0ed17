//! The command line: topology, profile and per-direction overrides.

use crate::params::{
    BadValue, DirectionParams, LinkParams, Profile, QueueLimit, Way, parse_loss, parse_millis,
    parse_queue, parse_rate,
};
use crate::topology::{Cidr, parse_name};
use clap::Parser;

/// Emulates a robot's network link (rate, queue, delay, jitter, loss, cuts) between two
/// network namespaces, for tests and benchmarks of dtbridge. Needs root, iproute2 and
/// ethtool.
///
/// Topology: <NAME>-bot (robot, bot0) <-> <NAME>-emu (this bridge) <-> <NAME>-srv (server,
/// srv0). "up" is robot to server, "down" server to robot. Each direction has its own rate,
/// queue limit, delay, jitter and loss. A profile sets both directions (delay, jitter and
/// loss are the same both ways; only lte has a faster downlink); a --X flag overrides the
/// profile in both directions, and --up-X or --down-X overrides both in one direction.
///
/// Commands on stdin, one a line, each answered by one JSON line on stdout:
/// `rate|queue|delay|jitter|loss up|down|both VALUE`, `profile NAME`, `cut`, `restore`,
/// `stats`. Closing stdin, SIGINT, SIGTERM or SIGHUP end the emulator and delete its
/// namespaces; after a SIGKILL, run `dtbridge-linkemu --cleanup NAME`. Details:
/// docs/link-emulator.md.
#[derive(Debug, Parser)]
#[command(name = "dtbridge-linkemu", version)]
pub struct Args {
    /// Prefix of the namespace names (<NAME>-bot, <NAME>-emu, <NAME>-srv); stale namespaces
    /// of these names are removed at start.
    #[arg(long, default_value = "linkemu", value_parser = parse_name)]
    pub name: String,

    /// Delete the namespaces of link NAME (left behind by a killed emulator) and exit.
    #[arg(long, value_name = "NAME", value_parser = parse_name, exclusive = true)]
    pub cleanup: Option<String>,

    /// Starting values for both directions (the flags below override them).
    #[arg(long, value_enum, default_value = "lan")]
    pub profile: Profile,

    /// Rate of both directions in bit/s of Ethernet frames (8mbit, 500kbit, none).
    #[arg(long, value_name = "RATE", value_parser = parse_rate_flag)]
    pub rate: Option<RateLimit>,
    /// Rate robot -> server.
    #[arg(long, value_name = "RATE", value_parser = parse_rate_flag)]
    pub up_rate: Option<RateLimit>,
    /// Rate server -> robot.
    #[arg(long, value_name = "RATE", value_parser = parse_rate_flag)]
    pub down_rate: Option<RateLimit>,

    /// Bytes that may wait for serialization before tail drop, both directions (64kb, auto =
    /// 100 ms at the rate).
    #[arg(long, value_name = "BYTES", value_parser = parse_queue)]
    pub queue: Option<QueueLimit>,
    /// Queue limit robot -> server.
    #[arg(long, value_name = "BYTES", value_parser = parse_queue)]
    pub up_queue: Option<QueueLimit>,
    /// Queue limit server -> robot.
    #[arg(long, value_name = "BYTES", value_parser = parse_queue)]
    pub down_queue: Option<QueueLimit>,

    /// One-way delay in ms, both directions.
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub delay_ms: Option<f64>,
    /// One-way delay robot -> server.
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub up_delay_ms: Option<f64>,
    /// One-way delay server -> robot.
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub down_delay_ms: Option<f64>,

    /// Jitter in ms: each delay is drawn uniformly from delay +- jitter; packets are never
    /// reordered (a packet waits for the one before it).
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub jitter_ms: Option<f64>,
    /// Jitter robot -> server.
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub up_jitter_ms: Option<f64>,
    /// Jitter server -> robot.
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub down_jitter_ms: Option<f64>,

    /// Random loss in percent, both directions (2 or 2%).
    #[arg(long, value_name = "PERCENT", value_parser = parse_loss)]
    pub loss: Option<f64>,
    /// Loss robot -> server.
    #[arg(long, value_name = "PERCENT", value_parser = parse_loss)]
    pub up_loss: Option<f64>,
    /// Loss server -> robot.
    #[arg(long, value_name = "PERCENT", value_parser = parse_loss)]
    pub down_loss: Option<f64>,

    /// Seed of the loss and jitter generator (the same seed and traffic give the same drops).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// The robot's address in the robot namespace.
    #[arg(long, default_value = "10.201.0.1/24")]
    pub robot_addr: Cidr,
    /// The server's address in the server namespace.
    #[arg(long, default_value = "10.201.0.2/24")]
    pub server_addr: Cidr,
}

/// A rate flag's value: bit/s, or `None` for no limit. (A bare `Option<Option<_>>` field would
/// make clap accept the flag without a value.)
#[derive(Debug, Clone, Copy)]
pub struct RateLimit(Option<u64>);

fn parse_rate_flag(text: &str) -> Result<RateLimit, BadValue> {
    parse_rate(text).map(RateLimit)
}

impl Args {
    /// The profile with the overrides applied: both-direction flags, then one-direction ones.
    pub fn link_params(&self) -> LinkParams {
        let mut params = self.profile.params();
        for way in Way::BOTH {
            let direction: &mut DirectionParams = params.get_mut(way);
            if let Some(rate) = pick(way, self.up_rate, self.down_rate, self.rate) {
                direction.rate_bps = rate.0;
            }
            if let Some(queue) = pick(way, self.up_queue, self.down_queue, self.queue) {
                direction.queue_limit = queue;
            }
            if let Some(delay) = pick(way, self.up_delay_ms, self.down_delay_ms, self.delay_ms) {
                direction.delay_ms = delay;
            }
            let jitter = pick(way, self.up_jitter_ms, self.down_jitter_ms, self.jitter_ms);
            if let Some(jitter) = jitter {
                direction.jitter_ms = jitter;
            }
            if let Some(loss) = pick(way, self.up_loss, self.down_loss, self.loss) {
                direction.loss_percent = loss;
            }
        }
        params
    }

    /// Rejects a robot and server address that cannot talk to each other directly.
    pub fn check_addresses(&self) -> Result<(), BadValue> {
        let (robot, server) = (self.robot_addr, self.server_addr);
        let mask = |prefix: u8| u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
        let same_subnet = robot.prefix == server.prefix
            && u32::from(robot.address) & mask(robot.prefix)
                == u32::from(server.address) & mask(server.prefix);
        if robot.address != server.address && same_subnet {
            Ok(())
        } else {
            Err(BadValue {
                value: format!("--robot-addr {robot} --server-addr {server}"),
                expected: "two different addresses on one subnet with the same prefix",
            })
        }
    }
}

/// The value for `way`: its own flag, else the both-directions flag.
fn pick<T>(way: Way, up: Option<T>, down: Option<T>, both: Option<T>) -> Option<T> {
    match way {
        Way::Up => up,
        Way::Down => down,
    }
    .or(both)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from([&["dtbridge-linkemu"], args].concat())
    }

    #[test]
    fn one_direction_flags_override_both_direction_flags_and_the_profile() {
        let args = parse(&["--profile", "lte", "--rate", "2mbit", "--down-rate", "none"]).unwrap();
        let params = args.link_params();
        assert_eq!(params.up.rate_bps, Some(2_000_000));
        assert_eq!(params.down.rate_bps, None);
        assert_eq!(params.up.delay_ms, 25.0);
        let args = parse(&["--loss", "3", "--up-loss", "0", "--down-delay-ms", "7"]).unwrap();
        let params = args.link_params();
        assert_eq!((params.up.loss_percent, params.down.loss_percent), (0.0, 3.0));
        assert_eq!((params.up.delay_ms, params.down.delay_ms), (0.0, 7.0));
    }

    #[test]
    fn bad_values_name_their_flag() {
        let err = parse(&["--up-rate", "fast"]).unwrap_err().to_string();
        assert!(err.contains("--up-rate") && err.contains("8mbit"), "{err}");
        let err = parse(&["--loss", "200"]).unwrap_err().to_string();
        assert!(err.contains("--loss"), "{err}");
        let args = parse(&["--server-addr", "10.9.0.2/24"]).unwrap();
        assert!(args.check_addresses().is_err());
    }
}
