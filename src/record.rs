//! `dtbridge record`: joins the room as the operator, subscribes to the data tracks that match
//! the `[record]` patterns (including tracks published later, and tracks republished after a
//! publisher reconnects) and writes them to MCAP with [`crate::recorder`].
//!
//! Receiving stays on the async runtime; the MCAP writer runs on a thread of its own, fed
//! through a bounded queue: when the disk is slower than the network, frames are dropped and
//! counted instead of piling up in memory.

use crate::config::{Connection, Loaded, RecordConfig};
use crate::daemon::{self, DaemonError};
use crate::livekit::{
    DataTrackSubscribeOptions, RemoteDataTrack, Room, RoomEvent, RoomEvents, TimestampUnit,
    frame_encoding_name, schema_encoding_name, user_timestamp_ns,
};
use crate::recorder::{
    Recorder, RecorderConfig, RecorderError, RecorderStats, RecordingSummary, TrackId, TrackMeta,
};
use crate::text::printable;
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
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
/// Latency samples kept for the percentiles.
const LATENCY_SAMPLES: usize = 100_000;

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
}

/// Records the room in the configuration until `stop` becomes true.
pub async fn run(loaded: Loaded, stop: watch::Receiver<bool>) -> Result<RecordReport, DaemonError> {
    let mut connection =
        loaded.config.livekit.connection("operator").map_err(DaemonError::Connect)?;
    if let Connection::Server(options) = &mut connection {
        // A subscriber gets frames again sooner from a new session (`resume_session`).
        options.resume_session = false;
    }
    // Checked before connecting; the names are the server's, whatever the credentials say (a
    // ready token carries its own room and identity).
    let mut recorder = recorder_config(&loaded)?;
    let (room, events) = daemon::connect(connection).await.map_err(DaemonError::Connect)?;
    daemon::log_joined(&room);
    recorder.room = room.name().to_string();
    recorder.identity = room.identity().to_string();
    record(room, events, recorder, loaded.config.record.clone(), stop).await
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

/// Records `room` until `stop`, then finalizes the file and leaves.
pub async fn record(
    room: Room,
    mut events: RoomEvents,
    recorder: RecorderConfig,
    patterns: RecordConfig,
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
    let latencies = Arc::new(Mutex::new(Vec::new()));
    // A reader ends when its track is unpublished; the set forgets it then.
    let mut readers = tokio::task::JoinSet::new();
    let mut tracks_over_limit = 0u64;
    let mut progress = tokio::time::interval(PROGRESS_INTERVAL);
    progress.tick().await;
    let mut outages = daemon::Outages::default();
    loop {
        tokio::select! {
            _ = crate::util::stopped(&mut stop) => break,
            _ = progress.tick() => {
                eprintln!("{}", progress_line(&stats.borrow(), dropped_behind.load(Ordering::Relaxed)));
            }
            event = events.recv() => match event {
                Some(RoomEvent::TrackPublished(track)) => {
                    if !wanted(&patterns, &track) {
                        continue;
                    }
                    if readers.len() >= patterns.max_tracks {
                        tracks_over_limit += 1;
                        if crate::recorder::should_log(tracks_over_limit) {
                            tracing::warn!(
                                "track {:?} of {:?} not recorded: {} tracks are (record.max_tracks); \
                                 {tracks_over_limit} left out so far",
                                track.info().name(),
                                track.publisher_identity(),
                                patterns.max_tracks
                            );
                        }
                        continue;
                    }
                    readers.spawn(read_track(
                        room.clone(),
                        track,
                        patterns.buffer_frames,
                        queue.clone(),
                        dropped_behind.clone(),
                        latencies.clone(),
                    ));
                }
                Some(RoomEvent::Resuming { reason }) => outages.resuming(&reason),
                Some(RoomEvent::Resumed) => outages.resumed(),
                Some(RoomEvent::Reconnecting { reason }) => outages.lost(&reason),
                Some(RoomEvent::Reconnected) => outages.reconnected("subscriptions renewed"),
                Some(RoomEvent::Disconnected { reason }) => {
                    tracing::error!("the room ended: {reason}; finishing the recording");
                    break;
                }
                Some(RoomEvent::TrackUnpublished { .. }) => {}
                None => break,
            },
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
        }
    }
    readers.abort_all();
    drop(queue);
    let summary = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|err| DaemonError::Runtime(err.to_string()))?
        .map_err(|_| DaemonError::Runtime("the MCAP writer thread panicked".into()))?
        .map_err(|err| DaemonError::Runtime(err.to_string()))?;
    room.leave().await;
    let mut latencies = std::mem::take(&mut *crate::util::lock(&latencies));
    latencies.sort_by(f64::total_cmp);
    let latency_ms = (!latencies.is_empty()).then(|| {
        (crate::util::percentile(&latencies, 0.5), crate::util::percentile(&latencies, 0.99))
    });
    Ok(RecordReport {
        summary,
        dropped_behind: dropped_behind.load(Ordering::Relaxed),
        tracks_over_limit,
        latency_ms,
        outages: outages.report(),
    })
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
    dropped_behind: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<f64>>>,
) {
    let options = DataTrackSubscribeOptions::default().with_buffer_size(buffer_frames);
    let mut frames = match track.subscribe_with_options(options).await {
        Ok(frames) => frames,
        Err(err) => {
            tracing::error!("cannot subscribe to '{}': {err}", printable(track.info().name()));
            return;
        }
    };
    let meta = track_meta(&room, &track).await;
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
            let mut samples = crate::util::lock(&latencies);
            if samples.len() < LATENCY_SAMPLES {
                samples.push((receive_ns as f64 - publish_ns as f64) / 1e6);
            }
        }
        let payload = frame.payload();
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
