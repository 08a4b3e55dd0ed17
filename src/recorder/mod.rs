//! The MCAP recording core of `dtbridge record`, independent of the transport: the caller
//! announces tracks ([`Recorder::add_track`]) and feeds frames ([`Recorder::write`]); the
//! recorder writes them to MCAP files with the `mcap` crate.
//!
//! - One channel per (publisher, track). The topic comes from
//!   [`RecorderConfig::topic_template`] (default: the track name, prefixed with `/<publisher>`
//!   only when several publishers share the track name), sanitized: `/` separators, no NUL or
//!   control characters, no `.`/`..` segments, at most 256 characters, unique in the file.
//! - Encodings map 1:1 from the track metadata (MCAP registry strings, see
//!   [`crate::livekit::frame_encoding_name`]); `<base>+zstd` frames are decompressed and stored as `<base>`;
//!   untyped tracks are stored as raw bytes under [`RAW_MESSAGE_ENCODING`]. `cdr` channels get
//!   rosbag2's channel metadata (`offered_qos_profiles`, and `topic_type_hash` for this crate's
//!   types); the header profile is `ros2` while every channel is `cdr` with a `ros2msg`/`ros2idl`
//!   schema (it is rewritten in place to no profile when another channel joins).
//! - Log time = receive time (ns); publish time = the frame's user timestamp (UNIX ms, as ns),
//!   or the receive time without one.
//! - zstd chunks. Every [`RecorderConfig::flush_interval`] (at most 1 s) the open chunk is
//!   closed, written and `fdatasync`ed, so after a SIGKILL or a power loss everything older
//!   than that is in complete chunks, which [`repair`] turns into a complete file. The check
//!   runs on [`Recorder::write`] and [`Recorder::tick`]; call `tick` at least every
//!   `flush_interval` so a quiet recording is flushed too.
//! - Files are named by [`RecorderConfig::file_template`] (sanitized to one file name inside
//!   the output directory), rotated by size and duration, and never overwrite an existing file
//!   (`-1`, `-2`, ... is added instead).
//! - Bad input is counted ([`RecorderStats`]) and logged (first occurrence, then every
//!   1000th), never fatal: frames that fail to decompress are dropped; frames of a track whose
//!   schema text is missing are recorded under a schema with the type name and no encoding; a
//!   write error (full disk) ends the file: it is sealed in place (complete records kept,
//!   summary and index appended), the error names the file and the OS error, frames are dropped
//!   for [`RETRY_AFTER_ERROR`], and then a new file is tried.
//!
//! The calls block on file I/O: run the recorder on a blocking thread.

pub(crate) mod encoding;
mod file;
mod gaps;
pub(crate) mod naming;
mod protobuf;
mod repair;
pub(crate) mod seal;
mod sink;

pub use encoding::{DEFAULT_QOS_PROFILES, MAX_DECOMPRESSED_BYTES, RAW_MESSAGE_ENCODING};
pub use naming::MAX_TOPIC_CHARS;
pub use repair::{RepairError, RepairReport, repair};

use crate::codec::compress::zstd_decompress;
use encoding::ChannelSpec;
use file::McapFile;
use gaps::GapCounter;
use naming::{Template, sanitize_file_name, topic_with_suffix};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The default file name template.
pub const DEFAULT_FILE_TEMPLATE: &str = "{date}_{room}_{identity}_{index}.mcap";
/// The default topic template.
pub const DEFAULT_TOPIC_TEMPLATE: &str = "{track}";
/// After a write error, frames are dropped for this long before a new file is tried.
pub const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);
/// The longest allowed [`RecorderConfig::flush_interval`].
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

const FILE_FIELDS: &[&str] = &["date", "room", "identity", "index"];
/// The fields of a topic template.
pub(crate) const TOPIC_FIELDS: &[&str] = &["track", "publisher"];

/// Where and how to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderConfig {
    /// The directory of the files (created when missing).
    pub output_dir: PathBuf,
    /// File name template: `{date}` (UTC `YYYYMMDD-HHMMSS` of the file's start), `{room}`,
    /// `{identity}`, `{index}` (0, 1, ... per file of this recording). The result is
    /// sanitized to one file name ending in `.mcap`.
    pub file_template: String,
    /// Topic template: `{track}`, `{publisher}`. Without `{publisher}`, topics of a track name
    /// that several publishers share are prefixed with `/<publisher>`.
    pub topic_template: String,
    /// The room recorded (for file names and the file's metadata).
    pub room: String,
    /// The recorder's identity (for file names and the file's metadata).
    pub identity: String,
    /// Start a new file before the data would exceed this size (the summary adds a little).
    pub max_file_bytes: Option<u64>,
    /// Start a new file after this long.
    pub max_file_duration: Option<Duration>,
    /// Target uncompressed chunk size in bytes.
    pub chunk_size: u64,
    /// How often the open chunk is written and synced (at most [`MAX_FLUSH_INTERVAL`]).
    pub flush_interval: Duration,
}

impl RecorderConfig {
    /// Defaults: the default templates, no rotation, 1 MiB chunks, 1 s flushes.
    pub fn new(
        output_dir: impl Into<PathBuf>,
        room: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            output_dir: output_dir.into(),
            file_template: DEFAULT_FILE_TEMPLATE.into(),
            topic_template: DEFAULT_TOPIC_TEMPLATE.into(),
            room: room.into(),
            identity: identity.into(),
            max_file_bytes: None,
            max_file_duration: None,
            chunk_size: 1 << 20,
            flush_interval: MAX_FLUSH_INTERVAL,
        }
    }
}

/// A track as announced by its publisher.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackMeta {
    /// The publisher's identity.
    pub publisher: String,
    /// The track name.
    pub track: String,
    /// Schema id name (the ROS type, e.g. `sensor_msgs/msg/Image`).
    pub schema_name: Option<String>,
    /// Schema id encoding as an MCAP registry string (`ros2msg`, `protobuf`, ...; see
    /// [`crate::livekit::schema_encoding_name`]).
    pub schema_encoding: Option<String>,
    /// The schema text fetched from the server, `None` when the fetch failed.
    pub schema_text: Option<String>,
    /// Frame encoding as an MCAP registry string (`cdr`, `json`, `cdr+zstd`, ...; see
    /// [`crate::livekit::frame_encoding_name`]); `None` for an untyped track.
    pub frame_encoding: Option<String>,
}

/// A track of a [`Recorder`]: the same for the same (publisher, track name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(u32);

/// A recording file could not be created or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {action}: {source}", path.display())]
pub struct FileError {
    /// The file (or directory).
    pub path: PathBuf,
    /// What failed, e.g. `cannot write`.
    pub action: &'static str,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl FileError {
    fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        Self { path: path.to_path_buf(), action, source }
    }

    /// The OS error the sink latched, else the MCAP error.
    fn mcap(path: &Path, action: &'static str, err: mcap::McapError, sink: &sink::Sink) -> Self {
        let source = sink.error().unwrap_or_else(|| match err {
            mcap::McapError::Io(err) => err,
            other => io::Error::other(other),
        });
        Self::io(path, action, source)
    }
}

/// Errors of [`Recorder::open`] and [`Recorder::finish`].
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// A configuration value is invalid.
    #[error("recorder config: {0}")]
    Config(String),
    /// A file could not be created or written.
    #[error(transparent)]
    File(#[from] FileError),
}

/// Errors of [`Recorder::write`] and [`Recorder::tick`]: the current file failed (it was
/// sealed as far as possible; see [`FileReport`]). Problems with one frame are not errors.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Creating or writing the file failed (e.g. the disk is full).
    #[error(transparent)]
    File(#[from] FileError),
}

/// How a file ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    /// Finished normally: summary, indexes, footer.
    Complete,
    /// A write failed; the file was sealed in place (complete records kept, summary
    /// appended) and is complete and indexed.
    Sealed {
        /// The write error.
        error: String,
    },
    /// A write failed and the summary could not be appended: the file ends after its last
    /// complete record; `repair` makes it indexed.
    Unindexed {
        /// The errors.
        error: String,
    },
    /// A write failed before anything usable reached the disk; the file was removed.
    Removed {
        /// The write error.
        error: String,
    },
}

/// A closed file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileReport {
    /// Its path.
    pub path: PathBuf,
    /// Messages in it.
    pub messages: u64,
    /// Its size.
    pub bytes: u64,
    /// Messages accepted for it that a write error kept out of it (the chunk being written).
    pub lost: u64,
    /// How it ended.
    #[serde(flatten)]
    pub status: FileStatus,
}

/// Frames not recorded, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DropCounts {
    /// `<base>+zstd` frames that did not decompress (or exceeded
    /// [`MAX_DECOMPRESSED_BYTES`]).
    pub decompress: u64,
    /// Frames for a [`TrackId`] this recorder never issued.
    pub unknown_track: u64,
    /// Frames lost to a write error: accepted but not in the sealed file, or dropped while
    /// the recording waits [`RETRY_AFTER_ERROR`] for a new file.
    pub io: u64,
}

/// Counters of one track.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrackStats {
    /// Publisher identity.
    pub publisher: String,
    /// Track name.
    pub track: String,
    /// Its topic in the current file (once it has a frame there).
    pub topic: Option<String>,
    /// Frames recorded.
    pub frames: u64,
    /// Their size as stored (after decompression).
    pub bytes: u64,
    /// Frames dropped because they did not decompress.
    pub decompress_failures: u64,
    /// Frames recorded without a schema (the schema text is missing).
    pub frames_without_schema: u64,
    /// Frames that never arrived, seen as gaps between the timestamps of received ones.
    pub missing: u64,
}

/// A snapshot of the recorder's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecorderStats {
    /// Per track, in the order they were added.
    pub tracks: Vec<TrackStats>,
    /// Frames dropped, by reason.
    pub dropped: DropCounts,
    /// Frames recorded without their schema (all tracks).
    pub frames_without_schema: u64,
    /// Tracks whose name had to be changed to make a topic.
    pub renamed_tracks: u64,
    /// The file being written.
    pub file: Option<PathBuf>,
    /// Its size so far (the open chunk not included).
    pub file_bytes: u64,
    /// The files closed so far.
    pub files: Vec<FileReport>,
}

/// What a finished recording produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordingSummary {
    /// Every file, in order.
    pub files: Vec<FileReport>,
    /// The final counters.
    pub stats: RecorderStats,
}

struct Track {
    meta: TrackMeta,
    spec: Arc<ChannelSpec>,
    /// Bumped when the metadata changes: the track then gets a new channel.
    generation: u32,
    topic: Option<String>,
    renamed: bool,
    frames: u64,
    bytes: u64,
    decompress_failures: u64,
    frames_without_schema: u64,
    gaps: GapCounter,
}

impl Track {
    fn label(&self) -> String {
        format!("track {:?} of {:?}", self.meta.track, self.meta.publisher)
    }
}

/// Whether the `count`th occurrence of a problem is logged: the first, then every 1000th.
pub(crate) fn should_log(count: u64) -> bool {
    count == 1 || count.is_multiple_of(1000)
}

/// Records tracks to MCAP files; see the module docs.
pub struct Recorder {
    config: RecorderConfig,
    file_template: Template,
    topic_template: Template,
    tracks: Vec<Track>,
    by_key: HashMap<(String, String), TrackId>,
    file: Option<McapFile>,
    next_index: u64,
    files: Vec<FileReport>,
    failed_at: Option<Instant>,
    dropped: DropCounts,
    frames_without_schema: u64,
}

impl RecorderConfig {
    /// Checks the file and topic templates; on error, the key (`file_template`,
    /// `topic_template`) and why.
    pub fn check_templates(&self) -> Result<(), (&'static str, String)> {
        Template::parse(&self.file_template, FILE_FIELDS).map_err(|why| ("file_template", why))?;
        Template::parse(&self.topic_template, TOPIC_FIELDS)
            .map_err(|why| ("topic_template", why))?;
        Ok(())
    }
}

impl Recorder {
    /// Checks the config, creates the output directory and the first file.
    pub fn open(config: RecorderConfig) -> Result<Recorder, RecorderError> {
        let file_template =
            Template::parse(&config.file_template, FILE_FIELDS).map_err(RecorderError::Config)?;
        let topic_template =
            Template::parse(&config.topic_template, TOPIC_FIELDS).map_err(RecorderError::Config)?;
        if config.flush_interval.is_zero() || config.flush_interval > MAX_FLUSH_INTERVAL {
            return Err(RecorderError::Config(format!(
                "flush_interval is {:?}; it must be more than 0 and at most {MAX_FLUSH_INTERVAL:?}",
                config.flush_interval
            )));
        }
        if config.chunk_size == 0 {
            return Err(RecorderError::Config("chunk_size must be more than 0".into()));
        }
        if config.max_file_bytes == Some(0) || config.max_file_duration == Some(Duration::ZERO) {
            return Err(RecorderError::Config(
                "max_file_bytes and max_file_duration must be more than 0 when set".into(),
            ));
        }
        std::fs::create_dir_all(&config.output_dir)
            .map_err(|e| FileError::io(&config.output_dir, "cannot create the directory", e))?;
        let mut recorder = Recorder {
            config,
            file_template,
            topic_template,
            tracks: Vec::new(),
            by_key: HashMap::new(),
            file: None,
            next_index: 0,
            files: Vec::new(),
            failed_at: None,
            dropped: DropCounts::default(),
            frames_without_schema: 0,
        };
        recorder.open_file()?;
        Ok(recorder)
    }

    /// Announces a track; returns its id. The same (publisher, track name) always gets the
    /// same id: a republished track with the same metadata keeps its channel, one with new
    /// metadata (another type, the schema text now fetched) gets a new channel on the same
    /// topic.
    pub fn add_track(&mut self, meta: TrackMeta) -> TrackId {
        let key = (meta.publisher.clone(), meta.track.clone());
        if let Some(id) = self.by_key.get(&key) {
            let track = &mut self.tracks[id.0 as usize];
            if track.meta != meta {
                tracing::info!("{}: new metadata, new channel", track.label());
                track.spec = Arc::new(ChannelSpec::from_meta(&meta));
                track.meta = meta;
                track.generation += 1;
            }
            return *id;
        }
        let id = TrackId(self.tracks.len() as u32);
        let spec = Arc::new(ChannelSpec::from_meta(&meta));
        let track = Track {
            meta,
            spec,
            generation: 0,
            topic: None,
            renamed: false,
            frames: 0,
            bytes: 0,
            decompress_failures: 0,
            frames_without_schema: 0,
            gaps: GapCounter::default(),
        };
        if let Some(problem) = &track.spec.schema_problem {
            tracing::warn!(
                "{}: {}; its frames are recorded without a schema",
                track.label(),
                crate::text::printable(problem)
            );
        }
        self.tracks.push(track);
        self.by_key.insert(key, id);
        id
    }

    /// Records one frame of `track`, received at `receive_time_ns` (UNIX ns, the log time)
    /// with the publisher's timestamp `publish_time_ns` (UNIX ns, the publish time; the
    /// receive time when there is none). Frames that cannot
    /// be recorded are counted and dropped; the only error is a failure of the file, which is
    /// then sealed (the next frames are dropped for [`RETRY_AFTER_ERROR`]).
    pub fn write(
        &mut self,
        track: TrackId,
        payload: &[u8],
        receive_time_ns: u64,
        publish_time_ns: Option<u64>,
    ) -> Result<(), WriteError> {
        let Some(entry) = self.tracks.get_mut(track.0 as usize) else {
            self.dropped.unknown_track += 1;
            if should_log(self.dropped.unknown_track) {
                tracing::warn!(
                    "a frame for unknown track {track:?} dropped ({} so far)",
                    self.dropped.unknown_track
                );
            }
            return Ok(());
        };
        if let Some(stamp_ns) = publish_time_ns {
            entry.gaps.observe(stamp_ns / 1_000_000);
        }
        let spec = entry.spec.clone();
        let decompressed;
        let data = if spec.decompress {
            match zstd_decompress(payload, MAX_DECOMPRESSED_BYTES) {
                Ok(data) => {
                    decompressed = data;
                    decompressed.as_slice()
                }
                Err(err) => {
                    entry.decompress_failures += 1;
                    self.dropped.decompress += 1;
                    if should_log(entry.decompress_failures) {
                        tracing::warn!(
                            "{}: a frame did not decompress and was dropped ({} so far): {err}",
                            entry.label(),
                            entry.decompress_failures
                        );
                    }
                    return Ok(());
                }
            }
        } else {
            payload
        };
        let now = Instant::now();
        if self.file.is_none() {
            match self.failed_at {
                Some(at) if now.saturating_duration_since(at) < RETRY_AFTER_ERROR => {
                    self.dropped.io += 1;
                    return Ok(());
                }
                _ => {
                    if let Err(err) = self.open_file() {
                        self.failed_at = Some(now);
                        self.dropped.io += 1;
                        return Err(err.into());
                    }
                }
            }
        }
        self.rotate_if_due(now, data.len() as u64)?;
        self.ensure_channel(track)?;
        let publish_time = publish_time_ns.unwrap_or(receive_time_ns);
        let written = match self.file.as_mut() {
            Some(file) => file.write(track, data, receive_time_ns, publish_time),
            None => return Ok(()),
        };
        if let Err(err) = written {
            self.dropped.io += 1;
            return Err(self.fail(err).into());
        }
        let entry = &mut self.tracks[track.0 as usize];
        entry.frames += 1;
        entry.bytes += data.len() as u64;
        if spec.schema_problem.is_some() {
            entry.frames_without_schema += 1;
            self.frames_without_schema += 1;
        }
        self.flush_if_due(now)
    }

    /// Flushes the open chunk when [`RecorderConfig::flush_interval`] has passed since the last
    /// flush, and rotates by duration. Call it at least every `flush_interval`.
    pub fn tick(&mut self) -> Result<(), WriteError> {
        let now = Instant::now();
        self.rotate_if_due(now, 0)?;
        self.flush_if_due(now)
    }

    /// Finishes the current file (summary, indexes, footer) and returns what was recorded.
    /// On a write error the file is sealed as far as possible and the error returned.
    pub fn finish(mut self) -> Result<RecordingSummary, RecorderError> {
        if let Some(file) = self.file.take() {
            let (report, err) = file.finish();
            self.closed(report);
            if let Some(err) = err {
                return Err(err.into());
            }
        }
        let stats = self.stats();
        Ok(RecordingSummary { files: self.files.clone(), stats })
    }

    /// The counters so far.
    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            tracks: self
                .tracks
                .iter()
                .map(|t| TrackStats {
                    publisher: t.meta.publisher.clone(),
                    track: t.meta.track.clone(),
                    topic: t.topic.clone(),
                    frames: t.frames,
                    bytes: t.bytes,
                    decompress_failures: t.decompress_failures,
                    frames_without_schema: t.frames_without_schema,
                    missing: t.gaps.missing(),
                })
                .collect(),
            dropped: self.dropped,
            frames_without_schema: self.frames_without_schema,
            renamed_tracks: self.tracks.iter().filter(|t| t.renamed).count() as u64,
            file: self.file.as_ref().map(|f| f.path().to_path_buf()),
            file_bytes: self.file.as_ref().map_or(0, McapFile::size),
            files: self.files.clone(),
        }
    }

    fn open_file(&mut self) -> Result<(), FileError> {
        let started = SystemTime::now();
        let stamp = naming::utc_stamp(started);
        let index = self.next_index;
        let name = self.file_template.render(|field| match field {
            "date" => stamp.clone(),
            "room" => self.config.room.clone(),
            "identity" => self.config.identity.clone(),
            "index" => index.to_string(),
            _ => String::new(),
        });
        let metadata = BTreeMap::from([
            ("room".to_string(), self.config.room.clone()),
            ("identity".to_string(), self.config.identity.clone()),
            ("file_index".to_string(), index.to_string()),
            ("started_utc".to_string(), stamp),
            ("recorder".to_string(), concat!("dtbridge ", env!("CARGO_PKG_VERSION")).to_string()),
        ]);
        let file = McapFile::create(
            &self.config.output_dir,
            &sanitize_file_name(&name),
            self.config.chunk_size,
            metadata,
        )?;
        tracing::info!("recording to {}", file.path().display());
        self.next_index += 1;
        self.file = Some(file);
        self.failed_at = None;
        for track in &mut self.tracks {
            track.topic = None;
        }
        Ok(())
    }

    /// Keeps the report of a closed file.
    fn closed(&mut self, report: FileReport) {
        self.dropped.io += report.lost;
        self.files.push(report);
    }

    /// Seals the current file after `err`; returns `err`.
    fn fail(&mut self, err: FileError) -> FileError {
        self.failed_at = Some(Instant::now());
        let Some(file) = self.file.take() else { return err };
        let (report, err) = file.seal(err);
        tracing::error!(
            "recording stopped: {err}; {} keeps {} messages ({:?}); retrying in {RETRY_AFTER_ERROR:?}",
            report.path.display(),
            report.messages,
            report.status
        );
        self.closed(report);
        err
    }

    fn rotate_if_due(&mut self, now: Instant, next_len: u64) -> Result<(), WriteError> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        if file.messages() == 0 {
            return Ok(());
        }
        let by_time = self
            .config
            .max_file_duration
            .is_some_and(|max| now.saturating_duration_since(file.started()) >= max);
        let mut by_size = false;
        if let Some(max) = self.config.max_file_bytes {
            // A message record adds 31 bytes; leave some room for the chunk's framing.
            let next = next_len + 31 + 128;
            if file.size() + file.pending() + next > max {
                if file.pending() > 0
                    && let Err(err) = file.flush()
                {
                    return Err(self.fail(err).into());
                }
                by_size = file.size() + next > max;
            }
        }
        if !(by_time || by_size) {
            return Ok(());
        }
        if let Some(file) = self.file.take() {
            let (report, err) = file.finish();
            self.closed(report);
            if let Some(err) = err {
                self.failed_at = Some(now);
                return Err(err.into());
            }
        }
        if let Err(err) = self.open_file() {
            self.failed_at = Some(now);
            return Err(err.into());
        }
        Ok(())
    }

    fn flush_if_due(&mut self, now: Instant) -> Result<(), WriteError> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        if now.saturating_duration_since(file.last_flush()) < self.config.flush_interval {
            return Ok(());
        }
        match file.flush() {
            Ok(()) => Ok(()),
            Err(err) => Err(self.fail(err).into()),
        }
    }

    /// Gives `track` a channel in the current file (topic chosen now).
    fn ensure_channel(&mut self, track: TrackId) -> Result<(), WriteError> {
        let index = track.0 as usize;
        let generation = self.tracks[index].generation;
        let Some(file) = self.file.as_ref() else { return Ok(()) };
        if file.has_channel(track, generation) {
            return Ok(());
        }
        let topic = match self.tracks[index].topic.clone() {
            Some(topic) => topic,
            None => {
                let (mut topic, renamed) = self.topic_for(index);
                let mut n = 2;
                while file.topic_taken(&topic, track) {
                    topic = topic_with_suffix(&self.topic_for(index).0, &format!("_{n}"));
                    n += 1;
                }
                let entry = &mut self.tracks[index];
                if renamed && !entry.renamed {
                    entry.renamed = true;
                    tracing::warn!("{} is recorded as topic {topic:?}", entry.label());
                }
                entry.topic = Some(topic.clone());
                topic
            }
        };
        let spec = self.tracks[index].spec.clone();
        let added = match self.file.as_mut() {
            Some(file) => file.add_channel(track, generation, &spec, &topic),
            None => return Ok(()),
        };
        added.map_err(|err| self.fail(err).into())
    }

    /// The topic of track `index` and whether sanitizing changed it.
    fn topic_for(&self, index: usize) -> (String, bool) {
        let meta = &self.tracks[index].meta;
        let shared = self
            .tracks
            .iter()
            .any(|t| t.meta.track == meta.track && t.meta.publisher != meta.publisher);
        naming::track_topic(&self.topic_template, meta, shared)
    }
}
