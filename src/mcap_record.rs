//! MCAP records parsed from files dtbridge did not write, or that may be corrupt: the lengths
//! a record declares for its strings, byte arrays and maps are checked against the record
//! before the `mcap` crate parses it. The crate reserves a declared length up front, so a
//! corrupt length in a small record asked for 4 GiB and aborted the process (found by the
//! `mcap_repair` fuzz target). [`read_records`] reads a file front to back the same way,
//! chunks included: the crate's reader trusts the lengths of the records inside an
//! uncompressed chunk, and one that runs past its chunk overflowed its arithmetic.

use mcap::McapError;
use mcap::records::{Record, op};
use mcap::sans_io::{LinearReadEvent, LinearReader, LinearReaderOptions};
use std::io::Read;
use std::ops::ControlFlow;

/// Parses the record `opcode` with `body`, once every length it declares fits in the body.
pub fn parse(opcode: u8, body: &[u8]) -> Result<Record<'_>, McapError> {
    check(opcode, body)?;
    mcap::parse_record(opcode, body)
}

/// Whether every length the record `opcode` declares in `body` fits in it.
pub fn check(opcode: u8, body: &[u8]) -> Result<(), McapError> {
    let mut fields = Fields { rest: body, opcode };
    match opcode {
        op::HEADER => fields.strings(2)?,
        op::SCHEMA => {
            fields.skip(2)?;
            fields.strings(2)?;
            fields.sized(4)?;
        }
        op::CHANNEL => {
            fields.skip(4)?;
            fields.strings(2)?;
            fields.string_map()?;
        }
        op::CHUNK => {
            let compression = fields.chunk_header()?;
            let records = fields.sized(8)?;
            if compression.is_empty() {
                Fields { rest: records, opcode }.records()?;
            }
        }
        op::MESSAGE_INDEX => {
            fields.skip(2)?;
            fields.entries(16)?;
        }
        op::CHUNK_INDEX => {
            fields.skip(32)?;
            fields.entries(10)?;
            fields.skip(8)?;
            fields.strings(1)?;
        }
        op::ATTACHMENT => {
            fields.skip(16)?;
            fields.strings(2)?;
            fields.sized(8)?;
            // Its CRC: the crate slices the body four bytes short of its end before it
            // checks the data's length, and panicked on a body shorter than that (found by
            // the `mcap_repair` fuzz target).
            fields.skip(4)?;
        }
        op::ATTACHMENT_INDEX => {
            fields.skip(40)?;
            fields.strings(2)?;
        }
        op::STATISTICS => {
            fields.skip(42)?;
            fields.entries(10)?;
        }
        op::METADATA => {
            fields.strings(1)?;
            fields.string_map()?;
        }
        op::METADATA_INDEX => {
            fields.skip(16)?;
            fields.strings(1)?;
        }
        // Fixed layouts (footer, message header, summary offset, data end) and records this
        // reader does not know.
        _ => {}
    }
    Ok(())
}

/// Whether the compression name a chunk's header declares fits in `prefix`, the start of the
/// chunk's body (its header, without the records).
pub fn check_chunk_header(prefix: &[u8]) -> Result<(), McapError> {
    Fields { rest: prefix, opcode: op::CHUNK }.chunk_header().map(drop)
}

/// Why [`read_records`] stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum ReadStop<E> {
    /// The input could not be read.
    #[error("{0}")]
    Input(std::io::Error),
    /// The bytes read are not a valid MCAP record.
    #[error("before byte {at}: {}{source}", opcode.map(|op| format!("record 0x{op:02x}: ")).unwrap_or_default())]
    Corrupt {
        /// How many bytes of the input had been read.
        at: u64,
        /// The record being parsed, when its opcode was read.
        opcode: Option<u8>,
        /// What is wrong.
        source: McapError,
    },
    /// The caller's function returned an error.
    #[error("{0}")]
    Each(E),
}

/// Reads `input` (an MCAP file from its start, `input_len` bytes long) record by record, with
/// `options` (magic, CRCs, record length limit), passing each parsed record to `each` until it
/// breaks. A chunk's records are passed in its place, after the chunk itself: decompressed,
/// their CRC checked as `options` say, and every length checked before it is trusted.
///
/// The crate's reader makes room for a whole record before reading it, zero-filled, so a
/// corrupt length in a tiny file had it fill up to the record length limit (1 GiB: found by
/// the `mcap_repair` fuzz target); it is never given more room than the input has left, and
/// such a record ends the read as cut off.
pub fn read_records<E>(
    mut input: impl Read,
    input_len: u64,
    options: LinearReaderOptions,
    mut each: impl FnMut(Record<'_>) -> Result<ControlFlow<()>, E>,
) -> Result<(), ReadStop<E>> {
    let chunk_options = options.clone().with_skip_start_magic(true).with_skip_end_magic(true);
    let mut reader = LinearReader::new_with_options(options.with_emit_chunks(true));
    let mut at = 0u64;
    while let Some(event) = reader.next_event() {
        let corrupt = |opcode, source| ReadStop::Corrupt { at, opcode, source };
        let (opcode, data) = match event.map_err(|err| corrupt(None, err))? {
            LinearReadEvent::ReadRequest(need) => {
                let left = usize::try_from(input_len.saturating_sub(at)).unwrap_or(usize::MAX);
                let need = need.min(left);
                let read = loop {
                    match input.read(reader.insert(need)) {
                        Ok(n) => break n,
                        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(ReadStop::Input(err)),
                    }
                };
                reader.notify_read(read);
                at += read as u64;
                continue;
            }
            LinearReadEvent::Record { opcode, data } => (opcode, data),
        };
        let record = parse(opcode, data).map_err(|err| corrupt(Some(opcode), err))?;
        let chunk = matches!(record, Record::Chunk { .. });
        if each(record).map_err(ReadStop::Each)?.is_break() {
            return Ok(());
        }
        if chunk {
            let records = read_chunk(opcode, data, chunk_options.clone(), &mut each);
            match records.map_err(|err| err.within(at))? {
                ControlFlow::Break(()) => return Ok(()),
                ControlFlow::Continue(()) => {}
            }
        }
    }
    Ok(())
}

/// The records of one chunk (`body`, already checked), through a reader of its own.
fn read_chunk<E>(
    opcode: u8,
    body: &[u8],
    options: LinearReaderOptions,
    each: &mut impl FnMut(Record<'_>) -> Result<ControlFlow<()>, E>,
) -> Result<ControlFlow<()>, ReadStop<E>> {
    let mut reader = LinearReader::new_with_options(options);
    let prefix: Vec<u8> =
        std::iter::once(opcode).chain((body.len() as u64).to_le_bytes()).collect();
    let mut input = prefix.chain(body);
    while let Some(event) = reader.next_event() {
        let corrupt = |opcode, source| ReadStop::Corrupt { at: 0, opcode, source };
        match event.map_err(|err| corrupt(None, err))? {
            LinearReadEvent::ReadRequest(need) => {
                let read = input.read(reader.insert(need)).map_err(ReadStop::Input)?;
                reader.notify_read(read);
            }
            LinearReadEvent::Record { opcode, data } => {
                let record = parse(opcode, data).map_err(|err| corrupt(Some(opcode), err))?;
                if each(record).map_err(ReadStop::Each)?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

impl<E> ReadStop<E> {
    /// This error, for a chunk that ends at byte `at` of the file.
    fn within(self, at: u64) -> Self {
        match self {
            ReadStop::Corrupt { opcode, source, .. } => ReadStop::Corrupt { at, opcode, source },
            other => other,
        }
    }
}

/// The unread part of a record's body.
struct Fields<'a> {
    rest: &'a [u8],
    opcode: u8,
}

impl<'a> Fields<'a> {
    fn too_long(&self, len: u64) -> McapError {
        McapError::RecordTooLarge { opcode: self.opcode, len }
    }

    fn skip(&mut self, len: u64) -> Result<(), McapError> {
        let len_in_body = usize::try_from(len).ok().filter(|&n| n <= self.rest.len());
        let Some(n) = len_in_body else { return Err(self.too_long(len)) };
        self.rest = &self.rest[n..];
        Ok(())
    }

    /// A little-endian length of `width` bytes (4 or 8).
    fn length(&mut self, width: usize) -> Result<u64, McapError> {
        let Some(bytes) = self.rest.get(..width) else { return Err(McapError::UnexpectedEof) };
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(bytes);
        self.rest = &self.rest[width..];
        Ok(u64::from_le_bytes(le))
    }

    /// A field prefixed by its length in `width` bytes; its bytes.
    fn sized(&mut self, width: usize) -> Result<&'a [u8], McapError> {
        let len = self.length(width)?;
        let before = self.rest;
        self.skip(len)?;
        Ok(&before[..before.len() - self.rest.len()])
    }

    /// A chunk's start and end times, uncompressed size and CRC, then its compression name,
    /// which it returns.
    fn chunk_header(&mut self) -> Result<&'a [u8], McapError> {
        self.skip(28)?;
        self.sized(4)
    }

    /// An array or map of fixed-size entries, `entry_len` bytes each, prefixed by its length
    /// in bytes. The crate reads whole entries while it has not reached that length, so a
    /// length between two entries had it read on past the field, into a string's length
    /// where there was none (found by the `mcap_repair` fuzz target: 3 GB asked for).
    fn entries(&mut self, entry_len: u64) -> Result<(), McapError> {
        let len = self.sized(4)?.len() as u64;
        if !len.is_multiple_of(entry_len) {
            return Err(self.too_long(len));
        }
        Ok(())
    }

    fn strings(&mut self, count: usize) -> Result<(), McapError> {
        (0..count).try_for_each(|_| self.sized(4).map(drop))
    }

    /// Records (an opcode, a length of 8 bytes and that many bytes), up to the end.
    fn records(mut self) -> Result<(), McapError> {
        while !self.rest.is_empty() {
            self.skip(1).and_then(|()| self.sized(8)).map_err(|_| McapError::UnexpectedEoc)?;
        }
        Ok(())
    }

    /// A map of strings to strings: its byte length, then pairs within it.
    fn string_map(&mut self) -> Result<(), McapError> {
        let mut entries = Fields { rest: self.sized(4)?, opcode: self.opcode };
        while !entries.rest.is_empty() {
            entries.strings(2)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(profile_len: u32, profile: &[u8]) -> Vec<u8> {
        let mut body = profile_len.to_le_bytes().to_vec();
        body.extend_from_slice(profile);
        body.extend_from_slice(&0u32.to_le_bytes());
        body
    }

    #[test]
    fn a_length_beyond_the_record_is_refused_before_parsing() {
        let Record::Header(parsed) = parse(op::HEADER, &header(4, b"ros2")).unwrap() else {
            panic!("not a header")
        };
        assert_eq!(parsed.profile, "ros2");
        let err = parse(op::HEADER, &header(u32::MAX, b"ros2")).unwrap_err();
        assert!(matches!(err, McapError::RecordTooLarge { opcode: op::HEADER, .. }), "{err}");
    }

    #[test]
    fn a_map_length_between_two_entries_is_refused() {
        // A chunk index: times, offset and length, then a map of one 10-byte entry declared
        // as 9 bytes. The crate read the whole entry, then took the compression name's
        // length from the bytes of the message index length and asked for 3 GB.
        let chunk_index = |map_len: u32| {
            let mut body = vec![0u8; 32];
            body.extend_from_slice(&map_len.to_le_bytes());
            body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            body.extend_from_slice(&0xb5b5_b5b5_0000_0000u64.to_le_bytes());
            body.extend_from_slice(&0u32.to_le_bytes());
            body.extend_from_slice(&[0; 16]);
            body
        };
        let Record::ChunkIndex(index) = parse(op::CHUNK_INDEX, &chunk_index(10)).unwrap() else {
            panic!("not a chunk index")
        };
        assert_eq!(index.message_index_offsets.len(), 1);
        let err = parse(op::CHUNK_INDEX, &chunk_index(9)).unwrap_err();
        assert!(
            matches!(err, McapError::RecordTooLarge { opcode: op::CHUNK_INDEX, len: 9 }),
            "{err}"
        );
    }

    #[test]
    fn an_attachment_without_room_for_its_crc_is_refused() {
        // Log and create time, name "a", media type "", no data, then 2 of the CRC's 4 bytes:
        // the crate panicked on it (`slice index starts at 33 but ends at 31`).
        let mut body = vec![0u8; 16];
        body.extend_from_slice(&1u32.to_le_bytes());
        body.push(b'a');
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&[0, 0]);
        assert!(parse(op::ATTACHMENT, &body).is_err());
        body.extend_from_slice(&[0, 0]);
        assert!(matches!(parse(op::ATTACHMENT, &body), Ok(Record::Attachment { .. })));
    }

    #[test]
    fn a_chunk_headers_compression_name_must_fit() {
        let mut prefix = vec![0u8; 28];
        prefix.extend_from_slice(&4u32.to_le_bytes());
        prefix.extend_from_slice(b"zstd");
        assert!(check_chunk_header(&prefix).is_ok());
        prefix[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_chunk_header(&prefix).is_err());
    }

    #[test]
    fn a_map_entry_beyond_its_map_is_refused() {
        // Channel 1, schema 0, topic "/t", encoding "", then a map of 8 bytes whose key
        // claims 100.
        let mut body = vec![1, 0, 0, 0];
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(b"/t");
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&8u32.to_le_bytes());
        body.extend_from_slice(&100u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(parse(op::CHANNEL, &body), Err(McapError::RecordTooLarge { .. })));
    }

    /// A file written by the `mcap` crate with `compression`, read back as message counts.
    fn messages_read(compression: Option<mcap::Compression>) -> Result<u64, ReadStop<()>> {
        let mut file = Vec::new();
        let options = mcap::WriteOptions::new().compression(compression).chunk_size(Some(64));
        let mut writer = options.create(std::io::Cursor::new(&mut file)).unwrap();
        let channel = writer.add_channel(0, "/t", "raw", &Default::default()).unwrap();
        for sequence in 0..10 {
            let header = mcap::records::MessageHeader {
                channel_id: channel,
                sequence,
                log_time: sequence.into(),
                publish_time: 0,
            };
            writer.write_to_known_channel(&header, &[7; 40]).unwrap();
        }
        writer.finish().unwrap();
        drop(writer);
        let mut messages = 0;
        read_records(&file[..], file.len() as u64, LinearReaderOptions::default(), |record| {
            messages += u64::from(matches!(record, Record::Message { .. }));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(messages)
    }

    #[test]
    fn every_message_of_chunked_files_is_read() {
        for compression in [None, Some(mcap::Compression::Zstd), Some(mcap::Compression::Lz4)] {
            assert_eq!(messages_read(compression).unwrap(), 10, "{compression:?}");
        }
    }

    /// The magic and a header record with an empty profile and library: a file's start.
    fn magic_and_header() -> Vec<u8> {
        let mut file = mcap::MAGIC.to_vec();
        file.push(op::HEADER);
        file.extend_from_slice(&8u64.to_le_bytes());
        file.extend_from_slice(&[0; 8]);
        file
    }

    #[test]
    fn a_record_running_past_its_uncompressed_chunk_is_refused() {
        // An uncompressed chunk of 9 record bytes whose record claims 100 bytes, followed by
        // enough file to hold them (the crate's reader overflowed here, found by the
        // `mcap_repair` fuzz target).
        let mut file = magic_and_header();
        let mut chunk = vec![0u8; 28];
        chunk.extend_from_slice(&0u32.to_le_bytes());
        chunk.extend_from_slice(&9u64.to_le_bytes());
        chunk.push(op::METADATA);
        chunk.extend_from_slice(&100u64.to_le_bytes());
        file.push(op::CHUNK);
        file.extend_from_slice(&(chunk.len() as u64).to_le_bytes());
        file.extend_from_slice(&chunk);
        file.extend_from_slice(&[0; 200]);
        let options = LinearReaderOptions::default().with_skip_end_magic(true);
        let len = file.len() as u64;
        let read =
            read_records(&file[..], len, options, |_| Ok::<_, ()>(ControlFlow::Continue(())));
        let Err(ReadStop::Corrupt { opcode: Some(op::CHUNK), source, .. }) = read else {
            panic!("not refused as a corrupt chunk: {read:?}")
        };
        assert!(matches!(source, McapError::UnexpectedEoc), "{source}");
    }

    /// A reader over `bytes` that remembers the largest buffer it was asked to fill.
    struct Watched<'a> {
        bytes: &'a [u8],
        largest_ask: usize,
    }

    impl Read for Watched<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.largest_ask = self.largest_ask.max(buf.len());
            self.bytes.read(buf)
        }
    }

    #[test]
    fn a_record_longer_than_the_file_gets_no_room_beyond_it() {
        // A header, then a record claiming 900 MB in a file of a few dozen bytes (the crate's
        // reader zero-filled that much before reading: found by the `mcap_repair` fuzz target).
        let mut file = magic_and_header();
        file.push(op::METADATA);
        file.extend_from_slice(&900_000_000u64.to_le_bytes());
        file.extend_from_slice(&[0; 16]);
        let mut input = Watched { bytes: &file, largest_ask: 0 };
        let options = LinearReaderOptions::default()
            .with_skip_end_magic(true)
            .with_record_length_limit(1 << 30);
        let read = read_records(&mut input, file.len() as u64, options, |_| {
            Ok::<_, ()>(ControlFlow::Continue(()))
        });
        assert!(read.is_err(), "a record cut off by the end of the file is an error");
        assert!(input.largest_ask <= file.len(), "asked to fill {} bytes", input.largest_ask);
    }
}
