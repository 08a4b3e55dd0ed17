//! One direction of the link: decides on arrival whether a frame is lost, tail-dropped or
//! when it leaves (serialization at the rate on a virtual clock, then the propagation delay
//! with jitter, never before the frame ahead of it), and a sending thread that releases
//! frames at those times.

use crate::packet::PacketSocket;
use crate::params::DirectionParams;
use crate::stats::Counters;
use crate::timing::{now_ns, sleep_until_ns};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The most frames one direction holds (queued or in the delay line): memory stays bounded
/// even without a rate limit, where only the delay holds frames back.
pub const MAX_IN_FLIGHT: usize = 65_536;

/// What happens to an arriving frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Lost,
    QueueFull,
    /// It leaves at `depart_at_ns` after waiting `queued_ns` for the serializer.
    Depart {
        depart_at_ns: u64,
        queued_ns: u64,
    },
}

/// The timing and loss decisions of one direction, free of threads and sockets.
pub struct Shaper {
    params: DirectionParams,
    /// ChaCha8 rather than `StdRng`: its output for a seed is fixed across rand versions, so
    /// a seed reproduces a run.
    rng: ChaCha8Rng,
    /// When the serializer finishes the last frame accepted (the virtual clock of the rate).
    link_free_at_ns: u64,
    /// When the last accepted frame leaves; no later frame may leave before it.
    last_departure_ns: u64,
}

impl Shaper {
    pub fn new(params: DirectionParams, seed: u64) -> Shaper {
        Shaper {
            params,
            rng: ChaCha8Rng::seed_from_u64(seed),
            link_free_at_ns: 0,
            last_departure_ns: 0,
        }
    }

    pub fn params(&self) -> DirectionParams {
        self.params
    }

    /// New parameters apply to frames arriving from now on; frames already accepted keep
    /// their times.
    pub fn set_params(&mut self, params: DirectionParams) {
        self.params = params;
    }

    /// Decides the fate of a frame of `len` bytes arriving at `now_ns`.
    pub fn admit(&mut self, now_ns: u64, len: usize) -> Admission {
        let params = self.params;
        if params.loss_percent > 0.0 && self.rng.random::<f64>() * 100.0 < params.loss_percent {
            return Admission::Lost;
        }
        let start_ns = self.link_free_at_ns.max(now_ns);
        let finish_ns = match params.rate_bps {
            None => now_ns,
            Some(rate_bps) => {
                let backlog_ns = start_ns - now_ns;
                let backlog_bytes = (backlog_ns as u128 * rate_bps as u128 / 8_000_000_000) as u64;
                let limit = params.queue_limit_bytes().unwrap_or(u64::MAX);
                if backlog_bytes + len as u64 > limit {
                    return Admission::QueueFull;
                }
                start_ns + (len as u128 * 8_000_000_000 / rate_bps as u128) as u64
            }
        };
        self.link_free_at_ns = finish_ns;
        let jitter_ms = if params.jitter_ms > 0.0 {
            self.rng.random_range(-params.jitter_ms..=params.jitter_ms)
        } else {
            0.0
        };
        let delay_ns = ((params.delay_ms + jitter_ms).max(0.0) * 1e6) as u64;
        // A real link never reorders: jitter only holds a frame back behind its predecessor.
        let depart_at_ns = (finish_ns + delay_ns).max(self.last_departure_ns);
        self.last_departure_ns = depart_at_ns;
        Admission::Depart { depart_at_ns, queued_ns: start_ns - now_ns }
    }
}

/// A frame waiting to leave.
struct Scheduled {
    depart_at_ns: u64,
    frame: Vec<u8>,
}

struct State {
    shaper: Shaper,
    /// Frames in departure order (departure times never decrease).
    in_flight: VecDeque<Scheduled>,
    counters: Counters,
}

/// One direction of the link, shared by its receiving thread, its sending thread and the
/// control loop.
pub struct Direction {
    state: Mutex<State>,
    frame_ready: Condvar,
    /// The link's "cut" switch, shared by both directions.
    cut: Arc<AtomicBool>,
}

impl Direction {
    pub fn new(params: DirectionParams, seed: u64, cut: Arc<AtomicBool>) -> Direction {
        let state = State {
            shaper: Shaper::new(params, seed),
            in_flight: VecDeque::new(),
            counters: Counters::new(),
        };
        Direction { state: Mutex::new(state), frame_ready: Condvar::new(), cut }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under this lock is a few field writes that cannot panic half-way, so
        // a lock poisoned by a panic elsewhere still holds consistent state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn params(&self) -> DirectionParams {
        self.lock().shaper.params()
    }

    pub fn set_params(&self, params: DirectionParams) {
        self.lock().shaper.set_params(params);
    }

    pub fn counters_json(&self) -> serde_json::Value {
        self.lock().counters.to_json()
    }

    /// Takes in a frame that just arrived at the emulator.
    pub fn arrive(&self, frame: Vec<u8>) {
        let now = now_ns();
        let mut state = self.lock();
        if self.cut.load(Ordering::Relaxed) {
            state.counters.dropped_cut += 1;
            return;
        }
        if state.in_flight.len() >= MAX_IN_FLIGHT {
            state.counters.dropped_overflow += 1;
            return;
        }
        match state.shaper.admit(now, frame.len()) {
            Admission::Lost => state.counters.dropped_loss += 1,
            Admission::QueueFull => state.counters.dropped_queue += 1,
            Admission::Depart { depart_at_ns, queued_ns } => {
                state.counters.queue_delay.record(queued_ns);
                state.in_flight.push_back(Scheduled { depart_at_ns, frame });
                self.frame_ready.notify_one();
            }
        }
    }

    /// Receives frames from `input` for ever; returns only on a socket error.
    pub fn receive_from(&self, input: &PacketSocket) -> std::io::Error {
        let mut buffer = vec![0u8; 65_536];
        loop {
            match input.receive(&mut buffer) {
                Ok(len) => self.arrive(buffer[..len].to_vec()),
                Err(err) => return err,
            }
        }
    }

    /// Sends frames out of `output` at their departure times, for ever.
    pub fn send_to(&self, output: &PacketSocket) -> ! {
        loop {
            let next = {
                let state = self.lock();
                let mut state = self
                    .frame_ready
                    .wait_while(state, |state| state.in_flight.is_empty())
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state.in_flight.pop_front()
            };
            let Some(Scheduled { depart_at_ns, frame }) = next else { continue };
            sleep_until_ns(depart_at_ns);
            // A cut also loses what was already on its way.
            if self.cut.load(Ordering::Relaxed) {
                self.lock().counters.dropped_cut += 1;
                continue;
            }
            let sent = output.send(&frame);
            let late_ns = now_ns().saturating_sub(depart_at_ns);
            let mut state = self.lock();
            match sent {
                Ok(()) => {
                    state.counters.forwarded_packets += 1;
                    state.counters.forwarded_bytes += frame.len() as u64;
                    state.counters.send_lateness.record(late_ns);
                }
                Err(_) => state.counters.send_errors += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::QueueLimit;

    const MS: u64 = 1_000_000;

    fn shaper(params: DirectionParams) -> Shaper {
        Shaper::new(params, 7)
    }

    #[test]
    fn serialization_follows_the_rate_then_the_delay() {
        // 1 Mbit/s: a 1250-byte frame takes 10 ms on the wire.
        let params =
            DirectionParams { rate_bps: Some(1_000_000), delay_ms: 20.0, ..DirectionParams::WIRE };
        let mut link = shaper(params);
        let first = link.admit(1000 * MS, 1250);
        assert_eq!(first, Admission::Depart { depart_at_ns: 1030 * MS, queued_ns: 0 });
        // Arrives while the first is on the wire: waits 5 ms for it.
        let second = link.admit(1005 * MS, 1250);
        assert_eq!(second, Admission::Depart { depart_at_ns: 1040 * MS, queued_ns: 5 * MS });
    }

    #[test]
    fn the_queue_limit_drops_at_the_tail() {
        let params = DirectionParams {
            rate_bps: Some(1_000_000),
            queue_limit: QueueLimit::Bytes(3000),
            ..DirectionParams::WIRE
        };
        let mut link = shaper(params);
        let verdicts: Vec<_> = (0..4).map(|_| link.admit(MS, 1000)).collect();
        assert!(matches!(verdicts[2], Admission::Depart { .. }));
        assert_eq!(verdicts[3], Admission::QueueFull);
        // Once the backlog drained (3 frames at 8 ms each), frames pass again.
        assert!(matches!(link.admit(30 * MS, 1000), Admission::Depart { queued_ns: 0, .. }));
    }

    #[test]
    fn jitter_never_reorders() {
        let params = DirectionParams { delay_ms: 20.0, jitter_ms: 15.0, ..DirectionParams::WIRE };
        let mut link = shaper(params);
        let mut last = 0;
        let mut spread = (u64::MAX, 0);
        for i in 0..10_000 {
            let now = i * MS / 10;
            let Admission::Depart { depart_at_ns, .. } = link.admit(now, 100) else {
                panic!("nothing may be dropped");
            };
            assert!(depart_at_ns >= last, "frame {i} leaves before its predecessor");
            last = depart_at_ns;
            let delay = depart_at_ns - now;
            spread = (spread.0.min(delay), spread.1.max(delay));
        }
        assert!(spread.0 >= 5 * MS && spread.1 <= 35 * MS, "{spread:?}");
        assert!(spread.1 - spread.0 > 20 * MS, "jitter had no effect: {spread:?}");
    }

    #[test]
    fn loss_follows_the_seeded_probability() {
        let params = DirectionParams { loss_percent: 2.0, ..DirectionParams::WIRE };
        let count = |seed| {
            let mut link = Shaper::new(params, seed);
            (0..100_000).filter(|_| link.admit(MS, 100) == Admission::Lost).count()
        };
        let lost = count(1);
        // Binomial(100000, 0.02): sd 44, so 2000 +- 250 is over 5 sd.
        assert!((1750..=2250).contains(&lost), "{lost}");
        assert_eq!(count(1), lost, "the same seed must drop the same frames");
    }
}
