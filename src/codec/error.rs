//! The one error type of [`crate::codec`].

use std::fmt::Display;

/// Everything that can go wrong while encoding or decoding messages, compressing frames or
/// encoding images. Decoding never panics on malformed input: it returns one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The buffer ended before a value: `needed` bytes at body offset `offset`, `available` left.
    #[error(
        "CDR buffer truncated: {needed} bytes needed at body offset {offset}, {available} left"
    )]
    Truncated {
        /// Offset after the encapsulation header.
        offset: usize,
        /// Bytes the next value needs.
        needed: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// The 4-byte encapsulation header is not `00 01 xx xx` (plain CDR, little-endian).
    #[error("bad CDR encapsulation header {0:02x?} (expected 00 01 00 00: CDR little-endian)")]
    BadEncapsulation(Vec<u8>),
    /// A string or sequence length cannot fit in the rest of the buffer.
    #[error("CDR length {len} at body offset {offset} exceeds the {remaining} bytes left")]
    LengthTooLarge {
        /// Offset of the length field after the encapsulation header.
        offset: usize,
        /// The length read.
        len: u32,
        /// Bytes left after the length field.
        remaining: usize,
    },
    /// A CDR string does not end with its NUL byte.
    #[error("CDR string at body offset {offset} is not NUL-terminated")]
    StringNotTerminated {
        /// Offset of the string's length field.
        offset: usize,
    },
    /// A CDR string is not UTF-8.
    #[error("CDR string at body offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Offset of the string's length field.
        offset: usize,
    },
    /// A `bool` byte other than 0 or 1.
    #[error("invalid CDR bool {value} at body offset {offset}")]
    InvalidBool {
        /// Offset of the byte.
        offset: usize,
        /// The byte read.
        value: u8,
    },
    /// Bytes left over after the message (more than the up to 3 bytes of final padding).
    #[error("{0} trailing bytes after the CDR message (wrong message type?)")]
    TrailingBytes(usize),
    /// A string or sequence too long for CDR's u32 length field.
    #[error("length {0} exceeds the CDR u32 limit")]
    TooLong(usize),
    /// A serde construct that ROS 2 CDR has no representation for (maps, options, enums, ...).
    #[error("CDR cannot represent {0}")]
    Unsupported(&'static str),
    /// A message from serde itself (e.g. a missing field in a derived `Deserialize`).
    #[error("{0}")]
    Serde(String),
    /// A zstd level outside 1..=22.
    #[error("invalid zstd level {0} (valid: 1..=22)")]
    ZstdLevel(i32),
    /// zstd failed (corrupt or truncated frame, ...).
    #[error("zstd: {0}")]
    Zstd(#[source] std::io::Error),
    /// Decompressed data would exceed the caller's limit.
    #[error("decompressed data exceeds the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A JPEG quality outside 1..=100.
    #[error("invalid JPEG quality {0} (valid: 1..=100)")]
    JpegQuality(u8),
    /// An image encoding the chosen codec cannot take.
    #[error("image encoding {encoding:?} is not supported for {codec} (supported: {supported})")]
    UnsupportedEncoding {
        /// The `sensor_msgs/msg/Image` encoding.
        encoding: String,
        /// `"jpeg"` or `"png"`.
        codec: &'static str,
        /// The encodings the codec takes.
        supported: &'static str,
    },
    /// Image geometry and data length disagree.
    #[error("image of {width}x{height} (step {step}, {bytes_per_pixel} bytes/pixel): {problem}")]
    ImageGeometry {
        /// Image width in pixels.
        width: u32,
        /// Image height in rows.
        height: u32,
        /// Row length in bytes.
        step: u32,
        /// Bytes per pixel of the encoding.
        bytes_per_pixel: usize,
        /// What is wrong, including the expected and actual lengths.
        problem: String,
    },
    /// The `image` crate's encoder failed.
    #[error("image encoder: {0}")]
    Image(#[from] ::image::ImageError),

    /// The JPEG encoder failed.
    #[error("JPEG encoding failed: {0}")]
    Jpeg(#[from] jpeg_encoder::EncodingError),
}

impl serde::ser::Error for CodecError {
    fn custom<T: Display>(msg: T) -> Self {
        CodecError::Serde(msg.to_string())
    }
}

impl serde::de::Error for CodecError {
    fn custom<T: Display>(msg: T) -> Self {
        CodecError::Serde(msg.to_string())
    }
}
