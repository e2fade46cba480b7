//! The broker's error type, and the one place it is mapped to Kafka error codes.
//!
//! The match in [`BrokerError::error_code`] is exhaustive on purpose: a new
//! variant does not compile until someone decides which code clients see.

use brook_protocol::error::ErrorCode;
use thiserror::Error;

use crate::log::LogError;

/// Everything a request handler can fail with.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("unknown topic id")]
    UnknownTopicId,
    #[error("offset {offset} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("corrupt record batch: {0}")]
    CorruptBatch(brook_protocol::records::BatchError),
    #[error("corrupt message: {0}")]
    CorruptMessage(&'static str),
    #[error("invalid record: {0}")]
    InvalidRecord(&'static str),
    /// Records of a batch were refused one by one (KIP-467): `(index of the record
    /// in the request's record set, why)`. The whole batch is refused.
    #[error("{summary}")]
    RecordErrors {
        errors: Vec<(i32, String)>,
        summary: String,
    },
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    #[error("invalid producer epoch")]
    InvalidProducerEpoch,
    #[error("out of order sequence number")]
    OutOfOrderSequence,
    #[error("unknown producer id")]
    UnknownProducerId,
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    TopicDeletionDisabled,
    #[error("fenced leader epoch")]
    FencedLeaderEpoch,
    #[error("unknown leader epoch")]
    UnknownLeaderEpoch,
    #[error("this broker is not the leader")]
    NotLeader,
    #[error("the preferred replica already leads the partition")]
    ElectionNotNeeded,
    #[error("the preferred replica {0} is not in sync or not available")]
    PreferredLeaderNotAvailable(i32),
    #[error("no reassignment of the partition is in progress")]
    NoReassignmentInProgress,
    #[error("no replica of the partition can lead it")]
    EligibleLeadersNotAvailable,
    #[error("the partition epoch is stale (another change was committed first)")]
    InvalidUpdateVersion,
    #[error("replica {0} is fenced or shutting down and cannot join the ISR")]
    IneligibleReplica(i32),
    #[error("the ISR has {isr} members, fewer than min.insync.replicas={min}")]
    NotEnoughReplicas { isr: usize, min: usize },
    #[error("the records were appended, but the ISR shrank below min.insync.replicas before they were replicated")]
    NotEnoughReplicasAfterAppend,
    #[error("the log directory is offline: {0}")]
    Storage(String),
    #[error("request timed out")]
    Timeout,
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// This node is not the active controller, or none is known yet (retriable).
    #[error("no active controller is reachable (election in progress?)")]
    NotController,
    /// A broker registration epoch that the controller no longer knows.
    #[error("stale broker epoch: register again")]
    StaleBrokerEpoch,
    /// Metadata records that the image refused: a controller bug, never the
    /// client's fault.
    #[error("metadata: {0}")]
    Metadata(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

impl BrokerError {
    /// The Kafka error code clients see for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            BrokerError::UnknownTopicOrPartition => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            BrokerError::UnknownTopicId => ErrorCode::UNKNOWN_TOPIC_ID,
            BrokerError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
            BrokerError::CorruptBatch(_) | BrokerError::CorruptMessage(_) => {
                ErrorCode::CORRUPT_MESSAGE
            }
            BrokerError::InvalidRecord(_) | BrokerError::RecordErrors { .. } => {
                ErrorCode::INVALID_RECORD
            }
            BrokerError::MessageTooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
            BrokerError::InvalidTimestamp(_) => ErrorCode::INVALID_TIMESTAMP,
            BrokerError::InvalidProducerEpoch => ErrorCode::INVALID_PRODUCER_EPOCH,
            BrokerError::OutOfOrderSequence => ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
            BrokerError::UnknownProducerId => ErrorCode::UNKNOWN_PRODUCER_ID,
            BrokerError::InvalidTopic(_) => ErrorCode::INVALID_TOPIC_EXCEPTION,
            BrokerError::TopicAlreadyExists(_) => ErrorCode::TOPIC_ALREADY_EXISTS,
            BrokerError::InvalidPartitions(_) => ErrorCode::INVALID_PARTITIONS,
            BrokerError::InvalidReplicationFactor(_) => ErrorCode::INVALID_REPLICATION_FACTOR,
            BrokerError::InvalidReplicaAssignment(_) => ErrorCode::INVALID_REPLICA_ASSIGNMENT,
            BrokerError::InvalidConfig(_) => ErrorCode::INVALID_CONFIG,
            BrokerError::InvalidRequest(_) => ErrorCode::INVALID_REQUEST,
            BrokerError::TopicDeletionDisabled => ErrorCode::TOPIC_DELETION_DISABLED,
            BrokerError::FencedLeaderEpoch => ErrorCode::FENCED_LEADER_EPOCH,
            BrokerError::UnknownLeaderEpoch => ErrorCode::UNKNOWN_LEADER_EPOCH,
            BrokerError::NotLeader => ErrorCode::NOT_LEADER_OR_FOLLOWER,
            BrokerError::InvalidUpdateVersion => ErrorCode::INVALID_UPDATE_VERSION,
            BrokerError::ElectionNotNeeded => ErrorCode::ELECTION_NOT_NEEDED,
            BrokerError::PreferredLeaderNotAvailable(_) => {
                ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE
            }
            BrokerError::EligibleLeadersNotAvailable => ErrorCode::ELIGIBLE_LEADERS_NOT_AVAILABLE,
            BrokerError::NoReassignmentInProgress => ErrorCode::NO_REASSIGNMENT_IN_PROGRESS,
            BrokerError::IneligibleReplica(_) => ErrorCode::INELIGIBLE_REPLICA,
            BrokerError::NotEnoughReplicas { .. } => ErrorCode::NOT_ENOUGH_REPLICAS,
            BrokerError::NotEnoughReplicasAfterAppend => {
                ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
            }
            BrokerError::Storage(_) => ErrorCode::KAFKA_STORAGE_ERROR,
            BrokerError::Timeout => ErrorCode::REQUEST_TIMED_OUT,
            BrokerError::PolicyViolation(_) => ErrorCode::POLICY_VIOLATION,
            BrokerError::NotController => ErrorCode::NOT_CONTROLLER,
            BrokerError::StaleBrokerEpoch => ErrorCode::STALE_BROKER_EPOCH,
            BrokerError::Internal(_) | BrokerError::Metadata(_) => ErrorCode::UNKNOWN_SERVER_ERROR,
            BrokerError::Log(e) => log_error_code(e),
        }
    }

    /// The wire value of [`BrokerError::error_code`].
    pub fn code(&self) -> i16 {
        self.error_code().code()
    }

    /// A message worth sending to the client (`error_message` fields).
    pub fn message(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl From<crate::partition::NotCommitted> for BrokerError {
    fn from(e: crate::partition::NotCommitted) -> Self {
        use crate::partition::NotCommitted as N;
        match e {
            N::NotLeader => BrokerError::NotLeader,
            N::NotEnoughReplicas => BrokerError::NotEnoughReplicasAfterAppend,
            N::Storage => BrokerError::Storage("log flush failed; partition offline".into()),
            N::TimedOut => BrokerError::Timeout,
        }
    }
}

impl From<brook_config::ConfigError> for BrokerError {
    fn from(e: brook_config::ConfigError) -> Self {
        BrokerError::InvalidConfig(e.to_string())
    }
}

/// The storage layer's errors, as clients see them. Exhaustive on purpose.
fn log_error_code(e: &LogError) -> ErrorCode {
    match e {
        LogError::InvalidBatch { .. }
        | LogError::EmptyBatch { .. }
        | LogError::TrailingBytes { .. } => ErrorCode::CORRUPT_MESSAGE,
        LogError::RecordTooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
        LogError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
        LogError::UnexpectedAppendOffset { .. } => ErrorCode::UNKNOWN_SERVER_ERROR,
        LogError::Io { .. }
        | LogError::Offline { .. }
        | LogError::Poisoned { .. }
        | LogError::CorruptCheckpoint { .. }
        | LogError::CorruptStoredBatch { .. } => ErrorCode::KAFKA_STORAGE_ERROR,
        // Internal to the cleaner; never the outcome of a client request.
        LogError::CleaningAborted { .. } => ErrorCode::UNKNOWN_SERVER_ERROR,
        LogError::Closed { .. } => ErrorCode::NOT_LEADER_OR_FOLLOWER,
        LogError::InvalidConfig { .. } => ErrorCode::INVALID_CONFIG,
    }
}
