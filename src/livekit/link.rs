//! What the transport measures of the link below it: bytes in flight, the delivery rate and
//! the round-trip time, from the data channel's own acknowledgement accounting.
//!
//! SCTP releases a data channel's bytes when the peer acknowledges them (or when an
//! unreliable message is abandoned), and `webrtc` exposes what is still unreleased as
//! `outstanding_bytes`. Released bytes over time are the rate the link delivers; the time from
//! handing bytes to SCTP until they are released is a round trip plus whatever queue they met.
//! The transport samples these while anything is in flight; the link scheduler above reads
//! the result to decide how much to hand over and what to shed.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The transport's view of the link, published whenever it changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkState {
    /// Frames the transport has taken from the data track core (they left its queues).
    pub frames_taken: u64,
    /// Bytes taken by the transport and not yet acknowledged by the peer: waiting in the
    /// transport, in SCTP's send queue, or on the wire.
    pub bytes_in_flight: u64,
    /// What the link delivered recently, in bytes per second: the highest rate measured
    /// over the last [`RATE_WINDOW`]; `None` until measured, or for a link with no limit.
    pub delivery_rate: Option<f64>,
    /// The shortest round trip seen over the last [`MIN_RTT_WINDOW`]: the link's own delay
    /// without queues.
    pub min_rtt: Option<Duration>,
    /// The shortest round trip over the last [`RECENT_RTT_WINDOW`], or over two transmissions
    /// of the largest recent frame when they take longer: above `min_rtt` by the queue that
    /// persisted that long (a minimum, so a delayed acknowledgement is no queue, nor the wait
    /// behind a frame the link is still carrying).
    pub rtt: Option<Duration>,
    /// True for a transport that is not a network (the loopback hub): nothing to pace.
    pub unlimited: bool,
}

impl LinkState {
    /// A transport without a link to measure.
    pub const UNLIMITED: LinkState = LinkState {
        frames_taken: 0,
        bytes_in_flight: 0,
        delivery_rate: None,
        min_rtt: None,
        rtt: None,
        unlimited: true,
    };

    /// What the link carries in its own round trip, in bytes: the delivery rate over the
    /// minimum round trip (0 until both are measured).
    pub fn bandwidth_delay_product(&self) -> u64 {
        match (self.delivery_rate, self.min_rtt) {
            (Some(rate), Some(min_rtt)) => (rate * min_rtt.as_secs_f64()) as u64,
            _ => 0,
        }
    }

    /// Time spent in queues on the way, as the round trip above its minimum.
    pub fn queueing_delay(&self) -> Option<Duration> {
        Some(self.rtt?.saturating_sub(self.min_rtt?))
    }
}

/// How far back the delivery rate's maximum reaches. Long enough to span a few round trips
/// of a slow link, short enough that a link that got slower is believed within seconds.
pub const RATE_WINDOW: Duration = Duration::from_secs(2);
/// How far back the minimum round trip reaches: a route change or a link that got longer
/// shows within this.
pub const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// Shortest interval one delivery-rate sample spans: acknowledgements come in bursts, and a
/// rate over a few milliseconds says more about the burst than about the link.
const MIN_RATE_INTERVAL: Duration = Duration::from_millis(40);
/// How far back the recent round trip reaches at least.
pub const RECENT_RTT_WINDOW: Duration = Duration::from_millis(100);
/// How far back the recent round trip reaches at most. A frame entering the link whole is a
/// queue for whatever is sent behind it until the link has carried it (a 38 KB colour image
/// on a 3 Mbit/s link: 100 ms), which is no queue the sender could shorten by sending less;
/// the recent round trip's minimum reaches over two such transmissions, up to this.
const MAX_RECENT_RTT_WINDOW: Duration = Duration::from_millis(500);
/// How far back the largest frame taken is remembered.
const LARGEST_FRAME_WINDOW: Duration = Duration::from_secs(2);

/// How often the transport asks SCTP what it released while bytes are in flight. SCTP reports
/// releases only as a counter, so this clock is what turns them into events; a few
/// milliseconds keep round-trip samples finer than any queue worth acting on.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_millis(5);

/// A [`LinkEstimator`] shared by the transport's two sides (frames arriving from the data
/// track core, the sender writing them to SCTP) that publishes every change.
pub(crate) struct LinkMeter {
    estimator: Mutex<LinkEstimator>,
    state: watch::Sender<LinkState>,
    /// Bytes SCTP may hold unacknowledged; unlimited until a link scheduler sets it.
    send_window: AtomicU64,
}

impl LinkMeter {
    pub fn new() -> Self {
        let estimator = LinkEstimator::new();
        let state = watch::channel(estimator.state(Instant::now())).0;
        Self { estimator: Mutex::new(estimator), state, send_window: AtomicU64::new(u64::MAX) }
    }

    pub fn set_send_window(&self, bytes: u64) {
        self.send_window.store(bytes, Ordering::Relaxed);
    }

    /// Whether SCTP holds less than the send window, as of the last sample (it releases
    /// bytes between samples, so this errs on the side of waiting).
    pub fn has_room(&self) -> bool {
        crate::util::lock(&self.estimator).unreleased() < self.send_window.load(Ordering::Relaxed)
    }

    /// Updates the estimator and publishes its new state.
    pub fn update<R>(&self, change: impl FnOnce(&mut LinkEstimator) -> R) -> R {
        let mut estimator = crate::util::lock(&self.estimator);
        let result = change(&mut estimator);
        self.state.send_replace(estimator.state(Instant::now()));
        result
    }

    /// Whether SCTP holds bytes not yet acknowledged.
    pub fn in_flight(&self) -> bool {
        crate::util::lock(&self.estimator).in_flight()
    }

    pub fn subscribe(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }
}

/// Which end of the unacknowledged sends bytes are taken off.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Acknowledged bytes: the link delivers in send order.
    Oldest,
    /// Abandoned bytes (see [`LinkEstimator::on_outstanding`]).
    Newest,
}

/// Turns sends and acknowledgements into a [`LinkState`].
#[derive(Debug)]
pub(crate) struct LinkEstimator {
    frames_taken: u64,
    /// Bytes taken from the data track core; some may still wait in the transport.
    bytes_taken: u64,
    /// Bytes handed to SCTP.
    bytes_sent: u64,
    /// Bytes SCTP released (acknowledged or abandoned).
    bytes_released: u64,
    /// Bytes the peer acknowledged: those released but not abandoned.
    bytes_acked: u64,
    /// SCTP's count of abandoned bytes as last read (it counts every association of the
    /// process); `None` before the first reading.
    abandoned_seen: Option<u64>,
    /// Abandoned bytes taken off `sends` whose release has not been seen yet.
    abandoned_unreleased: u64,
    /// The sends not yet acknowledged, oldest first: bytes still unacknowledged, and when the
    /// send ended.
    sends: VecDeque<(u64, Instant)>,
    /// Start of the delivery-rate interval being measured: acknowledged total and time.
    interval_start: Option<(u64, Instant)>,
    /// Whether the link had work waiting throughout the interval (a rate measured while the
    /// sender had nothing to send says what was offered, not what the link carries).
    interval_backlogged: bool,
    rates: VecDeque<(Instant, f64)>,
    min_rtt: WindowedMin<Duration>,
    recent_rtt: WindowedMin<Duration>,
    /// The largest frames taken lately (their sizes reversed, for a windowed maximum).
    largest_frame: WindowedMin<Reverse<u64>>,
}

impl LinkEstimator {
    pub fn new() -> Self {
        Self {
            frames_taken: 0,
            bytes_taken: 0,
            bytes_sent: 0,
            bytes_released: 0,
            bytes_acked: 0,
            abandoned_seen: None,
            abandoned_unreleased: 0,
            sends: VecDeque::new(),
            interval_start: None,
            interval_backlogged: true,
            rates: VecDeque::new(),
            min_rtt: WindowedMin::new(MIN_RTT_WINDOW),
            recent_rtt: WindowedMin::new(RECENT_RTT_WINDOW),
            largest_frame: WindowedMin::new(LARGEST_FRAME_WINDOW),
        }
    }

    /// The transport took a frame of `bytes` from the data track core.
    pub fn on_frame_taken(&mut self, bytes: u64, now: Instant) {
        self.frames_taken += 1;
        self.bytes_taken += bytes;
        self.largest_frame.add(Reverse(bytes), now);
        self.largest_frame.expire(now);
    }

    /// A frame the transport took was dropped before reaching SCTP.
    pub fn on_frame_discarded(&mut self, bytes: u64) {
        self.bytes_taken -= bytes.min(self.bytes_taken - self.bytes_sent);
    }

    /// A new connection: what SCTP held on the last one is gone, neither delivered nor
    /// waiting.
    pub fn on_new_session(&mut self) {
        self.bytes_released = self.bytes_sent;
        self.abandoned_unreleased = 0;
        self.sends.clear();
        self.interval_start = None;
    }

    /// `bytes` were handed to SCTP at `now`.
    pub fn on_sent(&mut self, bytes: u64, now: Instant) {
        self.bytes_sent += bytes;
        self.sends.push_back((bytes, now));
    }

    /// SCTP reports `outstanding` bytes not yet released at `now`, and the bytes it has
    /// abandoned so far (read after `outstanding`: [`rtc_sctp::abandoned_bytes`]);
    /// `backlogged` says whether the sender had more to send than it handed over.
    pub fn on_outstanding(
        &mut self,
        outstanding: u64,
        abandoned: u64,
        backlogged: bool,
        now: Instant,
    ) {
        let released = self.bytes_sent.saturating_sub(outstanding).max(self.bytes_released);
        let newly_released = released - self.bytes_released;
        self.bytes_released = released;
        // Abandoned bytes are taken off the newest sends: SCTP's retransmission timer abandons
        // every expired message in flight at once, the newest of them sent a moment ago, and
        // counted as acknowledged they would complete the oldest sends early, a round trip
        // shorter than the link's that would stay its minimum for 10 s (every real round trip
        // then looks like a queue, and the scheduler's window collapses). A lost message
        // abandoned from the middle leaves the sends after it completing a little late, which
        // only makes a round trip look longer for a moment.
        // The first reading is where this estimator's count starts: the process may have
        // abandoned bytes of other sessions before.
        let seen = *self.abandoned_seen.get_or_insert(abandoned);
        let newly_abandoned = abandoned.saturating_sub(seen);
        self.abandoned_seen = Some(seen.max(abandoned));
        self.abandoned_unreleased += self.take_sends(newly_abandoned, End::Newest).0;
        let abandoned_released = newly_released.min(self.abandoned_unreleased);
        self.abandoned_unreleased -= abandoned_released;
        let newly_acked = newly_released - abandoned_released;
        self.bytes_acked += newly_acked;
        // One round-trip sample per release, from the oldest send it completes: the sends
        // completing with it were waiting behind that one.
        if let (_, Some(sent_at)) = self.take_sends(newly_acked, End::Oldest) {
            let rtt = now.saturating_duration_since(sent_at);
            self.min_rtt.add(rtt, now);
            self.recent_rtt.add(rtt, now);
        }
        self.interval_backlogged &= backlogged || outstanding > 0;
        let acked = self.bytes_acked;
        match self.interval_start {
            None => self.start_interval(acked, now),
            Some((start_acked, start)) => {
                let span = now.saturating_duration_since(start);
                if span >= MIN_RATE_INTERVAL.max(self.min_rtt.get().unwrap_or_default()) {
                    let rate = (acked - start_acked) as f64 / span.as_secs_f64();
                    // A rate measured while the link idled for want of data is only a
                    // lower bound: keep it only when it beats what is known.
                    let known = self.delivery_rate(now).unwrap_or(0.0);
                    if self.interval_backlogged || rate > known {
                        self.rates.push_back((now, rate));
                    }
                    self.start_interval(acked, now);
                }
            }
        }
        if outstanding == 0 {
            // Nothing in flight: the next interval starts with the next send.
            self.interval_start = None;
        }
        expire(&mut self.rates, RATE_WINDOW, now);
        self.min_rtt.expire(now);
        self.recent_rtt.window = self.recent_rtt_window(now);
        self.recent_rtt.expire(now);
    }

    /// How far back the recent round trip reaches: [`RECENT_RTT_WINDOW`], or two
    /// transmissions of the largest recent frame at the delivery rate, up to
    /// [`MAX_RECENT_RTT_WINDOW`].
    fn recent_rtt_window(&self, now: Instant) -> Duration {
        let largest = self.largest_frame.get().map_or(0, |Reverse(bytes)| bytes);
        let carrying = match self.delivery_rate(now) {
            Some(rate) if rate > 0.0 => Duration::from_secs_f64(2.0 * largest as f64 / rate),
            _ => Duration::ZERO,
        };
        carrying.clamp(RECENT_RTT_WINDOW, MAX_RECENT_RTT_WINDOW)
    }

    fn start_interval(&mut self, acked: u64, now: Instant) {
        self.interval_start = Some((acked, now));
        self.interval_backlogged = true;
    }

    /// Takes up to `bytes` off the unacknowledged sends at `end`; returns how many it took,
    /// and when the first send it completed was made.
    fn take_sends(&mut self, bytes: u64, end: End) -> (u64, Option<Instant>) {
        let mut left = bytes;
        let mut first_completed = None;
        while left > 0 {
            let send = match end {
                End::Oldest => self.sends.front_mut(),
                End::Newest => self.sends.back_mut(),
            };
            let Some((unacked, sent_at)) = send else { break };
            let taken = left.min(*unacked);
            *unacked -= taken;
            left -= taken;
            if *unacked == 0 {
                first_completed.get_or_insert(*sent_at);
                match end {
                    End::Oldest => self.sends.pop_front(),
                    End::Newest => self.sends.pop_back(),
                };
            }
        }
        (bytes - left, first_completed)
    }

    fn delivery_rate(&self, now: Instant) -> Option<f64> {
        self.rates
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= RATE_WINDOW)
            .map(|&(_, rate)| rate)
            .reduce(f64::max)
    }

    /// Bytes taken and not yet released.
    pub fn bytes_in_flight(&self) -> u64 {
        self.bytes_taken - self.bytes_released.min(self.bytes_taken)
    }

    /// Bytes handed to SCTP and not released, as of the last sample.
    fn unreleased(&self) -> u64 {
        self.bytes_sent - self.bytes_released
    }

    /// Whether anything waits for an acknowledgement.
    pub fn in_flight(&self) -> bool {
        self.unreleased() > 0
    }

    pub fn state(&self, now: Instant) -> LinkState {
        LinkState {
            frames_taken: self.frames_taken,
            bytes_in_flight: self.bytes_in_flight(),
            delivery_rate: self.delivery_rate(now),
            min_rtt: self.min_rtt.get(),
            rtt: self.recent_rtt.get(),
            unlimited: false,
        }
    }
}

/// The minimum of the samples of the last `window`, kept as the samples that could still
/// become the minimum (each smaller than every later one).
#[derive(Debug)]
struct WindowedMin<T> {
    window: Duration,
    samples: VecDeque<(Instant, T)>,
}

impl<T: Ord + Copy> WindowedMin<T> {
    fn new(window: Duration) -> Self {
        Self { window, samples: VecDeque::new() }
    }

    fn add(&mut self, sample: T, now: Instant) {
        while self.samples.back().is_some_and(|&(_, old)| old >= sample) {
            self.samples.pop_back();
        }
        self.samples.push_back((now, sample));
    }

    fn expire(&mut self, now: Instant) {
        expire(&mut self.samples, self.window, now);
    }

    fn get(&self) -> Option<T> {
        self.samples.front().map(|&(_, sample)| sample)
    }
}

/// Drops samples older than `window`.
fn expire<T>(samples: &mut VecDeque<(Instant, T)>, window: Duration, now: Instant) {
    while samples.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) > window) {
        samples.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A link of `rate` bytes/s and a fixed round trip, fed 1000-byte sends as fast as the
    /// sender allows `window` bytes in flight; ticks every millisecond.
    fn simulate(rate: f64, rtt: Duration, window: u64, ticks: u32) -> LinkState {
        let start = Instant::now();
        let mut estimator = LinkEstimator::new();
        // Bytes delivered by time t: rate * (t - rtt), limited by what was sent.
        let mut sent_at: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut link_free = start;
        for tick in 0..ticks {
            let now = start + MS * tick;
            while estimator.bytes_in_flight() < window {
                estimator.on_frame_taken(1000, now);
                estimator.on_sent(1000, now);
                // Serialized after the previous packet, acknowledged a round trip later.
                link_free = link_free.max(now) + Duration::from_secs_f64(1000.0 / rate);
                sent_at.push_back((1000, link_free + rtt));
            }
            let acked: u64 = sent_at.iter().filter(|(_, at)| *at <= now).map(|(n, _)| n).sum();
            let outstanding = estimator.bytes_sent - acked;
            estimator.on_outstanding(outstanding, 0, true, now);
        }
        estimator.state(start + MS * ticks)
    }

    #[test]
    fn measures_the_rate_of_a_saturated_link() {
        let state = simulate(1_000_000.0, 50 * MS, 200_000, 3000);
        let rate = state.delivery_rate.expect("a rate after 3 s");
        assert!((900_000.0..=1_100_000.0).contains(&rate), "rate {rate}");
    }

    #[test]
    fn min_rtt_is_the_round_trip_without_queueing() {
        // A window of half the bandwidth-delay product never queues.
        let state = simulate(1_000_000.0, 50 * MS, 25_000, 2000);
        let min_rtt = state.min_rtt.expect("round trips measured");
        assert!((50 * MS..=53 * MS).contains(&min_rtt), "min rtt {min_rtt:?}");
        // A window of 150 KB keeps 100 KB queued: 100 ms at 1 MB/s on top of the 50 ms.
        let state = simulate(1_000_000.0, 50 * MS, 150_000, 2000);
        let queueing = state.queueing_delay().expect("queueing measured");
        assert!((80 * MS..=120 * MS).contains(&queueing), "queueing {queueing:?}");
    }

    #[test]
    fn the_wait_behind_a_frame_the_link_is_carrying_is_no_queue() {
        // 3 Mbit/s, 80 ms round trip: a 38 KB frame every 200 ms takes 100 ms to carry, and
        // a 340-byte sample every 5 ms waits behind it; the link idles the other 100 ms.
        let rate = 375_000.0;
        let start = Instant::now();
        let mut estimator = LinkEstimator::new();
        let mut acks: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut link_free = start;
        let mut acked = 0;
        let mut max_queueing = Duration::ZERO;
        for tick in 0..4000 {
            let now = start + MS * tick;
            // Each chunk of about 1,000 bytes is acknowledged a round trip after the link
            // carried it.
            let mut send = |bytes: u64| {
                estimator.on_frame_taken(bytes, now);
                estimator.on_sent(bytes, now);
                for chunk in (0..bytes).step_by(1000).map(|at| (bytes - at).min(1000)) {
                    link_free = link_free.max(now) + Duration::from_secs_f64(chunk as f64 / rate);
                    acks.push_back((chunk, link_free + 80 * MS));
                }
            };
            if tick % 200 == 0 {
                send(38_000);
            }
            if tick % 5 == 0 {
                send(340);
            }
            while acks.front().is_some_and(|(_, at)| *at <= now) {
                acked += acks.pop_front().unwrap().0;
            }
            estimator.on_outstanding(estimator.bytes_sent - acked, 0, true, now);
            if tick > 1000 {
                let queueing = estimator.state(now).queueing_delay().unwrap_or_default();
                max_queueing = max_queueing.max(queueing);
            }
        }
        assert!(max_queueing < 10 * MS, "queueing up to {max_queueing:?}");
    }

    #[test]
    fn messages_abandoned_at_once_are_no_round_trip() {
        let mut estimator = LinkEstimator::new();
        let start = Instant::now();
        for i in 0..10 {
            estimator.on_frame_taken(1_000, start);
            estimator.on_sent(1_000, start + 20 * MS * i);
        }
        estimator.on_outstanding(9_000, 0, true, start + 50 * MS);
        // SCTP's timer fires: everything still in flight is abandoned in one go, the last
        // send only 20 ms old.
        estimator.on_outstanding(0, 9_000, true, start + 200 * MS);
        assert_eq!(estimator.state(start + 200 * MS).min_rtt, Some(50 * MS));
        assert!(!estimator.in_flight());
    }

    #[test]
    fn messages_abandoned_in_flight_are_neither_a_round_trip_nor_delivered() {
        // A 1,000-byte send every 20 ms, each acknowledged 80 ms later, but for the two sent
        // at 80 and 100 ms, which SCTP abandons at 100 ms. SCTP's abandoned count already
        // holds 5,000 bytes of another session's.
        let mut estimator = LinkEstimator::new();
        let start = Instant::now();
        let abandoned_at_100_ms = [80, 100];
        let mut max_rate: f64 = 0.0;
        for tick in 0..=60 {
            let now = start + 5 * MS * tick;
            let elapsed = 5 * tick;
            if elapsed % 20 == 0 && elapsed <= 200 {
                estimator.on_frame_taken(1_000, now);
                estimator.on_sent(1_000, now);
            }
            let acked = (0..=200)
                .step_by(20)
                .filter(|sent| sent + 80 <= elapsed && !abandoned_at_100_ms.contains(sent))
                .count() as u64;
            let abandoned = if elapsed >= 100 { 2_000 } else { 0 };
            let outstanding = estimator.bytes_sent - 1_000 * acked - abandoned;
            estimator.on_outstanding(outstanding, 5_000 + abandoned, true, now);
            let state = estimator.state(now);
            max_rate = max_rate.max(state.delivery_rate.unwrap_or(0.0));
            if let Some(min_rtt) = state.min_rtt {
                assert!(min_rtt >= 80 * MS, "{min_rtt:?} at {elapsed} ms");
            }
        }
        assert!(!estimator.in_flight());
        // 1,000 bytes every 20 ms is 50 KB/s.
        assert!(max_rate <= 55_000.0, "{max_rate} bytes/s");
    }

    #[test]
    fn a_rate_measured_while_idle_does_not_lower_the_estimate() {
        let mut estimator = LinkEstimator::new();
        let start = Instant::now();
        estimator.on_frame_taken(100_000, start);
        estimator.on_sent(100_000, start);
        estimator.on_outstanding(100_000, 0, true, start);
        estimator.on_outstanding(0, 0, true, start + 100 * MS);
        let fast = estimator.state(start + 100 * MS).delivery_rate.unwrap();
        // Then a trickle while the sender has nothing more to send.
        estimator.on_frame_taken(1_000, start);
        estimator.on_sent(1_000, start + 200 * MS);
        estimator.on_outstanding(1_000, 0, false, start + 200 * MS);
        estimator.on_outstanding(0, 0, false, start + 300 * MS);
        assert_eq!(estimator.state(start + 300 * MS).delivery_rate, Some(fast));
    }

    #[test]
    fn in_flight_counts_bytes_still_in_the_transport() {
        let mut estimator = LinkEstimator::new();
        estimator.on_frame_taken(5_000, Instant::now());
        estimator.on_frame_taken(3_000, Instant::now());
        assert_eq!(estimator.bytes_in_flight(), 8_000);
        estimator.on_sent(5_000, Instant::now());
        estimator.on_outstanding(2_000, 0, true, Instant::now());
        assert_eq!(estimator.bytes_in_flight(), 5_000);
        estimator.on_frame_discarded(3_000);
        assert_eq!(estimator.bytes_in_flight(), 2_000);
        assert!(estimator.in_flight());
    }
}
