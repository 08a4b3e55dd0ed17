//! MCAP records parsed from files dtbridge did not write, or that may be corrupt: the lengths
//! a record declares for its strings, byte arrays and maps are checked against the record
//! before the `mcap` crate parses it. The crate reserves a declared length up front, so a
//! corrupt length in a small record asked for 4 GiB and aborted the process (found by the
//! `mcap_repair` fuzz target).

use mcap::McapError;
use mcap::records::{Record, op};

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
            fields.chunk_header()?;
            fields.sized(8)?;
        }
        op::MESSAGE_INDEX => {
            fields.skip(2)?;
            fields.sized(4)?;
        }
        op::CHUNK_INDEX => {
            fields.skip(32)?;
            fields.sized(4)?;
            fields.skip(8)?;
            fields.strings(1)?;
        }
        op::ATTACHMENT => {
            fields.skip(16)?;
            fields.strings(2)?;
            fields.sized(8)?;
        }
        op::ATTACHMENT_INDEX => {
            fields.skip(40)?;
            fields.strings(2)?;
        }
        op::STATISTICS => {
            fields.skip(42)?;
            fields.sized(4)?;
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
    Fields { rest: prefix, opcode: op::CHUNK }.chunk_header()
}

/// The unread part of a record's body.
struct Fields<'a> {
    rest: &'a [u8],
    opcode: u8,
}

impl Fields<'_> {
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

    /// A field prefixed by its length in `width` bytes.
    fn sized(&mut self, width: usize) -> Result<(), McapError> {
        let len = self.length(width)?;
        self.skip(len)
    }

    /// A chunk's start and end times, uncompressed size and CRC, then its compression name.
    fn chunk_header(&mut self) -> Result<(), McapError> {
        self.skip(28)?;
        self.strings(1)
    }

    fn strings(&mut self, count: usize) -> Result<(), McapError> {
        (0..count).try_for_each(|_| self.sized(4))
    }

    /// A map of strings to strings: its byte length, then pairs within it.
    fn string_map(&mut self) -> Result<(), McapError> {
        let len = self.length(4)?;
        let before = self.rest;
        self.skip(len)?;
        let mut entries = Fields { rest: &before[..len as usize], opcode: self.opcode };
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
}
