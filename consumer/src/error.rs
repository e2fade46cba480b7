//! [`Error`]: what the consumer reports.

use brook_producer::TopicPartition;

/// Consumer errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// From the shared client layer (connections, metadata, broker error codes).
    #[error(transparent)]
    Client(#[from] brook_producer::Error),
    /// Another member joined with this consumer's `group.instance.id`
    /// (FENCED_INSTANCE_ID); this consumer is no longer part of the group.
    #[error("fenced: another consumer joined with group.instance.id {instance}")]
    Fenced {
        /// The `group.instance.id`.
        instance: String,
    },
    /// The coordinator chose an assignment strategy this consumer does not know.
    #[error("the group chose assignor {0:?}, which this consumer does not offer")]
    UnknownAssignor(String),
    /// `partition.assignment.strategy` names an assignor this client lacks.
    #[error("partition.assignment.strategy: unknown assignor {0:?}")]
    InvalidStrategy(String),
    /// The `subscribe_pattern` regex does not compile.
    #[error("invalid subscription pattern: {0}")]
    InvalidPattern(String),
    /// Committed offsets need `group.id`.
    #[error("this operation needs group.id to be set")]
    NoGroupId,
    /// The partition is not assigned to this consumer.
    #[error("partition {}-{} is not assigned", .0.topic, .0.partition)]
    NotAssigned(TopicPartition),
    /// No committed offset and `auto.offset.reset=none`.
    #[error("no offset for {}-{} and auto.offset.reset=none", .0.topic, .0.partition)]
    NoOffset(TopicPartition),
    /// The position is outside the log and `auto.offset.reset=none`.
    #[error("offset {offset} is out of range for {}-{} and auto.offset.reset=none", .tp.topic, .tp.partition)]
    OffsetOutOfRange {
        /// The partition.
        tp: TopicPartition,
        /// The position that was out of range.
        offset: i64,
    },
    /// A fetched batch failed validation (CRC, lengths, decompression).
    #[error("corrupt record batch in {}-{}: {reason}", .tp.topic, .tp.partition)]
    Corrupt {
        /// The partition.
        tp: TopicPartition,
        /// The decode error.
        reason: String,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
