//! Control records: the single record of a control batch (transaction markers).
//!
//! Key layout (big-endian): `version i16` (0), `type i16` (0 = ABORT, 1 = COMMIT;
//! KRaft uses higher types for its own metadata log). Transaction markers carry a
//! value of `version i16` (0) and `coordinator_epoch i32`. Longer keys are
//! accepted, as newer versions may append fields.

use bytes::{BufMut, Bytes, BytesMut};

use super::builder::BatchBuilder;
use super::{Compression, RecordError};

/// What a control record marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort,
    Commit,
    /// A type brook does not interpret (KRaft-internal markers).
    Other(i16),
}

impl ControlRecordType {
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Other(id) => id,
        }
    }

    pub fn from_id(id: i16) -> Self {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Other(other),
        }
    }
}

/// A parsed control record key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord {
    pub version: i16,
    pub kind: ControlRecordType,
}

impl ControlRecord {
    /// Parse a control record key.
    ///
    /// # Errors
    /// [`RecordError::InvalidControlRecord`] for a key shorter than 4 bytes or a
    /// negative version.
    pub fn parse(key: &[u8]) -> Result<Self, RecordError> {
        let k = key.get(..4).ok_or(RecordError::InvalidControlRecord)?;
        let version = i16::from_be_bytes([k[0], k[1]]);
        if version < 0 {
            return Err(RecordError::InvalidControlRecord);
        }
        Ok(Self {
            version,
            kind: ControlRecordType::from_id(i16::from_be_bytes([k[2], k[3]])),
        })
    }

    /// The 4-byte key of this record.
    pub fn to_key(self) -> Bytes {
        let mut b = BytesMut::with_capacity(4);
        b.put_i16(self.version);
        b.put_i16(self.kind.id());
        b.freeze()
    }
}

/// Build the control batch a transaction coordinator writes to end a
/// transaction: one transactional control record with the marker key and the
/// `(version 0, coordinator_epoch)` value, uncompressed.
///
/// # Errors
/// Only if encoding fails, which a 4-byte key and 6-byte value cannot.
pub fn end_txn_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<Bytes, RecordError> {
    let kind = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    let key = ControlRecord { version: 0, kind }.to_key();
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let mut b = BatchBuilder::new();
    b.set_producer(producer_id, producer_epoch, -1)
        .set_transactional(true)
        .set_control(true);
    b.append(timestamp, Some(&key), Some(&value), &[])?;
    b.build(Compression::None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RecordBatch;

    #[test]
    fn marker_batch_round_trips() {
        let bytes = end_txn_marker_batch(7, 2, true, 5, 1000).unwrap();
        let batch = RecordBatch::decode(&bytes, 1 << 20).unwrap();
        assert!(batch.is_control());
        assert!(batch.is_transactional());
        assert_eq!(batch.producer_id(), 7);
        let c = batch.control_record().unwrap().unwrap();
        assert_eq!(c.kind, ControlRecordType::Commit);
        assert_eq!(c.version, 0);
    }

    #[test]
    fn short_or_negative_keys_are_invalid() {
        assert!(ControlRecord::parse(&[0, 0, 0]).is_err());
        assert!(ControlRecord::parse(&[0xff, 0xff, 0, 1]).is_err());
        assert_eq!(
            ControlRecord::parse(&[0, 0, 0, 9, 1]).unwrap().kind,
            ControlRecordType::Other(9)
        );
    }
}
