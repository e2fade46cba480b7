//! [`Group::step`]: the classic group protocol as a pure function of
//! (state, request, time) → (records to append, responses). No I/O: the
//! coordinator appends the records, replays them, waits for durability and
//! only then delivers the responses.
//!
//! Responses that cannot be given at once (a JoinGroup waiting for the other
//! members, a SyncGroup waiting for the leader's assignment) are answered
//! later through [`Effect`]s naming the member, produced by whichever later
//! step completes them (another member's request or a timer [`Command::Tick`]).

use bytes::Bytes;

use super::error::GroupError;
use super::records::GroupRecord;
use super::state::{Group, GroupConfig, Member, Phase};

/// A request (or timer tick) for one group.
#[derive(Debug, Clone)]
pub enum Command {
    Join(JoinRequest),
    Sync(SyncRequest),
    Heartbeat {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
    },
    /// `(member id, group.instance.id)` pairs; either may be empty/absent.
    Leave {
        members: Vec<(String, Option<String>)>,
    },
    Commit(CommitRequest),
    DeleteOffsets {
        partitions: Vec<(String, i32)>,
    },
    Delete,
    /// Enforce session, rebalance and initial-delay timeouts and offset retention.
    Tick,
}

impl Command {
    /// The reply that refuses this command with `e` before it reaches a
    /// group (this broker does not coordinate it).
    pub fn refused(&self, e: GroupError) -> Reply {
        match self {
            Command::Join(j) => Reply::Join(Pending::Now(JoinResult::error_for(e, &j.member_id))),
            Command::Sync(_) => Reply::Sync(Pending::Now(Err(e))),
            Command::Heartbeat { .. } => Reply::Heartbeat(Err(e)),
            Command::Leave { members } => {
                Reply::Leave(members.iter().map(|_| Err(e.clone())).collect())
            }
            Command::Commit(_) => Reply::Commit(Err(e)),
            Command::DeleteOffsets { .. } => Reply::DeleteOffsets(Err(e)),
            Command::Delete => Reply::Delete(Err(e)),
            Command::Tick => Reply::None,
        }
    }
}

/// JoinGroup, as the state machine needs it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member first gets MEMBER_ID_REQUIRED.
    pub require_known_member: bool,
    /// The id a new member gets (randomness stays outside the state machine).
    pub new_member_id: String,
}

/// SyncGroup.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// v2–4 `retention_time_ms`; -1 = broker default.
    pub retention_ms: i64,
    pub offsets: Vec<CommitOffset>,
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: `(member id, instance id, metadata)`.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    fn error(e: GroupError, member_id: &str) -> Self {
        Self {
            error: Some(e),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

/// A response now, or later through an [`Effect`] for this member id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending<T> {
    Now(T),
    Wait(String),
}

/// The caller's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(Pending<JoinResult>),
    Sync(Pending<Result<SyncResult, GroupError>>),
    Heartbeat(Result<(), GroupError>),
    Leave(Vec<Result<(), GroupError>>),
    /// Per partition, in request order.
    Commit(Result<Vec<Result<(), GroupError>>, GroupError>),
    DeleteOffsets(Result<Vec<Result<(), GroupError>>, GroupError>),
    Delete(Result<(), GroupError>),
    None,
}

/// A delayed answer to another member's earlier request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Join {
        member_id: String,
        result: JoinResult,
    },
    Sync {
        member_id: String,
        result: Result<SyncResult, GroupError>,
    },
}

/// Everything one step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub records: Vec<GroupRecord>,
    pub effects: Vec<Effect>,
    pub reply: Reply,
}

impl Group {
    /// Apply `cmd` at time `now` (ms since the epoch). The returned records must
    /// be appended and then [`Group::replay`]ed, in order, before the responses
    /// are delivered.
    pub fn step(&mut self, cmd: Command, now: i64, cfg: &GroupConfig) -> Output {
        let mut out = Output {
            records: Vec::new(),
            effects: Vec::new(),
            reply: Reply::None,
        };
        out.reply = match cmd {
            Command::Join(r) => Reply::Join(self.join(r, now, cfg, &mut out)),
            Command::Sync(r) => Reply::Sync(self.sync(r, now, &mut out)),
            Command::Heartbeat {
                member_id,
                instance_id,
                generation,
            } => Reply::Heartbeat(self.heartbeat(
                &member_id,
                instance_id.as_deref(),
                generation,
                now,
            )),
            Command::Leave { members } => Reply::Leave(
                members
                    .into_iter()
                    .map(|(id, inst)| self.leave(&id, inst.as_deref(), now, &mut out))
                    .collect(),
            ),
            Command::Commit(r) => Reply::Commit(self.commit(r, now, cfg, &mut out)),
            Command::DeleteOffsets { partitions } => {
                Reply::DeleteOffsets(self.delete_offsets(&partitions, &mut out))
            }
            Command::Delete => Reply::Delete(self.delete(&mut out)),
            Command::Tick => {
                self.tick(now, cfg, &mut out);
                Reply::None
            }
        };
        out
    }

    fn join(
        &mut self,
        r: JoinRequest,
        now: i64,
        cfg: &GroupConfig,
        out: &mut Output,
    ) -> Pending<JoinResult> {
        let fail = |e| Pending::Now(JoinResult::error(e, &r.member_id));
        if self.phase == Phase::Dead {
            return fail(GroupError::CoordinatorNotAvailable);
        }
        if r.session_timeout_ms < cfg.min_session_timeout_ms
            || r.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return fail(GroupError::InvalidSessionTimeout(r.session_timeout_ms));
        }
        if !self.supports(&r.protocol_type, &r.protocols) {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        if r.member_id.is_empty() {
            self.join_new(r, now, cfg, out)
        } else {
            self.join_known(r, now, cfg, out)
        }
    }

    /// Kafka's rule: an empty group takes any protocol type; otherwise the type
    /// must match and the member must share a protocol with every member.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.values().all(|m| m.metadata(name).is_some()))
    }

    fn join_new(
        &mut self,
        r: JoinRequest,
        now: i64,
        cfg: &GroupConfig,
        out: &mut Output,
    ) -> Pending<JoinResult> {
        if let Some(inst) = &r.instance_id {
            if let Some(old) = self.static_members.get(inst).cloned() {
                if self.members.contains_key(&old) {
                    return self.replace_static(&old, r, now, out);
                }
            }
        }
        if self.members.len() + self.pending.len()
            >= usize::try_from(cfg.max_size).unwrap_or(usize::MAX)
        {
            return Pending::Now(JoinResult::error(GroupError::GroupMaxSizeReached, ""));
        }
        if r.instance_id.is_none() && r.require_known_member {
            // The client retries with this id, so a lost response cannot leave a
            // phantom member behind that the group waits for.
            self.pending.insert(
                r.new_member_id.clone(),
                now.saturating_add(i64::from(r.session_timeout_ms)),
            );
            return Pending::Now(JoinResult::error(
                GroupError::MemberIdRequired,
                &r.new_member_id,
            ));
        }
        let id = r.new_member_id.clone();
        self.add_member(id, r, now, cfg, out)
    }

    fn join_known(
        &mut self,
        r: JoinRequest,
        now: i64,
        cfg: &GroupConfig,
        out: &mut Output,
    ) -> Pending<JoinResult> {
        if self.pending.remove(&r.member_id).is_some() {
            if self.members.len() >= usize::try_from(cfg.max_size).unwrap_or(usize::MAX) {
                return Pending::Now(JoinResult::error(
                    GroupError::GroupMaxSizeReached,
                    &r.member_id,
                ));
            }
            let id = r.member_id.clone();
            return self.add_member(id, r, now, cfg, out);
        }
        if let Some(inst) = &r.instance_id {
            if self
                .static_members
                .get(inst)
                .is_some_and(|id| *id != r.member_id)
            {
                return Pending::Now(JoinResult::error(
                    GroupError::FencedInstanceId,
                    &r.member_id,
                ));
            }
        }
        let Some(m) = self.members.get_mut(&r.member_id) else {
            return Pending::Now(JoinResult::error(GroupError::UnknownMemberId, &r.member_id));
        };
        let same = m.protocols == r.protocols;
        m.session_deadline = now.saturating_add(i64::from(r.session_timeout_ms));
        match self.phase {
            Phase::PreparingRebalance => self.update_and_wait(r, now, out),
            Phase::CompletingRebalance if same => Pending::Now(self.join_result(&r.member_id)),
            Phase::Stable if same && self.leader.as_deref() != Some(&r.member_id) => {
                Pending::Now(self.join_result(&r.member_id))
            }
            Phase::CompletingRebalance | Phase::Stable => {
                self.prepare_rebalance(now, out);
                self.update_and_wait(r, now, out)
            }
            Phase::Empty | Phase::Dead => {
                Pending::Now(JoinResult::error(GroupError::UnknownMemberId, &r.member_id))
            }
        }
    }

    fn update_and_wait(
        &mut self,
        r: JoinRequest,
        now: i64,
        out: &mut Output,
    ) -> Pending<JoinResult> {
        let id = r.member_id.clone();
        if let Some(m) = self.members.get_mut(&id) {
            m.protocols = r.protocols;
            m.session_timeout_ms = r.session_timeout_ms;
            m.rebalance_timeout_ms = r.rebalance_timeout_ms;
            m.client_id = r.client_id;
            m.client_host = r.client_host;
            m.awaiting_join = true;
        }
        self.try_complete_join(now, out);
        Pending::Wait(id)
    }

    fn add_member(
        &mut self,
        id: String,
        r: JoinRequest,
        now: i64,
        cfg: &GroupConfig,
        out: &mut Output,
    ) -> Pending<JoinResult> {
        let r_rebalance_timeout = r.rebalance_timeout_ms;
        if self.members.is_empty() {
            self.protocol_type = Some(r.protocol_type.clone());
        }
        if let Some(inst) = &r.instance_id {
            self.static_members.insert(inst.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: r.instance_id,
                client_id: r.client_id,
                client_host: r.client_host,
                session_timeout_ms: r.session_timeout_ms,
                rebalance_timeout_ms: r.rebalance_timeout_ms,
                protocols: r.protocols,
                assignment: Bytes::new(),
                awaiting_join: true,
                awaiting_sync: false,
                session_deadline: now.saturating_add(i64::from(r.session_timeout_ms)),
            },
        );
        let delay = i64::from(cfg.initial_rebalance_delay_ms);
        if self.phase == Phase::Empty && delay > 0 {
            // A new group's first rebalance starts late so that members starting
            // together land in one generation (group.initial.rebalance.delay.ms).
            let cap = now.saturating_add(i64::from(r_rebalance_timeout).max(delay));
            self.initial_delay = Some((now.saturating_add(delay), cap));
        } else if let Some((until, cap)) = &mut self.initial_delay {
            // Another member arrived while the new group waits: wait a bit longer.
            *until = now.saturating_add(delay).min(*cap);
        }
        self.prepare_rebalance(now, out);
        self.try_complete_join(now, out);
        Pending::Wait(id)
    }

    /// A known `group.instance.id` rejoins with a new member id (a restarted
    /// static member): it takes over the old member's place and assignment.
    fn replace_static(
        &mut self,
        old: &str,
        r: JoinRequest,
        now: i64,
        out: &mut Output,
    ) -> Pending<JoinResult> {
        let Some(mut m) = self.members.remove(old) else {
            return Pending::Now(JoinResult::error(GroupError::UnknownMemberId, ""));
        };
        if m.awaiting_join {
            out.effects.push(Effect::Join {
                member_id: old.to_owned(),
                result: JoinResult::error(GroupError::FencedInstanceId, old),
            });
        }
        if m.awaiting_sync {
            out.effects.push(Effect::Sync {
                member_id: old.to_owned(),
                result: Err(GroupError::FencedInstanceId),
            });
            m.awaiting_sync = false;
        }
        let new_id = r.new_member_id.clone();
        let was_leader = self.leader.as_deref() == Some(old);
        let same = m.protocols == r.protocols;
        m.id = new_id.clone();
        m.client_id = r.client_id.clone();
        m.client_host = r.client_host.clone();
        m.session_deadline = now.saturating_add(i64::from(r.session_timeout_ms));
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if let Some(inst) = &m.instance_id {
            self.static_members.insert(inst.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), m);
        let mut r = r;
        r.member_id = new_id.clone();
        match self.phase {
            // The same member with the same subscription: keep its assignment and
            // the generation. A restarted leader must see all members to assign,
            // so that case rebalances.
            Phase::Stable if same && !was_leader => {
                out.records.push(self.snapshot_record());
                Pending::Now(self.join_result(&new_id))
            }
            Phase::Stable | Phase::CompletingRebalance => {
                self.prepare_rebalance(now, out);
                self.update_and_wait(r, now, out)
            }
            _ => self.update_and_wait(r, now, out),
        }
    }

    fn join_result(&self, member_id: &str) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata(&protocol).cloned().unwrap_or_default(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader,
            member_id: member_id.to_owned(),
            members,
        }
    }

    pub(super) fn prepare_rebalance(&mut self, now: i64, out: &mut Output) {
        match self.phase {
            Phase::PreparingRebalance | Phase::Dead => return,
            Phase::CompletingRebalance => {
                for m in self.members.values_mut().filter(|m| m.awaiting_sync) {
                    m.awaiting_sync = false;
                    out.effects.push(Effect::Sync {
                        member_id: m.id.clone(),
                        result: Err(GroupError::RebalanceInProgress),
                    });
                }
            }
            Phase::Empty | Phase::Stable => {}
        }
        let timeout = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.phase = Phase::PreparingRebalance;
        self.state_timestamp = now;
        self.sync_deadline = None;
        self.rebalance_deadline = Some(now.saturating_add(timeout));
    }

    pub(super) fn try_complete_join(&mut self, now: i64, out: &mut Output) {
        if self.phase != Phase::PreparingRebalance {
            return;
        }
        if let Some((until, _)) = self.initial_delay {
            if now < until {
                return;
            }
            self.initial_delay = None;
        }
        let all_joined = self.pending.is_empty() && self.members.values().all(|m| m.awaiting_join);
        let timed_out = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !all_joined && !timed_out {
            return;
        }
        if !all_joined {
            // Members that did not rejoin within the rebalance timeout are out.
            let gone: Vec<String> = self
                .members
                .values()
                .filter(|m| !m.awaiting_join)
                .map(|m| m.id.clone())
                .collect();
            for id in gone {
                self.drop_member(&id, out);
            }
            self.pending.clear();
        }
        self.generation = self.generation.saturating_add(1);
        self.rebalance_deadline = None;
        self.state_timestamp = now;
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.protocol = None;
            self.leader = None;
            out.records.push(self.snapshot_record());
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.phase = Phase::CompletingRebalance;
        let sync_timeout = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.sync_deadline = Some(now.saturating_add(sync_timeout));
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.awaiting_join = false;
                m.session_deadline = now.saturating_add(i64::from(m.session_timeout_ms));
            }
            out.effects.push(Effect::Join {
                member_id: id,
                result,
            });
        }
    }

    /// Kafka's vote: among protocols every member supports, each member votes
    /// for its most preferred; most votes wins (ties: by name, for determinism).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.members.values().all(|m| m.metadata(n).is_some()))
            .collect();
        let mut votes: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(n, _)| n.to_owned())
    }

    /// Remove a member, answering its outstanding requests, without starting a rebalance.
    fn drop_member(&mut self, id: &str, out: &mut Output) {
        let Some(m) = self.members.remove(id) else {
            return;
        };
        if let Some(inst) = &m.instance_id {
            if self.static_members.get(inst).is_some_and(|v| v == id) {
                self.static_members.remove(inst);
            }
        }
        if m.awaiting_join {
            out.effects.push(Effect::Join {
                member_id: id.to_owned(),
                result: JoinResult::error(GroupError::UnknownMemberId, id),
            });
        }
        if m.awaiting_sync {
            out.effects.push(Effect::Sync {
                member_id: id.to_owned(),
                result: Err(GroupError::UnknownMemberId),
            });
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// Remove a member and rebalance the rest.
    pub(super) fn remove_member(&mut self, id: &str, now: i64, out: &mut Output) {
        self.drop_member(id, out);
        match self.phase {
            Phase::Stable | Phase::CompletingRebalance => {
                self.prepare_rebalance(now, out);
                self.try_complete_join(now, out);
            }
            Phase::PreparingRebalance => self.try_complete_join(now, out),
            Phase::Empty | Phase::Dead => {}
        }
    }

    pub(super) fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if let Some(inst) = instance_id {
            if self
                .static_members
                .get(inst)
                .is_some_and(|id| id != member_id)
            {
                return Err(GroupError::FencedInstanceId);
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                got: generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    fn sync(
        &mut self,
        r: SyncRequest,
        now: i64,
        out: &mut Output,
    ) -> Pending<Result<SyncResult, GroupError>> {
        if self.phase == Phase::Dead {
            return Pending::Now(Err(GroupError::CoordinatorNotAvailable));
        }
        if let Err(e) = self.check_member(&r.member_id, r.instance_id.as_deref(), r.generation) {
            return Pending::Now(Err(e));
        }
        if r.protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || r.protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != self.protocol.as_ref())
        {
            return Pending::Now(Err(GroupError::InconsistentGroupProtocol));
        }
        if let Some(m) = self.members.get_mut(&r.member_id) {
            m.session_deadline = now.saturating_add(i64::from(m.session_timeout_ms));
        }
        match self.phase {
            Phase::Empty | Phase::Dead => Pending::Now(Err(GroupError::UnknownMemberId)),
            Phase::PreparingRebalance => Pending::Now(Err(GroupError::RebalanceInProgress)),
            Phase::Stable => Pending::Now(Ok(self.sync_result(&r.member_id))),
            Phase::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(&r.member_id) {
                    m.awaiting_sync = true;
                }
                if self.leader.as_deref() == Some(r.member_id.as_str()) {
                    for m in self.members.values_mut() {
                        m.assignment = r
                            .assignments
                            .iter()
                            .find(|(id, _)| *id == m.id)
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default();
                    }
                    self.phase = Phase::Stable;
                    self.sync_deadline = None;
                    self.state_timestamp = now;
                    out.records.push(self.snapshot_record());
                    let ids: Vec<String> = self
                        .members
                        .values()
                        .filter(|m| m.awaiting_sync)
                        .map(|m| m.id.clone())
                        .collect();
                    for id in ids {
                        let result = Ok(self.sync_result(&id));
                        if let Some(m) = self.members.get_mut(&id) {
                            m.awaiting_sync = false;
                        }
                        out.effects.push(Effect::Sync {
                            member_id: id,
                            result,
                        });
                    }
                }
                Pending::Wait(r.member_id)
            }
        }
    }

    fn sync_result(&self, member_id: &str) -> SyncResult {
        SyncResult {
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> Result<(), GroupError> {
        if self.phase == Phase::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.check_member(member_id, instance_id, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now.saturating_add(i64::from(m.session_timeout_ms));
        }
        match self.phase {
            Phase::Empty | Phase::Dead => Err(GroupError::UnknownMemberId),
            Phase::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            Phase::CompletingRebalance | Phase::Stable => Ok(()),
        }
    }

    fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: i64,
        out: &mut Output,
    ) -> Result<(), GroupError> {
        if self.phase == Phase::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let id = if let Some(inst) = instance_id {
            match self.static_members.get(inst) {
                None => return Err(GroupError::UnknownMemberId),
                Some(id) if !member_id.is_empty() && id != member_id => {
                    return Err(GroupError::FencedInstanceId)
                }
                Some(id) => id.clone(),
            }
        } else {
            if self.pending.remove(member_id).is_some() {
                self.try_complete_join(now, out);
                return Ok(());
            }
            if !self.members.contains_key(member_id) {
                return Err(GroupError::UnknownMemberId);
            }
            member_id.to_owned()
        };
        self.remove_member(&id, now, out);
        Ok(())
    }

    fn tick(&mut self, now: i64, cfg: &GroupConfig, out: &mut Output) {
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                // A member parked in JoinGroup (bounded by the rebalance timeout) or
                // SyncGroup (bounded by the sync deadline) cannot heartbeat.
                let parked =
                    (m.awaiting_join && self.phase == Phase::PreparingRebalance) || m.awaiting_sync;
                !parked && m.session_deadline <= now
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove_member(&id, now, out);
        }
        if self.phase == Phase::CompletingRebalance && self.sync_deadline.is_some_and(|d| now >= d)
        {
            // The leader never sent its assignment: drop those that did not sync.
            let gone: Vec<String> = self
                .members
                .values()
                .filter(|m| !m.awaiting_sync)
                .map(|m| m.id.clone())
                .collect();
            for id in gone {
                self.drop_member(&id, out);
            }
            self.prepare_rebalance(now, out);
        }
        self.try_complete_join(now, out);
        if self.phase == Phase::Empty {
            self.expire_offsets(now, cfg, out);
        }
    }
}
