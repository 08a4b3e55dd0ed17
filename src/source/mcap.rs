//! The `mcap` source: plays a ROS 2 MCAP file's channels as live topics, in log-time order,
//! in real time or as fast as the router accepts, once or in a loop, carrying each channel's
//! schema (`ros2msg` definition) through to the subscribers.
//!
//! The file is memory-mapped. A file with a summary and chunk indexes (what rosbag2 and the
//! MCAP writers produce) is read through the index, in log-time order even where chunks
//! overlap; one without (written unchunked, or without summary records) is read front to back,
//! in file order. A file that does not end with the MCAP magic (its writer was killed) is
//! refused with a hint to `mcap recover` it. A corrupt record further in ends playback with an
//! error after every message before it was delivered.
//!
//! A sample's `stamp_ns` is the message record's publish time, or its log time where the
//! publish time is 0; real-time pacing follows log times. Topic filters are [`crate::topic::Patterns`].

use super::{MessageType, Payload, Sample, SampleSender, Shutdown, Source, SourceError, TopicInfo};
use crate::mcap_record::{ReadStop, read_records};
use crate::topic::Patterns;
use ::mcap::read::ChannelAccumulator;
use ::mcap::records::{MessageHeader, Record};
use ::mcap::sans_io::LinearReaderOptions;
use ::mcap::sans_io::indexed_reader::{IndexedReadEvent, IndexedReader, IndexedReaderOptions};
use ::mcap::sans_io::summary_reader::{SummaryReadEvent, SummaryReader, SummaryReaderOptions};
use ::mcap::{Channel, MAGIC, McapError, Summary};
use bytes::Bytes;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Samples read ahead of the one being paced or sent.
const READ_AHEAD: usize = 16;
/// Largest record or chunk (compressed or not) the readers will allocate for; a larger length
/// means a corrupt file.
const MAX_RECORD_BYTES: usize = 1 << 30;

/// `[[sources]] type = "mcap"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McapSourceConfig {
    /// Source name.
    pub name: String,
    /// The MCAP file; a relative path is relative to the config file's directory.
    pub path: PathBuf,
    /// Keep the recorded gaps between messages (by log time); `false` plays as fast as the
    /// router accepts.
    #[serde(default = "crate::util::default_true")]
    pub realtime: bool,
    /// Start over at the end of the file, until shutdown.
    #[serde(default, rename = "loop")]
    pub looping: bool,
    /// Topics to play, as globs (`*` within a `/`-separated segment, `**` across segments);
    /// empty plays every channel.
    #[serde(default)]
    pub topics: Patterns,
}

/// A configured MCAP replay source.
#[derive(Debug)]
pub struct McapSource {
    config: McapSourceConfig,
    path: PathBuf,
}

impl McapSource {
    /// A source for `config`, resolving a relative `path` against `base_dir` (the directory of
    /// the config file). Nothing is opened until [`Source::topics`] or [`Source::run`].
    pub fn new(config: McapSourceConfig, base_dir: &Path) -> McapSource {
        let path = base_dir.join(&config.path);
        McapSource { config, path }
    }

    /// The file this source plays.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: String) -> SourceError {
        SourceError { source_name: self.config.name.clone(), message }
    }
}

#[async_trait::async_trait]
impl Source for McapSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, SourceError> {
        let recording = Recording::open(&self.path, &self.config.topics, &self.config.name)
            .map_err(|m| self.error(m))?;
        Ok(recording.topics)
    }

    /// Plays the file. Each sample's `stamp_ns` is the message's publish time (rosbag2 records
    /// the publisher's send time there where the middleware reports it: the closest the MCAP
    /// record has to a header stamp), or its log time where the publish time is 0. Real-time
    /// pacing follows log times, each due at a fixed offset from the first message of its pass,
    /// so that sleeps do not drift.
    async fn run(
        self: Box<Self>,
        out: SampleSender,
        mut shutdown: Shutdown,
    ) -> Result<(), SourceError> {
        let (tx, mut rx) = mpsc::channel(READ_AHEAD);
        let (path, patterns, looping, name) = (
            self.path.clone(),
            self.config.topics.clone(),
            self.config.looping,
            self.config.name.clone(),
        );
        // Reading maps pages and decompresses chunks: blocking work, kept off the runtime. The
        // reader stops at its next send once `rx` is dropped.
        let reader =
            tokio::task::spawn_blocking(move || read(&path, &patterns, &name, looping, &tx));
        // Pass number, and when and at which log time it started.
        let mut origin: Option<(u64, Instant, u64)> = None;
        loop {
            let item = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                item = rx.recv() => item,
            };
            let Some(item) = item else {
                return match reader.await {
                    Ok(()) => Ok(()),
                    Err(err) => {
                        Err(self.error(format!("reading {} failed: {err}", self.path.display())))
                    }
                };
            };
            let Played { pass, log_time, sample } = item.map_err(|m| self.error(m))?;
            if self.config.realtime {
                let (_, start, first) = match origin {
                    Some(o) if o.0 == pass => o,
                    _ => *origin.insert((pass, Instant::now(), log_time)),
                };
                let due = start + Duration::from_nanos(log_time.saturating_sub(first));
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                    () = tokio::time::sleep_until(due) => {}
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                sent = out.send(sample) => if sent.is_err() {
                    // The router is gone: the daemon is stopping.
                    return Ok(());
                },
            }
        }
    }
}

/// One message read from the file, in pass `pass` (0, then 1, ... when looping).
struct Played {
    pass: u64,
    log_time: u64,
    sample: Sample,
}

type Sink = mpsc::Sender<Result<Played, String>>;

/// Reads the file into `tx` until the end (or forever with `looping`), an error, or until the
/// receiver is dropped.
fn read(path: &Path, patterns: &Patterns, source: &str, looping: bool, tx: &Sink) {
    let recording = match Recording::open(path, patterns, source) {
        Ok(recording) => recording,
        Err(message) => {
            let _ = tx.blocking_send(Err(message));
            return;
        }
    };
    for pass in 0.. {
        match recording.play(pass, tx) {
            Ok(Some(0)) if looping => {
                tracing::warn!("{}: no messages on the selected topics", path.display());
                return;
            }
            Ok(Some(_)) if looping => {}
            Ok(_) => return,
            Err(message) => {
                let _ = tx.blocking_send(Err(message));
                return;
            }
        }
    }
}

/// A selected channel, as its samples carry it.
struct Out {
    source: Arc<str>,
    topic: Arc<str>,
    message_type: Arc<MessageType>,
    encoding: Arc<str>,
}

/// An opened, checked MCAP file and its selected channels.
struct Recording {
    path: PathBuf,
    /// Read with explicit reads, not mapped: a file truncated while it plays is then a read
    /// error, not a SIGBUS that kills the process.
    file: File,
    len: u64,
    /// The summary, where it indexes every chunk and channel (`None`: read front to back).
    index: Option<Summary>,
    channels: HashMap<u16, Out>,
    topics: Vec<TopicInfo>,
}

impl Recording {
    /// Opens and checks the file and selects the channels matching `patterns`. Errors name the
    /// file and what is wrong with it.
    fn open(path: &Path, patterns: &Patterns, source: &str) -> Result<Recording, String> {
        let source: Arc<str> = source.into();
        let shown = path.display();
        let file = File::open(path).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => format!("MCAP file {shown} not found"),
            _ => format!("cannot open MCAP file {shown}: {err}"),
        })?;
        let len = file.metadata().map_err(|err| format!("cannot read {shown}: {err}"))?.len();
        let magic_at = |offset: u64| {
            let mut magic = [0u8; MAGIC.len()];
            file.read_exact_at(&mut magic, offset).map(|()| magic == MAGIC)
        };
        let read_error = |err: std::io::Error| format!("cannot read {shown}: {err}");
        if len == 0 {
            return Err(format!("{shown} is empty, not an MCAP file"));
        }
        if len < MAGIC.len() as u64 || !magic_at(0).map_err(read_error)? {
            return Err(format!(
                "{shown} is not an MCAP file (it does not start with the MCAP magic)"
            ));
        }
        if len < 2 * MAGIC.len() as u64
            || !magic_at(len - MAGIC.len() as u64).map_err(read_error)?
        {
            return Err(format!(
                "{shown} is truncated: it does not end with the MCAP magic (was its writer stopped \
                 before closing it?); `mcap recover {shown} -o fixed.mcap` rebuilds a readable copy"
            ));
        }
        let summary = read_summary(&file, len)
            .map_err(|err| format!("{shown} is corrupt: cannot read its summary section: {err}"))?;
        let (index, mut channels) = match summary {
            Some(s) if !s.channels.is_empty() && !s.chunk_indexes.is_empty() => {
                let channels = s.channels.values().cloned().collect();
                (Some(s), channels)
            }
            Some(s) if !s.channels.is_empty() => (None, s.channels.values().cloned().collect()),
            _ => match scan_channels(&file) {
                (channels, None) => (None, channels),
                (channels, Some(err)) if channels.is_empty() => {
                    return Err(format!("{shown} is corrupt: {err}"));
                }
                // Play up to the damage, where `play` reports it.
                (channels, Some(_)) => (None, channels),
            },
        };
        channels.sort_by(|a, b| (&a.topic, a.id).cmp(&(&b.topic, b.id)));

        let selected: Vec<_> = channels.iter().filter(|c| selects(patterns, &c.topic)).collect();
        if selected.is_empty() {
            return Err(no_match(&shown.to_string(), patterns, &channels));
        }
        let matched: BTreeSet<usize> =
            channels.iter().flat_map(|c| patterns.matches(&c.topic)).collect();
        for (i, pattern) in patterns.as_slice().iter().enumerate() {
            if !matched.contains(&i) {
                tracing::warn!("{shown}: topic pattern '{pattern}' matches no channel");
            }
        }
        let mut outs = HashMap::new();
        let mut topics = Vec::new();
        for channel in selected {
            let Some(schema) = &channel.schema else {
                return Err(format!(
                    "{shown}: channel '{}' has no schema; leave it out with `topics`",
                    channel.topic
                ));
            };
            let definition = schema_text(&schema.encoding, &schema.data).map_err(|err| {
                format!(
                    "{shown}: the schema '{}' of channel '{}' is not UTF-8 text ({err})",
                    schema.name, channel.topic
                )
            })?;
            let message_type = Arc::new(MessageType {
                name: schema.name.clone(),
                schema_encoding: schema.encoding.clone(),
                definition,
            });
            let info = TopicInfo {
                topic: channel.topic.clone(),
                message_type: message_type.clone(),
                encoding: channel.message_encoding.clone(),
            };
            if !topics.contains(&info) {
                topics.push(info);
            }
            let out = Out {
                source: source.clone(),
                topic: channel.topic.as_str().into(),
                message_type,
                encoding: channel.message_encoding.as_str().into(),
            };
            outs.insert(channel.id, out);
        }
        Ok(Recording { path: path.to_owned(), file, len, index, channels: outs, topics })
    }

    /// Sends one pass over the file to `tx`: `Some(messages sent)`, or `None` once the
    /// receiver is gone.
    fn play(&self, pass: u64, tx: &Sink) -> Result<Option<u64>, String> {
        let mut sent = 0u64;
        let mut emit = |header: &MessageHeader, data: &[u8]| -> bool {
            let Some(out) = self.channels.get(&header.channel_id) else { return true };
            let sample = Sample {
                source: out.source.clone(),
                topic: out.topic.clone(),
                message_type: out.message_type.clone(),
                encoding: out.encoding.clone(),
                payload: Payload::Encoded(Bytes::copy_from_slice(data)),
                stamp_ns: if header.publish_time != 0 {
                    header.publish_time
                } else {
                    header.log_time
                },
            };
            sent += 1;
            tx.blocking_send(Ok(Played { pass, log_time: header.log_time, sample })).is_ok()
        };
        let corrupt =
            |err: McapError, at: String| format!("{} is corrupt{at}: {err}", self.path.display());
        match &self.index {
            Some(summary) => {
                let mut options = IndexedReaderOptions::new()
                    .include_topics(self.channels.values().map(|out| out.topic.to_string()));
                options.record_length_limit = Some(MAX_RECORD_BYTES);
                let mut reader = IndexedReader::new_with_options(summary, options)
                    .map_err(|err| corrupt(err, " (chunk index)".into()))?;
                let mut chunk_at = 0;
                while let Some(event) = reader.next_event() {
                    match event
                        .map_err(|err| corrupt(err, format!(" in the chunk at byte {chunk_at}")))?
                    {
                        IndexedReadEvent::ReadChunkRequest { offset, length } => {
                            chunk_at = offset;
                            let data = self.read_at(offset, length)?;
                            reader.insert_chunk_record_data(offset, &data).map_err(|err| {
                                corrupt(err, format!(" in the chunk at byte {offset}"))
                            })?;
                        }
                        IndexedReadEvent::Message { header, data } => {
                            if !emit(&header, data) {
                                return Ok(None);
                            }
                        }
                    }
                }
            }
            None => {
                let mut file = &self.file;
                file.rewind().map_err(|err| self.read_error(err))?;
                let len = file.metadata().map_err(|err| self.read_error(err))?.len();
                let played = read_records(file, len, linear_options(), |record| {
                    let Record::Message { header, data } = record else {
                        return Ok(ControlFlow::Continue(()));
                    };
                    match emit(&header, &data) {
                        true => Ok(ControlFlow::Continue(())),
                        false => Err(ReceiverGone),
                    }
                });
                match played {
                    Ok(()) => {}
                    Err(ReadStop::Each(ReceiverGone)) => return Ok(None),
                    Err(ReadStop::Input(err)) => return Err(self.read_error(err)),
                    Err(err) => return Err(format!("{} is corrupt {err}", self.path.display())),
                }
            }
        }
        Ok(Some(sent))
    }
}

/// The receiver of played samples is gone: playing stops.
#[derive(Debug, thiserror::Error)]
#[error("the receiver of played samples is gone")]
struct ReceiverGone;

impl Recording {
    /// The `length` bytes at `offset`, checked against the file's size first (a corrupt
    /// index must not allocate what the file does not hold).
    fn read_at(&self, offset: u64, length: usize) -> Result<Vec<u8>, String> {
        let end = offset.checked_add(length as u64).filter(|&end| end <= self.len);
        if end.is_none() {
            return Err(format!(
                "{} is corrupt: its index points past the end, at byte {offset}",
                self.path.display()
            ));
        }
        let mut data = vec![0; length];
        self.file.read_exact_at(&mut data, offset).map_err(|err| self.read_error(err))?;
        Ok(data)
    }

    fn read_error(&self, err: std::io::Error) -> String {
        match err.kind() {
            std::io::ErrorKind::UnexpectedEof => format!(
                "{} became shorter while it played (another program truncated or rewrote it)",
                self.path.display()
            ),
            _ => format!("cannot read {}: {err}", self.path.display()),
        }
    }
}

/// The summary section, read through the footer at the end of a `len`-byte file.
fn read_summary(file: &File, len: u64) -> Result<Option<Summary>, McapError> {
    let mut reader = SummaryReader::new_with_options(
        SummaryReaderOptions::default()
            .with_file_size(len)
            .with_record_length_limit(MAX_RECORD_BYTES),
    );
    let mut file = file;
    while let Some(event) = reader.next_event() {
        match event? {
            SummaryReadEvent::ReadRequest(need) => {
                let n = file.read(reader.insert(need))?;
                reader.notify_read(n);
            }
            SummaryReadEvent::SeekRequest(to) => reader.notify_seeked(file.seek(to)?),
        }
    }
    Ok(reader.finish())
}

/// A schema as a data track's definition, which is text: a `protobuf` schema is a binary
/// `FileDescriptorSet` in MCAP and travels in base64 (docs/wire.md); every other encoding
/// is text already.
fn schema_text(encoding: &str, data: &[u8]) -> Result<String, std::string::FromUtf8Error> {
    if encoding == "protobuf" {
        use base64::Engine;
        return Ok(base64::engine::general_purpose::STANDARD.encode(data));
    }
    String::from_utf8(data.to_vec())
}

/// The front-to-back readers' options: bounded record lengths (a corrupt length must not
/// allocate or overflow), chunk CRCs checked.
fn linear_options() -> LinearReaderOptions {
    LinearReaderOptions::default()
        .with_record_length_limit(MAX_RECORD_BYTES)
        .with_validate_chunk_crcs(true)
}

/// Every channel of a file without a usable summary, by reading it front to back: those
/// defined before the first error, and that error.
fn scan_channels(mut file: &File) -> (Vec<Arc<Channel<'static>>>, Option<String>) {
    let mut channels = ChannelAccumulator::default();
    let mut ids = BTreeSet::new();
    let error = match file.rewind().and_then(|()| file.metadata()) {
        Err(err) => Some(err.to_string()),
        Ok(metadata) => read_records(file, metadata.len(), linear_options(), |record| {
            match record {
                Record::Schema { header, data } => {
                    channels.add_schema(header, data.into_owned().into())?
                }
                Record::Channel(channel) => {
                    ids.insert(channel.id);
                    channels.add_channel(channel)?;
                }
                _ => {}
            }
            Ok::<_, McapError>(ControlFlow::Continue(()))
        })
        .err()
        .map(|err| err.to_string()),
    };
    (ids.into_iter().filter_map(|id| channels.get(id)).collect(), error)
}

/// The error for a filter that selects nothing, listing what there is.
fn no_match(shown: &str, patterns: &Patterns, channels: &[Arc<Channel<'static>>]) -> String {
    if channels.is_empty() {
        return format!("{shown} has no channels");
    }
    let available: Vec<String> = channels
        .iter()
        .map(|c| match &c.schema {
            Some(schema) => format!("{} ({})", c.topic, schema.name),
            None => c.topic.clone(),
        })
        .collect();
    format!(
        "no channel of {shown} matches topics {:?}; its topics are: {}",
        patterns.as_slice(),
        available.join(", ")
    )
}

/// Whether `topic` is selected by `patterns` (all topics when there are none).
fn selects(patterns: &Patterns, topic: &str) -> bool {
    patterns.is_empty() || patterns.is_match(topic)
}
