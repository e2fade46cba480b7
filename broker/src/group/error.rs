//! The group coordinator's errors and their Kafka error codes.
//!
//! The match in [`GroupError::error_code`] is exhaustive on purpose: a new
//! variant does not compile until someone decides which code clients see.

use brook_protocol::error::ErrorCode;
use thiserror::Error;

/// Why the coordinator refused a group request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupError {
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("generation {got} is not the group's generation {current}")]
    IllegalGeneration { got: i32, current: i32 },
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("session timeout {0} ms is outside [group.min.session.timeout.ms, group.max.session.timeout.ms]")]
    InvalidSessionTimeout(i32),
    #[error("the member's protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("the group has reached group.max.size members")]
    GroupMaxSizeReached,
    #[error("a member id is required; rejoin with the one in this response")]
    MemberIdRequired,
    #[error("another member with this group.instance.id has joined")]
    FencedInstanceId,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("the group is being deleted or was just deleted")]
    CoordinatorNotAvailable,
    /// The group's `__consumer_offsets` partition is led by another broker.
    #[error("this broker is not the group's coordinator")]
    NotCoordinator,
    /// This broker just became the coordinator and is loading the group.
    #[error("the group's coordinator is loading it")]
    CoordinatorLoadInProgress,
    #[error("offset metadata of {len} bytes exceeds offset.metadata.max.bytes {max}")]
    OffsetMetadataTooLarge { len: usize, max: usize },
    #[error("the group's members are subscribed to this topic")]
    GroupSubscribedToTopic,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("writing to __consumer_offsets failed: {0}")]
    Storage(String),
}

impl GroupError {
    /// The Kafka error code clients see.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            GroupError::UnknownMemberId => ErrorCode::UNKNOWN_MEMBER_ID,
            GroupError::IllegalGeneration { .. } => ErrorCode::ILLEGAL_GENERATION,
            GroupError::RebalanceInProgress => ErrorCode::REBALANCE_IN_PROGRESS,
            GroupError::InvalidSessionTimeout(_) => ErrorCode::INVALID_SESSION_TIMEOUT,
            GroupError::InconsistentGroupProtocol => ErrorCode::INCONSISTENT_GROUP_PROTOCOL,
            GroupError::GroupMaxSizeReached => ErrorCode::GROUP_MAX_SIZE_REACHED,
            GroupError::MemberIdRequired => ErrorCode::MEMBER_ID_REQUIRED,
            GroupError::FencedInstanceId => ErrorCode::FENCED_INSTANCE_ID,
            GroupError::NonEmptyGroup => ErrorCode::NON_EMPTY_GROUP,
            GroupError::GroupIdNotFound => ErrorCode::GROUP_ID_NOT_FOUND,
            GroupError::InvalidGroupId => ErrorCode::INVALID_GROUP_ID,
            GroupError::CoordinatorNotAvailable => ErrorCode::COORDINATOR_NOT_AVAILABLE,
            GroupError::NotCoordinator => ErrorCode::NOT_COORDINATOR,
            GroupError::CoordinatorLoadInProgress => ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
            GroupError::OffsetMetadataTooLarge { .. } => ErrorCode::OFFSET_METADATA_TOO_LARGE,
            GroupError::GroupSubscribedToTopic => ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC,
            GroupError::UnknownTopicOrPartition => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            // Kafka answers a failed offsets-topic write with COORDINATOR_NOT_AVAILABLE
            // so the client retries (possibly against a new coordinator).
            GroupError::Storage(_) => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        }
    }

    /// The wire value of [`GroupError::error_code`].
    pub fn code(&self) -> i16 {
        self.error_code().code()
    }
}
