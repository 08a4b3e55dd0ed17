//! The publish pipeline: source -> route (rate limit, encode, compress) -> track.
//!
//! Sources send samples to the router, which hands each to its topic's track worker through a
//! keep-latest queue and never waits on the network. A worker publishes its track, decimates,
//! encodes on the blocking pool and pushes frames; every drop is counted.

pub mod encode;
pub mod plan;

pub use plan::{Plan, Resolution, Router, TrackPlan};

use crate::livekit::{
    DataTrackFrameEncoding, DataTrackSchemaEncoding, DataTrackSchemaId, PushError, Room,
    TrackOptions,
};
use crate::source::{Sample, SampleSender, Shutdown, TopicInfo};
use encode::{Encoder, sample_len};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How many samples may wait between the sources and the router.
const ROUTER_CAPACITY: usize = 256;

/// Counters of one track.
#[derive(Debug, Default)]
pub struct TrackCounters {
    /// Samples routed to the track.
    pub samples: AtomicU64,
    /// Their size as they arrived.
    pub bytes_in: AtomicU64,
    /// Frames pushed.
    pub frames: AtomicU64,
    /// Their size on the track.
    pub bytes_out: AtomicU64,
    /// Samples dropped because the queue was full (keep latest).
    pub dropped_queue: AtomicU64,
    /// Samples dropped by the rate limit.
    pub decimated: AtomicU64,
    /// Frames not sent (the track went away, or the daemon stopped while its send queue was
    /// full) or samples that failed to encode.
    pub dropped_send: AtomicU64,
}

/// A snapshot of [`TrackCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// Samples routed to the track.
    pub samples: u64,
    /// Their size as they arrived.
    pub bytes_in: u64,
    /// Frames pushed.
    pub frames: u64,
    /// Their size on the track.
    pub bytes_out: u64,
    /// Dropped because the queue was full.
    pub dropped_queue: u64,
    /// Dropped by the rate limit.
    pub decimated: u64,
    /// Refused by the track or failed to encode.
    pub dropped_send: u64,
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
            frames: get(&self.frames),
            bytes_out: get(&self.bytes_out),
            dropped_queue: get(&self.dropped_queue),
            decimated: get(&self.decimated),
            dropped_send: get(&self.dropped_send),
        }
    }
}

/// A bounded queue that drops its oldest sample when full.
struct LatestQueue {
    samples: Mutex<VecDeque<Sample>>,
    ready: Notify,
    depth: usize,
}

impl LatestQueue {
    fn new(depth: usize) -> Self {
        Self { samples: Mutex::new(VecDeque::with_capacity(depth)), ready: Notify::new(), depth }
    }

    /// Queues a sample; true when an older one was dropped to make room.
    fn push(&self, sample: Sample) -> bool {
        let mut samples = crate::livekit::lock(&self.samples);
        let dropped = samples.len() >= self.depth && samples.pop_front().is_some();
        samples.push_back(sample);
        drop(samples);
        self.ready.notify_one();
        dropped
    }

    async fn pop(&self) -> Sample {
        loop {
            if let Some(sample) = crate::livekit::lock(&self.samples).pop_front() {
                return sample;
            }
            self.ready.notified().await;
        }
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
    pub async fn start(room: Room, router: Router, plan: &Plan) -> (Pipeline, SampleSender) {
        let (inlet, samples) = mpsc::channel(ROUTER_CAPACITY);
        let (stop, stopped) = watch::channel(false);
        let workers = Arc::new(Mutex::new(Vec::new()));
        let unrouted = Arc::new(AtomicU64::new(0));
        let mut routing = Routing {
            room,
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
        crate::livekit::lock(&self.workers).clone()
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
                _ = crate::source::stopped(&mut self.stopped) => break,
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
                    if worker.queue.push(sample) {
                        TrackCounters::add(&counters.dropped_queue, 1);
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
        let queue = Arc::new(LatestQueue::new(plan.queue_depth));
        let counters = Arc::new(TrackCounters::default());
        let (ready, published) = oneshot::channel();
        let task = tokio::spawn(run_worker(
            self.room.clone(),
            plan.clone(),
            queue.clone(),
            counters.clone(),
            self.stopped.clone(),
            ready,
        ));
        let info = Arc::new(WorkerInfo { plan, counters });
        crate::livekit::lock(&self.infos).push(info.clone());
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

/// Maps an MCAP registry message encoding to the data track frame encoding.
pub fn frame_encoding(name: &str) -> DataTrackFrameEncoding {
    match name {
        "ros1" => DataTrackFrameEncoding::Ros1,
        "cdr" => DataTrackFrameEncoding::Cdr,
        "protobuf" => DataTrackFrameEncoding::Protobuf,
        "flatbuffer" => DataTrackFrameEncoding::Flatbuffer,
        "cbor" => DataTrackFrameEncoding::Cbor,
        "msgpack" => DataTrackFrameEncoding::Msgpack,
        "json" => DataTrackFrameEncoding::Json,
        other => DataTrackFrameEncoding::Custom(other.into()),
    }
}

/// Maps an MCAP registry schema encoding to the data track schema encoding.
pub fn schema_encoding(name: &str) -> DataTrackSchemaEncoding {
    match name {
        "protobuf" => DataTrackSchemaEncoding::Protobuf,
        "flatbuffer" => DataTrackSchemaEncoding::Flatbuffer,
        "ros1msg" => DataTrackSchemaEncoding::Ros1Msg,
        "ros2msg" => DataTrackSchemaEncoding::Ros2Msg,
        "ros2idl" => DataTrackSchemaEncoding::Ros2Idl,
        "omgidl" => DataTrackSchemaEncoding::OmgIdl,
        "jsonschema" => DataTrackSchemaEncoding::JsonSchema,
        other => DataTrackSchemaEncoding::Custom(other.into()),
    }
}

async fn run_worker(
    room: Room,
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
            return;
        }
    };
    let mut encoder = match Encoder::new(plan.clone()) {
        Ok(encoder) => encoder,
        Err(err) => {
            tracing::error!("track '{}': {err}", plan.track);
            return;
        }
    };
    // LiveKit never tells a publisher who subscribes to its data tracks, and the server
    // forwards a frame only to subscriptions already set up. Samples wait in the queue for
    // this long, so that participants already in the room, who subscribe as soon as they hear
    // of the track, receive it from its first frame.
    tokio::select! {
        () = tokio::time::sleep(SUBSCRIBE_WINDOW) => {}
        _ = crate::source::stopped(&mut stopped) => {
            track.unpublish();
            return;
        }
    }
    let min_gap_ns = plan.max_rate_hz.map(|hz| (1e9 / hz) as u64);
    let mut last_stamp: Option<u64> = None;
    let mut encode_errors = 0u64;
    loop {
        let sample = tokio::select! {
            sample = queue.pop() => sample,
            _ = crate::source::stopped(&mut stopped) => break,
        };
        if let (Some(gap), Some(last)) = (min_gap_ns, last_stamp)
            && sample.stamp_ns >= last
            && sample.stamp_ns - last < gap
        {
            TrackCounters::add(&counters.decimated, 1);
            continue;
        }
        last_stamp = Some(sample.stamp_ns);
        let stamp_ms = sample.stamp_ns / 1_000_000;
        let (returned, frame) = match tokio::task::spawn_blocking(move || {
            let frame = encoder.encode(&sample);
            (encoder, frame)
        })
        .await
        {
            Ok(done) => done,
            Err(err) => {
                tracing::error!("track '{}': encoder stopped: {err}", plan.track);
                break;
            }
        };
        encoder = returned;
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
                TrackCounters::add(&counters.dropped_send, 1);
                continue;
            }
        };
        let len = frame.len() as u64;
        // A full send queue (a burst, or the track republishing after a reconnect) holds the
        // frame here, not the samples behind it: they wait in the keep-latest queue, which
        // drops its oldest when full, so a burst of small messages gets through whole and a
        // slow link still never backs frames up.
        let pushed = loop {
            match track.try_push(frame.clone(), Some(stamp_ms)) {
                Err(PushError::QueueFull) => tokio::select! {
                    () = tokio::time::sleep(SEND_RETRY) => {}
                    _ = crate::source::stopped(&mut stopped) => break Err(PushError::QueueFull),
                },
                result => break result,
            }
        };
        match pushed {
            Ok(()) => {
                TrackCounters::add(&counters.frames, 1);
                TrackCounters::add(&counters.bytes_out, len);
            }
            Err(PushError::QueueFull) => TrackCounters::add(&counters.dropped_send, 1),
            Err(err) => {
                TrackCounters::add(&counters.dropped_send, 1);
                tracing::warn!("track '{}': frame not sent: {err}", plan.track);
            }
        }
    }
    track.unpublish();
}

/// How long a newly published track holds its first frames (see [`run_worker`]).
pub const SUBSCRIBE_WINDOW: Duration = Duration::from_millis(500);

/// How long a worker waits before offering a frame to a full track send queue again.
const SEND_RETRY: Duration = Duration::from_millis(2);
