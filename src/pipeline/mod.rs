//! The publish pipeline: source -> route (rate limit, encode, compress) -> track.
//!
//! Sources send samples to the router, which hands each to its topic's track worker through a
//! keep-latest queue and never waits on the network. A worker publishes its track, decimates,
//! encodes on the blocking pool and pushes frames; every drop is counted.

pub mod encode;
pub mod plan;

pub use plan::{Plan, Resolution, Router, TrackPlan};

use crate::livekit::{DataTrackSchemaId, Room, TrackOptions, frame_encoding, schema_encoding};
use crate::scheduler::{QueueOutcome, Scheduler, SendCounters};
use crate::source::{Sample, SampleSender, Shutdown, TopicInfo};
use encode::{Encoder, sample_len};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How many samples may wait between the sources and the router.
const ROUTER_CAPACITY: usize = 256;

/// Counters of one track, from the sample's arrival to the frame handed to the link.
#[derive(Debug, Default)]
pub struct TrackCounters {
    /// Samples routed to the track.
    pub samples: AtomicU64,
    /// Their size as they arrived.
    pub bytes_in: AtomicU64,
    /// Samples replaced in the keep-latest queue by fresher ones while the worker was
    /// encoding (the machine did not keep up).
    pub replaced: AtomicU64,
    /// Samples the link did not keep up with (shed for bandwidth): replaced in the keep-latest
    /// queue while the worker waited for the link, or, for a low-priority track, encoded
    /// frames replaced in the scheduler by fresher ones.
    pub shed: AtomicU64,
    /// Samples dropped by the rate limit.
    pub decimated: AtomicU64,
    /// Samples that failed to encode.
    pub failed: AtomicU64,
    /// Samples too old to be worth encoding (they waited past the track's deadline).
    pub stale: AtomicU64,
    /// Samples its worker never took: still queued when it stopped, or routed after that
    /// (the daemon stopping, the track failing to publish).
    pub unsent: AtomicU64,
    /// What became of the encoded frames on the link.
    pub link: Arc<SendCounters>,
}

/// A snapshot of [`TrackCounters`]: every sample routed to the track is counted once, as a
/// frame sent, decimated, or dropped for one reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrackStats {
    /// Samples routed to the track.
    pub samples: u64,
    /// Their size as they arrived.
    pub bytes_in: u64,
    /// Frames handed to the link.
    pub frames: u64,
    /// Their size on the track.
    pub bytes_out: u64,
    /// Of those frames, the ones the network lost: SCTP gave up on them, not acknowledged
    /// within their lifetime (but for the few whose acknowledgement was lost instead).
    pub lost: u64,
    /// Replaced by fresher samples while the worker was encoding.
    pub replaced: u64,
    /// Replaced by fresher samples while the link was busy.
    pub shed: u64,
    /// Dropped because they waited past the track's deadline.
    pub stale: u64,
    /// Failed to encode, refused by the track, or still queued at shutdown.
    pub refused: u64,
    /// Dropped by the rate limit.
    pub decimated: u64,
}

impl TrackStats {
    /// Frames dropped for any reason (decimation by a configured rate is not a drop).
    pub fn dropped(&self) -> u64 {
        self.replaced + self.shed + self.stale + self.refused
    }
}

impl TrackCounters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> TrackStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TrackStats {
            samples: get(&self.samples),
            bytes_in: get(&self.bytes_in),
            frames: get(&self.link.frames),
            bytes_out: get(&self.link.bytes),
            lost: get(&self.link.lost),
            replaced: get(&self.replaced),
            shed: get(&self.shed),
            stale: get(&self.stale) + get(&self.link.stale),
            refused: get(&self.failed) + get(&self.unsent) + get(&self.link.refused),
            decimated: get(&self.decimated),
        }
    }
}

/// A sample waiting for its worker, with the time it entered the pipeline.
struct Queued {
    sample: Sample,
    born: Instant,
}

/// A bounded queue that drops its oldest sample when full.
struct LatestQueue {
    state: Mutex<QueueState>,
    ready: Notify,
    depth: usize,
    /// Set while the worker waits for room on the link: samples replaced meanwhile are shed
    /// for bandwidth, not lost to a slow encoder.
    waiting_for_link: AtomicBool,
}

struct QueueState {
    samples: VecDeque<Queued>,
    /// Closed by the worker when it stops: a sample the router pushes after that is refused
    /// (and counted) rather than left in a queue nobody reads.
    closed: bool,
}

/// What became of a pushed sample.
#[derive(Debug, PartialEq, Eq)]
enum Pushed {
    Queued,
    /// Queued, and an older sample dropped to make room.
    ReplacedOlder,
    /// Not queued: the worker has stopped.
    Closed,
}

impl LatestQueue {
    fn new(depth: usize) -> Self {
        Self {
            state: Mutex::new(QueueState {
                samples: VecDeque::with_capacity(depth),
                closed: false,
            }),
            ready: Notify::new(),
            depth,
            waiting_for_link: AtomicBool::new(false),
        }
    }

    fn push(&self, sample: Sample) -> Pushed {
        let mut state = crate::util::lock(&self.state);
        if state.closed {
            return Pushed::Closed;
        }
        let replaced = state.samples.len() >= self.depth && state.samples.pop_front().is_some();
        state.samples.push_back(Queued { sample, born: Instant::now() });
        drop(state);
        self.ready.notify_one();
        if replaced { Pushed::ReplacedOlder } else { Pushed::Queued }
    }

    async fn pop(&self) -> Queued {
        loop {
            if let Some(queued) = crate::util::lock(&self.state).samples.pop_front() {
                return queued;
            }
            self.ready.notified().await;
        }
    }

    /// Empties the queue and refuses further samples; returns how many samples it held.
    fn close(&self) -> usize {
        let mut state = crate::util::lock(&self.state);
        state.closed = true;
        let len = state.samples.len();
        state.samples.clear();
        len
    }
}

/// A published (or publishing) track.
struct Worker {
    info: Arc<WorkerInfo>,
    queue: Arc<LatestQueue>,
    task: JoinHandle<()>,
}

/// The running pipeline.
pub struct Pipeline {
    workers: Arc<Mutex<Vec<Arc<WorkerInfo>>>>,
    unrouted: Arc<AtomicU64>,
    router_task: JoinHandle<Vec<Worker>>,
    stop: watch::Sender<bool>,
}

/// What the stats line needs of a worker.
pub struct WorkerInfo {
    /// Its plan.
    pub plan: TrackPlan,
    /// Its counters.
    pub counters: Arc<TrackCounters>,
}

impl Pipeline {
    /// Publishes the planned tracks (returning once each is published or has failed, so no
    /// early sample waits on a publication) and starts the router; other topics are resolved
    /// when their first sample arrives. Returns the sample inlet.
    pub async fn start(
        room: Room,
        scheduler: Scheduler,
        router: Router,
        plan: &Plan,
    ) -> (Pipeline, SampleSender) {
        let (inlet, samples) = mpsc::channel(ROUTER_CAPACITY);
        let (stop, stopped) = watch::channel(false);
        let workers = Arc::new(Mutex::new(Vec::new()));
        let unrouted = Arc::new(AtomicU64::new(0));
        let mut routing = Routing {
            room,
            scheduler,
            router,
            routes: HashMap::new(),
            workers: Vec::new(),
            infos: workers.clone(),
            unrouted: unrouted.clone(),
            stopped,
        };
        let mut published = Vec::new();
        for track in &plan.tracks {
            let (index, ready) = routing.spawn_worker(track.clone());
            routing
                .routes
                .insert((track.source.as_str().into(), track.topic.as_str().into()), Some(index));
            published.push(ready);
        }
        futures::future::join_all(published).await;
        let router_task = tokio::spawn(routing.run(samples));
        (Pipeline { workers, unrouted, router_task, stop }, inlet)
    }

    /// The tracks so far with their counters.
    pub fn workers(&self) -> Vec<Arc<WorkerInfo>> {
        crate::util::lock(&self.workers).clone()
    }

    /// Samples on topics that no route publishes.
    pub fn unrouted(&self) -> u64 {
        self.unrouted.load(Ordering::Relaxed)
    }

    /// Stops routing; each worker finishes its current frame and unpublishes its track.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        if let Ok(workers) = self.router_task.await {
            for worker in workers {
                _ = worker.task.await;
            }
        }
    }
}

/// The router task's state.
struct Routing {
    room: Room,
    scheduler: Scheduler,
    router: Router,
    /// (Source, topic) -> index into `workers`, or `None` for topics not published.
    routes: HashMap<(Arc<str>, Arc<str>), Option<usize>>,
    workers: Vec<Worker>,
    infos: Arc<Mutex<Vec<Arc<WorkerInfo>>>>,
    unrouted: Arc<AtomicU64>,
    stopped: Shutdown,
}

impl Routing {
    async fn run(mut self, mut samples: mpsc::Receiver<Sample>) -> Vec<Worker> {
        loop {
            let sample = tokio::select! {
                sample = samples.recv() => match sample { Some(s) => s, None => break },
                _ = crate::util::stopped(&mut self.stopped) => break,
            };
            let key = (sample.source.clone(), sample.topic.clone());
            let route = match self.routes.get(&key) {
                Some(route) => *route,
                None => self.resolve_new(key, &sample),
            };
            match route {
                Some(index) => {
                    let worker = &self.workers[index];
                    let counters = &worker.info.counters;
                    TrackCounters::add(&counters.samples, 1);
                    TrackCounters::add(&counters.bytes_in, sample_len(&sample) as u64);
                    let reason = match worker.queue.push(sample) {
                        Pushed::Queued => None,
                        Pushed::ReplacedOlder
                            if worker.queue.waiting_for_link.load(Ordering::Relaxed) =>
                        {
                            Some(&counters.shed)
                        }
                        Pushed::ReplacedOlder => Some(&counters.replaced),
                        Pushed::Closed => Some(&counters.unsent),
                    };
                    if let Some(reason) = reason {
                        TrackCounters::add(reason, 1);
                    }
                }
                None => {
                    self.unrouted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.workers
    }

    /// A topic seen for the first time: route it, or remember that it is not published.
    fn resolve_new(&mut self, key: (Arc<str>, Arc<str>), sample: &Sample) -> Option<usize> {
        let topic = TopicInfo {
            topic: sample.topic.to_string(),
            message_type: sample.message_type.clone(),
            encoding: sample.encoding.to_string(),
        };
        let index = match self.router.resolve(&sample.source, &topic) {
            Ok(Resolution::Track(plan)) => {
                let taken = self.workers.iter().any(|w| w.info.plan.track == plan.track);
                if taken {
                    tracing::error!(
                        "topic '{}' would go to track '{}', which another topic already uses; ignoring it",
                        topic.topic,
                        plan.track
                    );
                    None
                } else {
                    Some(self.spawn_worker(*plan).0)
                }
            }
            Ok(Resolution::Ignored(why)) => {
                tracing::info!("topic '{}' is not published: {why}", topic.topic);
                None
            }
            Err((route, key, message)) => {
                tracing::error!(
                    "topic '{}' cannot be published (routes[{route}].{key}): {message}",
                    topic.topic
                );
                None
            }
        };
        self.routes.insert(key, index);
        index
    }

    /// Starts a worker; the receiver resolves once its track is published (or failed to).
    fn spawn_worker(&mut self, plan: TrackPlan) -> (usize, oneshot::Receiver<()>) {
        let queue = Arc::new(LatestQueue::new(plan.policy.sample_queue_depth()));
        let counters = Arc::new(TrackCounters::default());
        let (ready, published) = oneshot::channel();
        let task = tokio::spawn(run_worker(
            self.room.clone(),
            self.scheduler.clone(),
            plan.clone(),
            queue.clone(),
            counters.clone(),
            self.stopped.clone(),
            ready,
        ));
        let info = Arc::new(WorkerInfo { plan, counters });
        crate::util::lock(&self.infos).push(info.clone());
        self.workers.push(Worker { info, queue, task });
        (self.workers.len() - 1, published)
    }
}

/// The data track options for a planned track.
pub fn track_options(plan: &TrackPlan) -> TrackOptions {
    TrackOptions::new(plan.track.clone())
        .with_frame_encoding(frame_encoding(&plan.frame_encoding()))
        .with_schema(
            DataTrackSchemaId::new(
                plan.message_type.name.clone(),
                schema_encoding(&plan.message_type.schema_encoding),
            ),
            plan.message_type.definition.clone(),
        )
}

async fn run_worker(
    room: Room,
    scheduler: Scheduler,
    plan: TrackPlan,
    queue: Arc<LatestQueue>,
    counters: Arc<TrackCounters>,
    mut stopped: Shutdown,
    ready: oneshot::Sender<()>,
) {
    let published = room.publish_track(track_options(&plan)).await;
    _ = ready.send(());
    let track = match published {
        Ok(track) => track,
        Err(err) => {
            tracing::error!(
                "cannot publish track '{}' for topic '{}': {err}",
                plan.track,
                plan.topic
            );
            TrackCounters::add(&counters.unsent, queue.close() as u64);
            return;
        }
    };
    let mut encoder = match Encoder::new(plan.clone()) {
        Ok(encoder) => encoder,
        Err(err) => {
            tracing::error!("track '{}': {err}", plan.track);
            TrackCounters::add(&counters.unsent, queue.close() as u64);
            return;
        }
    };
    let sender = scheduler.add_track(track.clone(), plan.policy, counters.link.clone());
    // LiveKit never tells a publisher who subscribes to its data tracks, and the server
    // forwards a frame only to subscriptions already set up. Samples wait in the queue for
    // this long, so that participants already in the room, who subscribe as soon as they hear
    // of the track, receive it from its first frame.
    tokio::select! {
        () = tokio::time::sleep(SUBSCRIBE_WINDOW) => {}
        _ = crate::util::stopped(&mut stopped) => {}
    }
    // Samples held for the window count their deadline from its end: they waited for
    // subscribers, not for the link.
    let window_end = Instant::now();
    let min_gap_ns = plan.max_rate_hz.map(|hz| (1e9 / hz) as u64);
    let mut last_stamp: Option<u64> = None;
    let mut encode_errors = 0u64;
    while !*stopped.borrow() {
        let Queued { sample, born } = tokio::select! {
            queued = queue.pop() => queued,
            _ = crate::util::stopped(&mut stopped) => break,
        };
        if let (Some(gap), Some(last)) = (min_gap_ns, last_stamp)
            && sample.stamp_ns >= last
            && sample.stamp_ns - last < gap
        {
            TrackCounters::add(&counters.decimated, 1);
            continue;
        }
        last_stamp = Some(sample.stamp_ns);
        let born = born.max(window_end);
        if born.elapsed() > plan.policy.max_latency {
            TrackCounters::add(&counters.stale, 1);
            continue;
        }
        let stamp_ms = sample.stamp_ns / 1_000_000;
        let encoding = Instant::now();
        let frame = if encode::sample_len(&sample) <= INLINE_ENCODE_MAX_BYTES {
            encoder.encode(&sample)
        } else {
            match crate::util::bulk_work(move || {
                let frame = encoder.encode(&sample);
                (encoder, frame)
            })
            .await
            {
                Ok((returned, frame)) => {
                    encoder = returned;
                    frame
                }
                Err(err) => {
                    tracing::error!("track '{}': encoder stopped: {err}", plan.track);
                    break;
                }
            }
        };
        // The deadline bounds waiting, not work: on a busy CPU a frame that took long to
        // encode is still the newest there is, and dropping it for that would leave its
        // track with no frame at all.
        let born = born + encoding.elapsed();
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                encode_errors += 1;
                // The first error, then one in a thousand: a bad topic must not flood the log.
                if encode_errors == 1 || encode_errors.is_multiple_of(1000) {
                    tracing::warn!(
                        "track '{}': cannot encode a sample ({encode_errors} so far): {err}",
                        plan.track
                    );
                }
                TrackCounters::add(&counters.failed, 1);
                continue;
            }
        };
        // A full track queue in the scheduler (a slow link, or the track republishing after
        // a reconnect) holds a higher-priority track's frame here, the samples behind it
        // waiting in the keep-latest queue; a low-priority track's newest frame replaces the
        // one the link did not take.
        queue.waiting_for_link.store(true, Ordering::Relaxed);
        tokio::select! {
            queued = sender.send(frame, Some(stamp_ms), born) => {
                if queued == QueueOutcome::ReplacedOlder {
                    TrackCounters::add(&counters.shed, 1);
                }
            }
            _ = crate::util::stopped(&mut stopped) => {
                TrackCounters::add(&counters.unsent, 1);
            }
        }
        queue.waiting_for_link.store(false, Ordering::Relaxed);
    }
    sender.close();
    TrackCounters::add(&counters.unsent, queue.close() as u64);
    track.unpublish();
}

/// Largest sample encoded on the async worker that carries it; larger ones (images, point
/// clouds) go to the lower-priority bulk threads ([`crate::util::bulk_work`]). Small samples
/// such as an IMU's encode in microseconds, and handing them to a thread that a saturated CPU
/// runs last would delay exactly the frames that must not wait.
const INLINE_ENCODE_MAX_BYTES: usize = 64 * 1024;

/// How long a newly published track holds its first frames (see [`run_worker`]).
pub const SUBSCRIBE_WINDOW: Duration = Duration::from_millis(500);
