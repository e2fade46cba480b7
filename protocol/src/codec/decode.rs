//! Bounded readers for the Kafka primitive types, over `bytes::Bytes`.
//!
//! Every reader checks the remaining input before consuming it and returns
//! [`DecodeError`] instead of panicking. Lengths are validated against what remains
//! before any allocation; arrays pre-reserve at most [`MAX_PREALLOC`] elements
//! because an element can be larger in memory than on the wire.

use bytes::{Buf, Bytes};

use super::varint::read_uvarint;
use super::{DecodeError, Records, Uuid};

/// Upper bound on elements reserved up front for an array; more grow on demand.
pub const MAX_PREALLOC: usize = 1024;

fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError::Truncated)
    } else {
        Ok(())
    }
}

/// Reads an `int8`.
///
/// # Errors
/// [`DecodeError::Truncated`].
pub fn read_i8(buf: &mut Bytes) -> Result<i8, DecodeError> {
    need(buf, 1)?;
    Ok(buf.get_i8())
}

/// Reads a `bool` (any non-zero byte is true, as in Kafka).
///
/// # Errors
/// [`DecodeError::Truncated`].
pub fn read_bool(buf: &mut Bytes) -> Result<bool, DecodeError> {
    need(buf, 1)?;
    Ok(buf.get_u8() != 0)
}

/// Reads a big-endian `int16`.
///
/// # Errors
/// [`DecodeError::Truncated`].
pub fn read_i16(buf: &mut Bytes) -> Result<i16, DecodeError> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}

/// Reads a big-endian `uint16`.
///
/// # Errors
/// [`DecodeError::Truncated`].
pub fn read_u16(buf: &mut Bytes) -> Result<u16, DecodeError> {
    need(buf, 2)?;
    Ok(buf.get_u16())
}

/// Reads a big-endian `int32`.
///
/// # Errors
/// [`DecodeError::Truncated`].
pub fn read_i32(buf: &mut Bytes) -> Result<i32, DecodeError> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

/// Reads a big-endian `uint32`.
///
/// # Errors
/// [`DecodeError::Truncated`].
pub fn read_u32(buf: &mut Bytes) -> Result<u32, DecodeError> {
    need(buf, 4)?;
    Ok(buf.get_u32())
}

/// Reads a big-endian `int64`.
///
/// # Errors
/// [`DecodeError::Truncated`].
pub fn read_i64(buf: &mut Bytes) -> Result<i64, DecodeError> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

/// Reads a big-endian `float64`.
///
/// # Errors
/// [`DecodeError::Truncated`].
pub fn read_f64(buf: &mut Bytes) -> Result<f64, DecodeError> {
    need(buf, 8)?;
    Ok(buf.get_f64())
}

/// Reads a 16-byte UUID.
///
/// # Errors
/// [`DecodeError::Truncated`].
pub fn read_uuid(buf: &mut Bytes) -> Result<Uuid, DecodeError> {
    need(buf, 16)?;
    let mut out = [0u8; 16];
    buf.copy_to_slice(&mut out);
    Ok(Uuid(out))
}

/// Reads an unsigned varint; re-exported here for generated code.
///
/// # Errors
/// [`DecodeError::Truncated`] or [`DecodeError::InvalidVarint`].
pub fn read_unsigned_varint(buf: &mut Bytes) -> Result<u32, DecodeError> {
    read_uvarint(buf)
}

/// Checks a wire length against the remaining input; `Ok(n)` can be consumed.
fn checked_len(buf: &Bytes, len: i64) -> Result<usize, DecodeError> {
    match usize::try_from(len) {
        Ok(n) if n <= buf.remaining() => Ok(n),
        _ => Err(DecodeError::InvalidLength(len)),
    }
}

/// Reads a length prefix: `int16` (strings) or `int32` (bytes, arrays) in classic
/// versions, varint `len + 1` in flexible ones. `None` means null. The length is
/// already checked against the remaining input.
fn read_len(buf: &mut Bytes, flexible: bool, short: bool) -> Result<Option<usize>, DecodeError> {
    let len: i64 = if flexible {
        i64::from(read_uvarint(buf)?) - 1
    } else if short {
        i64::from(read_i16(buf)?)
    } else {
        i64::from(read_i32(buf)?)
    };
    if len == -1 {
        return Ok(None);
    }
    checked_len(buf, len).map(Some)
}

fn take_str(buf: &mut Bytes, n: usize) -> Result<String, DecodeError> {
    let s = buf.get(..n).ok_or(DecodeError::Truncated)?;
    let s = std::str::from_utf8(s)
        .map_err(|_| DecodeError::InvalidUtf8)?
        .to_owned();
    buf.advance(n);
    Ok(s)
}

/// Reads a string that may be null.
///
/// # Errors
/// Truncated input, a bad length, or invalid UTF-8.
pub fn read_nullable_string(
    buf: &mut Bytes,
    flexible: bool,
) -> Result<Option<String>, DecodeError> {
    match read_len(buf, flexible, true)? {
        None => Ok(None),
        Some(n) => take_str(buf, n).map(Some),
    }
}

/// Reads a non-null string.
///
/// # Errors
/// As [`read_nullable_string`], plus [`DecodeError::UnexpectedNull`].
pub fn read_string(buf: &mut Bytes, flexible: bool) -> Result<String, DecodeError> {
    read_nullable_string(buf, flexible)?.ok_or(DecodeError::UnexpectedNull)
}

/// Reads a byte string that may be null, as a zero-copy slice of `buf`.
///
/// # Errors
/// Truncated input or a bad length.
pub fn read_nullable_bytes(buf: &mut Bytes, flexible: bool) -> Result<Option<Bytes>, DecodeError> {
    Ok(read_len(buf, flexible, false)?.map(|n| buf.split_to(n)))
}

/// Reads a non-null byte string.
///
/// # Errors
/// As [`read_nullable_bytes`], plus [`DecodeError::UnexpectedNull`].
pub fn read_bytes(buf: &mut Bytes, flexible: bool) -> Result<Bytes, DecodeError> {
    read_nullable_bytes(buf, flexible)?.ok_or(DecodeError::UnexpectedNull)
}

/// Reads a record set that may be null; always [`Records::Bytes`].
///
/// # Errors
/// As [`read_nullable_bytes`].
pub fn read_nullable_records(
    buf: &mut Bytes,
    flexible: bool,
) -> Result<Option<Records>, DecodeError> {
    Ok(read_nullable_bytes(buf, flexible)?.map(Records::Bytes))
}

/// Reads a non-null record set.
///
/// # Errors
/// As [`read_bytes`].
pub fn read_records(buf: &mut Bytes, flexible: bool) -> Result<Records, DecodeError> {
    read_bytes(buf, flexible).map(Records::Bytes)
}

/// Reads an array that may be null, decoding each element with `elem`.
///
/// The count is rejected if it exceeds the remaining bytes (every element takes at
/// least one byte on the wire), and at most [`MAX_PREALLOC`] elements are reserved.
///
/// # Errors
/// A bad count, or the first element error.
pub fn read_nullable_array<T>(
    buf: &mut Bytes,
    flexible: bool,
    mut elem: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Option<Vec<T>>, DecodeError> {
    let Some(n) = read_len(buf, flexible, false)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(n.min(MAX_PREALLOC));
    for _ in 0..n {
        out.push(elem(buf)?);
    }
    Ok(Some(out))
}

/// Reads a non-null array.
///
/// # Errors
/// As [`read_nullable_array`], plus [`DecodeError::UnexpectedNull`].
pub fn read_array<T>(
    buf: &mut Bytes,
    flexible: bool,
    elem: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    read_nullable_array(buf, flexible, elem)?.ok_or(DecodeError::UnexpectedNull)
}

/// Reads the header of one tagged field: `(tag, data)`, with `data` a zero-copy
/// slice of exactly the field's declared size.
///
/// # Errors
/// A bad varint, or a size larger than the remaining input.
pub fn read_tagged_field(buf: &mut Bytes) -> Result<(u32, Bytes), DecodeError> {
    let tag = read_uvarint(buf)?;
    let size = read_uvarint(buf)?;
    let n = checked_len(buf, i64::from(size))?;
    Ok((tag, buf.split_to(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_lengths() {
        // Compact string "hi": varint 3, then bytes.
        let mut b = Bytes::from_static(&[3, b'h', b'i']);
        assert_eq!(read_string(&mut b, true), Ok("hi".to_owned()));
        let mut b = Bytes::from_static(&[0]);
        assert_eq!(read_nullable_string(&mut b, true), Ok(None));
        let mut b = Bytes::from_static(&[0]);
        assert_eq!(read_string(&mut b, true), Err(DecodeError::UnexpectedNull));
        // Compact length claiming more than remains.
        let mut b = Bytes::from_static(&[10, 1, 2]);
        assert_eq!(read_bytes(&mut b, true), Err(DecodeError::InvalidLength(9)));
    }

    #[test]
    fn classic_lengths() {
        let mut b = Bytes::from_static(&[0xff, 0xff]);
        assert_eq!(read_nullable_string(&mut b, false), Ok(None));
        let mut b = Bytes::from_static(&[0xff, 0xfe]);
        assert_eq!(
            read_nullable_string(&mut b, false),
            Err(DecodeError::InvalidLength(-2))
        );
        let mut b = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0]);
        assert_eq!(
            read_array(&mut b, false, read_i8),
            Err(DecodeError::InvalidLength(i64::from(i32::MAX)))
        );
        let mut b = Bytes::from_static(&[0, 2, 0xc3, 0x28]);
        assert_eq!(read_string(&mut b, false), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn records_are_zero_copy() -> Result<(), DecodeError> {
        let input = Bytes::from_static(&[0, 0, 0, 2, 7, 8, 9]);
        let mut b = input.clone();
        let Records::Bytes(r) = read_records(&mut b, false)? else {
            return Err(DecodeError::Truncated);
        };
        assert_eq!(&r[..], &[7, 8]);
        assert_eq!(r.as_ptr(), input[4..].as_ptr());
        assert_eq!(b.len(), 1);
        Ok(())
    }

    #[test]
    fn tagged_field_size_checked() {
        let mut b = Bytes::from_static(&[1, 5, 0]);
        assert_eq!(
            read_tagged_field(&mut b),
            Err(DecodeError::InvalidLength(5))
        );
    }
}
