//! Requests brokers send to the active controller, and its replies.
//!
//! They travel as JSON in the quorum's application RPC frames on the
//! controller listener (the quorum's handshake has already checked the
//! cluster id). Shapes follow Kafka's BrokerRegistration, BrokerHeartbeat and
//! the forwarded admin requests. Every reply carries the controller epoch it
//! was made in, and the metadata offset of what it committed, which the
//! broker waits for in its own image before it answers its client.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

/// One listener in a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// How a topic's config overrides change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigChange {
    /// AlterConfigs: the overrides become exactly this.
    Replace(BTreeMap<String, String>),
    /// IncrementalAlterConfigs: (key, Kafka op code, value).
    Incremental(Vec<(String, i8, Option<String>)>),
}

/// A request to the active controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    Register {
        id: i32,
        /// Random per process start (a UUID string).
        incarnation: String,
        endpoints: Vec<WireEndpoint>,
        rack: Option<String>,
        /// A broker that is not a voter follows the metadata log as a Raft
        /// learner at this address.
        #[serde(default)]
        learner_addr: Option<String>,
    },
    Heartbeat {
        id: i32,
        epoch: i64,
        /// The broker's last applied metadata offset.
        applied: u64,
        /// The broker asks for a controlled shutdown.
        shutting_down: bool,
        /// Hosted partitions (topic id, index) whose log directory failed.
        #[serde(default)]
        offline: Vec<(String, i32)>,
    },
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
        /// Manual placement: partition `i`'s replicas at index `i`.
        #[serde(default)]
        assignments: Option<Vec<Vec<i32>>>,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i32,
        validate_only: bool,
        /// Manual placement of the new partitions, in order.
        #[serde(default)]
        assignments: Option<Vec<Vec<i32>>>,
    },
    AlterTopicConfigs {
        name: String,
        change: ConfigChange,
        validate_only: bool,
    },
    AllocateProducerIds {
        id: i32,
        epoch: i64,
    },
    /// A leader's ISR changes (Kafka's AlterPartition), checked against the
    /// leader's registration epoch and each partition's epochs.
    AlterPartition {
        id: i32,
        epoch: i64,
        changes: Vec<IsrChange>,
    },
    /// ElectLeaders: preferred (`unclean: false`) or unclean elections of
    /// the named partitions (`None`: all).
    ElectLeaders {
        unclean: bool,
        partitions: Option<Vec<(String, Vec<i32>)>>,
    },
    /// AlterPartitionReassignments: per (topic, partition), the target
    /// replicas, or `None` to cancel.
    AlterReassignments {
        partitions: Vec<(String, i32, Option<Vec<i32>>)>,
    },
    PutView(brook_views::ViewDef),
    RemoveView {
        name: String,
    },
    /// One AlterClientQuotas entry: the entity's (type, name) parts and
    /// (key, value) ops, a `None` value removing the key.
    AlterClientQuota {
        entity: Vec<(String, Option<String>)>,
        ops: Vec<(String, Option<crate::metadata::QuotaValue>)>,
        validate_only: bool,
    },
}

/// One partition's proposed ISR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrChange {
    /// The topic id as a string.
    pub topic_id: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// What a successful request produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyBody {
    /// Done (or, with nothing committed, nothing to do).
    Done,
    Registered {
        epoch: i64,
    },
    Heartbeat {
        fenced: bool,
        /// Controlled shutdown may proceed: the broker leads nothing.
        shutdown_ready: bool,
    },
    TopicCreated {
        id: String,
    },
    ProducerIds {
        start: i64,
        len: i64,
    },
    /// Whether anything changed.
    Changed(bool),
    /// Per AlterPartition change: `None` committed, else why it was refused.
    IsrResults(Vec<Option<WireError>>),
    /// Per partition of an ElectLeaders: (topic, partition, error code, message).
    Elections(Vec<(String, i32, i16, Option<String>)>),
    /// Per partition of an AlterPartitionReassignments, as for `Elections`.
    Reassignments(Vec<(String, i32, i16, Option<String>)>),
}

/// A controller reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerReply {
    /// The controller epoch (Raft term) the reply was made in.
    pub epoch: u64,
    /// Metadata offset to wait for before answering (0: nothing committed).
    pub offset: u64,
    pub result: Result<ReplyBody, WireError>,
}

/// A [`BrokerError`] on the wire: its kind and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub kind: WireErrorKind,
    pub message: String,
}

/// The errors a controller returns. Every [`BrokerError`] has its kind here
/// or is [`WireErrorKind::Internal`] by name (the mapping has no wildcard, so a
/// new error must be placed); a kind this build does not know, from a newer
/// peer, decodes as `Internal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireErrorKind {
    UnknownTopic,
    UnknownTopicId,
    TopicExists,
    InvalidTopic,
    InvalidPartitions,
    InvalidReplicationFactor,
    InvalidReplicaAssignment,
    InvalidConfig,
    InvalidRequest,
    DeletionDisabled,
    PolicyViolation,
    /// The broker's registration epoch is stale: register again.
    StaleBrokerEpoch,
    /// This node is not (or no longer) the active controller: retry.
    NotController,
    Storage,
    /// The controller did not answer in time (retriable).
    Timeout,
    InvalidUpdateVersion,
    /// The message names the replica.
    IneligibleReplica,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    NotLeader,
    NoReassignmentInProgress,
    ElectionNotNeeded,
    EligibleLeadersNotAvailable,
    /// The message names the preferred replica.
    PreferredLeaderNotAvailable,
    #[serde(other)]
    Internal,
}

impl From<&BrokerError> for WireError {
    fn from(e: &BrokerError) -> Self {
        use WireErrorKind as K;
        let kind = match e {
            BrokerError::UnknownTopicOrPartition => K::UnknownTopic,
            BrokerError::UnknownTopicId => K::UnknownTopicId,
            BrokerError::TopicAlreadyExists(_) => K::TopicExists,
            BrokerError::InvalidTopic(_) => K::InvalidTopic,
            BrokerError::InvalidPartitions(_) => K::InvalidPartitions,
            BrokerError::InvalidReplicationFactor(_) => K::InvalidReplicationFactor,
            BrokerError::InvalidReplicaAssignment(_) => K::InvalidReplicaAssignment,
            BrokerError::InvalidConfig(_) => K::InvalidConfig,
            BrokerError::InvalidRequest(_) => K::InvalidRequest,
            BrokerError::TopicDeletionDisabled => K::DeletionDisabled,
            BrokerError::PolicyViolation(_) => K::PolicyViolation,
            BrokerError::NotController => K::NotController,
            BrokerError::StaleBrokerEpoch => K::StaleBrokerEpoch,
            BrokerError::Storage(_) | BrokerError::Log(_) => K::Storage,
            BrokerError::Timeout => K::Timeout,
            BrokerError::InvalidUpdateVersion => K::InvalidUpdateVersion,
            BrokerError::IneligibleReplica(_) => K::IneligibleReplica,
            BrokerError::FencedLeaderEpoch => K::FencedLeaderEpoch,
            BrokerError::UnknownLeaderEpoch => K::UnknownLeaderEpoch,
            BrokerError::NotLeader => K::NotLeader,
            BrokerError::NoReassignmentInProgress => K::NoReassignmentInProgress,
            BrokerError::ElectionNotNeeded => K::ElectionNotNeeded,
            BrokerError::EligibleLeadersNotAvailable => K::EligibleLeadersNotAvailable,
            BrokerError::PreferredLeaderNotAvailable(_) => K::PreferredLeaderNotAvailable,
            // Data-path errors: a controller never returns them; if one
            // does, it is a bug on its side, not something the client did.
            BrokerError::OffsetOutOfRange { .. }
            | BrokerError::CorruptBatch(_)
            | BrokerError::CorruptMessage(_)
            | BrokerError::InvalidRecord(_)
            | BrokerError::RecordErrors { .. }
            | BrokerError::MessageTooLarge { .. }
            | BrokerError::InvalidTimestamp(_)
            | BrokerError::InvalidProducerEpoch
            | BrokerError::OutOfOrderSequence
            | BrokerError::UnknownProducerId
            | BrokerError::NotEnoughReplicas { .. }
            | BrokerError::NotEnoughReplicasAfterAppend
            | BrokerError::Internal(_)
            | BrokerError::Metadata(_) => K::Internal,
        };
        let message = match e {
            BrokerError::TopicAlreadyExists(m)
            | BrokerError::InvalidTopic(m)
            | BrokerError::InvalidPartitions(m)
            | BrokerError::InvalidReplicationFactor(m)
            | BrokerError::InvalidReplicaAssignment(m)
            | BrokerError::InvalidConfig(m)
            | BrokerError::InvalidRequest(m)
            | BrokerError::PolicyViolation(m)
            | BrokerError::Storage(m)
            | BrokerError::Metadata(m) => m.clone(),
            other => other.to_string(),
        };
        Self { kind, message }
    }
}

impl From<WireError> for BrokerError {
    fn from(e: WireError) -> Self {
        use WireErrorKind as K;
        match e.kind {
            K::UnknownTopic => BrokerError::UnknownTopicOrPartition,
            K::UnknownTopicId => BrokerError::UnknownTopicId,
            K::TopicExists => BrokerError::TopicAlreadyExists(e.message),
            K::InvalidTopic => BrokerError::InvalidTopic(e.message),
            K::InvalidPartitions => BrokerError::InvalidPartitions(e.message),
            K::InvalidReplicationFactor => BrokerError::InvalidReplicationFactor(e.message),
            K::InvalidReplicaAssignment => BrokerError::InvalidReplicaAssignment(e.message),
            K::InvalidConfig => BrokerError::InvalidConfig(e.message),
            K::InvalidRequest => BrokerError::InvalidRequest(e.message),
            K::DeletionDisabled => BrokerError::TopicDeletionDisabled,
            K::PolicyViolation => BrokerError::PolicyViolation(e.message),
            K::StaleBrokerEpoch => BrokerError::StaleBrokerEpoch,
            K::NotController => BrokerError::NotController,
            K::Storage => BrokerError::Storage(e.message),
            K::Timeout => BrokerError::Timeout,
            K::InvalidUpdateVersion => BrokerError::InvalidUpdateVersion,
            K::IneligibleReplica => BrokerError::IneligibleReplica(replica_in(&e.message)),
            K::FencedLeaderEpoch => BrokerError::FencedLeaderEpoch,
            K::UnknownLeaderEpoch => BrokerError::UnknownLeaderEpoch,
            K::NotLeader => BrokerError::NotLeader,
            K::NoReassignmentInProgress => BrokerError::NoReassignmentInProgress,
            K::ElectionNotNeeded => BrokerError::ElectionNotNeeded,
            K::EligibleLeadersNotAvailable => BrokerError::EligibleLeadersNotAvailable,
            K::PreferredLeaderNotAvailable => {
                BrokerError::PreferredLeaderNotAvailable(replica_in(&e.message))
            }
            K::Internal => BrokerError::Metadata(e.message),
        }
    }
}

/// The replica id an error message names ("replica 3 is fenced …", "the
/// preferred replica 3 is not …"): its first number, or -1.
fn replica_in(message: &str) -> i32 {
    message
        .split(|c: char| !c.is_ascii_digit() && c != '-')
        .find_map(|w| w.parse().ok())
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An admin error keeps its kind (hence its Kafka code) and message on
    /// its way from the controller to the broker that asked.
    #[test]
    fn admin_errors_cross_the_wire_with_their_kind_and_message() {
        let errors = [
            BrokerError::TopicAlreadyExists("t".into()),
            BrokerError::InvalidTopic("bad name".into()),
            BrokerError::InvalidPartitions("zero".into()),
            BrokerError::InvalidReplicationFactor("too many".into()),
            BrokerError::InvalidReplicaAssignment("no such broker 9".into()),
            BrokerError::InvalidConfig("retention.ms".into()),
            BrokerError::InvalidRequest("both".into()),
            BrokerError::PolicyViolation("policy".into()),
            BrokerError::Storage("disk".into()),
            BrokerError::UnknownTopicId,
            BrokerError::Timeout,
            BrokerError::InvalidUpdateVersion,
            BrokerError::IneligibleReplica(3),
            BrokerError::FencedLeaderEpoch,
            BrokerError::UnknownLeaderEpoch,
            BrokerError::NotLeader,
            BrokerError::NoReassignmentInProgress,
            BrokerError::ElectionNotNeeded,
            BrokerError::EligibleLeadersNotAvailable,
            BrokerError::PreferredLeaderNotAvailable(2),
        ];
        for e in errors {
            let wire: WireError = (&e).into();
            let json = serde_json::to_string(&wire).expect("serialises");
            let back: BrokerError = serde_json::from_str::<WireError>(&json)
                .expect("deserialises")
                .into();
            assert_eq!(back.code(), e.code(), "{e:?} came back as {back:?}");
            assert_eq!(back.message(), e.message(), "{e:?} came back as {back:?}");
        }
    }

    /// A kind this build does not know (sent by a newer controller) decodes
    /// as an internal error instead of failing the whole reply.
    #[test]
    fn an_unknown_kind_from_a_newer_peer_is_internal() {
        let wire: WireError =
            serde_json::from_str(r#"{"kind":"SomethingNew","message":"m"}"#).expect("decodes");
        assert_eq!(wire.kind, WireErrorKind::Internal);
        assert_eq!(wire.message, "m");
    }
}
