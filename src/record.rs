//! `dtbridge record`: joins the room as the operator, subscribes to the data tracks that match
//! the `[record]` patterns (including tracks published later, and tracks republished after a
//! publisher reconnects) and writes them to MCAP with [`crate::recorder`].
//!
//! Receiving stays on the async runtime; the MCAP writer runs on a thread of its own, fed
//! through a bounded queue: when the disk is slower than the network, frames are dropped and
//! counted instead of piling up in memory. With a live view ([`crate::view`]) the same frames
//! go to it too; `dtbridge view` serves the live view alone and subscribes to a track only
//! while a Foxglove client watches it.

use crate::config::{Connection, Loaded, RecordConfig, Role};
use crate::daemon::{self, DaemonError};
use crate::livekit::{
    DataTrackStream, DataTrackSubscribeOptions, RemoteDataTrack, Room, RoomEvent, RoomEvents,
    TimestampUnit, Undecryptable, frame_encoding_name, schema_encoding_name, user_timestamp_ns,
};
use crate::recorder::{
    Recorder, RecorderConfig, RecorderError, RecorderStats, RecordingSummary, TrackId, TrackMeta,
};
use crate::text::printable;
use crate::util::LatencySamples;
use crate::view::{LiveView, ViewChannel};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Bytes of frames waiting for the writer thread, across all tracks, before new frames are
/// dropped: a bound on memory that still lets many small messages through a writer stall.
const WRITER_BACKLOG_BYTES: usize = 128 << 20;

/// What a queued frame counts against the backlog besides its payload.
const FRAME_OVERHEAD_BYTES: usize = 64;

/// The writer thread's inbox: tracks always get in, frames while the backlog has room.
#[derive(Clone)]
struct WriterQueue {
    commands: Sender<Command>,
    backlog: Arc<AtomicUsize>,
}

impl WriterQueue {
    /// Queues a frame unless the backlog is full; `Err(true)` when it was dropped for that,
    /// `Err(false)` once the writer is gone.
    fn try_send_frame(&self, command: Command, len: usize) -> Result<(), bool> {
        let cost = len + FRAME_OVERHEAD_BYTES;
        let queued = self.backlog.fetch_add(cost, Ordering::Relaxed);
        if queued + cost > WRITER_BACKLOG_BYTES {
            self.backlog.fetch_sub(cost, Ordering::Relaxed);
            return Err(true);
        }
        self.commands.send(command).map_err(|_| false)
    }

    /// Marks a frame of `len` bytes written.
    fn written(backlog: &AtomicUsize, len: usize) {
        backlog.fetch_sub(len + FRAME_OVERHEAD_BYTES, Ordering::Relaxed);
    }
}
/// How often the writer thread flushes, rotates and reports when idle.
const WRITER_TICK: Duration = Duration::from_millis(250);
/// How often the progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// What the writer thread is asked to do.
enum Command {
    Track(Box<TrackMeta>, oneshot::Sender<TrackId>),
    Frame { track: TrackId, payload: bytes::Bytes, receive_ns: u64, publish_ns: Option<u64> },
}

/// Everything a recording session reports at the end; `record --summary-json FILE` writes it
/// as JSON (docs/config.md, "Summaries").
#[derive(Debug, serde::Serialize)]
pub struct RecordReport {
    /// The writer's summary (files, frames and bytes per topic, problems).
    pub summary: RecordingSummary,
    /// Frames dropped because the writer was behind.
    pub dropped_behind: u64,
    /// Tracks left out because `max_tracks` were being recorded.
    pub tracks_over_limit: u64,
    /// End-to-end latency (receive time minus the frame's timestamp), p50 and p99 in ms.
    pub latency_ms: Option<(f64, f64)>,
    /// Connection losses and how long each reconnect took.
    pub outages: daemon::OutageReport,
    /// Frames dropped because they could not be decrypted, by publisher and reason.
    pub undecryptable: Vec<Undecryptable>,
    /// The live view's channels (`record --view`; empty without): frames and the latency
    /// the view added.
    pub view: Vec<crate::view::ChannelReport>,
}

/// Records the room in the configuration until `stop` becomes true, serving a live view on
/// `view` (`HOST:PORT`) as well when given.
pub async fn run(
    loaded: Loaded,
    view: Option<&str>,
    stop: watch::Receiver<bool>,
) -> Result<RecordReport, DaemonError> {
    // Checked before connecting; the names are the server's, whatever the credentials say (a
    // ready token carries its own room and identity).
    let mut recorder = recorder_config(&loaded)?;
    let view = match view {
        Some(address) => Some(start_view(&loaded, address).await?),
        None => None,
    };
    let (room, events) = join(&loaded).await?;
    recorder.room = room.name().to_string();
    recorder.identity = room.identity().to_string();
    let report = record(room, events, recorder, loaded.config.record.clone(), view.clone(), stop);
    let mut report = report.await;
    if let Some(view) = view {
        if let Ok(report) = &mut report {
            report.view = view.report();
        }
        if let Some(view) = Arc::into_inner(view) {
            view.stop().await;
        }
    }
    report
}

/// What a `dtbridge view` session reports at the end; `view --summary-json FILE` writes it.
#[derive(Debug, serde::Serialize)]
pub struct ViewReport {
    /// Frames received per channel (a track nobody watched received none).
    pub channels: Vec<crate::view::ChannelReport>,
    /// Connection losses and how long each reconnect took.
    pub outages: Outages,
    /// Frames dropped because they could not be decrypted, by publisher and reason.
    pub undecryptable: Vec<Undecryptable>,
}

/// Serves the live view of the room in the configuration on `address` until `stop` becomes
/// true, without recording: a track is subscribed only while a Foxglove client watches it.
pub async fn view(
    loaded: Loaded,
    address: &str,
    stop: watch::Receiver<bool>,
) -> Result<ViewReport, DaemonError> {
    let view = start_view(&loaded, address).await?;
    let (room, events) = join(&loaded).await?;
    let (outages, undecryptable) =
        serve_view(room, events, loaded.config.record.clone(), view.clone(), stop).await;
    let channels = view.report();
    if let Some(view) = Arc::into_inner(view) {
        view.stop().await;
    }
    Ok(ViewReport { channels, outages, undecryptable })
}

/// The live view on `address`, with the recorder's topic template.
pub async fn start_view(loaded: &Loaded, address: &str) -> Result<Arc<LiveView>, DaemonError> {
    let view = LiveView::start(address, &loaded.config.record.topic_template)
        .await
        .map_err(|err| DaemonError::Runtime(err.to_string()))?;
    tracing::info!(
        "live view on ws://{}: in Foxglove, Open connection, Foxglove WebSocket",
        crate::view::with_port(address, view.port())
    );
    Ok(Arc::new(view))
}

/// Joins the room as the operator.
async fn join(loaded: &Loaded) -> Result<(Room, RoomEvents), DaemonError> {
    let mut connection =
        loaded.config.livekit.connection(Role::Operator).map_err(DaemonError::Connect)?;
    if let Connection::Server(options) = &mut connection {
        // A subscriber gets frames again sooner from a new session (`resume_session`).
        options.resume_session = false;
    }
    let (room, events) = daemon::connect(connection).await.map_err(DaemonError::Connect)?;
    daemon::log_joined(&room);
    Ok((room, events))
}

/// The writer's configuration from `[record]`, checked; its room and identity are left empty
/// for the caller to fill in once known.
pub fn recorder_config(loaded: &Loaded) -> Result<RecorderConfig, DaemonError> {
    let record = &loaded.config.record;
    let positive = |key: &str, value: Option<f64>| match value {
        Some(v) if !(v.is_finite() && v > 0.0) => {
            Err(loaded.error(format!("record.{key}"), format!("{v}: must be > 0")))
        }
        _ => Ok(value),
    };
    let max_mb = positive("max_file_mb", record.max_file_mb)?;
    let max_file_duration = record
        .max_file_minutes
        .map(|minutes| crate::duration::positive_seconds(minutes * 60.0))
        .transpose()
        .map_err(|why| loaded.error("record.max_file_minutes", why))?;
    if record.buffer_frames == 0 {
        return Err(loaded.error("record.buffer_frames", "must be at least 1").into());
    }
    // Room and identity are the server's, known once joined: the caller fills them in.
    let mut config = RecorderConfig::new(
        loaded.base_dir().join(&record.output_dir),
        String::new(),
        String::new(),
    );
    config.file_template = record.file_template.clone();
    config.topic_template = record.topic_template.clone();
    config.check_templates().map_err(|(key, why)| loaded.error(format!("record.{key}"), why))?;
    config.max_file_bytes = max_mb.map(|mb| (mb * 1e6) as u64);
    config.max_file_duration = max_file_duration;
    Ok(config)
}

/// Records `room` until `stop`, then finalizes the file and leaves; frames go to `view` too.
pub async fn record(
    room: Room,
    mut events: RoomEvents,
    recorder: RecorderConfig,
    patterns: RecordConfig,
    view: Option<Arc<LiveView>>,
    mut stop: watch::Receiver<bool>,
) -> Result<RecordReport, DaemonError> {
    let recorder = Recorder::open(recorder).map_err(|err| DaemonError::Runtime(err.to_string()))?;
    let (commands, inbox) = std::sync::mpsc::channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    let queue = WriterQueue { commands, backlog: backlog.clone() };
    let (stats_tx, stats) = watch::channel(RecorderStats::default());
    let writer = std::thread::Builder::new()
        .name("dtbridge-mcap".into())
        .spawn(move || write_loop(recorder, inbox, &backlog, stats_tx))
        .map_err(|err| DaemonError::Runtime(format!("cannot start the writer thread: {err}")))?;

    let dropped_behind = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(LatencySamples::default());
    let mut room_tracks = RoomTracks::new(patterns.clone());
    let mut progress = tokio::time::interval(PROGRESS_INTERVAL);
    progress.tick().await;
    loop {
        tokio::select! {
            _ = crate::util::stopped(&mut stop) => break,
            _ = progress.tick() => {
                eprintln!("{}", progress_line(&stats.borrow(), dropped_behind.load(Ordering::Relaxed)));
            }
            event = events.recv() => match room_tracks.on_event(event) {
                Next::Track(track) => {
                    room_tracks.readers.spawn(read_track(
                        room.clone(),
                        track,
                        patterns.buffer_frames,
                        queue.clone(),
                        view.clone(),
                        dropped_behind.clone(),
                        latencies.clone(),
                    ));
                }
                Next::Continue => continue,
                Next::End => break,
            },
            Some(_) = room_tracks.readers.join_next(), if !room_tracks.readers.is_empty() => {}
        }
    }
    room_tracks.readers.abort_all();
    drop(queue);
    let summary = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|err| DaemonError::Runtime(err.to_string()))?
        .map_err(|_| DaemonError::Runtime("the MCAP writer thread panicked".into()))?
        .map_err(|err| DaemonError::Runtime(err.to_string()))?;
    room.leave().await;
    let undecryptable = room.undecryptable();
    let latency_ms = latencies.p50_p99();
    Ok(RecordReport {
        summary,
        dropped_behind: dropped_behind.load(Ordering::Relaxed),
        tracks_over_limit: room_tracks.over_limit,
        latency_ms,
        outages: room_tracks.outages.report(),
        undecryptable,
        view: Vec::new(),
    })
}

/// Serves `room`'s tracks in `view` until `stop`: each track's channel is advertised at once,
/// and the track subscribed while a client watches it. Returns the connection losses and the
/// frames that could not be decrypted.
async fn serve_view(
    room: Room,
    mut events: RoomEvents,
    patterns: RecordConfig,
    view: Arc<LiveView>,
    mut stop: watch::Receiver<bool>,
) -> (Outages, Vec<Undecryptable>) {
    let mut room_tracks = RoomTracks::new(patterns.clone());
    loop {
        tokio::select! {
            _ = crate::util::stopped(&mut stop) => break,
            event = events.recv() => match room_tracks.on_event(event) {
                Next::Track(track) => {
                    let buffer_frames = patterns.buffer_frames;
                    room_tracks.readers.spawn(view_track(room.clone(), track, buffer_frames, view.clone()));
                }
                Next::Continue => continue,
                Next::End => break,
            },
            Some(_) = room_tracks.readers.join_next(), if !room_tracks.readers.is_empty() => {}
        }
    }
    room_tracks.readers.abort_all();
    room.leave().await;
    (room_tracks.outages.report(), room.undecryptable())
}

/// Connection losses, as a summary reports them.
pub type Outages = daemon::OutageReport;

/// The tracks of the room an operator takes: those the patterns match, up to `max_tracks`
/// at once, each with a task of its own.
struct RoomTracks {
    patterns: RecordConfig,
    /// One task per track taken; a task ends when its track is unpublished, and the set
    /// forgets it then.
    readers: tokio::task::JoinSet<()>,
    /// Tracks left out because `max_tracks` were taken.
    over_limit: u64,
    outages: daemon::Outages,
}

/// What to do after a room event.
enum Next {
    /// Take this track.
    Track(RemoteDataTrack),
    Continue,
    /// The room is gone.
    End,
}

impl RoomTracks {
    fn new(patterns: RecordConfig) -> Self {
        Self {
            patterns,
            readers: tokio::task::JoinSet::new(),
            over_limit: 0,
            outages: daemon::Outages::default(),
        }
    }

    fn on_event(&mut self, event: Option<RoomEvent>) -> Next {
        match event {
            Some(RoomEvent::TrackPublished(track)) => {
                if !wanted(&self.patterns, &track) {
                    return Next::Continue;
                }
                if self.readers.len() >= self.patterns.max_tracks {
                    self.over_limit += 1;
                    if crate::recorder::should_log(self.over_limit) {
                        tracing::warn!(
                            "track {:?} of {:?} left out: {} tracks are taken \
                             (record.max_tracks); {} left out so far",
                            printable(track.info().name()),
                            printable(track.publisher_identity()),
                            self.patterns.max_tracks,
                            self.over_limit
                        );
                    }
                    return Next::Continue;
                }
                Next::Track(track)
            }
            Some(RoomEvent::Resuming { reason }) => {
                self.outages.resuming(&reason);
                Next::Continue
            }
            Some(RoomEvent::Resumed) => {
                self.outages.resumed();
                Next::Continue
            }
            Some(RoomEvent::Reconnecting { reason }) => {
                self.outages.lost(&reason);
                Next::Continue
            }
            Some(RoomEvent::Reconnected) => {
                self.outages.reconnected("subscriptions renewed");
                Next::Continue
            }
            Some(RoomEvent::Disconnected { reason }) => {
                tracing::error!("the room ended: {}", printable(&reason));
                Next::End
            }
            Some(RoomEvent::TrackUnpublished { .. }) => Next::Continue,
            None => Next::End,
        }
    }
}

fn wanted(patterns: &RecordConfig, track: &RemoteDataTrack) -> bool {
    patterns.participants.is_match(track.publisher_identity())
        && patterns.tracks.is_match(track.info().name())
}

/// The track's metadata with its schema text; a schema that cannot be fetched is recorded as
/// missing (the recorder counts it) rather than holding up the recording.
async fn track_meta(room: &Room, track: &RemoteDataTrack) -> TrackMeta {
    let info = track.info();
    let schema_text = match info.schema() {
        Some(_) => match room.schema_definition(track).await {
            Ok(text) => Some(text),
            Err(err) => {
                let name = printable(info.name());
                tracing::warn!("track '{name}': {err}; recording it without its schema");
                None
            }
        },
        None => None,
    };
    TrackMeta {
        publisher: track.publisher_identity().to_string(),
        track: info.name().to_string(),
        schema_name: info.schema().map(|s| s.name().to_string()),
        schema_encoding: info.schema().and_then(|s| schema_encoding_name(s.encoding())),
        schema_text,
        frame_encoding: info.frame_encoding().and_then(frame_encoding_name),
    }
}

/// Subscribes to a track and feeds its frames to the writer. Each track has a task of its
/// own, and it subscribes before fetching the schema: the server forwards frames only to
/// subscriptions already set up, so every round trip before subscribing loses the first
/// frames of a track published while the operator is in the room.
async fn read_track(
    room: Room,
    track: RemoteDataTrack,
    buffer_frames: usize,
    queue: WriterQueue,
    view: Option<Arc<LiveView>>,
    dropped_behind: Arc<AtomicU64>,
    latencies: Arc<LatencySamples>,
) {
    let Some(mut frames) = subscribe(&track, buffer_frames).await else { return };
    let meta = track_meta(&room, &track).await;
    let view = view.and_then(|view| view_channel(&view, &meta));
    let (reply, track_id) = oneshot::channel();
    if queue.commands.send(Command::Track(Box::new(meta), reply)).is_err() {
        return;
    }
    let Ok(track_id) = track_id.await else { return };
    let mut unit_reported = false;
    while let Some(frame) = frames.next().await {
        let receive_ns = crate::util::now_ns();
        let publish_ns = frame.user_timestamp().and_then(|raw| {
            let (ns, unit) = user_timestamp_ns(raw);
            if !unit_reported && (ns.is_none() || unit != TimestampUnit::Milliseconds) {
                unit_reported = true;
                report_timestamp_unit(&track, raw, ns.is_some(), unit);
            }
            ns
        });
        if let Some(publish_ns) = publish_ns {
            latencies.add((receive_ns as f64 - publish_ns as f64) / 1e6);
        }
        let payload = frame.payload();
        if let Some(view) = &view {
            view.log(&payload, receive_ns);
        }
        let len = payload.len();
        let command = Command::Frame { track: track_id, payload, receive_ns, publish_ns };
        match queue.try_send_frame(command, len) {
            Ok(()) => {}
            Err(true) => {
                dropped_behind.fetch_add(1, Ordering::Relaxed);
            }
            Err(false) => return,
        }
    }
}

/// A subscription to `track` buffering `buffer_frames`; `None` (logged) when refused.
async fn subscribe(track: &RemoteDataTrack, buffer_frames: usize) -> Option<DataTrackStream> {
    let options = DataTrackSubscribeOptions::default().with_buffer_size(buffer_frames);
    track
        .subscribe_with_options(options)
        .await
        .inspect_err(|err| {
            tracing::error!("cannot subscribe to '{}': {err}", printable(track.info().name()))
        })
        .ok()
}

/// The track's channel in `view`; `None` (said once) when the view refuses it.
fn view_channel(view: &LiveView, meta: &TrackMeta) -> Option<ViewChannel> {
    view.add_track(meta).inspect_err(|err| tracing::warn!("live view: {}", printable(err))).ok()
}

/// How long a track stays subscribed after its last Foxglove client left: a client that
/// switches layouts or reconnects gets frames at once.
const VIEW_GRACE: Duration = Duration::from_secs(2);

/// A track of `dtbridge view`: its channel advertised until the track is unpublished, the
/// track subscribed while a client watches the channel (and [`VIEW_GRACE`] longer).
async fn view_track(room: Room, track: RemoteDataTrack, buffer_frames: usize, view: Arc<LiveView>) {
    let meta = track_meta(&room, &track).await;
    let Some(channel) = view_channel(&view, &meta) else { return };
    let mut watchers = channel.watchers();
    loop {
        tokio::select! {
            watched = watchers.wait_for(|n| *n > 0) => if watched.is_err() { return },
            _ = track.wait_for_unpublish() => return,
        }
        let Some(mut frames) = subscribe(&track, buffer_frames).await else { return };
        tracing::info!("live view: {} subscribed", printable(channel.topic()));
        let mut unwatched_since: Option<tokio::time::Instant> = None;
        loop {
            let grace_over = async {
                match unwatched_since {
                    Some(since) => tokio::time::sleep_until(since + VIEW_GRACE).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = frames.next() => match frame {
                    Some(frame) => channel.log(&frame.payload(), crate::util::now_ns()),
                    None => return,
                },
                changed = watchers.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let watched = *watchers.borrow_and_update() > 0;
                    unwatched_since = match watched {
                        true => None,
                        false => unwatched_since.or(Some(tokio::time::Instant::now())),
                    };
                }
                _ = grace_over => break,
            }
        }
        // Dropping the last stream unsubscribes on the server.
        drop(frames);
        tracing::info!(
            "live view: {} unsubscribed (nobody watches it)",
            printable(channel.topic())
        );
    }
}

/// Says once per track that its user timestamps are not UNIX milliseconds (see
/// [`user_timestamp_ns`]), or are no time at all.
fn report_timestamp_unit(track: &RemoteDataTrack, raw: u64, readable: bool, unit: TimestampUnit) {
    let (name, publisher) = (track.info().name(), track.publisher_identity());
    if readable {
        tracing::warn!(
            "track {name:?} of {publisher:?} stamps its frames in {unit} (e.g. {raw}), not \
             milliseconds: recorded as {unit}"
        );
    } else {
        tracing::warn!(
            "track {name:?} of {publisher:?} stamps its frames with {raw}, no time in any unit: \
             such frames are recorded at the time they arrived"
        );
    }
}

/// The writer thread: frames in, MCAP out, a stats snapshot every tick. A
/// failing file (a full disk) is sealed by the recorder, which tries a new one a little later;
/// the recording goes on.
fn write_loop(
    mut recorder: Recorder,
    inbox: Receiver<Command>,
    backlog: &AtomicUsize,
    stats: watch::Sender<RecorderStats>,
) -> Result<RecordingSummary, RecorderError> {
    let mut failures = 0u64;
    // A snapshot copies every track's and file's counters: once per tick, not per frame.
    let mut published_at = std::time::Instant::now();
    loop {
        let outcome = match inbox.recv_timeout(WRITER_TICK) {
            Ok(Command::Track(meta, reply)) => {
                _ = reply.send(recorder.add_track(*meta));
                Ok(())
            }
            Ok(Command::Frame { track, payload, receive_ns, publish_ns }) => {
                let written = recorder.write(track, &payload, receive_ns, publish_ns);
                WriterQueue::written(backlog, payload.len());
                written
            }
            Err(RecvTimeoutError::Timeout) => Ok(()),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Err(err) = outcome.and_then(|()| recorder.tick()) {
            failures += 1;
            if failures == 1 || failures.is_multiple_of(100) {
                tracing::error!("recording: {err} ({failures} write failures so far)");
            }
        }
        if published_at.elapsed() >= WRITER_TICK {
            stats.send_replace(recorder.stats());
            published_at = std::time::Instant::now();
        }
    }
    recorder.finish()
}

/// The recorder's progress line; remote names escaped (see [`printable`]).
fn progress_line(stats: &RecorderStats, dropped_behind: u64) -> String {
    let topics: Vec<String> = stats
        .tracks
        .iter()
        .map(|t| {
            let topic = printable(t.topic.as_deref().unwrap_or(&t.track));
            format!(
                "{topic} {} frames {:.1} MB missing {}",
                t.frames,
                t.bytes as f64 / 1e6,
                t.missing
            )
        })
        .collect();
    let dropped = stats.dropped.decompress + stats.dropped.unknown_track + stats.dropped.io;
    format!(
        "recording {}: {:.1} MB | {} | dropped {} (writer behind {dropped_behind})",
        stats.file.as_ref().map_or("-".into(), |f| f.display().to_string()),
        stats.file_bytes as f64 / 1e6,
        topics.join(" | "),
        dropped + dropped_behind
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::TrackStats;

    #[test]
    fn the_progress_line_escapes_remote_names() {
        let track = |name: &str| TrackStats {
            publisher: "robot\n2026-11-26T00:00:00Z  INFO forged".into(),
            track: name.into(),
            topic: None,
            frames: 0,
            bytes: 0,
            decompress_failures: 0,
            frames_without_schema: 0,
            missing: 0,
        };
        let stats = RecorderStats {
            tracks: vec![track("/camera/imu"), track("evil\u{1b}]0;pwned\u{7}\nINFO forged\0")],
            ..Default::default()
        };
        let line = progress_line(&stats, 0);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("| /camera/imu 0 frames"), "{line}");
        assert!(line.contains("evil\\u{1b}]0;pwned\\u{7}\\nINFO forged\\u{0} 0 frames"), "{line}");
    }
}
