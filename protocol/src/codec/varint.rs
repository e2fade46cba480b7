//! Variable-length integers as Kafka writes them: unsigned LEB128 (`uvarint`, at most
//! 5 bytes for 32 bits, 10 for 64) and zigzag-signed variants used inside record
//! batches. Decoders reject over-long encodings instead of silently wrapping.

use bytes::{Buf, BufMut};

use super::DecodeError;

/// Number of bytes [`put_uvarint`] writes for `v`.
#[must_use]
pub const fn uvarint_size(v: u32) -> usize {
    uvarlong_size(v as u64)
}

/// Number of bytes [`put_uvarlong`] writes for `v`.
#[must_use]
pub const fn uvarlong_size(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Number of bytes a zigzag `varint` of `v` takes.
#[must_use]
pub const fn varint_size(v: i32) -> usize {
    uvarint_size(((v << 1) ^ (v >> 31)) as u32)
}

/// Number of bytes a zigzag `varlong` of `v` takes.
#[must_use]
pub const fn varlong_size(v: i64) -> usize {
    uvarlong_size(((v << 1) ^ (v >> 63)) as u64)
}

/// Writes an unsigned varint.
pub fn put_uvarint<B: BufMut + ?Sized>(b: &mut B, v: u32) {
    put_uvarlong(b, u64::from(v));
}

/// Writes an unsigned varlong.
pub fn put_uvarlong<B: BufMut + ?Sized>(b: &mut B, mut v: u64) {
    while v >= 0x80 {
        // Truncation to the low 7 bits is the point of the encoding.
        b.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// Writes a zigzag-encoded signed varint.
pub fn put_varint<B: BufMut + ?Sized>(b: &mut B, v: i32) {
    put_uvarint(b, ((v << 1) ^ (v >> 31)) as u32);
}

/// Writes a zigzag-encoded signed varlong.
pub fn put_varlong<B: BufMut + ?Sized>(b: &mut B, v: i64) {
    put_uvarlong(b, ((v << 1) ^ (v >> 63)) as u64);
}

fn read_leb<B: Buf + ?Sized>(buf: &mut B, max_bytes: u32, bits: u32) -> Result<u64, DecodeError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        if !buf.has_remaining() {
            return Err(DecodeError::Truncated);
        }
        let byte = buf.get_u8();
        let shift = 7 * i;
        let payload = u64::from(byte & 0x7f);
        // The last permitted byte may only carry the bits that still fit.
        if i == max_bytes - 1 && (byte & 0x80 != 0 || payload >> (bits - shift) != 0) {
            return Err(DecodeError::InvalidVarint);
        }
        value |= payload << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::InvalidVarint)
}

/// Reads an unsigned varint (at most 5 bytes, value < 2^32).
///
/// # Errors
/// [`DecodeError::Truncated`] or [`DecodeError::InvalidVarint`].
pub fn read_uvarint<B: Buf + ?Sized>(buf: &mut B) -> Result<u32, DecodeError> {
    read_leb(buf, 5, 32).map(|v| v as u32)
}

/// Reads an unsigned varlong (at most 10 bytes).
///
/// # Errors
/// [`DecodeError::Truncated`] or [`DecodeError::InvalidVarint`].
pub fn read_uvarlong<B: Buf + ?Sized>(buf: &mut B) -> Result<u64, DecodeError> {
    read_leb(buf, 10, 64)
}

/// Reads a zigzag-encoded signed varint.
///
/// # Errors
/// As [`read_uvarint`].
pub fn read_varint<B: Buf + ?Sized>(buf: &mut B) -> Result<i32, DecodeError> {
    let u = read_uvarint(buf)?;
    Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
}

/// Reads a zigzag-encoded signed varlong.
///
/// # Errors
/// As [`read_uvarlong`].
pub fn read_varlong<B: Buf + ?Sized>(buf: &mut B) -> Result<i64, DecodeError> {
    let u = read_uvarlong(buf)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_u(v: u32) -> Vec<u8> {
        let mut out = Vec::new();
        put_uvarint(&mut out, v);
        out
    }

    #[test]
    fn uvarint_known_encodings() {
        assert_eq!(enc_u(0), [0x00]);
        assert_eq!(enc_u(127), [0x7f]);
        assert_eq!(enc_u(128), [0x80, 0x01]);
        assert_eq!(enc_u(300), [0xac, 0x02]);
        assert_eq!(enc_u(u32::MAX), [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn uvarint_roundtrip_and_size() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            u32::MAX,
        ] {
            let bytes = enc_u(v);
            assert_eq!(bytes.len(), uvarint_size(v), "size of {v}");
            assert_eq!(read_uvarint(&mut &bytes[..]), Ok(v));
        }
    }

    #[test]
    fn uvarint_rejects_overlong_and_truncated() {
        assert_eq!(
            read_uvarint(&mut &[0x80u8, 0x80, 0x80, 0x80, 0x80, 0x01][..]),
            Err(DecodeError::InvalidVarint)
        );
        // Fifth byte carrying bits beyond 32.
        assert_eq!(
            read_uvarint(&mut &[0xffu8, 0xff, 0xff, 0xff, 0x1f][..]),
            Err(DecodeError::InvalidVarint)
        );
        assert_eq!(
            read_uvarint(&mut &[0x80u8, 0x80][..]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(read_uvarint(&mut &[][..]), Err(DecodeError::Truncated));
        let eleven = [0xffu8; 11];
        assert_eq!(
            read_uvarlong(&mut &eleven[..]),
            Err(DecodeError::InvalidVarint)
        );
    }

    #[test]
    fn zigzag_roundtrip() {
        for v in [0i32, -1, 1, -64, 64, i32::MIN, i32::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_size(v));
            assert_eq!(read_varint(&mut &out[..]), Ok(v));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, 1 << 40] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_size(v));
            assert_eq!(read_varlong(&mut &out[..]), Ok(v));
        }
        let mut out = Vec::new();
        put_varint(&mut out, -1);
        assert_eq!(out, [0x01]);
    }
}
