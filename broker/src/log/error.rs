//! The error type of the log layer. The broker maps it to Kafka error codes in one
//! place (OFFSET_OUT_OF_RANGE, CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, KAFKA_STORAGE_ERROR, …).

use std::io;
use std::path::{Path, PathBuf};

use brook_protocol::records::BatchError;
use thiserror::Error;

/// Why a log operation failed.
#[derive(Debug, Error)]
pub enum LogError {
    /// An I/O call failed on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A batch given to append is malformed (CORRUPT_MESSAGE / INVALID_RECORD).
    #[error("invalid record batch at byte {position} of the request: {source}")]
    InvalidBatch {
        position: usize,
        #[source]
        source: BatchError,
    },
    /// A produced batch holds no records.
    #[error("record batch at byte {position} of the request holds no records")]
    EmptyBatch { position: usize },
    /// A batch is larger than `max.message.bytes` or the segment size (MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    /// Bytes after the last complete batch of an append request.
    #[error("{trailing} trailing bytes after the last complete batch of the request")]
    TrailingBytes { trailing: usize },
    /// A read or truncation outside `[log_start, log_end]` (OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is outside the log range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// A follower append whose offsets go backwards.
    #[error(
        "append of offsets starting at {first_offset} is below the next expected offset {expected}"
    )]
    UnexpectedAppendOffset { first_offset: i64, expected: i64 },
    /// An earlier fsync or write failed; the log refuses all writes (KAFKA_STORAGE_ERROR).
    #[error("log {dir} is offline after an earlier I/O failure")]
    Offline { dir: PathBuf },
    /// The log was closed.
    #[error("log {dir} is closed")]
    Closed { dir: PathBuf },
    /// A checkpoint file that does not parse.
    #[error("corrupt checkpoint file {path}: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: String },
    /// A configuration value the log cannot work with.
    #[error("invalid log config {key}: {reason}")]
    InvalidConfig {
        key: &'static str,
        reason: &'static str,
    },
    /// A stored batch that does not decode (found by the cleaner, which reads records).
    #[error("corrupt stored batch at offset {offset} of {path}: {reason}")]
    CorruptStoredBatch {
        path: PathBuf,
        offset: i64,
        reason: String,
    },
    /// The segments a clean read changed under it (retention, truncation, deletion);
    /// nothing was swapped in and the clean can simply be retried.
    #[error("cleaning of {dir} aborted: its segments changed while it ran")]
    CleaningAborted { dir: PathBuf },
    /// A lock was poisoned by a panic in another thread; state may be half-updated.
    #[error("log {dir} state lock poisoned by a panic")]
    Poisoned { dir: PathBuf },
}

impl LogError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        LogError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Attach a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, LogError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, LogError> {
        self.map_err(|e| LogError::io(path, e))
    }
}
