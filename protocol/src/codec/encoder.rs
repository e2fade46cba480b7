//! The output side of the codec: a growable byte buffer that can also carry file
//! regions.
//!
//! Output is a list of [`Chunk`]s. Owned bytes accumulate in one `BytesMut`; writing
//! a record set that lives in a log segment ([`Encoder::put_region`]) closes the
//! current byte chunk and appends a [`Chunk::Region`] the connection writer later
//! sends with `sendfile`. Closed byte chunks stay mutable until [`Encoder::finish`]
//! so that a length prefix reserved at the start of a frame can still be patched
//! after a region was emitted.

use bytes::{BufMut, Bytes, BytesMut};

use super::varint;
use super::{EncodeError, Uuid};

/// One piece of encoded output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes to write as they are.
    Bytes(Bytes),
    /// `len` bytes of a file region the caller registered under `id`.
    Region {
        /// Caller-chosen identifier of the region (e.g. an index into a table of
        /// open segment slices).
        id: u64,
        /// Length in bytes; already counted in the enclosing length prefixes.
        len: u32,
    },
}

/// Internal chunk: byte chunks remain `BytesMut` so reserved prefixes can be patched.
#[derive(Debug)]
enum Pending {
    Bytes(BytesMut),
    Region { id: u64, len: u32 },
}

/// Position of a reserved 4-byte big-endian length prefix in an [`Encoder`]'s output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a reserved length prefix must be patched"]
pub struct LengthPrefix {
    offset: usize,
}

/// Accumulates encoded output; see the module docs.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: BytesMut,
    done: Vec<Pending>,
    /// Bytes (and region lengths) in `done`.
    done_len: usize,
    /// Where a top-level response's `throttle_time_ms` was written, so the broker's
    /// quota layer can set it after the handler encoded the response.
    throttle_offset: Option<usize>,
}

impl Encoder {
    /// An empty encoder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder whose byte buffer has room for `n` bytes.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(n),
            done: Vec::new(),
            done_len: 0,
            throttle_offset: None,
        }
    }

    /// Total output length so far, including file regions.
    #[must_use]
    pub fn total_len(&self) -> usize {
        self.done_len + self.buf.len()
    }

    /// The open byte buffer, for writers (such as record-batch builders) that want
    /// to append directly.
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Appends one byte.
    pub fn put_u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }
    /// Appends an `int8`.
    pub fn put_i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }
    /// Appends a `bool` as Kafka does (0 or 1).
    pub fn put_bool(&mut self, v: bool) {
        self.buf.put_u8(u8::from(v));
    }
    /// Appends a big-endian `int16`.
    pub fn put_i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }
    /// Appends a big-endian `uint16`.
    pub fn put_u16(&mut self, v: u16) {
        self.buf.put_u16(v);
    }
    /// Appends a big-endian `int32`.
    pub fn put_i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }
    /// Appends a big-endian `uint32`.
    pub fn put_u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }
    /// Appends a big-endian `int64`.
    pub fn put_i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }
    /// Appends a big-endian IEEE-754 `float64`.
    pub fn put_f64(&mut self, v: f64) {
        self.buf.put_f64(v);
    }
    /// Appends the 16 bytes of a UUID.
    pub fn put_uuid(&mut self, v: &Uuid) {
        self.buf.put_slice(&v.0);
    }
    /// Appends raw bytes.
    pub fn put_slice(&mut self, v: &[u8]) {
        self.buf.put_slice(v);
    }
    /// Appends an unsigned varint.
    pub fn put_uvarint(&mut self, v: u32) {
        varint::put_uvarint(&mut self.buf, v);
    }
    /// Appends a zigzag signed varint.
    pub fn put_varint(&mut self, v: i32) {
        varint::put_varint(&mut self.buf, v);
    }
    /// Appends a zigzag signed varlong.
    pub fn put_varlong(&mut self, v: i64) {
        varint::put_varlong(&mut self.buf, v);
    }

    /// Appends a file region of `len` bytes: closes the current byte chunk and
    /// records the region. The caller has already written any length prefix.
    pub fn put_region(&mut self, id: u64, len: u32) {
        self.close_bytes();
        self.done.push(Pending::Region { id, len });
        self.done_len += len as usize;
    }

    fn close_bytes(&mut self) {
        if !self.buf.is_empty() {
            let chunk = self.buf.split();
            self.done_len += chunk.len();
            self.done.push(Pending::Bytes(chunk));
        }
    }

    /// Writes a placeholder 4-byte length and returns its position, to be filled by
    /// [`Encoder::patch_length_prefix`] once everything after it is written. This is
    /// how a frame's size goes in front of it without a second copy.
    pub fn reserve_length_prefix(&mut self) -> LengthPrefix {
        let offset = self.total_len();
        self.buf.put_i32(0);
        LengthPrefix { offset }
    }

    /// Fills a reserved prefix with the number of bytes written after it.
    ///
    /// # Errors
    /// [`EncodeError::LengthOverflow`] if that exceeds `i32::MAX`;
    /// [`EncodeError::BadLengthPrefix`] if `p` does not come from this encoder.
    pub fn patch_length_prefix(&mut self, p: LengthPrefix) -> Result<(), EncodeError> {
        let end = p
            .offset
            .checked_add(4)
            .ok_or(EncodeError::BadLengthPrefix(p.offset))?;
        let body = self
            .total_len()
            .checked_sub(end)
            .ok_or(EncodeError::BadLengthPrefix(p.offset))?;
        let len = i32::try_from(body).map_err(|_| EncodeError::LengthOverflow(body))?;
        let target = self
            .slot_mut(p.offset)
            .ok_or(EncodeError::BadLengthPrefix(p.offset))?;
        target.copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// The 4 writable bytes at absolute output offset `offset`; `None` if they do
    /// not lie within a single byte chunk (a prefix never straddles chunks because
    /// it is written with one `put`).
    fn slot_mut(&mut self, offset: usize) -> Option<&mut [u8]> {
        let mut start = 0usize;
        for chunk in &mut self.done {
            match chunk {
                Pending::Region { len, .. } => start += *len as usize,
                Pending::Bytes(b) => {
                    let end = start + b.len();
                    if offset >= start && offset + 4 <= end {
                        return b.get_mut(offset - start..offset - start + 4);
                    }
                    start = end;
                }
            }
        }
        let rel = offset.checked_sub(start)?;
        self.buf.get_mut(rel..rel.checked_add(4)?)
    }

    /// Records that a response's top-level `throttle_time_ms` (an `int32`) starts at
    /// the current position. Called by the generated encoders; the first mark wins.
    pub fn mark_throttle_time(&mut self) {
        if self.throttle_offset.is_none() {
            self.throttle_offset = Some(self.total_len());
        }
    }

    /// Where [`Encoder::mark_throttle_time`] marked the response's
    /// `throttle_time_ms`, as an absolute output offset; `None` when the
    /// encoded message has no such field in its version (for example Produce v0).
    #[must_use]
    pub fn throttle_offset(&self) -> Option<usize> {
        self.throttle_offset
    }

    /// Ends encoding and returns the output as chunks, in order.
    #[must_use]
    pub fn finish(mut self) -> Vec<Chunk> {
        self.close_bytes();
        self.done
            .into_iter()
            .map(|c| match c {
                Pending::Bytes(b) => Chunk::Bytes(b.freeze()),
                Pending::Region { id, len } => Chunk::Region { id, len },
            })
            .collect()
    }

    /// Ends encoding and returns the output as one contiguous buffer.
    ///
    /// # Errors
    /// [`EncodeError::ContainsRegion`] if a file region was written.
    pub fn into_bytes(mut self) -> Result<Bytes, EncodeError> {
        if self
            .done
            .iter()
            .any(|c| matches!(c, Pending::Region { .. }))
        {
            return Err(EncodeError::ContainsRegion);
        }
        if self.done.is_empty() {
            return Ok(self.buf.freeze());
        }
        self.close_bytes();
        let mut out = BytesMut::with_capacity(self.done_len);
        for chunk in &self.done {
            if let Pending::Bytes(b) = chunk {
                out.extend_from_slice(b);
            }
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_patched_across_region() -> Result<(), EncodeError> {
        let mut e = Encoder::new();
        let p = e.reserve_length_prefix();
        e.put_i16(7);
        e.put_region(42, 100);
        e.put_i32(-1);
        e.patch_length_prefix(p)?;
        assert_eq!(e.total_len(), 4 + 2 + 100 + 4);
        let chunks = e.finish();
        assert_eq!(
            chunks,
            vec![
                Chunk::Bytes(Bytes::from_static(&[0, 0, 0, 106, 0, 7])),
                Chunk::Region { id: 42, len: 100 },
                Chunk::Bytes(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff])),
            ]
        );
        Ok(())
    }

    #[test]
    fn into_bytes_rejects_regions_and_flattens() -> Result<(), EncodeError> {
        let mut e = Encoder::with_capacity(8);
        let p = e.reserve_length_prefix();
        e.put_u8(9);
        e.patch_length_prefix(p)?;
        assert_eq!(e.into_bytes()?, Bytes::from_static(&[0, 0, 0, 1, 9]));
        let mut e = Encoder::new();
        e.put_region(1, 1);
        assert_eq!(e.into_bytes(), Err(EncodeError::ContainsRegion));
        Ok(())
    }

    #[test]
    fn foreign_prefix_is_rejected() {
        let mut e = Encoder::new();
        e.put_u8(1);
        assert_eq!(
            e.patch_length_prefix(LengthPrefix { offset: 10 }),
            Err(EncodeError::BadLengthPrefix(10))
        );
    }
}
