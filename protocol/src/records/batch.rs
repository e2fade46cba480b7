//! A validated record batch and iteration over its records.
//!
//! [`RecordBatch::decode`] takes the bytes of a batch (as received in a produce
//! request or read from a segment), runs the full header validation of
//! [`BatchHeader::validate`] (lengths, magic, record count, CRC32C), and
//! decompresses the records section under a caller-supplied cap. Records are then
//! decoded lazily by [`RecordBatch::records`]; keys and values are zero-copy slices
//! of the batch (uncompressed) or of the single decompressed buffer.
//!
//! Decoding never trusts a count: records are parsed one at a time against the
//! bytes that remain, and the iterator reports a count mismatch or trailing bytes
//! as an error at the end.

use bytes::Bytes;

use super::control::ControlRecord;
use super::header::{BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD};
use super::record::{decode_record, Record, RecordContext};
use super::wire::Cursor;
use super::{compression, BatchError, Compression, RecordError};

/// A batch whose header and CRC have been validated and whose records section is
/// available uncompressed.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    /// The whole batch as on the wire (header + possibly compressed records).
    bytes: Bytes,
    /// The uncompressed records section.
    records: Bytes,
}

impl RecordBatch {
    /// Validate the batch at the start of `bytes` and decompress its records,
    /// refusing more than `max_decompressed` bytes of records. Bytes after the
    /// batch's declared size are ignored (see [`RecordBatch::size`]).
    ///
    /// # Errors
    /// A [`RecordError::Batch`] for a bad header or CRC, or a decompression error.
    pub fn decode(bytes: &Bytes, max_decompressed: usize) -> Result<Self, RecordError> {
        let header = BatchHeader::new(bytes)?;
        let total = header.validate()?;
        let compression = header.compression()?;
        let bytes = bytes.slice(..total);
        let section = bytes.slice(BATCH_HEADER_LEN..);
        // A header-only batch (left by compaction) has no compressed stream at all.
        let records = if section.is_empty() && header.record_count() == 0 {
            Bytes::new()
        } else {
            compression::decompress(compression, &section, max_decompressed)?
        };
        Ok(Self { bytes, records })
    }

    /// A view of the header.
    pub fn header(&self) -> BatchHeader<'_> {
        BatchHeader::from_validated(&self.bytes)
    }

    /// The batch exactly as on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Size of the batch on the wire.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The uncompressed records section.
    pub fn records_section(&self) -> &Bytes {
        &self.records
    }

    pub fn base_offset(&self) -> i64 {
        self.header().base_offset()
    }
    pub fn last_offset(&self) -> i64 {
        self.header().last_offset()
    }
    pub fn record_count(&self) -> i32 {
        self.header().record_count()
    }
    pub fn max_timestamp(&self) -> i64 {
        self.header().max_timestamp()
    }
    pub fn producer_id(&self) -> i64 {
        self.header().producer_id()
    }
    pub fn producer_epoch(&self) -> i16 {
        self.header().producer_epoch()
    }
    pub fn base_sequence(&self) -> i32 {
        self.header().base_sequence()
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        self.header().partition_leader_epoch()
    }
    pub fn is_control(&self) -> bool {
        self.header().is_control()
    }
    pub fn is_transactional(&self) -> bool {
        self.header().is_transactional()
    }
    /// The codec; infallible here because `decode` checked it.
    pub fn compression(&self) -> Compression {
        self.header().compression().unwrap_or_default()
    }

    /// Iterate the records, decoding each on demand.
    pub fn records(&self) -> Records {
        let h = self.header();
        Records {
            cursor: Cursor::new(self.records.clone()),
            ctx: RecordContext {
                base_offset: h.base_offset(),
                base_timestamp: h.base_timestamp(),
                log_append_time: h.is_log_append_time().then(|| h.max_timestamp()),
            },
            declared: h.record_count(),
            seen: 0,
            done: false,
        }
    }

    /// For a control batch, its marker (parsed from the first record's key);
    /// `None` for data batches.
    ///
    /// # Errors
    /// Record decode errors, or [`RecordError::InvalidControlRecord`] when the
    /// control batch has no record or a malformed key.
    pub fn control_record(&self) -> Result<Option<ControlRecord>, RecordError> {
        if !self.is_control() {
            return Ok(None);
        }
        let record = self
            .records()
            .next()
            .ok_or(RecordError::InvalidControlRecord)??;
        let key = record.key.ok_or(RecordError::InvalidControlRecord)?;
        ControlRecord::parse(&key).map(Some)
    }
}

/// Iterator over a batch's records. After the first error it yields nothing more.
#[derive(Debug, Clone)]
pub struct Records {
    cursor: Cursor,
    ctx: RecordContext,
    declared: i32,
    seen: i32,
    done: bool,
}

impl Records {
    /// Decode every record, failing on the first error.
    ///
    /// # Errors
    /// The first record error.
    pub fn collect_all(self) -> Result<Vec<Record>, RecordError> {
        self.collect()
    }
}

impl Iterator for Records {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.seen == self.declared {
            self.done = true;
            let left = self.cursor.remaining();
            return (left != 0).then_some(Err(RecordError::TrailingBytes(left)));
        }
        if self.cursor.remaining() == 0 {
            self.done = true;
            return Some(Err(RecordError::RecordCountMismatch {
                declared: self.declared,
                found: self.seen,
            }));
        }
        match decode_record(&mut self.cursor, &self.ctx) {
            Ok(r) => {
                self.seen += 1;
                Some(Ok(r))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // Each record takes at least 7 bytes, and one error item may follow the
        // records; the bound never trusts the declared count alone.
        let left = usize::try_from(self.declared - self.seen).unwrap_or(0);
        (0, Some(left.min(self.cursor.remaining() / 7) + 1))
    }
}

/// Decode consecutive batches in `bytes` (a produce payload or fetched data).
/// Each batch is validated and decompressed under `max_decompressed`. An
/// incomplete batch at the end (normal in fetch responses) ends the iteration
/// silently; a malformed length yields an error and ends it.
pub fn decode_batches(bytes: &Bytes, max_decompressed: usize) -> Batches<'_> {
    Batches {
        bytes,
        pos: 0,
        max_decompressed,
    }
}

/// Iterator returned by [`decode_batches`].
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    bytes: &'a Bytes,
    pos: usize,
    max_decompressed: usize,
}

impl Batches<'_> {
    /// Bytes consumed by the batches yielded so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<RecordBatch, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.pos..)?;
        if rest.len() < LOG_OVERHEAD {
            return None;
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&rest[8..LOG_OVERHEAD]);
        let len = i32::from_be_bytes(len);
        let total = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(LOG_OVERHEAD))
            .filter(|&t| t >= BATCH_HEADER_LEN);
        let Some(total) = total else {
            self.pos = self.bytes.len();
            return Some(Err(BatchError::InvalidLength(len).into()));
        };
        if rest.len() < total {
            return None;
        }
        let batch = self.bytes.slice(self.pos..self.pos + total);
        self.pos += total;
        let decoded = RecordBatch::decode(&batch, self.max_decompressed);
        if decoded.is_err() {
            self.pos = self.bytes.len();
        }
        Some(decoded)
    }
}
