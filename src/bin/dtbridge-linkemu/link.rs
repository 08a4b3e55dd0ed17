//! Both directions of the emulated link, the cut switch, and the forwarding threads between
//! the emulator's two interfaces.

use crate::packet::PacketSocket;
use crate::params::{LinkParams, Way};
use crate::shaper::Direction;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The emulated link: `up` carries robot -> server, `down` server -> robot.
pub struct Link {
    up: Arc<Direction>,
    down: Arc<Direction>,
    cut: Arc<AtomicBool>,
}

impl Link {
    /// Each direction draws from its own generator (seeded from `seed`), so traffic one way
    /// does not change which frames the other way loses.
    pub fn new(params: LinkParams, seed: u64) -> Link {
        let cut = Arc::new(AtomicBool::new(false));
        Link {
            up: Arc::new(Direction::new(params.up, seed, cut.clone())),
            down: Arc::new(Direction::new(params.down, seed ^ 0x5EED_D0A1, cut.clone())),
            cut,
        }
    }

    fn direction(&self, way: Way) -> &Arc<Direction> {
        match way {
            Way::Up => &self.up,
            Way::Down => &self.down,
        }
    }

    /// Starts forwarding: frames from `robot_side` go up and out of `server_side`, frames from
    /// `server_side` go down and out of `robot_side`. A receive error is passed to
    /// `on_error`, which is expected to end the process.
    pub fn start(
        &self,
        robot_side: PacketSocket,
        server_side: PacketSocket,
        on_error: impl Fn(String) + Send + Sync + 'static,
    ) -> std::io::Result<()> {
        let robot_side = Arc::new(robot_side);
        let server_side = Arc::new(server_side);
        let on_error = Arc::new(on_error);
        let routes = [(Way::Up, &robot_side, &server_side), (Way::Down, &server_side, &robot_side)];
        for (way, input, output) in routes {
            let (direction, input, on_error) =
                (self.direction(way).clone(), input.clone(), on_error.clone());
            std::thread::Builder::new().name(format!("{}-receive", way.name())).spawn(
                move || {
                    let err = direction.receive_from(&input);
                    on_error(format!("receiving frames going {}: {err}", way.name()));
                },
            )?;
            let (direction, output) = (self.direction(way).clone(), output.clone());
            std::thread::Builder::new()
                .name(format!("{}-send", way.name()))
                .spawn(move || direction.send_to(&output))?;
        }
        Ok(())
    }

    pub fn params(&self) -> LinkParams {
        LinkParams { up: self.up.params(), down: self.down.params() }
    }

    pub fn set_params(&self, params: LinkParams) {
        for way in Way::BOTH {
            self.direction(way).set_params(*params.get(way));
        }
    }

    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }

    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// The counters of both directions: `{"up": {...}, "down": {...}}`.
    pub fn counters_json(&self) -> Value {
        json!({ "up": self.up.counters_json(), "down": self.down.counters_json() })
    }
}
