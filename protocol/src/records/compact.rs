//! Rewriting a stored batch for log compaction (Kafka's `MemoryRecords.filterTo`).
//!
//! The rebuilt batch keeps what consumers and producer state rely on:
//! - the base offset and every kept record's offset (offset deltas are not renumbered;
//!   gaps are fine), and the original **last offset delta**, so the batch still
//!   spans its original offsets and the producer's last sequence
//!   (`base_sequence + last_offset_delta`) survives the clean;
//! - partition leader epoch, producer id, producer epoch, base sequence, the
//!   compression codec, timestamp type and transactional/control bits;
//! - record timestamps: deltas are recomputed against the new base timestamp.
//!
//! The base timestamp is the first kept record's timestamp, unless a delete horizon is
//! given (KIP-534): then attribute bit 6 is set and the base timestamp holds the
//! horizon. With no record kept the result is a header-only batch (record count 0),
//! which Kafka writes to keep a producer's last sequence or a segment's end offset.

use bytes::{BufMut, Bytes, BytesMut};

use super::header::{ATTR_DELETE_HORIZON, BATCH_HEADER_LEN, CRC_START, LOG_OVERHEAD, MAGIC_V2};
use super::record::{encode_record, Record};
use super::{compression, Compression, RecordBatch, RecordError};

/// Rebuild `batch` with only `kept` (a subsequence of its records, in offset order),
/// stamping `delete_horizon_ms` when given.
///
/// # Errors
/// [`RecordError::TooLarge`] when an offset falls outside the batch's range or a
/// length overflows; [`RecordError::Compress`] from the codec.
pub fn rebuild_batch(
    batch: &RecordBatch,
    kept: &[Record],
    delete_horizon_ms: Option<i64>,
) -> Result<Bytes, RecordError> {
    let h = batch.header();
    let base_offset = h.base_offset();
    let log_append_time = h.is_log_append_time();
    let base_timestamp = match (delete_horizon_ms, kept.first()) {
        (Some(horizon), _) => horizon,
        (None, Some(first)) => first.timestamp,
        (None, None) => h.base_timestamp(),
    };
    let max_timestamp = if log_append_time || kept.is_empty() {
        h.max_timestamp()
    } else {
        kept.iter().map(|r| r.timestamp).max().unwrap_or(-1)
    };
    let mut section = Vec::new();
    for r in kept {
        let delta = r
            .offset
            .checked_sub(base_offset)
            .filter(|d| (0..=i64::from(h.last_offset_delta())).contains(d))
            .and_then(|d| i32::try_from(d).ok())
            .ok_or(RecordError::TooLarge)?;
        encode_record(
            &mut section,
            r.timestamp.wrapping_sub(base_timestamp),
            delta,
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        )?;
    }
    let codec = batch.compression();
    let compressed;
    let body: &[u8] = if codec == Compression::None || kept.is_empty() {
        &section
    } else {
        compressed = compression::compress(codec, &section)?;
        &compressed
    };
    let total = BATCH_HEADER_LEN + body.len();
    let batch_length = i32::try_from(total - LOG_OVERHEAD).map_err(|_| RecordError::TooLarge)?;
    let count = i32::try_from(kept.len()).map_err(|_| RecordError::TooLarge)?;
    let mut attrs = h.attributes() & !ATTR_DELETE_HORIZON;
    if delete_horizon_ms.is_some() {
        attrs |= ATTR_DELETE_HORIZON;
    }
    let mut b = BytesMut::with_capacity(total);
    b.put_i64(base_offset);
    b.put_i32(batch_length);
    b.put_i32(h.partition_leader_epoch());
    b.put_i8(MAGIC_V2);
    b.put_u32(0); // CRC, filled below
    b.put_i16(attrs);
    b.put_i32(h.last_offset_delta());
    b.put_i64(base_timestamp);
    b.put_i64(max_timestamp);
    b.put_i64(h.producer_id());
    b.put_i16(h.producer_epoch());
    b.put_i32(h.base_sequence());
    b.put_i32(count);
    b.put_slice(body);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[CRC_START - 4..CRC_START].copy_from_slice(&crc.to_be_bytes());
    Ok(b.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchBuilder, BatchHeader};

    fn batch(codec: Compression) -> RecordBatch {
        let mut b = BatchBuilder::new();
        b.set_base_offset(100).set_producer(7, 2, 40);
        for i in 0..5u8 {
            b.append(1_000 + i64::from(i), Some(&[b'k', i]), Some(&[i; 3]), &[])
                .unwrap();
        }
        RecordBatch::decode(&b.build(codec).unwrap(), 1 << 20).unwrap()
    }

    #[test]
    fn keeps_offsets_last_delta_and_producer_fields() {
        for codec in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let b = batch(codec);
            let records = b.records().collect_all().unwrap();
            let kept = vec![records[1].clone(), records[3].clone()];
            let out = rebuild_batch(&b, &kept, None).unwrap();
            let rb = RecordBatch::decode(&out, 1 << 20).unwrap();
            let h = rb.header();
            assert_eq!(h.base_offset(), 100);
            assert_eq!(h.last_offset(), 104);
            assert_eq!(h.record_count(), 2);
            assert_eq!((h.producer_id(), h.producer_epoch()), (7, 2));
            assert_eq!((h.base_sequence(), h.last_sequence()), (40, 44));
            assert_eq!(h.max_timestamp(), 1_003);
            assert_eq!(rb.compression(), codec);
            assert!(
                h.check_produced().is_err(),
                "gaps are for stored batches only"
            );
            assert_eq!(rb.records().collect_all().unwrap(), kept);
        }
    }

    #[test]
    fn delete_horizon_keeps_record_timestamps() {
        let b = batch(Compression::None);
        let records = b.records().collect_all().unwrap();
        let out = rebuild_batch(&b, &records[4..], Some(99_999)).unwrap();
        let rb = RecordBatch::decode(&out, 1 << 20).unwrap();
        assert_eq!(rb.header().delete_horizon_ms(), Some(99_999));
        assert_eq!(rb.records().collect_all().unwrap(), records[4..].to_vec());
    }

    #[test]
    fn empty_rebuild_is_a_valid_header_only_batch() {
        let b = batch(Compression::Gzip);
        let out = rebuild_batch(&b, &[], None).unwrap();
        assert_eq!(out.len(), BATCH_HEADER_LEN);
        let h = BatchHeader::new(&out).unwrap();
        assert_eq!(h.validate().unwrap(), BATCH_HEADER_LEN);
        assert_eq!((h.record_count(), h.last_offset()), (0, 104));
        let rb = RecordBatch::decode(&out, 1 << 20).unwrap();
        assert_eq!(rb.records().count(), 0);
    }

    #[test]
    fn refuses_records_outside_the_batch() {
        let b = batch(Compression::None);
        let mut r = b.records().next().unwrap().unwrap();
        r.offset = 105;
        assert!(rebuild_batch(&b, &[r], None).is_err());
    }
}
