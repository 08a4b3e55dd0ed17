//! One recording file: the MCAP writer on a [`Sink`], its channels, the header profile, and
//! finishing or sealing it.

use super::encoding::{ChannelSpec, SchemaSpec};
use super::naming::numbered_file_name;
use super::seal::{self, Registered};
use super::sink::Sink;
use super::{FileError, FileReport, FileStatus, TrackId};
use mcap::records::{self, MessageHeader};
use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The `library` of the header. With profile `ros2` it is this; with no profile it gets four
/// trailing spaces, so both headers have the same length and the profile can be changed in
/// place when a channel that does not fit the ROS 2 profile joins the file.
const LIBRARY: &str = concat!("dtbridge ", env!("CARGO_PKG_VERSION"));
/// Offset of the header record: right after the magic.
const HEADER_OFFSET: u64 = 8;
/// How many numbered names to try when the file name exists already.
const MAX_NAME_TRIES: u32 = 10_000;

fn header_fields(ros2: bool) -> (&'static str, String) {
    if ros2 { ("ros2", LIBRARY.to_string()) } else { ("", format!("{LIBRARY}    ")) }
}

/// The header record bytes for a profile.
fn header_record(ros2: bool) -> Vec<u8> {
    let (profile, library) = header_fields(ros2);
    let mut body = Vec::new();
    for text in [profile, library.as_str()] {
        body.extend_from_slice(&(text.len() as u32).to_le_bytes());
        body.extend_from_slice(text.as_bytes());
    }
    let mut record = vec![records::op::HEADER];
    record.extend_from_slice(&(body.len() as u64).to_le_bytes());
    record.extend_from_slice(&body);
    record
}

/// A channel of this file.
struct FileChannel {
    id: u16,
    /// The track's spec generation the channel was made for.
    generation: u32,
    sequence: u32,
}

/// An open recording file.
pub(crate) struct McapFile {
    path: PathBuf,
    sink: Sink,
    writer: Option<mcap::Writer<Sink>>,
    started: Instant,
    ros2: bool,
    channels: HashMap<TrackId, FileChannel>,
    /// Topic -> the track that owns it in this file.
    topics: HashMap<String, TrackId>,
    registered: Registered,
    schema_ids: HashMap<SchemaSpec, u16>,
    messages: u64,
    /// Uncompressed bytes written since the last chunk was closed.
    pending: u64,
    last_flush: Instant,
}

impl McapFile {
    /// Creates a new file `dir/name` (or `name-1`, `name-2`, ... when it exists: never
    /// overwrites), starting with profile `ros2`, and writes a metadata record.
    pub fn create(
        dir: &Path,
        name: &str,
        chunk_size: u64,
        metadata: BTreeMap<String, String>,
    ) -> Result<Self, FileError> {
        let mut n = 0;
        let (file, path) = loop {
            let candidate = if n == 0 { name.to_string() } else { numbered_file_name(name, n) };
            let path = dir.join(&candidate);
            match OpenOptions::new().write(true).read(true).create_new(true).open(&path) {
                Ok(file) => break (file, path),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && n < MAX_NAME_TRIES => {
                    n += 1;
                }
                Err(err) => return Err(FileError::io(&path, "cannot create", err)),
            }
        };
        // The new directory entry must survive a power loss too.
        if let Ok(dir) = std::fs::File::open(dir) {
            _ = dir.sync_all();
        }
        let sink = Sink::new(file);
        let (profile, library) = header_fields(true);
        let options = mcap::WriteOptions::new()
            .profile(profile)
            .library(library)
            .compression(Some(mcap::Compression::Zstd))
            .compression_threads(0)
            .chunk_size(Some(chunk_size))
            .disable_seeking(true);
        let mut writer = options
            .create(sink.clone())
            .map_err(|e| FileError::mcap(&path, "cannot start", e, &sink))?;
        writer
            .write_metadata(&records::Metadata { name: "dtbridge".into(), metadata })
            .map_err(|e| FileError::mcap(&path, "cannot write", e, &sink))?;
        let now = Instant::now();
        Ok(Self {
            path,
            sink,
            writer: Some(writer),
            started: now,
            ros2: true,
            channels: HashMap::new(),
            topics: HashMap::new(),
            registered: Registered::default(),
            schema_ids: HashMap::new(),
            messages: 0,
            pending: 0,
            last_flush: now,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes accepted so far (the open chunk not included).
    pub fn size(&self) -> u64 {
        self.sink.position()
    }

    /// Uncompressed bytes in the open chunk.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    pub fn messages(&self) -> u64 {
        self.messages
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn last_flush(&self) -> Instant {
        self.last_flush
    }

    /// The topic of `track` in this file, if it has a channel.
    pub fn has_channel(&self, track: TrackId, generation: u32) -> bool {
        self.channels.get(&track).is_some_and(|c| c.generation == generation)
    }

    /// Whether `topic` is taken by another track in this file.
    pub fn topic_taken(&self, topic: &str, track: TrackId) -> bool {
        self.topics.get(topic).is_some_and(|owner| *owner != track)
    }

    fn writer(&mut self) -> Result<&mut mcap::Writer<Sink>, FileError> {
        match self.writer.as_mut() {
            Some(writer) => Ok(writer),
            None => Err(FileError::io(&self.path, "cannot write", io::Error::other("file closed"))),
        }
    }

    fn mcap_error(&self, action: &'static str, err: mcap::McapError) -> FileError {
        FileError::mcap(&self.path, action, err, &self.sink)
    }

    /// Adds the channel of `track` (its spec generation `generation`) under `topic`.
    pub fn add_channel(
        &mut self,
        track: TrackId,
        generation: u32,
        spec: &Arc<ChannelSpec>,
        topic: &str,
    ) -> Result<(), FileError> {
        if self.ros2 && !spec.is_ros2() {
            // Before the channel is written: the header never claims more than the file holds.
            self.sink
                .patch(HEADER_OFFSET, &header_record(false))
                .map_err(|e| FileError::io(&self.path, "cannot write", e))?;
            self.ros2 = false;
        }
        let schema_id = match &spec.schema {
            None => 0,
            Some(schema) => match self.schema_ids.get(schema) {
                Some(id) => *id,
                None => {
                    let added =
                        self.writer()?.add_schema(&schema.name, &schema.encoding, &schema.data);
                    let id = added.map_err(|e| self.mcap_error("cannot write", e))?;
                    self.schema_ids.insert(schema.clone(), id);
                    self.registered.schemas.push((id, schema.clone()));
                    id
                }
            },
        };
        let added =
            self.writer()?.add_channel(schema_id, topic, &spec.message_encoding, &spec.metadata);
        let id = added.map_err(|e| self.mcap_error("cannot write", e))?;
        if !self.registered.channels.iter().any(|c| c.id == id) {
            self.registered.channels.push(records::Channel {
                id,
                schema_id,
                topic: topic.to_string(),
                message_encoding: spec.message_encoding.clone(),
                metadata: spec.metadata.clone(),
            });
        }
        self.channels.insert(track, FileChannel { id, generation, sequence: 0 });
        self.topics.insert(topic.to_string(), track);
        Ok(())
    }

    /// Writes one message on the channel of `track` (added before).
    pub fn write(
        &mut self,
        track: TrackId,
        data: &[u8],
        log_time: u64,
        publish_time: u64,
    ) -> Result<(), FileError> {
        let Some(channel) = self.channels.get_mut(&track) else {
            return Err(FileError::io(&self.path, "cannot write", io::Error::other("no channel")));
        };
        channel.sequence = channel.sequence.wrapping_add(1);
        let header = MessageHeader {
            channel_id: channel.id,
            sequence: channel.sequence,
            log_time,
            publish_time,
        };
        let before = self.sink.position();
        let written = self.writer()?.write_to_known_channel(&header, data);
        written.map_err(|e| self.mcap_error("cannot write", e))?;
        self.messages += 1;
        if self.sink.position() > before {
            // The writer closed the previous chunk: the open one holds only this message.
            self.pending = 0;
        }
        self.pending += data.len() as u64 + 31;
        Ok(())
    }

    /// Closes the open chunk, writes it and `fdatasync`s the file.
    pub fn flush(&mut self) -> Result<(), FileError> {
        let flushed = self.writer()?.flush();
        flushed.map_err(|e| self.mcap_error("cannot write", e))?;
        self.pending = 0;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// Finishes the file (summary, indexes, footer) and syncs it. On an error the file is
    /// sealed as far as possible and the report says so.
    pub fn finish(mut self) -> (FileReport, Option<FileError>) {
        let Some(mut writer) = self.writer.take() else {
            let err = FileError::io(&self.path, "cannot write", io::Error::other("closed"));
            let (report, err) = self.seal(err);
            return (report, Some(err));
        };
        match writer.finish() {
            Ok(summary) => {
                drop(writer);
                if let Err(err) = self.sink.sync() {
                    let err = FileError::io(&self.path, "cannot write", err);
                    let (report, err) = self.seal(err);
                    return (report, Some(err));
                }
                let messages = summary.stats.map(|s| s.message_count).unwrap_or(self.messages);
                let report = FileReport {
                    path: self.path.clone(),
                    messages,
                    bytes: self.sink.position(),
                    lost: 0,
                    status: FileStatus::Complete,
                };
                (report, None)
            }
            Err(err) => {
                let err = self.mcap_error("cannot finish", err);
                drop(writer);
                let (report, err) = self.seal(err);
                (report, Some(err))
            }
        }
    }

    /// Seals the file in place after `err` (see [`seal`]); the report says what is left.
    pub fn seal(mut self, err: FileError) -> (FileReport, FileError) {
        self.sink.close_with(io::Error::other("the file is being sealed"));
        // Dropping the writer tries to finish; the closed sink refuses every byte.
        drop(self.writer.take());
        let sealed =
            self.sink.try_clone_file().and_then(|file| seal::seal(&file, &self.registered));
        let text = err.to_string();
        let report = match sealed {
            Ok(sealed) => FileReport {
                path: self.path.clone(),
                messages: sealed.messages,
                bytes: sealed.length,
                lost: self.messages.saturating_sub(sealed.messages),
                status: FileStatus::Sealed { error: text },
            },
            Err(seal_err) if seal_err.kind() == io::ErrorKind::InvalidData => {
                // Not even the header reached the disk: nothing to keep.
                _ = std::fs::remove_file(&self.path);
                FileReport {
                    path: self.path.clone(),
                    messages: 0,
                    bytes: 0,
                    lost: self.messages,
                    status: FileStatus::Removed { error: text },
                }
            }
            Err(seal_err) => {
                let bytes = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
                FileReport {
                    path: self.path.clone(),
                    messages: 0,
                    bytes,
                    lost: 0,
                    status: FileStatus::Unindexed {
                        error: format!("{text}; not sealed: {seal_err}"),
                    },
                }
            }
        };
        (report, err)
    }
}
