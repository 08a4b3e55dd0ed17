//! A minimal serde-based CDR codec with the byte layout ROS 2 (rmw_fastrtps) uses.
//!
//! Layout (XCDR1, little-endian, as in `rclpy.serialization.serialize_message`):
//! - a 4-byte encapsulation header `00 01 00 00`;
//! - primitives little-endian, aligned to their size (bool/u8: 1, u16: 2, u32/f32: 4,
//!   u64/f64: 8), alignment counted from the first byte after the header; padding is written
//!   as zeros (Fast CDR leaves it uninitialized, so real ROS 2 bytes may differ there);
//! - strings: u32 length including the NUL, the bytes, a NUL;
//! - sequences (`Vec<T>`, `#[serde(with = "serde_bytes")]` for fast `uint8[]`): u32 count, then
//!   the elements (an empty sequence adds no alignment of its element type);
//! - fixed arrays (`[T; N]`, tuples) and structs: the elements/fields in order, no count.
//!
//! Maps, options, enums and `char` have no ROS 2 equivalent and are rejected with
//! [`CodecError::Unsupported`]. Decoding borrows nothing past the call and checks every length
//! against the bytes left before allocating.

mod de;
mod ser;

use super::CodecError;
use serde::{Deserialize, Serialize};

/// The encapsulation header written before every message: CDR, little-endian, no options.
pub const ENCAPSULATION_CDR_LE: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

/// Serializes `value` to a new buffer: encapsulation header then CDR body.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    to_vec_with_capacity(value, 256)
}

/// [`to_vec`] with a capacity guess, so large messages are written without regrowing.
pub fn to_vec_with_capacity<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(capacity.max(ENCAPSULATION_CDR_LE.len()));
    write_to(value, &mut out)?;
    Ok(out)
}

/// Appends header and CDR body of `value` to `out` (alignment counts from after this header,
/// not from the start of `out`), so a caller can reuse one buffer. On error `out` is left
/// with its original length.
pub fn write_to<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    out.extend_from_slice(&ENCAPSULATION_CDR_LE);
    let mut serializer = ser::Serializer::new(out, start + ENCAPSULATION_CDR_LE.len());
    match value.serialize(&mut serializer) {
        Ok(()) => Ok(()),
        Err(err) => {
            out.truncate(start);
            Err(err)
        }
    }
}

/// Deserializes one message from `bytes` (header + body). Accepts up to 3 trailing bytes (final
/// padding some writers add); more is [`CodecError::TrailingBytes`].
pub fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CodecError> {
    let Some((header, body)) = bytes.split_first_chunk::<4>() else {
        return Err(CodecError::BadEncapsulation(bytes.to_vec()));
    };
    // Byte 0 is reserved (0), byte 1 the representation (1 = CDR_LE); bytes 2-3 are options.
    if header[..2] != ENCAPSULATION_CDR_LE[..2] {
        return Err(CodecError::BadEncapsulation(header.to_vec()));
    }
    let mut deserializer = de::Deserializer::new(body);
    let value = T::deserialize(&mut deserializer)?;
    match deserializer.remaining() {
        0..=3 => Ok(value),
        n => Err(CodecError::TrailingBytes(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Mixed {
        a: u8,
        b: f64,
        s: String,
        flag: bool,
        c: u16,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        d: Vec<f64>,
        e: [i32; 3],
        f: i64,
        g: f32,
        h: i8,
        i: u64,
    }

    fn sample() -> Mixed {
        Mixed {
            a: 7,
            b: 1.5,
            s: "ab".into(),
            flag: true,
            c: 0x0102,
            bytes: vec![9, 8, 7],
            d: vec![],
            e: [-1, 2, -3],
            f: -5,
            g: 0.25,
            h: -2,
            i: u64::MAX,
        }
    }

    #[test]
    fn layout_matches_hand_encoding() {
        let bytes = to_vec(&sample()).unwrap();
        let mut want = vec![0, 1, 0, 0];
        want.push(7); // a at 0
        want.extend([0; 7]); // pad to 8
        want.extend(1.5f64.to_le_bytes()); // b at 8
        want.extend(3u32.to_le_bytes()); // s at 16
        want.extend(b"ab\0");
        want.push(1); // flag at 23
        want.extend(0x0102u16.to_le_bytes()); // c at 24
        want.extend([0; 2]); // pad to 28
        want.extend(3u32.to_le_bytes()); // bytes at 28
        want.extend([9, 8, 7]);
        want.push(0); // pad to 36
        want.extend(0u32.to_le_bytes()); // d at 36, empty: no 8-alignment
        want.extend((-1i32).to_le_bytes()); // e at 40, no count
        want.extend(2i32.to_le_bytes());
        want.extend((-3i32).to_le_bytes());
        want.extend([0; 4]); // pad to 56
        want.extend((-5i64).to_le_bytes()); // f at 56
        want.extend(0.25f32.to_le_bytes()); // g at 64
        want.push(0xfe); // h at 68
        want.extend([0; 3]); // pad to 72
        want.extend(u64::MAX.to_le_bytes()); // i at 72
        assert_eq!(bytes, want);
        assert_eq!(from_slice::<Mixed>(&bytes).unwrap(), sample());
    }

    #[test]
    fn write_to_aligns_after_its_own_header() {
        let mut out = vec![0xaa; 3];
        write_to(&(1u8, 2u64), &mut out).unwrap();
        assert_eq!(out.len(), 3 + 4 + 16);
        assert_eq!(&out[3..7], &ENCAPSULATION_CDR_LE);
        assert_eq!(from_slice::<(u8, u64)>(&out[3..]).unwrap(), (1, 2));
    }

    #[test]
    fn rejects_unsupported_and_bad_input() {
        assert!(matches!(to_vec(&Some(1u8)), Err(CodecError::Unsupported(_))));
        let map: std::collections::BTreeMap<u8, u8> = [(1, 2)].into();
        assert!(matches!(to_vec(&map), Err(CodecError::Unsupported(_))));
        assert!(matches!(from_slice::<u8>(&[0, 1]), Err(CodecError::BadEncapsulation(_))));
        assert!(matches!(from_slice::<u8>(&[0, 0, 0, 0, 1]), Err(CodecError::BadEncapsulation(_))));
        assert!(matches!(
            from_slice::<bool>(&[0, 1, 0, 0, 2]),
            Err(CodecError::InvalidBool { value: 2, .. })
        ));
        assert!(matches!(
            from_slice::<u32>(&[0, 1, 0, 0, 1, 2, 3]),
            Err(CodecError::Truncated { needed: 4, .. })
        ));
        assert!(matches!(
            from_slice::<u8>(&[0, 1, 0, 0, 1, 2, 3, 4, 5]),
            Err(CodecError::TrailingBytes(4))
        ));
        // A string without its NUL, a string that is not UTF-8, an absurd sequence count.
        assert!(matches!(
            from_slice::<String>(&[0, 1, 0, 0, 2, 0, 0, 0, b'a', b'b']),
            Err(CodecError::StringNotTerminated { offset: 0 })
        ));
        assert!(matches!(
            from_slice::<String>(&[0, 1, 0, 0, 2, 0, 0, 0, 0xff, 0]),
            Err(CodecError::InvalidUtf8 { offset: 0 })
        ));
        assert!(matches!(
            from_slice::<Vec<u64>>(&[0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff]),
            Err(CodecError::LengthTooLarge { .. })
        ));
        // A zero-length string (no NUL) is read as empty, as Fast CDR does.
        assert_eq!(from_slice::<String>(&[0, 1, 0, 0, 0, 0, 0, 0]).unwrap(), "");
    }
}
