//! One record inside a batch's (decompressed) records section.
//!
//! Byte layout (all integers zigzag varints unless noted):
//!
//! ```text
//! length            varint   bytes after this field
//! attributes        int8     unused, 0
//! timestamp_delta   varlong  relative to the batch's base_timestamp
//! offset_delta      varint   relative to the batch's base_offset
//! key_length        varint   -1 = null key
//! key               bytes
//! value_length      varint   -1 = null value (tombstone)
//! value             bytes
//! header_count      varint
//! headers…          key_length varint (>= 0), key bytes,
//!                   value_length varint (-1 = null), value bytes
//! ```
//!
//! Decoding is bounded: the record must fit in the bytes that remain, every field
//! must fit in the record's declared length and consume it exactly, and the header
//! vector never pre-allocates beyond what the remaining bytes could hold. Keys,
//! values and headers are zero-copy slices of the batch buffer.
//!
// Hot path: decoding allocates only the header vector (and nothing when a record
// has no headers); encoding writes straight into the caller's buffer.

use bytes::{BufMut, Bytes};

use super::wire::{put_varint, put_varlong, varint_size, varlong_size, Cursor};
use super::RecordError;

/// A record header: a (string) key and a nullable value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header key. Kafka declares it a UTF-8 string but does not enforce that
    /// on the wire, so it is kept as bytes; see [`Header::key_str`].
    pub key: Bytes,
    pub value: Option<Bytes>,
}

impl Header {
    /// A header from anything convertible to `Bytes`.
    pub fn new(key: impl Into<Bytes>, value: Option<impl Into<Bytes>>) -> Self {
        Self {
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    /// The key as UTF-8, or `None` if it is not valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}

/// A decoded record with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// The per-batch values a record's deltas are relative to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordContext {
    pub base_offset: i64,
    pub base_timestamp: i64,
    /// `Some(max_timestamp)` for log-append-time batches: every record then
    /// carries the batch's max timestamp, whatever its delta says (as in Kafka).
    pub log_append_time: Option<i64>,
}

/// Smallest encoded header: key length 0 and null value, one byte each.
const MIN_HEADER_LEN: usize = 2;

/// Decode one record at the cursor.
pub(crate) fn decode_record(cur: &mut Cursor, ctx: &RecordContext) -> Result<Record, RecordError> {
    let len = cur.varint()?;
    let len = usize::try_from(len).map_err(|_| RecordError::InvalidLength(len))?;
    if len > cur.remaining() {
        return Err(RecordError::Truncated);
    }
    // Parse inside a window limited to the declared length so a lying field
    // cannot read into the next record.
    let outer_end = cur.limit(len)?;
    let start = cur.position();
    let fields = decode_fields(cur);
    let used = cur.position() - start;
    let left = cur.remaining();
    cur.restore(outer_end);
    let (timestamp_delta, offset_delta, key, value, headers) = fields?;
    if left != 0 {
        return Err(RecordError::RecordLengthMismatch {
            declared: len,
            used,
        });
    }
    let timestamp = match ctx.log_append_time {
        Some(ts) => ts,
        None => ctx.base_timestamp.wrapping_add(timestamp_delta),
    };
    Ok(Record {
        offset: ctx.base_offset.wrapping_add(i64::from(offset_delta)),
        timestamp,
        key,
        value,
        headers,
    })
}

type Fields = (i64, i32, Option<Bytes>, Option<Bytes>, Vec<Header>);

/// The fields after a record's length, read within the cursor's current limit.
fn decode_fields(rec: &mut Cursor) -> Result<Fields, RecordError> {
    let _attributes = rec.i8()?;
    let timestamp_delta = rec.varlong()?;
    let offset_delta = rec.varint()?;
    let key = rec.nullable_bytes()?;
    let value = rec.nullable_bytes()?;
    let count = rec.varint()?;
    let count = usize::try_from(count).map_err(|_| RecordError::InvalidHeaderCount(count))?;
    if count > rec.remaining() / MIN_HEADER_LEN {
        return Err(RecordError::InvalidHeaderCount(
            i32::try_from(count).unwrap_or(i32::MAX),
        ));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let key_len = rec.varint()?;
        let key_len = usize::try_from(key_len).map_err(|_| RecordError::InvalidLength(key_len))?;
        let key = rec.bytes(key_len)?;
        let value = rec.nullable_bytes()?;
        headers.push(Header { key, value });
    }
    Ok((timestamp_delta, offset_delta, key, value, headers))
}

fn nullable_size(b: Option<&[u8]>) -> Result<usize, RecordError> {
    Ok(match b {
        None => varint_size(-1),
        Some(b) => varint_size(len_i32(b.len())?) + b.len(),
    })
}

fn len_i32(n: usize) -> Result<i32, RecordError> {
    i32::try_from(n).map_err(|_| RecordError::TooLarge)
}

fn put_nullable(buf: &mut impl BufMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            // Sizes were checked to fit an i32 in `body_size`.
            put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
    }
}

/// Size of a record body (everything after the length varint).
fn body_size(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> Result<usize, RecordError> {
    let mut size = 1 + varlong_size(timestamp_delta) + varint_size(offset_delta);
    size += nullable_size(key)? + nullable_size(value)?;
    size += varint_size(len_i32(headers.len())?);
    for h in headers {
        size += varint_size(len_i32(h.key.len())?) + h.key.len();
        size += nullable_size(h.value.as_deref())?;
    }
    len_i32(size)?;
    Ok(size)
}

/// Encode one record, returning the bytes written.
///
/// # Errors
/// [`RecordError::TooLarge`] when a length does not fit the wire's `i32`.
pub(crate) fn encode_record(
    buf: &mut impl BufMut,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> Result<usize, RecordError> {
    let size = body_size(timestamp_delta, offset_delta, key, value, headers)?;
    let size_i32 = len_i32(size)?;
    put_varint(buf, size_i32);
    buf.put_i8(0);
    put_varlong(buf, timestamp_delta);
    put_varint(buf, offset_delta);
    put_nullable(buf, key);
    put_nullable(buf, value);
    put_varint(buf, headers.len() as i32);
    for h in headers {
        put_varint(buf, h.key.len() as i32);
        buf.put_slice(&h.key);
        put_nullable(buf, h.value.as_deref());
    }
    Ok(varint_size(size_i32) + size)
}

/// Encoded size of a record, for batch size estimates.
///
/// # Errors
/// [`RecordError::TooLarge`] when a length does not fit the wire's `i32`.
pub(crate) fn encoded_size(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> Result<usize, RecordError> {
    let size = body_size(timestamp_delta, offset_delta, key, value, headers)?;
    Ok(varint_size(len_i32(size)?) + size)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: RecordContext = RecordContext {
        base_offset: 100,
        base_timestamp: 1_000,
        log_append_time: None,
    };

    fn encode(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[Header]) -> Vec<u8> {
        let mut b = Vec::new();
        let n = encode_record(&mut b, -5, 3, key, value, headers).unwrap();
        assert_eq!(n, b.len());
        assert_eq!(n, encoded_size(-5, 3, key, value, headers).unwrap());
        b
    }

    #[test]
    fn round_trips_with_nulls_and_headers() {
        let headers = vec![Header::new("a", Some("1")), Header::new("b", None::<Bytes>)];
        let b = encode(Some(b"k"), None, &headers);
        let r = decode_record(&mut Cursor::new(Bytes::from(b)), &CTX).unwrap();
        assert_eq!(r.offset, 103);
        assert_eq!(r.timestamp, 995);
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value, None);
        assert_eq!(r.headers, headers);
    }

    #[test]
    fn log_append_time_overrides_deltas() {
        let b = encode(None, Some(b"v"), &[]);
        let ctx = RecordContext {
            log_append_time: Some(77),
            ..CTX
        };
        let r = decode_record(&mut Cursor::new(Bytes::from(b)), &ctx).unwrap();
        assert_eq!(r.timestamp, 77);
    }

    #[test]
    fn length_must_match_fields_exactly() {
        let mut b = encode(Some(b"k"), Some(b"v"), &[]);
        // Claim one byte more than the fields use, and supply it.
        b[0] += 2;
        b.push(0);
        let err = decode_record(&mut Cursor::new(Bytes::from(b)), &CTX).unwrap_err();
        assert!(matches!(err, RecordError::RecordLengthMismatch { .. }));
    }

    #[test]
    fn huge_header_count_is_refused_before_allocating() {
        let mut b = Vec::new();
        let body: &[u8] = &[0, 0, 0, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x07];
        put_varint(&mut b, body.len() as i32);
        b.extend_from_slice(body);
        let err = decode_record(&mut Cursor::new(Bytes::from(b)), &CTX).unwrap_err();
        assert_eq!(err, RecordError::InvalidHeaderCount(0x3fff_ffff));
    }
}
