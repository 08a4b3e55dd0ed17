//! The link scheduler: what leaves the process, in which order, and what is dropped instead.
//!
//! Each track has its own queue of encoded frames. One task hands frames to the room only
//! while the link has room for them (the in-flight [`window`], sized from the round trip the
//! transport measures), highest priority first and, within a priority, oldest first; a frame
//! that waited longer than its track's deadline is dropped before it is sent. A low-priority
//! track (a camera) keeps only its newest frames (as many as its route's `queue_depth`), a
//! fresher one replacing the oldest, so on a slow link it is decimated to what the link
//! carries and what it sends is a few frame intervals old at most; a higher-priority track
//! whose queue is full makes its worker wait, so high-priority tracks stay whole. An optional
//! bandwidth cap paces everything with a token bucket.
//!
//! Every frame is counted once: sent, replaced by a fresher one, stale, or refused by the
//! track.

pub mod window;

use crate::livekit::{LinkState, LocalTrack, PushError, Room, wire_len};
use bytes::Bytes;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use window::Window;

/// Which frames go first when the link cannot carry everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Bulk data (images, point clouds): decimated first.
    Low,
    /// Between the two.
    Normal,
    /// Small control and telemetry (imu, tf, odometry, camera info): sent first, kept whole.
    High,
}

impl Priority {
    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// How one track is scheduled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackPolicy {
    /// Its priority.
    pub priority: Priority,
    /// Longest a frame may wait, from the moment its sample entered the pipeline until it is
    /// handed to the link; older frames are dropped as stale.
    pub max_latency: Duration,
    /// The route's `queue_depth`: samples that wait for the track's encoder, and, for a
    /// low-priority track, its newest encoded frames that wait for the link.
    pub queue_depth: usize,
}

impl TrackPolicy {
    /// Samples of the track that may wait for its encoder before the oldest is dropped. A
    /// low-priority track keeps its newest `queue_depth`; a higher priority, kept whole, at
    /// least as many as it may have waiting for the link: a busy host hands a 200 Hz IMU's
    /// samples over in bursts, and a link that stalls fills the scheduler's queue first, so
    /// what drops its samples is their deadline, not a queue two samples deep.
    pub fn sample_queue_depth(&self) -> usize {
        match self.priority {
            Priority::Low => self.queue_depth,
            Priority::Normal | Priority::High => self.queue_depth.max(self.queue_frames()),
        }
    }

    /// Frames of the track that may wait in the scheduler. A low-priority track keeps its
    /// newest `queue_depth` (see [`TrackSender::send`]); higher priorities keep every frame
    /// and make their worker wait when full, high-priority tracks absorbing bursts of small
    /// messages.
    fn queue_frames(&self) -> usize {
        match self.priority {
            Priority::Low => self.queue_depth,
            Priority::Normal => 4,
            Priority::High => 64,
        }
    }
}

/// Counters of one track's frames in the scheduler.
#[derive(Debug, Default)]
pub struct SendCounters {
    /// Frames handed to the link.
    pub frames: AtomicU64,
    /// Their payload bytes.
    pub bytes: AtomicU64,
    /// Frames dropped because they waited past the track's deadline (a slow or cut link).
    pub stale: AtomicU64,
    /// Frames the track refused (unpublished, too large), or dropped at shutdown.
    pub refused: AtomicU64,
    /// Of the frames handed to the link, those the network lost (SCTP gave up on them): a
    /// frame is one packet.
    pub lost: Arc<AtomicU64>,
}

impl SendCounters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A frame waiting for the link.
struct QueuedFrame {
    payload: Bytes,
    stamp_ms: Option<u64>,
    /// When its sample entered the pipeline.
    born: Instant,
}

/// One track's queue.
struct TrackQueue {
    track: LocalTrack,
    policy: TrackPolicy,
    frames: VecDeque<QueuedFrame>,
    counters: Arc<SendCounters>,
    /// Woken when the queue has room again or the track is closed.
    room: Arc<Notify>,
    closed: bool,
}

/// What the scheduler knows, behind one lock: the worker side adds frames, the dispatch task
/// takes them.
struct State {
    tracks: Vec<TrackQueue>,
}

struct Shared {
    state: Mutex<State>,
    /// Woken when a frame is queued.
    frames_ready: Notify,
    stopping: AtomicBool,
    report: watch::Sender<LinkReport>,
}

/// The scheduler's view of the link, for stats lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkReport {
    /// What the transport measured.
    pub link: LinkState,
    /// The in-flight window, in bytes.
    pub window: u64,
}

/// Options of the scheduler as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SchedulerOptions {
    /// Cap on the bytes per second handed to the link, all tracks together.
    pub max_bytes_per_second: Option<f64>,
}

/// The link scheduler of one room. Cloning is cheap.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

impl Scheduler {
    /// Starts scheduling frames into `room`.
    pub fn start(room: &Room, options: SchedulerOptions) -> Scheduler {
        let link = room.link();
        let report = LinkReport { link: *link.borrow(), window: window::INITIAL_WINDOW as u64 };
        let shared = Arc::new(Shared {
            state: Mutex::new(State { tracks: Vec::new() }),
            frames_ready: Notify::new(),
            stopping: AtomicBool::new(false),
            report: watch::channel(report).0,
        });
        let dispatcher = Dispatcher {
            room: room.clone(),
            shared: shared.clone(),
            link,
            window: Window::default(),
            pacer: options.max_bytes_per_second.map(Pacer::new),
            pipeline: VecDeque::new(),
            frames_taken: None,
            held_back: false,
            last_served: HashMap::new(),
        };
        tokio::spawn(dispatcher.run());
        Scheduler { shared }
    }

    /// Schedules a published track's frames under `policy`, counting them in `counters`.
    pub fn add_track(
        &self,
        track: LocalTrack,
        policy: TrackPolicy,
        counters: Arc<SendCounters>,
    ) -> TrackSender {
        let room = Arc::new(Notify::new());
        track.count_lost_packets(counters.lost.clone());
        let mut state = crate::util::lock(&self.shared.state);
        state.tracks.push(TrackQueue {
            track,
            policy,
            frames: VecDeque::new(),
            counters: counters.clone(),
            room: room.clone(),
            closed: false,
        });
        TrackSender { shared: self.shared.clone(), index: state.tracks.len() - 1, counters, room }
    }

    /// The latest link measurements and window.
    pub fn report(&self) -> LinkReport {
        *self.shared.report.borrow()
    }

    /// Stops handing frames to the room; frames still queued are counted as refused.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.frames_ready.notify_one();
        let mut state = crate::util::lock(&self.shared.state);
        for queue in &mut state.tracks {
            queue.close();
        }
    }
}

impl TrackQueue {
    /// Drops what is queued (counted as refused) and wakes a waiting worker.
    fn close(&mut self) {
        SendCounters::add(&self.counters.refused, self.frames.len() as u64);
        self.frames.clear();
        self.closed = true;
        self.room.notify_one();
    }
}

/// What became of a frame handed to [`TrackSender::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOutcome {
    /// Queued for the link.
    Queued,
    /// Queued, and the older frame waiting in a low-priority track's queue dropped for it
    /// (the link did not take that one in time: shed for bandwidth).
    ReplacedOlder,
    /// Not queued: the track is closed (counted as refused).
    Closed,
}

/// A worker's handle on its track's queue.
pub struct TrackSender {
    shared: Arc<Shared>,
    index: usize,
    counters: Arc<SendCounters>,
    room: Arc<Notify>,
}

impl TrackSender {
    /// Queues a frame. A low-priority track's queue keeps only its newest frames: when it is
    /// full this one replaces the oldest, so the frames the link takes are the freshest the
    /// track has (a camera frame that waited for a slow link a frame interval ago is worth
    /// less than the one just encoded), and a replay that fills the queue at once loses
    /// nothing as long as it fits. Other tracks keep every frame, and this waits while their
    /// queue is full. `born` is when its sample entered the pipeline.
    pub async fn send(&self, payload: Bytes, stamp_ms: Option<u64>, born: Instant) -> QueueOutcome {
        let mut frame = Some(QueuedFrame { payload, stamp_ms, born });
        loop {
            let room = self.room.notified();
            {
                let mut state = crate::util::lock(&self.shared.state);
                let queue = &mut state.tracks[self.index];
                if queue.closed {
                    SendCounters::add(&self.counters.refused, 1);
                    return QueueOutcome::Closed;
                }
                let full = queue.frames.len() >= queue.policy.queue_frames();
                if !full || queue.policy.priority == Priority::Low {
                    let replaced = full && queue.frames.pop_front().is_some();
                    queue.frames.extend(frame.take());
                    drop(state);
                    self.shared.frames_ready.notify_one();
                    return if replaced {
                        QueueOutcome::ReplacedOlder
                    } else {
                        QueueOutcome::Queued
                    };
                }
            }
            room.await;
        }
    }

    /// This track's counters.
    pub fn counters(&self) -> &Arc<SendCounters> {
        &self.counters
    }

    /// Drops the queued frames and refuses new ones.
    pub fn close(&self) {
        crate::util::lock(&self.shared.state).tracks[self.index].close();
    }
}

/// Frames handed to the room that the transport has not taken yet: the data track core cuts
/// them into packets on its own tasks, and until then they are on the link's account too.
struct InPipeline {
    wire_bytes: u64,
    pushed_at: Instant,
}

/// How long a frame can take through the data track core before it is presumed lost there
/// (the core drops frames silently while a track republishes); far longer than the
/// microseconds it takes.
const PIPELINE_TIMEOUT: Duration = Duration::from_millis(100);

/// The task handing frames to the room.
struct Dispatcher {
    room: Room,
    shared: Arc<Shared>,
    link: watch::Receiver<LinkState>,
    window: Window,
    pacer: Option<Pacer>,
    pipeline: VecDeque<InPipeline>,
    /// The transport's count of frames taken, when last seen.
    frames_taken: Option<u64>,
    /// Whether a frame waited for room in the window since the window was last adjusted.
    held_back: bool,
    /// The track that sent the last frame of each priority, for round robin within it.
    last_served: HashMap<Priority, usize>,
}

/// What to wait for after a dispatch round.
enum Next {
    /// A new frame or a link change.
    Event,
    /// Also wake at this time (pacing, or the oldest frame's deadline).
    At(Instant),
}

impl Dispatcher {
    async fn run(mut self) {
        let shared = self.shared.clone();
        loop {
            // Registered before looking at the queues, so a frame queued meanwhile wakes us.
            let frames_ready = shared.frames_ready.notified();
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            let next = self.dispatch(Instant::now());
            let wake = async {
                match next {
                    Next::Event => std::future::pending().await,
                    Next::At(at) => tokio::time::sleep_until(at.into()).await,
                }
            };
            tokio::select! {
                () = frames_ready => {}
                changed = self.link.changed() => if changed.is_err() { return },
                () = wake => {}
            }
        }
    }

    /// Hands over every frame the link has room for, dropping stale ones on the way.
    fn dispatch(&mut self, now: Instant) -> Next {
        let link = *self.link.borrow_and_update();
        self.account_pipeline(&link, now);
        if !link.unlimited {
            self.window.adjust(&link, std::mem::take(&mut self.held_back), now);
            // The transport holds back nothing this scheduler let go (high-priority frames
            // use the room beyond the window); it only lets small frames overtake the rest of
            // a frame too large for one packet.
            self.room.set_send_window(start_limit(Priority::High, self.window.bytes(), &link));
        }
        self.shared.report.send_replace(LinkReport { link, window: self.window.bytes() });
        let mut in_flight = link.bytes_in_flight + self.pipeline_bytes();
        let mut state = crate::util::lock(&self.shared.state);
        // Tracks that cannot send this round: republishing after a reconnect, or waiting for
        // the pacer (then `wake` says when it lets them).
        let mut blocked = vec![false; state.tracks.len()];
        let mut wake: Option<Instant> = None;
        // One look per round: `now` does not move within it, so no frame turns stale later.
        drop_stale(&mut state.tracks, now);
        loop {
            let Some(index) = next_track(&state.tracks, &blocked, &self.last_served) else {
                return deadline_wake(&state.tracks, wake);
            };
            let queue = &mut state.tracks[index];
            let frame = &queue.frames[0];
            let wire = wire_len(frame.payload.len()) as u64;
            if !link.unlimited
                && !fits(queue.policy.priority, in_flight, self.window.bytes(), &link)
            {
                self.held_back = true;
                return deadline_wake(&state.tracks, wake);
            }
            // High-priority frames go into the pacer's debt rather than wait behind it: the
            // cap holds on average, and a camera frame's debt does not delay an IMU sample.
            if let Some(pacer) = &mut self.pacer
                && queue.policy.priority != Priority::High
                && let Some(at) = pacer.ready_at(now)
            {
                blocked[index] = true;
                wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
                continue;
            }
            match queue.track.try_push(frame.payload.clone(), frame.stamp_ms) {
                Ok(()) => {
                    self.last_served.insert(queue.policy.priority, index);
                    let frame = queue.frames.pop_front().expect("the frame just looked at");
                    SendCounters::add(&queue.counters.frames, 1);
                    SendCounters::add(&queue.counters.bytes, frame.payload.len() as u64);
                    queue.room.notify_one();
                    in_flight += wire;
                    if !link.unlimited {
                        self.pipeline.push_back(InPipeline { wire_bytes: wire, pushed_at: now });
                    }
                    if let Some(pacer) = &mut self.pacer {
                        pacer.spend(wire, now);
                    }
                }
                // The track is republishing after a reconnect: its frames wait (or go stale).
                Err(PushError::QueueFull) => blocked[index] = true,
                Err(err) => {
                    tracing::debug!("track '{}' refused a frame: {err}", queue.track.info().name());
                    queue.frames.pop_front();
                    SendCounters::add(&queue.counters.refused, 1);
                    queue.room.notify_one();
                }
            }
        }
    }

    /// Forgets the frames the transport has taken since the last round (they are in its
    /// count of bytes in flight now) and those presumed lost in the data track core.
    fn account_pipeline(&mut self, link: &LinkState, now: Instant) {
        let taken = link.frames_taken - self.frames_taken.unwrap_or(link.frames_taken);
        self.frames_taken = Some(link.frames_taken);
        for _ in 0..taken {
            if self.pipeline.pop_front().is_none() {
                break;
            }
        }
        while self.pipeline.front().is_some_and(|f| now - f.pushed_at > PIPELINE_TIMEOUT) {
            self.pipeline.pop_front();
        }
    }

    fn pipeline_bytes(&self) -> u64 {
        self.pipeline.iter().map(|frame| frame.wire_bytes).sum()
    }
}

/// Room beyond the window that only high-priority frames may use: a robot's telemetry in
/// flight on a slow link's round trip (200 Hz IMU, tf and odometry are about 140 KB/s).
pub const HIGH_PRIORITY_ROOM: u64 = 32 * 1024;

/// Whether a frame may join `in_flight` bytes under `window` on `link`. A frame may start
/// while the window has room, so one frame beyond it keeps the link busy however large frames
/// are. High-priority frames, small by nature, also use [`HIGH_PRIORITY_ROOM`] beyond the
/// window, or beyond what the link carries in a round trip when the window closed below that
/// (a queue at the bottleneck): large frames never hold them back, yet while the link
/// delivers nothing (a cut, a stalled association) they wait here, where their deadline drops
/// them, rather than pile up in the transport and arrive seconds late once it delivers again.
/// The round trip's worth matters when a slowing link overflows its queue: SCTP learns which
/// chunks were lost from the acknowledgements of what follows them, and with the window
/// closed on a queue and camera chunks awaiting retransmission, holding telemetry back left
/// nothing to follow; SCTP then waited for its retransmission timer, and telemetry for
/// 500 ms and more.
fn fits(priority: Priority, in_flight: u64, window: u64, link: &LinkState) -> bool {
    in_flight < start_limit(priority, window, link)
}

/// The bytes in flight below which a frame of `priority` may start under `window` on `link`.
fn start_limit(priority: Priority, window: u64, link: &LinkState) -> u64 {
    if priority == Priority::High {
        window.max(link.bandwidth_delay_product()) + HIGH_PRIORITY_ROOM
    } else {
        window
    }
}

/// Drops the frames that waited past their track's deadline.
fn drop_stale(tracks: &mut [TrackQueue], now: Instant) {
    for queue in tracks {
        let before = queue.frames.len();
        let max_latency = queue.policy.max_latency;
        queue.frames.retain(|frame| now.saturating_duration_since(frame.born) <= max_latency);
        let stale = before - queue.frames.len();
        if stale > 0 {
            SendCounters::add(&queue.counters.stale, stale as u64);
            queue.room.notify_one();
        }
    }
}

/// The track whose first frame goes next: of the highest priority with a frame waiting, the
/// first after the one served last, round robin, so tracks of one priority share the link
/// frame for frame (a camera's depth and color stay in step however they are decimated).
fn next_track(
    tracks: &[TrackQueue],
    blocked: &[bool],
    last_served: &HashMap<Priority, usize>,
) -> Option<usize> {
    let ready = |index: &usize| !blocked[*index] && !tracks[*index].frames.is_empty();
    let priority =
        (0..tracks.len()).filter(ready).map(|index| tracks[index].policy.priority).max()?;
    let start = last_served.get(&priority).map_or(0, |last| last + 1);
    (0..tracks.len())
        .map(|offset| (start + offset) % tracks.len())
        .find(|index| ready(index) && tracks[*index].policy.priority == priority)
}

/// When the first queued frame goes stale, if any is queued.
fn earliest_deadline(tracks: &[TrackQueue]) -> Option<Instant> {
    tracks
        .iter()
        .filter_map(|queue| queue.frames.front().map(|frame| frame.born + queue.policy.max_latency))
        .min()
}

/// Wake for the pacer (`paced`) or the next deadline, whichever comes first, so stale frames
/// are counted and their workers move on even when the link says nothing (a cut link
/// acknowledges nothing).
fn deadline_wake(tracks: &[TrackQueue], paced: Option<Instant>) -> Next {
    let deadline = earliest_deadline(tracks).map(|at| at + Duration::from_millis(1));
    match (deadline, paced) {
        (Some(a), Some(b)) => Next::At(a.min(b)),
        (Some(at), None) | (None, Some(at)) => Next::At(at),
        (None, None) => Next::Event,
    }
}

/// A token bucket for the bandwidth cap.
struct Pacer {
    bytes_per_second: f64,
    /// Bytes that may be sent now; negative after a frame larger than what was available.
    tokens: f64,
    burst: f64,
    refilled: Instant,
}

/// Burst allowed by the cap, in time at the capped rate.
const PACER_BURST: Duration = Duration::from_millis(20);

impl Pacer {
    fn new(bytes_per_second: f64) -> Self {
        let burst = (bytes_per_second * PACER_BURST.as_secs_f64()).max(window::MIN_WINDOW);
        Self { bytes_per_second, tokens: burst, burst, refilled: Instant::now() }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.bytes_per_second).min(self.burst);
        self.refilled = now;
    }

    /// `None` when a frame may go now, else when it may.
    fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        // Rounded up to the next microsecond, so that waking then finds the debt paid.
        let wait_us = (-self.tokens / self.bytes_per_second * 1e6).ceil();
        (self.tokens < 0.0).then(|| now + Duration::from_micros(wait_us as u64 + 1))
    }

    fn spend(&mut self, bytes: u64, now: Instant) {
        self.refill(now);
        self.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_starts_while_the_window_has_room_and_high_priority_beyond_it() {
        let link = LinkState { unlimited: false, ..LinkState::UNLIMITED };
        assert!(fits(Priority::Low, 15_000, 16_000, &link));
        assert!(!fits(Priority::Low, 16_000, 16_000, &link));
        assert!(!fits(Priority::Normal, 20_000, 16_000, &link));
        assert!(fits(Priority::High, 16_000 + HIGH_PRIORITY_ROOM - 1, 16_000, &link));
        assert!(!fits(Priority::High, 16_000 + HIGH_PRIORITY_ROOM, 16_000, &link));
    }

    #[test]
    fn high_priority_keeps_a_round_trip_of_the_link_when_the_window_closed_on_a_queue() {
        // 8 Mbit/s and a 50 ms round trip carry 50 KB; the window closed to 4 KB.
        let link = LinkState {
            delivery_rate: Some(1_000_000.0),
            min_rtt: Some(Duration::from_millis(50)),
            rtt: Some(Duration::from_millis(110)),
            unlimited: false,
            ..LinkState::UNLIMITED
        };
        assert!(fits(Priority::High, 50_000 + HIGH_PRIORITY_ROOM - 1, 4_096, &link));
        assert!(!fits(Priority::High, 50_000 + HIGH_PRIORITY_ROOM, 4_096, &link));
        assert!(!fits(Priority::Low, 4_096, 4_096, &link));
        // Nothing delivered for the rate's window: no round trip's worth to keep.
        let silent = LinkState { delivery_rate: None, ..link };
        assert!(!fits(Priority::High, 4_096 + HIGH_PRIORITY_ROOM, 4_096, &silent));
    }

    #[test]
    fn samples_wait_for_the_encoder_as_many_as_the_track_may_have_waiting_for_the_link() {
        let policy = |priority, queue_depth| TrackPolicy {
            priority,
            max_latency: Duration::from_millis(500),
            queue_depth,
        };
        assert_eq!(policy(Priority::Low, 2).sample_queue_depth(), 2);
        assert_eq!(policy(Priority::Normal, 2).sample_queue_depth(), 4);
        assert_eq!(policy(Priority::High, 2).sample_queue_depth(), 64);
        assert_eq!(policy(Priority::High, 100).sample_queue_depth(), 100);
    }

    #[tokio::test]
    async fn a_low_priority_track_keeps_its_newest_frames_and_its_worker_never_waits() {
        for queue_depth in [1, 3] {
            let hub = crate::livekit::LoopbackHub::new("newest");
            let (room, _events) = hub.join("robot").unwrap();
            // After the pacer's first burst, a frame waits for seconds.
            let options = SchedulerOptions { max_bytes_per_second: Some(1000.0) };
            let scheduler = Scheduler::start(&room, options);
            let track = room.publish_track(crate::livekit::TrackOptions::new("camera")).await;
            let counters = Arc::new(SendCounters::default());
            let policy = TrackPolicy {
                priority: Priority::Low,
                max_latency: Duration::from_secs(60),
                queue_depth,
            };
            let sender = scheduler.add_track(track.unwrap(), policy, counters.clone());
            let mut replaced = 0;
            for _ in 0..6 {
                match sender.send(Bytes::from(vec![0u8; 10_000]), None, Instant::now()).await {
                    QueueOutcome::ReplacedOlder => replaced += 1,
                    QueueOutcome::Queued => {}
                    QueueOutcome::Closed => panic!("the track is open"),
                }
            }
            // One frame went in the burst, if the dispatcher ran in between; the newest
            // `queue_depth` wait; the others were replaced.
            scheduler.stop();
            let sent = counters.frames.load(Ordering::Relaxed);
            let waiting = counters.refused.load(Ordering::Relaxed);
            assert!(sent <= 1, "{sent} sent");
            assert_eq!(waiting, queue_depth as u64, "depth {queue_depth}");
            assert_eq!(sent + replaced + waiting, 6, "depth {queue_depth}: {replaced} replaced");
        }
    }

    #[test]
    fn the_pacer_holds_to_its_rate() {
        let start = Instant::now();
        let mut pacer = Pacer::new(100_000.0);
        let mut now = start;
        let mut sent = 0u64;
        while now < start + Duration::from_secs(2) {
            match pacer.ready_at(now) {
                None => {
                    pacer.spend(10_000, now);
                    sent += 10_000;
                }
                Some(at) => now = at,
            }
        }
        // 2 s at 100 kB/s, plus the initial burst and one frame.
        assert!((200_000..=200_000 + 16_384 + 10_000).contains(&sent), "{sent}");
    }
}
