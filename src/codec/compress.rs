//! zstd frame compression and the `<base>+zstd` frame-encoding naming rule.
//!
//! A route that compresses a frame publishes it with the encoding of the payload plus the
//! suffix [`ZSTD_SUFFIX`] (`cdr` -> `cdr+zstd`); a receiver strips the suffix to learn the
//! original encoding ([`strip_zstd_encoding`]) and decompresses with a size limit.

use super::CodecError;
use std::io::Read;

/// Suffix appended to a frame encoding when the frame is zstd-compressed.
pub const ZSTD_SUFFIX: &str = "+zstd";
/// The valid zstd levels.
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=22;

/// Checks a zstd level: 1..=22 is valid, anything else is [`CodecError::ZstdLevel`].
pub fn validate_zstd_level(level: i32) -> Result<i32, CodecError> {
    if ZSTD_LEVELS.contains(&level) { Ok(level) } else { Err(CodecError::ZstdLevel(level)) }
}

/// The encoding of a zstd-compressed frame whose payload has encoding `base`: `<base>+zstd`.
pub fn zstd_encoding(base: &str) -> String {
    format!("{base}{ZSTD_SUFFIX}")
}

/// The payload encoding of a `<base>+zstd` frame encoding, or `None` when `encoding` does not
/// name a zstd frame (no suffix, or nothing before it).
pub fn strip_zstd_encoding(encoding: &str) -> Option<&str> {
    encoding.strip_suffix(ZSTD_SUFFIX).filter(|base| !base.is_empty())
}

/// Compresses `data` into one zstd frame (with its content size) at `level` (1..=22).
/// For a stream of frames prefer [`ZstdCompressor`], which keeps its context.
pub fn zstd_compress(data: &[u8], level: i32) -> Result<Vec<u8>, CodecError> {
    ZstdCompressor::new(level)?.compress(data)
}

/// Decompresses zstd data, failing with [`CodecError::DecompressedTooLarge`] rather than
/// producing more than `max_size` bytes (untrusted input cannot make it allocate more).
pub fn zstd_decompress(data: &[u8], max_size: usize) -> Result<Vec<u8>, CodecError> {
    // Frames that declare their size (dtbridge's own do) have an exact bound: decompressed
    // straight into a buffer of that size, which is never zero-filled first (for an 814 KB
    // depth image that fill cost as much as the decompression). Otherwise the bound says
    // only how many blocks there are, and the stream decoder stops at the limit.
    let bound = zstd::bulk::Decompressor::upper_bound(data);
    if let Some(bound) = bound.filter(|&bound| bound <= max_size) {
        return zstd::bulk::decompress(data, bound).map_err(CodecError::Zstd);
    }
    let mut out = Vec::new();
    let decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(CodecError::Zstd)?;
    let limit = u64::try_from(max_size).unwrap_or(u64::MAX).saturating_add(1);
    decoder.take(limit).read_to_end(&mut out).map_err(CodecError::Zstd)?;
    if out.len() > max_size {
        return Err(CodecError::DecompressedTooLarge { limit: max_size });
    }
    Ok(out)
}

/// A reusable zstd compressor at a fixed level (keeps its context between frames).
pub struct ZstdCompressor {
    level: i32,
    inner: zstd::bulk::Compressor<'static>,
}

impl ZstdCompressor {
    /// A compressor at `level` (1..=22).
    pub fn new(level: i32) -> Result<Self, CodecError> {
        let level = validate_zstd_level(level)?;
        let inner = zstd::bulk::Compressor::new(level).map_err(CodecError::Zstd)?;
        Ok(Self { level, inner })
    }

    /// The level this compressor uses.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Compresses `data` into one zstd frame that records its content size.
    pub fn compress(&mut self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.inner.compress(data).map_err(CodecError::Zstd)
    }
}

impl std::fmt::Debug for ZstdCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdCompressor").field("level", &self.level).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_rule() {
        assert_eq!(zstd_encoding("cdr"), "cdr+zstd");
        assert_eq!(strip_zstd_encoding("cdr+zstd"), Some("cdr"));
        assert_eq!(strip_zstd_encoding("cdr"), None);
        assert_eq!(strip_zstd_encoding("+zstd"), None);
        assert_eq!(strip_zstd_encoding(&zstd_encoding("json")), Some("json"));
    }

    #[test]
    fn levels() {
        for level in [1, 3, 22] {
            assert_eq!(validate_zstd_level(level).unwrap(), level);
        }
        for level in [-5, 0, 23, i32::MAX] {
            assert!(matches!(
                validate_zstd_level(level),
                Err(CodecError::ZstdLevel(l)) if l == level
            ));
            assert!(zstd_compress(b"x", level).is_err());
        }
    }

    #[test]
    fn round_trip_and_limits() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let packed = zstd_compress(&data, 3).unwrap();
        assert!(packed.len() < data.len() / 10);
        assert_eq!(zstd_decompress(&packed, data.len()).unwrap(), data);
        assert!(matches!(
            zstd_decompress(&packed, data.len() - 1),
            Err(CodecError::DecompressedTooLarge { .. })
        ));
        assert!(matches!(
            zstd_decompress(&packed[..packed.len() / 2], data.len()),
            Err(CodecError::Zstd(_))
        ));
        assert!(zstd_decompress(b"not zstd at all", 1 << 20).is_err());
        assert_eq!(zstd_decompress(&zstd_compress(b"", 1).unwrap(), 0).unwrap(), b"");
    }

    #[test]
    fn frames_without_a_declared_size_and_several_frames() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        // The stream encoder does not know the size in advance, so declares none.
        let streamed = zstd::stream::encode_all(data.as_slice(), 3).unwrap();
        assert_eq!(zstd::zstd_safe::get_frame_content_size(&streamed).unwrap(), None);
        assert_eq!(zstd_decompress(&streamed, data.len()).unwrap(), data);
        assert!(matches!(
            zstd_decompress(&streamed, data.len() - 1),
            Err(CodecError::DecompressedTooLarge { .. })
        ));
        // Two frames one after the other are one payload.
        let mut two = zstd_compress(&data[..1000], 1).unwrap();
        two.extend(zstd_compress(&data[1000..], 1).unwrap());
        assert_eq!(zstd_decompress(&two, data.len()).unwrap(), data);
        assert!(matches!(
            zstd_decompress(&two, data.len() - 1),
            Err(CodecError::DecompressedTooLarge { .. })
        ));
    }
}
