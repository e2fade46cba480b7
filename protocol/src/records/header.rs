//! The 61-byte header of a record batch (magic 2), viewed in place.
//!
//! Byte layout (big-endian), exactly as on the wire and in `.log` segment files:
//!
//! ```text
//! offset  size  field
//!      0     8  base_offset
//!      8     4  batch_length          (bytes after this field: total size - 12)
//!     12     4  partition_leader_epoch
//!     16     1  magic                 (must be 2)
//!     17     4  crc                   (CRC32C of bytes 21..end of batch)
//!     21     2  attributes            (bits 0-2 compression, 3 timestamp type,
//!                                      4 transactional, 5 control, 6 delete horizon)
//!     23     4  last_offset_delta
//!     27     8  base_timestamp
//!     35     8  max_timestamp
//!     43     8  producer_id
//!     51     2  producer_epoch
//!     53     4  base_sequence
//!     57     4  record_count
//!     61        records…
//! ```
//!
//! `base_offset`, `batch_length` and `partition_leader_epoch` lie before the CRC'd
//! range, so the broker patches them in place without recomputing the CRC.
//!
// Hot path: header reads are plain loads at fixed offsets; nothing here allocates.

use thiserror::Error;

/// Size of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batch_length`'s coverage starts (base_offset + batch_length).
pub const LOG_OVERHEAD: usize = 12;
/// The only record format brook accepts.
pub const MAGIC_V2: i8 = 2;
/// First byte covered by the CRC.
pub const CRC_START: usize = 21;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

/// Why a byte range is not a valid record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("record batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("unsupported record batch magic {0} (only magic 2 is supported)")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch declares {0} records")]
    InvalidRecordCount(i32),
    #[error("record batch last offset delta {last_offset_delta} does not match record count {record_count}")]
    OffsetDeltaMismatch {
        last_offset_delta: i32,
        record_count: i32,
    },
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
}

/// Compression codec from attribute bits 0–2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec's id in the attributes field.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for an attributes id.
    ///
    /// # Errors
    /// [`BatchError::UnknownCompression`] for ids 5–7.
    pub fn from_id(id: u8) -> Result<Self, BatchError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(BatchError::UnknownCompression(other)),
        })
    }

    /// Kafka's name for the codec (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Attribute bit: timestamps are log-append time.
pub const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
/// Attribute bit: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 1 << 4;
/// Attribute bit: the batch is a control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 1 << 5;
/// Attribute bit: base timestamp holds the delete horizon (compaction).
pub const ATTR_DELETE_HORIZON: i16 = 1 << 6;

/// A read-only view of a batch header at the start of `bytes`.
///
/// Construction only checks that the 61 header bytes are present; use
/// [`BatchHeader::validate`] for the full checks on untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8],
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl<'a> BatchHeader<'a> {
    /// View the header at the start of `bytes`.
    ///
    /// # Errors
    /// [`BatchError::Truncated`] when fewer than 61 bytes are given.
    pub fn new(bytes: &'a [u8]) -> Result<Self, BatchError> {
        if bytes.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: bytes.len(),
            });
        }
        Ok(Self { bytes })
    }

    /// View a header the caller has already validated (at least 61 bytes).
    pub(crate) fn from_validated(bytes: &'a [u8]) -> Self {
        debug_assert!(bytes.len() >= BATCH_HEADER_LEN);
        Self { bytes }
    }

    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, BASE_OFFSET)
    }
    pub fn batch_length(&self) -> i32 {
        be_i32(self.bytes, BATCH_LENGTH)
    }
    /// Total size of the batch on the wire, `batch_length + 12`, or `None` when
    /// the length field is too small to hold a header.
    pub fn total_size(&self) -> Option<usize> {
        let len = self.batch_length();
        let len = usize::try_from(len).ok()?;
        let total = len.checked_add(LOG_OVERHEAD)?;
        (total >= BATCH_HEADER_LEN).then_some(total)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, PARTITION_LEADER_EPOCH)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC] as i8
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, CRC) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, ATTRIBUTES)
    }
    /// The compression codec named by the attributes.
    ///
    /// # Errors
    /// [`BatchError::UnknownCompression`] for codec ids 5–7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id((self.attributes() & 0x7) as u8)
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & ATTR_LOG_APPEND_TIME != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, LAST_OFFSET_DELTA)
    }
    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }
    /// Offset after the batch: `last_offset + 1`.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, BASE_SEQUENCE)
    }
    /// Sequence of the last record, wrapping at `i32::MAX` as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        let base = self.base_sequence();
        if base < 0 {
            return base;
        }
        let last = i64::from(base) + i64::from(self.last_offset_delta());
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }
    pub fn record_count(&self) -> i32 {
        be_i32(self.bytes, RECORD_COUNT)
    }

    /// Full validation of an untrusted batch that must span exactly `bytes`
    /// (or at least its declared size): lengths, magic, record count, CRC32C.
    /// Returns the batch's total size.
    ///
    /// # Errors
    /// The first [`BatchError`] found.
    pub fn validate(&self) -> Result<usize, BatchError> {
        let total = self
            .total_size()
            .ok_or(BatchError::InvalidLength(self.batch_length()))?;
        if self.bytes.len() < total {
            return Err(BatchError::Truncated {
                needed: total,
                available: self.bytes.len(),
            });
        }
        if self.magic() != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(self.magic()));
        }
        let count = self.record_count();
        if count < 0 {
            return Err(BatchError::InvalidRecordCount(count));
        }
        // A stored batch may have lost records to compaction, which keeps the original
        // last offset delta (so the producer's last sequence survives): the records
        // may span more offsets than they number, never fewer. Produced batches are
        // held to the exact rule by [`BatchHeader::check_produced`].
        if count > 0 && i64::from(self.last_offset_delta()) < i64::from(count) - 1 {
            return Err(BatchError::OffsetDeltaMismatch {
                last_offset_delta: self.last_offset_delta(),
                record_count: count,
            });
        }
        self.compression()?;
        let computed = crc32c::crc32c(&self.bytes[CRC_START..total]);
        if computed != self.crc() {
            return Err(BatchError::CrcMismatch {
                stored: self.crc(),
                computed,
            });
        }
        Ok(total)
    }

    /// The extra rule for a batch a producer sent (on top of [`BatchHeader::validate`]):
    /// its offsets are dense, `last_offset_delta == record_count - 1`. Only compaction
    /// may leave gaps inside a batch.
    ///
    /// # Errors
    /// [`BatchError::OffsetDeltaMismatch`].
    pub fn check_produced(&self) -> Result<(), BatchError> {
        let count = self.record_count();
        if count > 0 && self.last_offset_delta() != count - 1 {
            return Err(BatchError::OffsetDeltaMismatch {
                last_offset_delta: self.last_offset_delta(),
                record_count: count,
            });
        }
        Ok(())
    }

    /// Whether the base timestamp holds a delete horizon (KIP-534: set by the log
    /// cleaner on batches with tombstones; the tombstones may go once it passes).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes() & ATTR_DELETE_HORIZON != 0
    }

    /// The delete horizon in ms, when [`BatchHeader::has_delete_horizon`].
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.has_delete_horizon().then(|| self.base_timestamp())
    }

    /// Only the CRC check, for log recovery scans.
    ///
    /// # Errors
    /// [`BatchError::Truncated`], [`BatchError::InvalidLength`] or [`BatchError::CrcMismatch`].
    pub fn check_crc(&self) -> Result<usize, BatchError> {
        let total = self
            .total_size()
            .ok_or(BatchError::InvalidLength(self.batch_length()))?;
        if self.bytes.len() < total {
            return Err(BatchError::Truncated {
                needed: total,
                available: self.bytes.len(),
            });
        }
        let computed = crc32c::crc32c(&self.bytes[CRC_START..total]);
        if computed != self.crc() {
            return Err(BatchError::CrcMismatch {
                stored: self.crc(),
                computed,
            });
        }
        Ok(total)
    }
}

/// Patch the base offset in place (not covered by the CRC).
///
/// # Errors
/// [`BatchError::Truncated`] when `bytes` is shorter than a header.
pub fn set_base_offset(bytes: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    check_len(bytes)?;
    bytes[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Patch the partition leader epoch in place (not covered by the CRC).
///
/// # Errors
/// [`BatchError::Truncated`] when `bytes` is shorter than a header.
pub fn set_partition_leader_epoch(bytes: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    check_len(bytes)?;
    bytes[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Patch the max timestamp and set the log-append-time attribute, then recompute
/// the CRC (both fields are covered by it). Used for
/// `message.timestamp.type=LogAppendTime` topics.
///
/// # Errors
/// [`BatchError::Truncated`] or [`BatchError::InvalidLength`] for a malformed batch.
pub fn set_log_append_time(bytes: &mut [u8], timestamp: i64) -> Result<(), BatchError> {
    let total = BatchHeader::new(bytes)?
        .total_size()
        .ok_or(BatchError::InvalidLength(be_i32(bytes, BATCH_LENGTH)))?;
    if bytes.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: bytes.len(),
        });
    }
    let attrs = be_i16(bytes, ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
    bytes[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    bytes[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[CRC_START..total]);
    bytes[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

fn check_len(bytes: &[u8]) -> Result<(), BatchError> {
    if bytes.len() < BATCH_HEADER_LEN {
        return Err(BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: bytes.len(),
        });
    }
    Ok(())
}

/// Iterate over consecutive batches in `bytes` (a log segment slice or a produce
/// payload), yielding `(position, header)` and stopping at the first incomplete
/// batch. Does not validate CRCs; callers validate as they need.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }
    /// Bytes consumed by complete batches so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = (usize, BatchHeader<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.pos..)?;
        let header = BatchHeader::new(rest).ok()?;
        let total = header.total_size()?;
        if rest.len() < total {
            return None;
        }
        let at = self.pos;
        self.pos += total;
        Some((
            at,
            BatchHeader {
                bytes: &rest[..total],
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(count: i32) -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_LEN];
        b[BATCH_LENGTH..BATCH_LENGTH + 4]
            .copy_from_slice(&((BATCH_HEADER_LEN - LOG_OVERHEAD) as i32).to_be_bytes());
        b[MAGIC] = 2;
        b[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&(count - 1).to_be_bytes());
        b[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn validates_and_patches_without_breaking_crc() {
        let mut b = sample(3);
        assert_eq!(BatchHeader::new(&b).unwrap().validate().unwrap(), 61);
        set_base_offset(&mut b, 42).unwrap();
        set_partition_leader_epoch(&mut b, 7).unwrap();
        let h = BatchHeader::new(&b).unwrap();
        assert_eq!(h.base_offset(), 42);
        assert_eq!(h.last_offset(), 44);
        assert_eq!(h.partition_leader_epoch(), 7);
        h.validate().unwrap();
    }

    #[test]
    fn detects_corruption_and_bad_fields() {
        let mut b = sample(1);
        b[60] ^= 1;
        assert!(matches!(
            BatchHeader::new(&b).unwrap().validate(),
            Err(BatchError::CrcMismatch { .. })
        ));
        let mut b = sample(1);
        b[MAGIC] = 1;
        assert_eq!(
            BatchHeader::new(&b).unwrap().validate(),
            Err(BatchError::UnsupportedMagic(1))
        );
        let mut b = sample(1);
        b[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            BatchHeader::new(&b).unwrap().validate(),
            Err(BatchError::InvalidLength(-5))
        );
        assert!(BatchHeader::new(&b[..60]).is_err());
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut b = sample(2);
        set_log_append_time(&mut b, 1234).unwrap();
        let h = BatchHeader::new(&b).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp(), 1234);
        h.validate().unwrap();
    }

    #[test]
    fn iterates_complete_batches_only() {
        let mut all = sample(1);
        all.extend(sample(2));
        all.extend(&sample(1)[..30]);
        let v: Vec<_> = BatchIter::new(&all)
            .map(|(p, h)| (p, h.record_count()))
            .collect();
        assert_eq!(v, vec![(0, 1), (61, 2)]);
    }

    #[test]
    fn last_sequence_wraps() {
        let mut b = sample(3);
        b[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        assert_eq!(BatchHeader::new(&b).unwrap().last_sequence(), 0);
    }
}
