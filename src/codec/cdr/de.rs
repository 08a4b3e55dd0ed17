//! The CDR deserializer (see the module docs of [`super`] for the layout).
//!
//! Every read is bounds-checked; lengths are checked against the bytes left before anything is
//! allocated, and serde's own preallocation is capped by [`SeqAccess::size_hint`], so malformed
//! input costs at most its own size.

use crate::codec::CodecError;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

/// Reads CDR from a message body (the bytes after the encapsulation header).
pub(super) struct Deserializer<'de> {
    body: &'de [u8],
    pos: usize,
}

impl<'de> Deserializer<'de> {
    pub(super) fn new(body: &'de [u8]) -> Self {
        Self { body, pos: 0 }
    }

    /// Bytes not read yet.
    pub(super) fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    fn truncated(&self, needed: usize) -> CodecError {
        CodecError::Truncated { offset: self.pos, needed, available: self.remaining() }
    }

    /// Skips padding up to a multiple of `align` (a power of two).
    fn align(&mut self, align: usize) -> Result<(), CodecError> {
        let misalignment = self.pos & (align - 1);
        if misalignment != 0 {
            let pad = align - misalignment;
            if pad > self.remaining() {
                return Err(self.truncated(pad));
            }
            self.pos += pad;
        }
        Ok(())
    }

    /// The next `n` bytes, unaligned.
    fn take(&mut self, n: usize) -> Result<&'de [u8], CodecError> {
        if n > self.remaining() {
            return Err(self.truncated(n));
        }
        let bytes = &self.body[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    /// A primitive of `N` bytes, aligned to `N`.
    fn primitive<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        self.align(N)?;
        let bytes = self.take(N)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    /// A u32 length/count, checked to fit in the rest of the buffer (every ROS 2 element takes
    /// at least one byte). Returns the length and the offset of its field.
    fn length(&mut self) -> Result<(usize, usize), CodecError> {
        self.align(4)?;
        let offset = self.pos;
        let len = u32::from_le_bytes(self.primitive()?);
        let remaining = self.remaining();
        if len as usize > remaining {
            return Err(CodecError::LengthTooLarge { offset, len, remaining });
        }
        Ok((len as usize, offset))
    }

    fn string(&mut self) -> Result<&'de str, CodecError> {
        let (len, offset) = self.length()?;
        if len == 0 {
            // Fast CDR reads a zero length as the empty string.
            return Ok("");
        }
        let bytes = self.take(len)?;
        let Some((0, text)) = bytes.split_last() else {
            return Err(CodecError::StringNotTerminated { offset });
        };
        std::str::from_utf8(text).map_err(|_| CodecError::InvalidUtf8 { offset })
    }
}

macro_rules! primitive {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
            visitor.$visit(<$ty>::from_le_bytes(self.primitive()?))
        }
    };
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = CodecError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, CodecError> {
        Err(CodecError::Unsupported("self-describing types (CDR has no type information)"))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        let offset = self.pos;
        match self.take(1)?[0] {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            value => Err(CodecError::InvalidBool { offset, value }),
        }
    }

    primitive!(deserialize_i8, visit_i8, i8);
    primitive!(deserialize_i16, visit_i16, i16);
    primitive!(deserialize_i32, visit_i32, i32);
    primitive!(deserialize_i64, visit_i64, i64);
    primitive!(deserialize_u8, visit_u8, u8);
    primitive!(deserialize_u16, visit_u16, u16);
    primitive!(deserialize_u32, visit_u32, u32);
    primitive!(deserialize_u64, visit_u64, u64);
    primitive!(deserialize_f32, visit_f32, f32);
    primitive!(deserialize_f64, visit_f64, f64);

    fn deserialize_char<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, CodecError> {
        Err(CodecError::Unsupported("char (ROS 2 `char` is a u8)"))
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_borrowed_str(self.string()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_borrowed_str(self.string()?)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        let (len, _) = self.length()?;
        visitor.visit_borrowed_bytes(self.take(len)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        self.deserialize_bytes(visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, CodecError> {
        Err(CodecError::Unsupported("Option"))
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        let (len, _) = self.length()?;
        visitor.visit_seq(Elements { de: self, left: len })
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_seq(Elements { de: self, left: len })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_seq(Elements { de: self, left: len })
    }
    fn deserialize_map<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, CodecError> {
        Err(CodecError::Unsupported("map"))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_seq(Elements { de: self, left: fields.len() })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, CodecError> {
        Err(CodecError::Unsupported("enum"))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, CodecError> {
        Err(CodecError::Unsupported("identifiers"))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, CodecError> {
        Err(CodecError::Unsupported("skipping values"))
    }
}

/// Struct fields, tuple/array elements and sequence elements: a known count, in order.
struct Elements<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = CodecError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, CodecError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}
