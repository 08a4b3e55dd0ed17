//! Rewriting an unfinished recording (killed, power loss: no summary, maybe a cut-off tail)
//! into a complete, indexed file.

use crate::mcap_record::ReadStop;
use mcap::records::Record;
use mcap::sans_io::LinearReaderOptions;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Records (and decompressed chunks) larger than this end the scan as corrupt.
const RECORD_LIMIT: usize = 1 << 30;

/// What [`repair`] recovered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Messages copied.
    pub messages: u64,
    /// Schemas copied.
    pub schemas: usize,
    /// Channels copied.
    pub channels: usize,
    /// Metadata records copied.
    pub metadata: usize,
    /// Attachments copied.
    pub attachments: usize,
    /// The header profile (kept).
    pub profile: String,
    /// Whether the input ended cleanly (a data end record). `false` for a cut-off file.
    pub input_complete: bool,
    /// Why the scan stopped before a clean end: the first record that could not be read
    /// (a cut-off or corrupt tail); everything before it was copied.
    pub stopped: Option<String>,
    /// Records that referred to an unknown schema or channel and were skipped.
    pub skipped: u64,
}

/// Errors of [`repair`].
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The input cannot be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Input {
        /// The input file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The input is not an MCAP file (no magic or no header record).
    #[error("{}: not an MCAP file: {reason}", path.display())]
    NotMcap {
        /// The input file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The output exists already (repair never overwrites) or cannot be written.
    #[error("{}: cannot write: {source}", path.display())]
    Output {
        /// The output file.
        path: PathBuf,
        /// The OS or MCAP error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Reads `input` from the start, record by record (decompressing chunks and checking their
/// CRCs), and writes every complete message, with the same schemas, channels (ids, topics,
/// encodings, metadata), metadata records, attachments and header profile, into a new
/// `output`, which gets a summary and indexes. The scan stops at the first record that
/// cannot be read; the report says where and why. `output` must not exist.
pub fn repair(input: &Path, output: &Path) -> Result<RepairReport, RepairError> {
    let input_error = |source| RepairError::Input { path: input.to_path_buf(), source };
    let output_error = |source: Box<dyn std::error::Error + Send + Sync>| RepairError::Output {
        path: output.to_path_buf(),
        source,
    };
    let file = File::open(input).map_err(input_error)?;
    let input_len = file.metadata().map_err(input_error)?.len();
    let options = LinearReaderOptions::default()
        .with_skip_end_magic(true)
        .with_prevalidate_chunk_crcs(true)
        .with_record_length_limit(RECORD_LIMIT);
    let mut report = RepairReport::default();
    let mut writer: Option<mcap::Writer<BufWriter<File>>> = None;
    let mut schemas: HashMap<u16, u16> = HashMap::new();
    let mut channels: HashMap<u16, u16> = HashMap::new();
    let not_mcap = |reason: String| RepairError::NotMcap { path: input.to_path_buf(), reason };
    let copy = |record: Record<'_>| -> Result<ControlFlow<()>, RepairError> {
        let Some(out) = writer.as_mut() else {
            let Record::Header(header) = record else {
                return Err(not_mcap("the first record is not a header".into()));
            };
            report.profile = header.profile.clone();
            let out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(output)
                .map_err(|e| output_error(e.into()))?;
            let options = mcap::WriteOptions::new()
                .profile(header.profile)
                .library(header.library)
                .compression(Some(mcap::Compression::Zstd));
            writer = Some(options.create(BufWriter::new(out)).map_err(|e| output_error(e.into()))?);
            return Ok(ControlFlow::Continue(()));
        };
        let written = match record {
            Record::Schema { header, data } => {
                match out.add_schema_with_id(header.id, &header.name, &header.encoding, &data) {
                    Ok(id) => {
                        if schemas.insert(header.id, id).is_none() {
                            report.schemas += 1;
                        }
                        Ok(())
                    }
                    Err(_) => {
                        report.skipped += 1;
                        Ok(())
                    }
                }
            }
            Record::Channel(channel) => {
                let known = channel.schema_id == 0 || schemas.contains_key(&channel.schema_id);
                match known.then(|| {
                    out.add_channel_with_id(
                        channel.id,
                        channel.schema_id,
                        &channel.topic,
                        &channel.message_encoding,
                        &channel.metadata,
                    )
                }) {
                    Some(Ok(id)) => {
                        if channels.insert(channel.id, id).is_none() {
                            report.channels += 1;
                        }
                        Ok(())
                    }
                    _ => {
                        report.skipped += 1;
                        Ok(())
                    }
                }
            }
            Record::Message { header, data } => {
                if channels.contains_key(&header.channel_id) {
                    report.messages += 1;
                    out.write_to_known_channel(&header, &data)
                } else {
                    report.skipped += 1;
                    Ok(())
                }
            }
            Record::Metadata(metadata) => {
                report.metadata += 1;
                out.write_metadata(&metadata)
            }
            Record::Attachment { header, data, .. } => {
                report.attachments += 1;
                out.attach(&mcap::Attachment {
                    log_time: header.log_time,
                    create_time: header.create_time,
                    name: header.name,
                    media_type: header.media_type,
                    data,
                })
            }
            Record::DataEnd(_) => {
                report.input_complete = true;
                return Ok(ControlFlow::Break(()));
            }
            // Chunks are read through; indexes and summary records are rebuilt.
            _ => Ok(()),
        };
        written.map_err(|e| output_error(e.into()))?;
        Ok(ControlFlow::Continue(()))
    };
    match crate::mcap_record::read_records(&file, input_len, options, copy) {
        Ok(()) => {}
        Err(ReadStop::Input(err)) => return Err(input_error(err)),
        Err(ReadStop::Each(err)) => return Err(err),
        Err(err) if writer.is_none() => return Err(not_mcap(err.to_string())),
        Err(err) => report.stopped = Some(err.to_string()),
    }
    if writer.is_none() {
        return Err(not_mcap("no header record".into()));
    }
    if report.stopped.is_none() && !report.input_complete {
        report.stopped = Some("the file ends without a data end record".into());
    }
    if let Some(mut out) = writer {
        out.finish().map_err(|e| output_error(e.into()))?;
        let file =
            out.into_inner().into_inner().map_err(|e| output_error(e.into_error().into()))?;
        file.sync_all().map_err(|e| output_error(e.into()))?;
    }
    Ok(report)
}
