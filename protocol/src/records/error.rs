//! Errors from decoding, building and (de)compressing record batches.

use thiserror::Error;

use super::{BatchError, Compression};
use crate::error::ErrorCode;

/// Why a batch's records could not be decoded or a batch could not be built.
///
/// Small and `Copy`: it is returned on the produce path for every bad batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("record data truncated")]
    Truncated,
    #[error("varint longer than its maximum encoded size")]
    VarintTooLong,
    #[error("invalid length {0}")]
    InvalidLength(i32),
    #[error("invalid record header count {0}")]
    InvalidHeaderCount(i32),
    #[error("record declares {declared} bytes but its fields use {used}")]
    RecordLengthMismatch { declared: usize, used: usize },
    #[error("batch declares {declared} records but holds {found}")]
    RecordCountMismatch { declared: i32, found: i32 },
    #[error("{0} bytes left over after the batch's last record")]
    TrailingBytes(usize),
    #[error("{} compression failed", .0.name())]
    Compress(Compression),
    #[error("{} data is corrupt", .0.name())]
    Decompress(Compression),
    #[error("decompressed records exceed the {limit}-byte limit")]
    DecompressedTooLarge { limit: usize },
    #[error("record or batch too large to encode")]
    TooLarge,
    #[error("a batch needs at least one record")]
    EmptyBatch,
    #[error("invalid control record")]
    InvalidControlRecord,
}

impl RecordError {
    /// The Kafka error code a produce response carries for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            RecordError::Batch(BatchError::UnknownCompression(_)) => {
                ErrorCode::UNSUPPORTED_COMPRESSION_TYPE
            }
            RecordError::Batch(BatchError::UnsupportedMagic(_)) => {
                ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT
            }
            RecordError::Batch(
                BatchError::Truncated { .. }
                | BatchError::InvalidLength(_)
                | BatchError::CrcMismatch { .. }
                | BatchError::InvalidRecordCount(_)
                | BatchError::OffsetDeltaMismatch { .. },
            ) => ErrorCode::CORRUPT_MESSAGE,
            RecordError::Truncated
            | RecordError::VarintTooLong
            | RecordError::InvalidLength(_)
            | RecordError::InvalidHeaderCount(_)
            | RecordError::RecordLengthMismatch { .. }
            | RecordError::RecordCountMismatch { .. }
            | RecordError::TrailingBytes(_)
            | RecordError::Decompress(_)
            | RecordError::InvalidControlRecord => ErrorCode::CORRUPT_MESSAGE,
            RecordError::DecompressedTooLarge { .. } | RecordError::TooLarge => {
                ErrorCode::RECORD_LIST_TOO_LARGE
            }
            RecordError::Compress(_) | RecordError::EmptyBatch => ErrorCode::UNKNOWN_SERVER_ERROR,
        }
    }
}
