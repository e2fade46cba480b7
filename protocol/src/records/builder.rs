//! Building record batches on the client side (producer, coordinator markers,
//! tests and benches).
//!
//! Records are encoded uncompressed as they are appended; `build` compresses the
//! section once and writes the 61-byte header with lengths, last offset delta,
//! max timestamp and CRC32C. The base timestamp is the first record's timestamp
//! (as the Java producer does), so later deltas may be negative.

use bytes::{BufMut, Bytes, BytesMut};

use super::header::{
    ATTR_CONTROL, ATTR_TRANSACTIONAL, BATCH_HEADER_LEN, CRC_START, LOG_OVERHEAD, MAGIC_V2,
};
use super::record::{encode_record, encoded_size, Header};
use super::{compression, Compression, RecordError};

/// Accumulates records and produces one complete batch.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    records: Vec<u8>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty, non-idempotent builder: base offset 0, no producer id (-1),
    /// partition leader epoch -1, as clients send it.
    pub fn new() -> Self {
        Self {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            base_timestamp: 0,
            max_timestamp: -1,
            count: 0,
            records: Vec::new(),
        }
    }

    pub fn set_base_offset(&mut self, base_offset: i64) -> &mut Self {
        self.base_offset = base_offset;
        self
    }

    pub fn set_partition_leader_epoch(&mut self, epoch: i32) -> &mut Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Idempotent producer fields: the batch's first record gets `base_sequence`.
    pub fn set_producer(&mut self, producer_id: i64, epoch: i16, base_sequence: i32) -> &mut Self {
        self.producer_id = producer_id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn set_transactional(&mut self, transactional: bool) -> &mut Self {
        self.transactional = transactional;
        self
    }

    pub fn set_control(&mut self, control: bool) -> &mut Self {
        self.control = control;
        self
    }

    /// Number of records appended.
    pub fn record_count(&self) -> i32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The built batch's size if uncompressed: header plus encoded records. For
    /// compressed batches it is an estimate, normally high; incompressible data
    /// can come out a few framing bytes per block larger. This is what
    /// `batch.size` decisions should use, as the Java producer's estimate does.
    pub fn estimated_size(&self) -> usize {
        BATCH_HEADER_LEN + self.records.len()
    }

    /// How much [`BatchBuilder::estimated_size`] would grow if this record were
    /// appended.
    ///
    /// # Errors
    /// [`RecordError::TooLarge`] for a record whose lengths overflow `i32`.
    pub fn size_of_next(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> Result<usize, RecordError> {
        let ts_delta = if self.count == 0 {
            0
        } else {
            timestamp.wrapping_sub(self.base_timestamp)
        };
        encoded_size(ts_delta, self.count, key, value, headers)
    }

    /// Append a record; returns its offset delta in the batch.
    ///
    /// # Errors
    /// [`RecordError::TooLarge`] when the record or the batch would overflow the
    /// wire's `i32` lengths and counts.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> Result<i32, RecordError> {
        if self.count == i32::MAX {
            return Err(RecordError::TooLarge);
        }
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        let delta = self.count;
        let before = self.records.len();
        encode_record(
            &mut self.records,
            timestamp.wrapping_sub(self.base_timestamp),
            delta,
            key,
            value,
            headers,
        )?;
        if BATCH_HEADER_LEN + self.records.len() > i32::MAX as usize {
            self.records.truncate(before);
            return Err(RecordError::TooLarge);
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        Ok(delta)
    }

    fn attributes(&self, compression: Compression) -> i16 {
        let mut attrs = i16::from(compression.id());
        if self.transactional {
            attrs |= ATTR_TRANSACTIONAL;
        }
        if self.control {
            attrs |= ATTR_CONTROL;
        }
        attrs
    }

    /// Produce the complete batch.
    ///
    /// # Errors
    /// [`RecordError::EmptyBatch`] without records; [`RecordError::TooLarge`] if the
    /// compressed batch overflows `i32`; [`RecordError::Compress`] from the codec.
    pub fn build(&self, compression: Compression) -> Result<Bytes, RecordError> {
        if self.count == 0 {
            return Err(RecordError::EmptyBatch);
        }
        let compressed;
        let section: &[u8] = if compression == Compression::None {
            &self.records
        } else {
            compressed = compression::compress(compression, &self.records)?;
            &compressed
        };
        let total = BATCH_HEADER_LEN + section.len();
        let batch_length =
            i32::try_from(total - LOG_OVERHEAD).map_err(|_| RecordError::TooLarge)?;
        let mut b = BytesMut::with_capacity(total);
        b.put_i64(self.base_offset);
        b.put_i32(batch_length);
        b.put_i32(self.partition_leader_epoch);
        b.put_i8(MAGIC_V2);
        b.put_u32(0); // CRC, filled below
        b.put_i16(self.attributes(compression));
        b.put_i32(self.count - 1);
        b.put_i64(self.base_timestamp);
        b.put_i64(self.max_timestamp);
        b.put_i64(self.producer_id);
        b.put_i16(self.producer_epoch);
        b.put_i32(self.base_sequence);
        b.put_i32(self.count);
        b.put_slice(section);
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[CRC_START - 4..CRC_START].copy_from_slice(&crc.to_be_bytes());
        Ok(b.freeze())
    }

    /// Forget the records (keeping producer settings) to reuse the buffer.
    pub fn clear(&mut self) {
        self.records.clear();
        self.count = 0;
        self.base_timestamp = 0;
        self.max_timestamp = -1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchHeader, RecordBatch};

    #[test]
    fn builds_a_valid_batch_with_correct_header() {
        let mut b = BatchBuilder::new();
        b.set_producer(9, 1, 40).set_base_offset(1000);
        b.append(50, Some(b"a"), Some(b"1"), &[]).unwrap();
        b.append(40, None, Some(b"2"), &[]).unwrap();
        b.append(70, Some(b"c"), None, &[]).unwrap();
        let est = b.estimated_size();
        let bytes = b.build(Compression::None).unwrap();
        assert_eq!(bytes.len(), est);
        let h = BatchHeader::new(&bytes).unwrap();
        assert_eq!(h.validate().unwrap(), bytes.len());
        assert_eq!(h.last_offset_delta(), 2);
        assert_eq!(h.base_timestamp(), 50);
        assert_eq!(h.max_timestamp(), 70);
        assert_eq!(h.last_sequence(), 42);
        let recs = RecordBatch::decode(&bytes, 1 << 20)
            .unwrap()
            .records()
            .collect_all()
            .unwrap();
        let ts: Vec<_> = recs.iter().map(|r| (r.offset, r.timestamp)).collect();
        assert_eq!(ts, vec![(1000, 50), (1001, 40), (1002, 70)]);
    }

    #[test]
    fn empty_builder_refuses_to_build() {
        assert_eq!(
            BatchBuilder::new().build(Compression::Gzip),
            Err(RecordError::EmptyBatch)
        );
    }

    #[test]
    fn size_of_next_matches_growth() {
        let mut b = BatchBuilder::new();
        for i in 0..5i64 {
            let before = b.estimated_size();
            let n = b
                .size_of_next(i * 1000, Some(b"key"), Some(b"value"), &[])
                .unwrap();
            b.append(i * 1000, Some(b"key"), Some(b"value"), &[])
                .unwrap();
            assert_eq!(b.estimated_size() - before, n);
        }
    }
}
