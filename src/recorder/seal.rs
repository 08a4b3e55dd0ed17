//! Finalizing a recording in place after a write error (a full disk): keep every complete
//! record, cut the partial tail, and append a data end record, a summary (schemas, channels,
//! statistics, chunk and metadata indexes) and the footer, so the file is complete and indexed
//! without needing room for a copy.
//!
//! The file is scanned record by record from the start (records are not decompressed, except
//! the last chunk, whose message indexes are rebuilt because they may have been cut off).

use super::encoding::SchemaSpec;
use binrw::{BinRead, BinWrite};
use mcap::records::{self, op};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Cursor};
use std::os::unix::fs::FileExt;

/// Records other than chunks longer than this end the scan (a corrupt length).
const MAX_SMALL_RECORD: u64 = 64 << 20;

/// What the recorder registered in the file (the summary repeats it).
#[derive(Debug, Default)]
pub(crate) struct Registered {
    /// Schemas by id.
    pub schemas: Vec<(u16, SchemaSpec)>,
    /// Channels.
    pub channels: Vec<records::Channel>,
}

/// The outcome of [`seal`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sealed {
    /// Messages in the sealed file.
    pub messages: u64,
    /// Its final length.
    pub length: u64,
}

/// A chunk found by the scan.
struct Chunk {
    offset: u64,
    length: u64,
    header: records::ChunkHeader,
    indexes: BTreeMap<u16, u64>,
    index_length: u64,
    counts: BTreeMap<u16, u64>,
}

/// The largest chunk content sealing decompresses: a chunk dtbridge writes holds up to its
/// chunk size (1 MiB by default) plus one message of at most
/// [`super::encoding::MAX_DECOMPRESSED_BYTES`]; a corrupt header claiming more is not
/// believed (allocating what it claims could abort the process).
const MAX_CHUNK_CONTENT: u64 = 2 * super::encoding::MAX_DECOMPRESSED_BYTES as u64;

/// `len` bytes at `offset`; an error, before allocating anything, when they run past the end
/// of the file (a corrupt length).
fn read_at(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let file_len = file.metadata()?.len();
    if offset.checked_add(len).is_none_or(|end| end > file_len) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{len} bytes at {offset} run past the end of the file ({file_len} bytes)"),
        ));
    }
    let len = usize::try_from(len).map_err(|_| io::Error::other("record too large"))?;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// The record `opcode` with `body`, once the lengths it declares fit in it.
fn checked<T: for<'a> BinRead<Args<'a> = ()>>(opcode: u8, body: &[u8]) -> Option<T> {
    crate::mcap_record::check(opcode, body).ok()?;
    parse(body)
}

/// A record body (or a fixed-size record's prefix) parsed by the `mcap` crate; callers check
/// declared lengths first ([`crate::mcap_record`]) where the record has any.
fn parse<T: for<'a> BinRead<Args<'a> = ()>>(bytes: &[u8]) -> Option<T> {
    T::read_le(&mut Cursor::new(bytes)).ok()
}

/// Appends one record (opcode, length, body) to `out`.
fn push_record<T: for<'a> BinWrite<Args<'a> = ()>>(
    out: &mut Vec<u8>,
    opcode: u8,
    value: &T,
) -> io::Result<()> {
    let mut body = Vec::new();
    value.write_le(&mut Cursor::new(&mut body)).map_err(io::Error::other)?;
    out.push(opcode);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Seals `file` (see the module docs). On error the file is left cut at its last complete
/// record: readable by a linear reader and by `repair`, but without a summary.
pub(crate) fn seal(file: &File, registered: &Registered) -> io::Result<Sealed> {
    let len = file.metadata()?.len();
    let mut magic = [0u8; 8];
    if len < 8 || file.read_exact_at(&mut magic, 0).is_err() || magic != mcap::MAGIC {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no MCAP header on disk"));
    }
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut metadata_indexes = Vec::new();
    let mut offset = 8u64;
    let mut header_seen = false;
    while offset + 9 <= len {
        let mut head = [0u8; 9];
        file.read_exact_at(&mut head, offset)?;
        let opcode = head[0];
        let body_len = u64::from_le_bytes(head[1..].try_into().unwrap_or_default());
        let Some(end) = (offset + 9).checked_add(body_len).filter(|end| *end <= len) else {
            break;
        };
        let complete = match opcode {
            op::HEADER => !header_seen,
            op::CHUNK => {
                let prefix = read_at(file, offset + 9, body_len.min(256))?;
                let checked = crate::mcap_record::check_chunk_header(&prefix).is_ok();
                match checked.then(|| parse::<records::ChunkHeader>(&prefix)).flatten() {
                    Some(header)
                        if (40 + header.compression.len() as u64)
                            .checked_add(header.compressed_size)
                            == Some(body_len) =>
                    {
                        chunks.push(Chunk {
                            offset,
                            length: end - offset,
                            header,
                            indexes: BTreeMap::new(),
                            index_length: 0,
                            counts: BTreeMap::new(),
                        });
                        true
                    }
                    _ => false,
                }
            }
            op::MESSAGE_INDEX if body_len <= MAX_SMALL_RECORD => {
                let body = read_at(file, offset + 9, body_len)?;
                match (
                    checked::<records::MessageIndex>(op::MESSAGE_INDEX, &body),
                    chunks.last_mut(),
                ) {
                    (Some(index), Some(chunk)) => {
                        chunk.indexes.insert(index.channel_id, offset);
                        chunk.index_length += end - offset;
                        *chunk.counts.entry(index.channel_id).or_default() +=
                            index.records.len() as u64;
                        true
                    }
                    _ => false,
                }
            }
            op::METADATA if body_len <= MAX_SMALL_RECORD => {
                let body = read_at(file, offset + 9, body_len)?;
                match checked::<records::Metadata>(op::METADATA, &body) {
                    Some(metadata) => {
                        metadata_indexes.push(records::MetadataIndex {
                            offset,
                            length: end - offset,
                            name: metadata.name,
                        });
                        true
                    }
                    None => false,
                }
            }
            op::SCHEMA | op::CHANNEL | op::MESSAGE => true,
            // Data end, summary records, attachments (never written here), garbage.
            _ => false,
        };
        if !complete {
            break;
        }
        header_seen = true;
        offset = end;
    }
    if !header_seen {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no MCAP header on disk"));
    }
    let mut good_end = offset;
    // The last chunk's message indexes may be cut: rebuild them from its content.
    let mut rebuilt = Vec::new();
    if let Some(last) = chunks.last_mut()
        && last.offset + last.length + last.index_length == good_end
    {
        match rebuild_indexes(file, last)? {
            Some(Rebuilt { lengths, counts, bytes }) => {
                good_end = last.offset + last.length;
                let mut at = good_end;
                last.indexes.clear();
                for (channel, length) in lengths {
                    last.indexes.insert(channel, at);
                    at += length;
                }
                last.index_length = at - good_end;
                last.counts = counts;
                rebuilt = bytes;
            }
            None => {
                good_end = last.offset;
                chunks.pop();
            }
        }
    }
    file.set_len(good_end)?;
    let mut tail = rebuilt;
    let data_end = good_end + tail.len() as u64;
    push_record(&mut tail, op::DATA_END, &records::DataEnd { data_section_crc: 0 })?;
    let summary_start = good_end + tail.len() as u64;
    let (summary, messages) = summary(summary_start, &chunks, &metadata_indexes, registered)?;
    tail.extend_from_slice(&summary);
    let written = file.write_all_at(&tail, good_end).and_then(|()| file.sync_all());
    if let Err(err) = written {
        // Leave a clean, summary-less file rather than a partial summary.
        _ = file.set_len(data_end.min(good_end));
        _ = file.sync_all();
        return Err(err);
    }
    Ok(Sealed { messages, length: good_end + tail.len() as u64 })
}

/// Message index records rebuilt from a chunk's content.
struct Rebuilt {
    /// (channel, record length), in file order.
    lengths: Vec<(u16, u64)>,
    /// Messages per channel.
    counts: BTreeMap<u16, u64>,
    /// The serialized records.
    bytes: Vec<u8>,
}

/// The message index records of a chunk built from its content, or `None` when the chunk
/// cannot be read (it is then dropped).
fn rebuild_indexes(file: &File, chunk: &Chunk) -> io::Result<Option<Rebuilt>> {
    let header = &chunk.header;
    let data_offset = chunk.offset + 9 + 40 + header.compression.len() as u64;
    if header.uncompressed_size > MAX_CHUNK_CONTENT {
        return Ok(None);
    }
    let compressed = match read_at(file, data_offset, header.compressed_size) {
        Ok(compressed) => compressed,
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    };
    let Ok(size) = usize::try_from(header.uncompressed_size) else { return Ok(None) };
    let data = match header.compression.as_str() {
        "" => compressed,
        "zstd" => match zstd::bulk::decompress(&compressed, size) {
            Ok(data) => data,
            Err(_) => return Ok(None),
        },
        _ => return Ok(None),
    };
    let mut entries: BTreeMap<u16, Vec<records::MessageIndexEntry>> = BTreeMap::new();
    let mut at = 0usize;
    while at + 9 <= data.len() {
        let opcode = data[at];
        let body_len = u64::from_le_bytes(data[at + 1..at + 9].try_into().unwrap_or_default());
        let Some(end) = usize::try_from(body_len)
            .ok()
            .and_then(|n| (at + 9).checked_add(n))
            .filter(|end| *end <= data.len())
        else {
            return Ok(None);
        };
        if opcode == op::MESSAGE {
            match parse::<records::MessageHeader>(&data[at + 9..end]) {
                Some(message) => entries.entry(message.channel_id).or_default().push(
                    records::MessageIndexEntry { log_time: message.log_time, offset: at as u64 },
                ),
                None => return Ok(None),
            }
        }
        at = end;
    }
    let mut bytes = Vec::new();
    let mut lengths = Vec::new();
    let mut counts = BTreeMap::new();
    for (channel_id, records) in entries {
        let before = bytes.len();
        counts.insert(channel_id, records.len() as u64);
        push_record(&mut bytes, op::MESSAGE_INDEX, &records::MessageIndex { channel_id, records })?;
        lengths.push((channel_id, (bytes.len() - before) as u64));
    }
    Ok(Some(Rebuilt { lengths, counts, bytes }))
}

/// The summary section starting at `start` (schemas, channels, statistics, chunk indexes,
/// metadata indexes, summary offsets) and the footer with the end magic.
fn summary(
    start: u64,
    chunks: &[Chunk],
    metadata_indexes: &[records::MetadataIndex],
    registered: &Registered,
) -> io::Result<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    let mut group = |out: &mut Vec<u8>, opcode: u8, from: usize| {
        if out.len() > from {
            offsets.push(records::SummaryOffset {
                group_opcode: opcode,
                group_start: start + from as u64,
                group_length: (out.len() - from) as u64,
            });
        }
    };
    let from = out.len();
    for (id, schema) in &registered.schemas {
        let header = records::SchemaHeader {
            id: *id,
            name: schema.name.clone(),
            encoding: schema.encoding.clone(),
        };
        let mut body = Vec::new();
        header.write_le(&mut Cursor::new(&mut body)).map_err(io::Error::other)?;
        body.extend_from_slice(&(schema.data.len() as u32).to_le_bytes());
        body.extend_from_slice(&schema.data);
        out.push(op::SCHEMA);
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&body);
    }
    group(&mut out, op::SCHEMA, from);
    let from = out.len();
    for channel in &registered.channels {
        push_record(&mut out, op::CHANNEL, channel)?;
    }
    group(&mut out, op::CHANNEL, from);

    let mut counts: BTreeMap<u16, u64> = BTreeMap::new();
    for chunk in chunks {
        for (channel, n) in &chunk.counts {
            *counts.entry(*channel).or_default() += n;
        }
    }
    let with_messages = chunks.iter().filter(|c| c.counts.values().any(|n| *n > 0));
    let messages = counts.values().sum();
    let stats = records::Statistics {
        message_count: messages,
        schema_count: registered.schemas.len() as u16,
        channel_count: registered.channels.len() as u32,
        attachment_count: 0,
        metadata_count: metadata_indexes.len() as u32,
        chunk_count: chunks.len() as u32,
        message_start_time: with_messages
            .clone()
            .map(|c| c.header.message_start_time)
            .min()
            .unwrap_or(0),
        message_end_time: with_messages.map(|c| c.header.message_end_time).max().unwrap_or(0),
        channel_message_counts: counts,
    };
    let from = out.len();
    push_record(&mut out, op::STATISTICS, &stats)?;
    group(&mut out, op::STATISTICS, from);
    let from = out.len();
    for chunk in chunks {
        let index = records::ChunkIndex {
            message_start_time: chunk.header.message_start_time,
            message_end_time: chunk.header.message_end_time,
            chunk_start_offset: chunk.offset,
            chunk_length: chunk.length,
            message_index_offsets: chunk.indexes.clone(),
            message_index_length: chunk.index_length,
            compression: chunk.header.compression.clone(),
            compressed_size: chunk.header.compressed_size,
            uncompressed_size: chunk.header.uncompressed_size,
        };
        push_record(&mut out, op::CHUNK_INDEX, &index)?;
    }
    group(&mut out, op::CHUNK_INDEX, from);
    let from = out.len();
    for index in metadata_indexes {
        push_record(&mut out, op::METADATA_INDEX, index)?;
    }
    group(&mut out, op::METADATA_INDEX, from);

    let summary_offset_start = start + out.len() as u64;
    for offset in &offsets {
        push_record(&mut out, op::SUMMARY_OFFSET, offset)?;
    }
    let footer = records::Footer { summary_start: start, summary_offset_start, summary_crc: 0 };
    push_record(&mut out, op::FOOTER, &footer)?;
    out.extend_from_slice(mcap::MAGIC);
    Ok((out, messages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A recording written as the recorder writes it (no seeking, zstd chunks closed every 10
    /// messages or at 2 KiB), with 3 channels; returns the bytes, what was registered and the
    /// messages sent.
    /// Messages sent: (channel, data).
    type Sent = Vec<(u16, Vec<u8>)>;

    fn recording() -> (Vec<u8>, Registered, Sent) {
        let options = mcap::WriteOptions::new()
            .profile("ros2")
            .compression(Some(mcap::Compression::Zstd))
            .chunk_size(Some(2048))
            .disable_seeking(true);
        let mut writer = options.create(Cursor::new(Vec::new())).unwrap();
        let metadata = records::Metadata { name: "dtbridge".into(), metadata: BTreeMap::new() };
        writer.write_metadata(&metadata).unwrap();
        let mut registered = Registered::default();
        let schema = SchemaSpec {
            name: "pkg/msg/T".into(),
            encoding: "ros2msg".into(),
            data: b"uint8 x".to_vec(),
        };
        let schema_id = writer.add_schema(&schema.name, &schema.encoding, &schema.data).unwrap();
        registered.schemas.push((schema_id, schema));
        let mut channels = Vec::new();
        for (n, topic) in ["/a", "/b", "/c"].iter().enumerate() {
            let sid = if n == 2 { 0 } else { schema_id };
            let id = writer.add_channel(sid, topic, "cdr", &BTreeMap::new()).unwrap();
            registered.channels.push(records::Channel {
                id,
                schema_id: sid,
                topic: topic.to_string(),
                message_encoding: "cdr".into(),
                metadata: BTreeMap::new(),
            });
            channels.push(id);
        }
        let mut sent = Vec::new();
        for i in 0..90u64 {
            let channel = channels[(i % 3) as usize];
            let data: Vec<u8> = (0..(i * 13 % 200)).map(|j| (j ^ i) as u8).collect();
            let header = records::MessageHeader {
                channel_id: channel,
                sequence: i as u32,
                log_time: 1000 + i,
                publish_time: i,
            };
            writer.write_to_known_channel(&header, &data).unwrap();
            sent.push((channel, data));
            if i % 10 == 9 {
                writer.flush().unwrap();
            }
        }
        writer.finish().unwrap();
        (writer.into_inner().into_inner(), registered, sent)
    }

    #[test]
    fn every_cut_seals_into_a_complete_indexed_prefix() {
        let (bytes, registered, sent) = recording();
        let dir = std::env::temp_dir().join(format!("dtbridge-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cut.mcap");
        let mut best = 0;
        for cut in (0..=bytes.len()).step_by(11).chain([bytes.len()]) {
            let mut file = File::create(&path).unwrap();
            file.write_all(&bytes[..cut]).unwrap();
            // A power loss may leave zeros after the data.
            if cut % 2 == 0 {
                file.write_all(&[0; 100]).unwrap();
            }
            drop(file);
            let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
            let sealed = match seal(&file, &registered) {
                Ok(sealed) => sealed,
                Err(_) => {
                    assert!(cut < 60, "cut {cut}: only a missing header may fail");
                    continue;
                }
            };
            let out = std::fs::read(&path).unwrap();
            assert_eq!(out.len() as u64, sealed.length);
            let messages: Vec<_> = mcap::MessageStream::new(&out)
                .unwrap()
                .map(|m| m.unwrap_or_else(|e| panic!("cut {cut}: {e}")))
                .collect();
            assert_eq!(messages.len() as u64, sealed.messages, "cut {cut}");
            for (m, (channel, data)) in messages.iter().zip(&sent) {
                assert_eq!((m.channel.id, m.data.as_ref()), (*channel, data.as_slice()));
            }
            let summary = mcap::Summary::read(&out).unwrap().unwrap();
            assert_eq!(summary.stats.as_ref().unwrap().message_count, sealed.messages);
            for chunk in &summary.chunk_indexes {
                let indexes = summary.read_message_indexes(&out, chunk).unwrap();
                let indexed: usize = indexes.values().map(Vec::len).sum();
                assert_eq!(
                    indexed,
                    summary.stream_chunk(&out, chunk).unwrap().count(),
                    "cut {cut}"
                );
            }
            assert!(sealed.messages >= best, "cut {cut}: a longer file never keeps fewer");
            best = sealed.messages;
        }
        assert_eq!(best, sent.len() as u64, "the complete file keeps everything");
        _ = std::fs::remove_dir_all(&dir);
    }

    /// A chunk header claiming sizes no file holds (a corrupt or hostile file) drops that
    /// chunk and what follows; sealing never allocates what the header claims.
    #[test]
    fn a_chunk_claiming_impossible_sizes_is_dropped_not_believed() {
        let (bytes, registered, sent) = recording();
        // The last chunk: its indexes are the ones sealing rebuilds from its content.
        let (mut at, mut last_chunk) = (8usize, None);
        while at + 9 <= bytes.len() {
            let body_len = u64::from_le_bytes(bytes[at + 1..at + 9].try_into().unwrap());
            if bytes[at] == op::CHUNK {
                last_chunk = Some(at);
            }
            at += 9 + body_len as usize;
        }
        // Chunk header body: message start and end time (8 + 8), then the uncompressed size.
        let uncompressed_at = last_chunk.unwrap() + 9 + 16;
        let dir = std::env::temp_dir().join(format!("dtbridge-seal-huge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("huge.mcap");
        for claim in [u64::MAX, 1 << 40, MAX_CHUNK_CONTENT + 1] {
            let mut corrupt = bytes.clone();
            corrupt[uncompressed_at..uncompressed_at + 8].copy_from_slice(&claim.to_le_bytes());
            std::fs::write(&path, &corrupt).unwrap();
            let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
            let sealed = seal(&file, &registered).expect("sealed without the corrupt chunk");
            assert!(sealed.messages < sent.len() as u64, "claim {claim}: the chunk went");
            let out = std::fs::read(&path).unwrap();
            assert_eq!(mcap::MessageStream::new(&out).unwrap().count() as u64, sealed.messages);
        }
        _ = std::fs::remove_dir_all(&dir);
    }
}
