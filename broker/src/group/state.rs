//! One consumer group's state and the records that change it.
//!
//! A [`Group`] is plain data: no I/O, no clock, no locks. [`Group::step`]
//! (in `machine.rs`) applies a request or a timer tick at a given time and
//! returns the records to append to `__consumer_offsets` plus the responses to
//! deliver; [`Group::replay`] applies one record. Committed offsets and group
//! deletion change only in `replay`. Membership during a rebalance is, as in
//! Kafka, ephemeral and changed by `step`; it is snapshotted as a
//! `GroupMetadata` record whenever a generation's assignment completes or the
//! group becomes empty, and replaying that snapshot onto the live group changes
//! nothing. So loading a partition at startup and live operation run the same
//! `replay` code and reach the same state (tested as "replay equivalence").
//!
//! Crash behaviour: what was not durable in `__consumer_offsets` is lost;
//! members of a group loaded from a snapshot get a fresh session timeout from
//! the load time, so a coordinator restart does not itself force a rebalance.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::records::{GroupMetadata, GroupRecord, MemberMetadata, OffsetValue};

/// Coordinator settings the state machine needs (from the broker config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub max_size: i32,
    pub offset_metadata_max_bytes: usize,
    pub offsets_retention_ms: i64,
}

impl GroupConfig {
    /// The group settings of a broker config.
    pub fn from_broker(c: &brook_config::BrokerConfig) -> Self {
        Self {
            min_session_timeout_ms: c.group_min_session_timeout_ms,
            max_session_timeout_ms: c.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms,
            max_size: c.group_max_size,
            // Kafka's offset.metadata.max.bytes default; brook has no key for it yet.
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: i64::from(c.offsets_retention_minutes) * 60_000,
        }
    }
}

/// The classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl Phase {
    /// The name Kafka reports in DescribeGroups/ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::PreparingRebalance => "PreparingRebalance",
            Phase::CompletingRebalance => "CompletingRebalance",
            Phase::Stable => "Stable",
            Phase::Dead => "Dead",
        }
    }
}

/// A group member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// `(protocol name, metadata)` in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// Waiting for the JoinGroup response of the rebalance in progress.
    pub awaiting_join: bool,
    /// Waiting for its SyncGroup response (the leader's assignment).
    pub awaiting_sync: bool,
    /// When the session expires unless a heartbeat arrives (ms since the epoch).
    pub session_deadline: i64,
}

impl Member {
    /// This member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m)
    }
}

/// One consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub phase: Phase,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id.
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED → when they lapse.
    pub pending: BTreeMap<String, i64>,
    /// `(topic, partition)` → committed offset.
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// When the group last changed state (offset retention counts from here).
    pub state_timestamp: i64,
    /// PreparingRebalance: members that have not rejoined by then are removed.
    pub(super) rebalance_deadline: Option<i64>,
    /// CompletingRebalance: members that have not sent SyncGroup by then are removed.
    pub(super) sync_deadline: Option<i64>,
    /// A new group's first rebalance waits until `.0` (extended as members
    /// arrive, never past `.1`) so that a group starting up rebalances once.
    pub(super) initial_delay: Option<(i64, i64)>,
}

/// What a group looks like from the outside: the part that must survive a
/// restart. Two groups with equal views are indistinguishable to clients
/// after a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub phase: Phase,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: Vec<MemberMetadata>,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, now: i64) -> Self {
        Self {
            id: id.to_owned(),
            phase: Phase::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending: BTreeMap::new(),
            offsets: BTreeMap::new(),
            state_timestamp: now,
            rebalance_deadline: None,
            sync_deadline: None,
            initial_delay: None,
        }
    }

    /// A copy of everything but the committed offsets (which change only by
    /// [`Group::replay`]): what a step that fails to persist is rolled back to.
    pub fn clone_without_offsets(&self) -> Self {
        Self {
            id: self.id.clone(),
            phase: self.phase,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            generation: self.generation,
            leader: self.leader.clone(),
            members: self.members.clone(),
            static_members: self.static_members.clone(),
            pending: self.pending.clone(),
            offsets: BTreeMap::new(),
            state_timestamp: self.state_timestamp,
            rebalance_deadline: self.rebalance_deadline,
            sync_deadline: self.sync_deadline,
            initial_delay: self.initial_delay,
        }
    }

    /// Apply one `__consumer_offsets` record of this group. `now` starts the
    /// session timers of members that a snapshot brings in.
    pub fn replay(&mut self, record: &GroupRecord, now: i64) {
        let tombstone = matches!(record, GroupRecord::Group { value: None, .. });
        if self.phase == Phase::Dead && !tombstone {
            // The group was deleted and later recreated under the same id.
            let id = std::mem::take(&mut self.id);
            *self = Group::new(&id, now);
        }
        match record {
            GroupRecord::Offset {
                key,
                value: Some(v),
            } => {
                self.offsets
                    .insert((key.topic.clone(), key.partition), v.clone());
            }
            GroupRecord::Offset { key, value: None } => {
                self.offsets.remove(&(key.topic.clone(), key.partition));
            }
            GroupRecord::Group {
                value: Some(meta), ..
            } => self.apply_snapshot(meta, now),
            GroupRecord::Group { value: None, .. } => {
                let id = std::mem::take(&mut self.id);
                *self = Group::new(&id, now);
                self.phase = Phase::Dead;
            }
        }
    }

    fn apply_snapshot(&mut self, meta: &GroupMetadata, now: i64) {
        self.protocol_type = Some(meta.protocol_type.clone()).filter(|t| !t.is_empty());
        self.generation = meta.generation;
        self.protocol = meta.protocol.clone();
        self.leader = meta.leader.clone();
        if meta.current_state_timestamp >= 0 {
            self.state_timestamp = meta.current_state_timestamp;
        }
        let mut members = BTreeMap::new();
        self.static_members.clear();
        for pm in &meta.members {
            let mut m = self
                .members
                .remove(&pm.member_id)
                .unwrap_or_else(|| Member {
                    id: pm.member_id.clone(),
                    instance_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    session_timeout_ms: pm.session_timeout_ms,
                    rebalance_timeout_ms: pm.rebalance_timeout_ms,
                    protocols: Vec::new(),
                    assignment: Bytes::new(),
                    awaiting_join: false,
                    awaiting_sync: false,
                    session_deadline: now.saturating_add(i64::from(pm.session_timeout_ms)),
                });
            m.instance_id = pm.group_instance_id.clone();
            m.client_id = pm.client_id.clone();
            m.client_host = pm.client_host.clone();
            m.session_timeout_ms = pm.session_timeout_ms;
            m.rebalance_timeout_ms = pm.rebalance_timeout_ms;
            m.assignment = pm.assignment.clone();
            if let Some(p) = &meta.protocol {
                if m.metadata(p).is_none() {
                    m.protocols = vec![(p.clone(), pm.subscription.clone())];
                }
            }
            if let Some(i) = &m.instance_id {
                self.static_members.insert(i.clone(), m.id.clone());
            }
            members.insert(m.id.clone(), m);
        }
        self.members = members;
        // Snapshots are written exactly when a generation completes (Stable) or
        // the group empties, so this is also what the live group's phase is.
        self.phase = if self.members.is_empty() {
            Phase::Empty
        } else {
            Phase::Stable
        };
        self.rebalance_deadline = None;
        self.sync_deadline = None;
        self.initial_delay = None;
    }

    /// The membership snapshot record for the current state.
    pub fn snapshot_record(&self) -> GroupRecord {
        GroupRecord::Group {
            group: self.id.clone(),
            value: Some(self.metadata()),
        }
    }

    fn metadata(&self) -> GroupMetadata {
        let protocol = self.protocol.clone();
        GroupMetadata {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.metadata(p))
                        .cloned()
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The externally visible, persistent part of the state.
    pub fn view(&self) -> GroupView {
        let meta = self.metadata();
        GroupView {
            phase: self.phase,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            generation: self.generation,
            leader: self.leader.clone(),
            members: meta.members,
            offsets: self.offsets.clone(),
        }
    }

    /// A group that exists only in name (no members, no offsets, never joined)
    /// is not reported or persisted.
    pub fn is_vacant(&self) -> bool {
        self.phase == Phase::Dead
            || (self.phase == Phase::Empty
                && self.members.is_empty()
                && self.pending.is_empty()
                && self.offsets.is_empty()
                && self.generation == 0
                && self.protocol_type.is_none())
    }

    /// The committed offset of one partition.
    pub fn offset(&self, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.offsets.get(&(topic.to_owned(), partition))
    }
}
