//! The openraft type configuration brook's controller quorum runs with.
//!
//! Application commands and responses are opaque bytes: the quorum replicates
//! and applies them without looking inside, so the broker can plug in its
//! metadata records later without this crate changing.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Type configuration of the controller quorum.
    pub TypeConfig:
        D = AppRequest,
        R = AppResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// An application command replicated through the Raft log (opaque bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRequest(pub Vec<u8>);

/// What [`crate::App::apply`] returned for one command (opaque bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppResponse(pub Vec<u8>);

/// Raft node id. Brook uses the Kafka `node.id`.
pub type NodeId = u64;
/// A voter's or learner's address record: the controller listener `host:port`.
pub type Node = openraft::BasicNode;
/// Raft log id: `leader_id.term` is brook's controller epoch.
pub type LogId = openraft::LogId<NodeId>;
/// A Raft vote.
pub type Vote = openraft::Vote<NodeId>;
/// A Raft log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// The `openraft::Raft` handle this crate builds.
pub type Raft = openraft::Raft<TypeConfig>;
/// Raft metrics as published by openraft.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// Membership with the log id of the entry that set it.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Storage error as openraft expects it.
pub type StorageError = openraft::StorageError<NodeId>;
