//! Commands on stdin that change the link while it runs, one a line, each answered with one
//! JSON line: `ack` (with the parameters now in force), `stats`, or `error`.

use crate::link::Link;
use crate::params::{
    BadValue, DirectionParams, Profile, Way, parse_loss, parse_millis, parse_queue, parse_rate,
};
use serde_json::{Value, json};

/// The directions a setting applies to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ways {
    One(Way),
    Both,
}

impl Ways {
    fn includes(self, way: Way) -> bool {
        self == Ways::Both || self == Ways::One(way)
    }
}

/// One parsed control command.
#[derive(Debug, Clone, PartialEq)]
enum Command {
    /// Changes one setting of the chosen directions.
    Set(Ways, Setting),
    Profile(Profile),
    Cut,
    Restore,
    Stats,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Setting {
    Rate(Option<u64>),
    Queue(crate::params::QueueLimit),
    Delay(f64),
    Jitter(f64),
    Loss(f64),
}

impl Setting {
    fn apply(self, params: &mut DirectionParams) {
        match self {
            Setting::Rate(rate) => params.rate_bps = rate,
            Setting::Queue(limit) => params.queue_limit = limit,
            Setting::Delay(ms) => params.delay_ms = ms,
            Setting::Jitter(ms) => params.jitter_ms = ms,
            Setting::Loss(percent) => params.loss_percent = percent,
        }
    }
}

const USAGE: &str = "expected one of: rate|queue|delay|jitter|loss up|down|both VALUE, \
                     profile lan|wifi|lte|satellite|congested, cut, restore, stats";

fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let value_error = |err: BadValue| err.to_string();
    match words[..] {
        ["cut"] => Ok(Command::Cut),
        ["restore"] => Ok(Command::Restore),
        ["stats"] => Ok(Command::Stats),
        ["profile", name] => Profile::from_name(name)
            .map(Command::Profile)
            .ok_or_else(|| format!("unknown profile {name:?}; {USAGE}")),
        [setting, ways, value] => {
            let ways = match ways {
                "up" => Ways::One(Way::Up),
                "down" => Ways::One(Way::Down),
                "both" => Ways::Both,
                _ => return Err(format!("direction {ways:?}: expected up, down or both")),
            };
            let setting = match setting {
                "rate" => Setting::Rate(parse_rate(value).map_err(value_error)?),
                "queue" => Setting::Queue(parse_queue(value).map_err(value_error)?),
                "delay" => Setting::Delay(parse_millis(value).map_err(value_error)?),
                "jitter" => Setting::Jitter(parse_millis(value).map_err(value_error)?),
                "loss" => Setting::Loss(parse_loss(value).map_err(value_error)?),
                _ => return Err(format!("unknown command {line:?}; {USAGE}")),
            };
            Ok(Command::Set(ways, setting))
        }
        _ => Err(format!("unknown command {line:?}; {USAGE}")),
    }
}

/// Carries out one command line on `link`; the JSON line that answers it.
pub fn execute(line: &str, link: &Link) -> Value {
    let command = match parse(line) {
        Ok(command) => command,
        Err(error) => return json!({ "event": "error", "command": line, "error": error }),
    };
    match command {
        Command::Stats => {
            return json!({
                "event": "stats",
                "command": line,
                "cut": link.is_cut(),
                "counters": link.counters_json(),
            });
        }
        Command::Cut => link.set_cut(true),
        Command::Restore => link.set_cut(false),
        Command::Profile(profile) => link.set_params(profile.params()),
        Command::Set(ways, setting) => {
            let mut params = link.params();
            for way in Way::BOTH.into_iter().filter(|&way| ways.includes(way)) {
                setting.apply(params.get_mut(way));
            }
            link.set_params(params);
        }
    }
    json!({ "event": "ack", "command": line, "cut": link.is_cut(), "params": link.params().to_json() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse("rate up 2mbit"),
            Ok(Command::Set(Ways::One(Way::Up), Setting::Rate(Some(2_000_000))))
        );
        assert_eq!(parse(" loss both 2% "), Ok(Command::Set(Ways::Both, Setting::Loss(2.0))));
        assert_eq!(parse("profile lte"), Ok(Command::Profile(Profile::Lte)));
        assert_eq!(parse("cut"), Ok(Command::Cut));
        assert!(parse("rate sideways 2mbit").unwrap_err().contains("up, down or both"));
        assert!(parse("rate up fast").unwrap_err().contains("8mbit"));
        assert!(parse("profile moon").unwrap_err().contains("unknown profile"));
        assert!(parse("").unwrap_err().contains("expected one of"));
    }

    #[test]
    fn a_setting_changes_only_its_directions() {
        let link = Link::new(Profile::Lte.params(), 1);
        let answer = execute("rate up 2mbit", &link);
        assert_eq!(answer["event"], "ack");
        assert_eq!(answer["params"]["up"]["rate_bps"], 2_000_000);
        assert_eq!(answer["params"]["down"]["rate_bps"], 30_000_000);
        assert_eq!(execute("cut", &link)["cut"], true);
        assert_eq!(execute("stats", &link)["counters"]["up"]["dropped_cut"], 0);
        assert_eq!(execute("restore", &link)["cut"], false);
        assert_eq!(execute("nonsense", &link)["event"], "error");
    }
}
