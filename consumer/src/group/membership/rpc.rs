//! The coordinator exchanges of the membership task: JoinGroup, SyncGroup,
//! Heartbeat and LeaveGroup, and how their error codes map to what the task
//! does next (as the Java client: UNKNOWN_MEMBER_ID resets the member id,
//! ILLEGAL_GENERATION the generation, coordinator errors rediscover it,
//! FENCED_INSTANCE_ID is fatal).

use std::sync::Arc;

use brook_producer::client::{Client, Connection};
use brook_producer::TopicPartition;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::heartbeat_request::HeartbeatRequest;
use brook_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use brook_protocol::messages::join_group_response::JoinGroupResponse;
use brook_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use brook_protocol::messages::metadata_request::MetadataRequest;
use brook_protocol::messages::sync_group_request::SyncGroupRequest;

use super::{Ctl, Task};
use crate::error::Error;
use crate::group::{leader, Assignment};
use crate::offsets;

/// What a group error code means for the member (the Java client's mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Rejoin with the same member id and generation.
    Rejoin,
    /// The coordinator forgot us: new member id, partitions lost.
    ResetMember,
    /// Our generation is stale: keep the member id, partitions lost.
    ResetGeneration,
    /// The coordinator moved: find it again, then retry.
    Rediscover,
    /// Transient: retry after the backoff.
    Retry,
    /// Another instance took our `group.instance.id`.
    Fenced,
    /// Configuration or authorization problem: stop and report.
    Fatal,
}

fn action(code: ErrorCode) -> Action {
    match code {
        ErrorCode::REBALANCE_IN_PROGRESS => Action::Rejoin,
        ErrorCode::UNKNOWN_MEMBER_ID => Action::ResetMember,
        ErrorCode::ILLEGAL_GENERATION => Action::ResetGeneration,
        ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => Action::Rediscover,
        ErrorCode::FENCED_INSTANCE_ID => Action::Fenced,
        c if c.is_retriable() => Action::Retry,
        _ => Action::Fatal,
    }
}

impl Task {
    /// Acts on a group error code shared by JoinGroup, SyncGroup and Heartbeat.
    pub(super) fn on_error(&mut self, code: ErrorCode, what: &str) -> Ctl {
        match action(code) {
            Action::Rejoin => Ctl::Rejoin,
            Action::ResetMember => {
                self.reset(true);
                Ctl::Rejoin
            }
            Action::ResetGeneration => {
                self.reset(false);
                Ctl::Rejoin
            }
            Action::Rediscover => {
                self.drop_coordinator();
                Ctl::Retry
            }
            Action::Retry => Ctl::Retry,
            Action::Fenced => self.fatal(Error::Fenced {
                instance: self.s.instance.clone().unwrap_or_default(),
            }),
            Action::Fatal => self.fatal(
                brook_producer::Error::broker(code, format!("{what} {}", self.s.group)).into(),
            ),
        }
    }

    /// The member lost its generation (and with `member`, its id): whatever
    /// it owns is lost.
    pub(super) fn reset(&mut self, member: bool) {
        tracing::info!(
            "group {}: member {} generation {} reset (member id too: {member})",
            self.s.group,
            self.member_id,
            self.generation
        );
        self.generation = -1;
        if member {
            self.member_id.clear();
        }
        self.lost = true;
        if let Ok(mut s) = self.shared.lock() {
            s.generation = -1;
            s.member_id = self.member_id.clone();
        }
    }

    pub(super) async fn join(
        &mut self,
        conn: &Arc<Connection>,
        topics: &[String],
    ) -> Result<JoinGroupResponse, Ctl> {
        let metadata = self.subscription(topics).encode();
        let mut retried_with_id = false;
        loop {
            let req = JoinGroupRequest {
                group_id: self.s.group.clone(),
                session_timeout_ms: self.s.session_timeout_ms,
                rebalance_timeout_ms: self.s.rebalance_timeout_ms,
                member_id: self.member_id.clone(),
                group_instance_id: self.s.instance.clone(),
                protocol_type: "consumer".to_owned(),
                protocols: self
                    .s
                    .assignors
                    .iter()
                    .map(|a| JoinGroupRequestProtocol {
                        name: a.name().to_owned(),
                        metadata: metadata.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            let resp = conn.request(&req).await.map_err(|e| {
                tracing::debug!("group {}: JoinGroup: {e}", self.s.group);
                self.drop_coordinator();
                Ctl::Retry
            })?;
            match ErrorCode::from_i16(resp.error_code) {
                ErrorCode::NONE => {
                    self.member_id.clone_from(&resp.member_id);
                    self.generation = resp.generation_id;
                    // Partition counts as of this join, to notice changes later.
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    if let Ok(c) = leader::partition_counts(&self.client, &names).await {
                        self.counts = c;
                    }
                    return Ok(resp);
                }
                ErrorCode::MEMBER_ID_REQUIRED if !retried_with_id => {
                    retried_with_id = true;
                    self.member_id.clone_from(&resp.member_id);
                }
                code => return Err(self.on_error(code, "JoinGroup")),
            }
        }
    }

    pub(super) async fn sync(
        &mut self,
        conn: &Arc<Connection>,
        join: JoinGroupResponse,
    ) -> Result<Vec<TopicPartition>, Ctl> {
        let protocol = join.protocol_name.clone().unwrap_or_default();
        let mut assignments = Vec::new();
        if join.leader == join.member_id && !join.skip_assignment {
            let Some(assignor) = self
                .s
                .assignors
                .iter()
                .find(|a| a.name() == protocol)
                .cloned()
            else {
                return Err(self.fatal(Error::UnknownAssignor(protocol)));
            };
            let members = leader::members(&join.members);
            tracing::info!(
                "group {}: leading generation {} with {} members ({protocol})",
                self.s.group,
                join.generation_id,
                members.len()
            );
            assignments = match leader::assign(&self.client, &assignor, &members).await {
                Ok((a, _)) => a,
                Err(e) => {
                    tracing::warn!("group {}: assigning: {e}", self.s.group);
                    return Err(Ctl::Retry);
                }
            };
        }
        let req = SyncGroupRequest {
            group_id: self.s.group.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.s.instance.clone(),
            protocol_type: Some("consumer".to_owned()),
            protocol_name: Some(protocol),
            assignments,
            ..Default::default()
        };
        let resp = conn.request(&req).await.map_err(|e| {
            tracing::debug!("group {}: SyncGroup: {e}", self.s.group);
            self.drop_coordinator();
            Ctl::Retry
        })?;
        match ErrorCode::from_i16(resp.error_code) {
            ErrorCode::NONE => {}
            code => return Err(self.on_error(code, "SyncGroup")),
        }
        let assignment = Assignment::decode(&resp.assignment).map_err(|e| {
            tracing::warn!("group {}: {e}; rejoining", self.s.group);
            Ctl::Retry
        })?;
        if let Ok(mut s) = self.shared.lock() {
            s.generation = self.generation;
            s.member_id.clone_from(&self.member_id);
        }
        Ok(assignment.partitions)
    }

    /// One heartbeat; `Err` says how to go on.
    pub(super) async fn heartbeat(&mut self) -> Result<(), Ctl> {
        let conn = match self.coordinator().await {
            Ok(c) => c,
            // Still a member as far as we know; try again next tick.
            Err(Ctl::Retry) => return Ok(()),
            Err(c) => return Err(c),
        };
        let req = HeartbeatRequest {
            group_id: self.s.group.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.s.instance.clone(),
            ..Default::default()
        };
        let resp = match conn.request(&req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("group {}: Heartbeat: {e}", self.s.group);
                self.drop_coordinator();
                return Ok(());
            }
        };
        match ErrorCode::from_i16(resp.error_code) {
            ErrorCode::NONE => Ok(()),
            ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                self.drop_coordinator();
                Ok(())
            }
            code => match self.on_error(code, "Heartbeat") {
                Ctl::Retry => Ok(()),
                c => Err(c),
            },
        }
    }

    /// Leaves the group (static members do not: their session timeout keeps
    /// the place for a restart) and forgets the generation; what the member
    /// owns is lost.
    pub(super) async fn leave(&mut self, reason: &str) {
        if self.member_id.is_empty() {
            return;
        }
        if self.s.instance.is_none() {
            let req = LeaveGroupRequest {
                group_id: self.s.group.clone(),
                member_id: self.member_id.clone(),
                members: vec![MemberIdentity {
                    member_id: self.member_id.clone(),
                    group_instance_id: None,
                    reason: Some(reason.to_owned()),
                    ..Default::default()
                }],
                ..Default::default()
            };
            // The shared connection: the dedicated one may have a JoinGroup parked.
            match offsets::coordinator(&self.client, &self.s.group).await {
                Ok(conn) => {
                    if let Err(e) = conn.request(&req).await {
                        tracing::debug!("group {}: LeaveGroup: {e}", self.s.group);
                    }
                }
                Err(e) => tracing::debug!("group {}: LeaveGroup: {e}", self.s.group),
            }
        }
        tracing::info!(
            "group {}: member {} left: {reason}",
            self.s.group,
            self.member_id
        );
        self.reset(true);
    }
}

/// Every topic in the cluster except internal ones.
pub(super) async fn all_topics(client: &Client) -> crate::error::Result<Vec<String>> {
    let conn = client.any_connection().await?;
    let resp = conn
        .request(&MetadataRequest {
            topics: None,
            allow_auto_topic_creation: false,
            ..Default::default()
        })
        .await?;
    Ok(resp
        .topics
        .into_iter()
        .filter(|t| !t.is_internal && ErrorCode::from_i16(t.error_code).is_ok())
        .filter_map(|t| t.name)
        .filter(|n| !n.starts_with("__"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_errors_map_as_in_the_java_client() {
        for (code, want) in [
            (ErrorCode::REBALANCE_IN_PROGRESS, Action::Rejoin),
            (ErrorCode::UNKNOWN_MEMBER_ID, Action::ResetMember),
            (ErrorCode::ILLEGAL_GENERATION, Action::ResetGeneration),
            (ErrorCode::NOT_COORDINATOR, Action::Rediscover),
            (ErrorCode::COORDINATOR_NOT_AVAILABLE, Action::Rediscover),
            (ErrorCode::COORDINATOR_LOAD_IN_PROGRESS, Action::Retry),
            (ErrorCode::FENCED_INSTANCE_ID, Action::Fenced),
            (ErrorCode::INCONSISTENT_GROUP_PROTOCOL, Action::Fatal),
            (ErrorCode::GROUP_AUTHORIZATION_FAILED, Action::Fatal),
            (ErrorCode::INVALID_SESSION_TIMEOUT, Action::Fatal),
        ] {
            assert_eq!(action(code), want, "{code:?}");
        }
    }
}
