//! Value types shared by all messages ([`Records`], [`RawTaggedField`]) and the
//! length-prefixed writers and size functions generated code calls.

use bytes::Bytes;

use super::varint::uvarint_size;
use super::{EncodeError, Encoder};

/// The value of a `records` field (a record set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Records {
    /// Record batches held in memory. Decoding always yields this, as a zero-copy
    /// slice of the input.
    Bytes(Bytes),
    /// `len` bytes of a log segment the caller registered under `id`; encoded as a
    /// length prefix followed by a [`super::Chunk::Region`] for `sendfile`.
    Region {
        /// Caller-chosen region identifier.
        id: u64,
        /// Length in bytes.
        len: u32,
    },
}

impl Default for Records {
    fn default() -> Self {
        Self::Bytes(Bytes::new())
    }
}

impl Records {
    /// Length in bytes of the record set.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            Self::Region { len, .. } => *len as usize,
        }
    }

    /// Whether the record set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tagged field this version of brook does not know, kept verbatim so it
/// survives a decode/encode round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTaggedField {
    /// The tag number.
    pub tag: u32,
    /// The field's bytes, without the tag and size prefix.
    pub data: Bytes,
}

/// Writes a length prefix: `int16`/`int32` (`short` picks) or compact `len + 1`.
fn put_len(
    e: &mut Encoder,
    len: Option<usize>,
    flexible: bool,
    short: bool,
) -> Result<(), EncodeError> {
    match (len, flexible) {
        (None, true) => e.put_uvarint(0),
        (None, false) if short => e.put_i16(-1),
        (None, false) => e.put_i32(-1),
        (Some(n), true) => {
            let v = u32::try_from(n)
                .ok()
                .and_then(|n| n.checked_add(1))
                .ok_or(EncodeError::LengthOverflow(n))?;
            e.put_uvarint(v);
        }
        (Some(n), false) if short => {
            e.put_i16(i16::try_from(n).map_err(|_| EncodeError::LengthOverflow(n))?)
        }
        (Some(n), false) => {
            e.put_i32(i32::try_from(n).map_err(|_| EncodeError::LengthOverflow(n))?)
        }
    }
    Ok(())
}

fn len_size(len: Option<usize>, flexible: bool, short: bool) -> Result<usize, EncodeError> {
    Ok(match (len, flexible) {
        (None, true) => 1,
        (Some(n), true) => {
            let v = u32::try_from(n)
                .ok()
                .and_then(|n| n.checked_add(1))
                .ok_or(EncodeError::LengthOverflow(n))?;
            uvarint_size(v)
        }
        (Some(n), false) if short && n > i16::MAX as usize => {
            return Err(EncodeError::LengthOverflow(n))
        }
        (Some(n), false) if n > i32::MAX as usize => return Err(EncodeError::LengthOverflow(n)),
        (_, false) if short => 2,
        (_, false) => 4,
    })
}

/// Writes a non-null string.
///
/// # Errors
/// [`EncodeError::LengthOverflow`] if the length does not fit the prefix.
pub fn put_string(e: &mut Encoder, s: &str, flexible: bool) -> Result<(), EncodeError> {
    put_len(e, Some(s.len()), flexible, true)?;
    e.put_slice(s.as_bytes());
    Ok(())
}

/// Writes a string or null.
///
/// # Errors
/// As [`put_string`].
pub fn put_nullable_string(
    e: &mut Encoder,
    s: Option<&str>,
    flexible: bool,
) -> Result<(), EncodeError> {
    match s {
        Some(s) => put_string(e, s, flexible),
        None => put_len(e, None, flexible, true),
    }
}

/// Encoded size of a string (`None` = null).
///
/// # Errors
/// As [`put_string`].
pub fn string_size(s: Option<&str>, flexible: bool) -> Result<usize, EncodeError> {
    let n = s.map(str::len);
    Ok(len_size(n, flexible, true)? + n.unwrap_or(0))
}

/// Writes a non-null byte string.
///
/// # Errors
/// As [`put_string`].
pub fn put_bytes(e: &mut Encoder, b: &[u8], flexible: bool) -> Result<(), EncodeError> {
    put_len(e, Some(b.len()), flexible, false)?;
    e.put_slice(b);
    Ok(())
}

/// Writes a byte string or null.
///
/// # Errors
/// As [`put_string`].
pub fn put_nullable_bytes(
    e: &mut Encoder,
    b: Option<&[u8]>,
    flexible: bool,
) -> Result<(), EncodeError> {
    match b {
        Some(b) => put_bytes(e, b, flexible),
        None => put_len(e, None, flexible, false),
    }
}

/// Encoded size of a byte string (`None` = null).
///
/// # Errors
/// As [`put_string`].
pub fn bytes_size(b: Option<&[u8]>, flexible: bool) -> Result<usize, EncodeError> {
    let n = b.map(<[u8]>::len);
    Ok(len_size(n, flexible, false)? + n.unwrap_or(0))
}

/// Writes a record set or null; a [`Records::Region`] becomes a length prefix
/// followed by a region chunk.
///
/// # Errors
/// As [`put_string`].
pub fn put_records(
    e: &mut Encoder,
    r: Option<&Records>,
    flexible: bool,
) -> Result<(), EncodeError> {
    match r {
        None => put_len(e, None, flexible, false),
        Some(Records::Bytes(b)) => put_bytes(e, b, flexible),
        Some(Records::Region { id, len }) => {
            put_len(e, Some(*len as usize), flexible, false)?;
            e.put_region(*id, *len);
            Ok(())
        }
    }
}

/// Encoded size of a record set (`None` = null), counting a region's length.
///
/// # Errors
/// As [`put_string`].
pub fn records_size(r: Option<&Records>, flexible: bool) -> Result<usize, EncodeError> {
    let n = r.map(Records::len);
    Ok(len_size(n, flexible, false)? + n.unwrap_or(0))
}

/// Writes an array's count prefix (`None` = null); the caller writes the elements.
///
/// # Errors
/// As [`put_string`].
pub fn put_array_len(
    e: &mut Encoder,
    len: Option<usize>,
    flexible: bool,
) -> Result<(), EncodeError> {
    put_len(e, len, flexible, false)
}

/// Encoded size of an array's count prefix.
///
/// # Errors
/// As [`put_string`].
pub fn array_len_size(len: Option<usize>, flexible: bool) -> Result<usize, EncodeError> {
    len_size(len, flexible, false)
}

/// Writes the unknown tagged fields whose tag lies in `lo..hi`, so that together
/// with the known ones the section stays in ascending tag order.
///
/// # Errors
/// [`EncodeError::LengthOverflow`] for a field larger than 4 GiB.
pub fn put_raw_tags_in(
    e: &mut Encoder,
    raw: &[RawTaggedField],
    lo: u32,
    hi: u64,
) -> Result<(), EncodeError> {
    for f in raw.iter().filter(|f| f.tag >= lo && u64::from(f.tag) < hi) {
        e.put_uvarint(f.tag);
        let n =
            u32::try_from(f.data.len()).map_err(|_| EncodeError::LengthOverflow(f.data.len()))?;
        e.put_uvarint(n);
        e.put_slice(&f.data);
    }
    Ok(())
}

/// Encoded size of all `raw` tagged fields (tag, size and data).
///
/// # Errors
/// As [`put_raw_tags_in`].
pub fn raw_tags_size(raw: &[RawTaggedField]) -> Result<usize, EncodeError> {
    raw.iter().try_fold(0usize, |acc, f| {
        let n =
            u32::try_from(f.data.len()).map_err(|_| EncodeError::LengthOverflow(f.data.len()))?;
        Ok(acc + uvarint_size(f.tag) + uvarint_size(n) + f.data.len())
    })
}

/// Writes one known tagged field's header (tag and data size).
///
/// # Errors
/// [`EncodeError::LengthOverflow`] if `size` exceeds `u32`.
pub fn put_tag_header(e: &mut Encoder, tag: u32, size: usize) -> Result<(), EncodeError> {
    e.put_uvarint(tag);
    e.put_uvarint(u32::try_from(size).map_err(|_| EncodeError::LengthOverflow(size))?);
    Ok(())
}

/// Size of one known tagged field: header plus `size` data bytes.
#[must_use]
pub fn tag_size(tag: u32, size: usize) -> usize {
    uvarint_size(tag) + uvarint_size(u32::try_from(size).unwrap_or(u32::MAX)) + size
}
