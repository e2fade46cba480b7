//! Bounded cursor and zigzag varints for the record section of a batch.
//!
//! Records use Kafka's zigzag varints (`varint`: at most 5 bytes, `varlong`: at
//! most 10). Every read checks the bytes that remain first; over-long encodings
//! are errors rather than silently wrapping loops. Bits beyond the 32nd (64th)
//! in the final byte are dropped, as Java's `ByteUtils.readVarint` does, so
//! brook accepts exactly what the Java client accepts.
//!
// Hot path: used for every record of every decoded batch; no allocation here.

use bytes::{BufMut, Bytes};

use super::RecordError;

/// A read position inside a `Bytes`, bounded by `end` (which a caller narrows to
/// one record with [`Cursor::limit`]); slices it hands out share the buffer.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    buf: Bytes,
    pos: usize,
    end: usize,
}

impl Cursor {
    pub(crate) fn new(buf: Bytes) -> Self {
        let end = buf.len();
        Self { buf, pos: 0, end }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Restrict reads to the next `n` bytes; returns the previous end for
    /// [`Cursor::restore`]. Cheaper than slicing a sub-`Bytes` per record.
    pub(crate) fn limit(&mut self, n: usize) -> Result<usize, RecordError> {
        if n > self.remaining() {
            return Err(RecordError::Truncated);
        }
        let old = self.end;
        self.end = self.pos + n;
        Ok(old)
    }

    /// Undo [`Cursor::limit`].
    pub(crate) fn restore(&mut self, end: usize) {
        self.end = end;
    }

    fn byte(&mut self) -> Result<u8, RecordError> {
        if self.pos >= self.end {
            return Err(RecordError::Truncated);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn i8(&mut self) -> Result<i8, RecordError> {
        self.byte().map(|b| b as i8)
    }

    /// A zero-copy slice of the next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, RecordError> {
        if n > self.remaining() {
            return Err(RecordError::Truncated);
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    fn uvarlong(&mut self, max_bytes: usize) -> Result<u64, RecordError> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).wrapping_shl(7 * i as u32);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::VarintTooLong)
    }

    /// Zigzag `varint` (at most 5 bytes).
    pub(crate) fn varint(&mut self) -> Result<i32, RecordError> {
        let raw = self.uvarlong(5)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Zigzag `varlong` (at most 10 bytes).
    pub(crate) fn varlong(&mut self) -> Result<i64, RecordError> {
        let raw = self.uvarlong(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A varint length: `-1` is null, other negatives are errors, and a length
    /// beyond the remaining bytes is an error before anything is sliced.
    pub(crate) fn nullable_bytes(&mut self) -> Result<Option<Bytes>, RecordError> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|_| RecordError::InvalidLength(len))?;
        if n > self.remaining() {
            return Err(RecordError::Truncated);
        }
        self.bytes(n).map(Some)
    }
}

fn zigzag32(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn uvar_size(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_uvar(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub(crate) fn varint_size(v: i32) -> usize {
    uvar_size(zigzag32(v))
}

pub(crate) fn varlong_size(v: i64) -> usize {
    uvar_size(zigzag64(v))
}

pub(crate) fn put_varint(buf: &mut impl BufMut, v: i32) {
    put_uvar(buf, zigzag32(v));
}

pub(crate) fn put_varlong(buf: &mut impl BufMut, v: i64) {
    put_uvar(buf, zigzag64(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip32(v: i32) -> i32 {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        assert_eq!(b.len(), varint_size(v));
        Cursor::new(Bytes::from(b)).varint().unwrap()
    }

    fn roundtrip64(v: i64) -> i64 {
        let mut b = Vec::new();
        put_varlong(&mut b, v);
        assert_eq!(b.len(), varlong_size(v));
        Cursor::new(Bytes::from(b)).varlong().unwrap()
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            assert_eq!(roundtrip32(v), v);
        }
        for v in [0, 1, -1, i64::MAX, i64::MIN, 1 << 40] {
            assert_eq!(roundtrip64(v), v);
        }
    }

    #[test]
    fn zigzag_matches_kafka_encoding() {
        let mut b = Vec::new();
        put_varint(&mut b, -1);
        put_varint(&mut b, 1);
        put_varint(&mut b, 300);
        assert_eq!(b, [0x01, 0x02, 0xd8, 0x04]);
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        let mut c = Cursor::new(Bytes::from_static(&[0xff; 6]));
        assert_eq!(c.varint(), Err(RecordError::VarintTooLong));
        let mut c = Cursor::new(Bytes::from_static(&[0x80]));
        assert_eq!(c.varint(), Err(RecordError::Truncated));
        let mut c = Cursor::new(Bytes::from_static(&[0x02, 0xaa]));
        assert_eq!(c.nullable_bytes(), Ok(Some(Bytes::from_static(&[0xaa]))));
        let mut c = Cursor::new(Bytes::from_static(&[0x04, 0xaa]));
        assert_eq!(c.nullable_bytes(), Err(RecordError::Truncated));
        let mut c = Cursor::new(Bytes::from_static(&[0x03]));
        assert_eq!(c.nullable_bytes(), Err(RecordError::InvalidLength(-2)));
    }
}
