//! The changelog a view is fed from, as a small trait the broker implements.
//!
//! `brook-views` does not depend on the broker: the broker implements
//! [`ChangelogSource`] over its local log (reading only below the high-water
//! mark), tests implement it in memory. Calls are synchronous; the
//! [`crate::Follower`] that makes them runs on a blocking thread.

use bytes::Bytes;
use thiserror::Error;

/// What one read returned.
#[derive(Debug, Clone, Default)]
pub struct SourceRead {
    /// Raw Kafka record batches (magic 2, possibly compressed). The first batch
    /// may start before the requested offset; records below it are skipped. A
    /// trailing partial batch is ignored.
    pub batches: Bytes,
    /// Offset to read from next (after the last whole batch returned, or
    /// further when a compacted gap follows). Never above `high_watermark`.
    pub next_offset: i64,
    /// The partition's high-water mark; nothing at or above it is returned.
    pub high_watermark: i64,
    /// First offset still in the log. When above the requested offset the read
    /// returns no data and the view restarts from here.
    pub log_start_offset: i64,
}

/// Why a source read failed.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The topic does not exist (yet).
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// This node has no replica of the partition (any more).
    #[error("no local replica of {topic}-{partition}")]
    NotReplica {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// Anything else (I/O on the log).
    #[error("{0}")]
    Other(String),
}

/// A changelog topic the view can read.
pub trait ChangelogSource: Send + Sync {
    /// Partitions of `topic` this source can serve.
    ///
    /// # Errors
    /// [`SourceError::UnknownTopic`] and I/O failures.
    fn partitions(&self, topic: &str) -> Result<Vec<i32>, SourceError>;

    /// Read up to about `max_bytes` of whole batches from `offset`, below the
    /// high-water mark. Must return at least one whole batch if one is there,
    /// even if it is larger than `max_bytes`.
    ///
    /// # Errors
    /// Unknown topic/partition and I/O failures.
    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<SourceRead, SourceError>;
}
