//! Offset requests: ListOffsets (log start / end, for `auto.offset.reset` and
//! `seek_to_*`), and committed offsets through the group coordinator
//! (FindCoordinator, OffsetCommit, OffsetFetch). Stateless helpers over the
//! shared [`Client`]; errors from the broker are returned as they are.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use brook_producer::client::{Client, Connection};
use brook_producer::TopicPartition;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use brook_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use brook_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use brook_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestTopic};

use crate::error::Result;

/// ListOffsets timestamp for the log start offset.
pub(crate) const EARLIEST: i64 = -2;
/// ListOffsets timestamp for the log end offset.
pub(crate) const LATEST: i64 = -1;

fn group_by_topic<T>(
    items: impl IntoIterator<Item = (TopicPartition, T)>,
) -> BTreeMap<Arc<str>, Vec<(i32, T)>> {
    let mut out: BTreeMap<Arc<str>, Vec<(i32, T)>> = BTreeMap::new();
    for (tp, v) in items {
        out.entry(tp.topic).or_default().push((tp.partition, v));
    }
    out
}

/// The offsets at `timestamp` (or [`EARLIEST`]/[`LATEST`]) of `tps`, asking
/// each partition's leader.
///
/// # Errors
/// Connection errors, or the first partition error (e.g. NOT_LEADER_OR_FOLLOWER).
pub(crate) async fn list_offsets(
    client: &Client,
    tps: &[TopicPartition],
    timestamp: i64,
    isolation: i8,
) -> Result<HashMap<TopicPartition, i64>> {
    let mut cluster = client.cluster();
    if tps
        .iter()
        .any(|tp| cluster.leader(&tp.topic, tp.partition).is_none())
    {
        let topics: Vec<&str> = tps.iter().map(|tp| &*tp.topic).collect();
        cluster = client.refresh_metadata(&topics).await?;
    }
    let mut by_leader: HashMap<i32, Vec<TopicPartition>> = HashMap::new();
    for tp in tps {
        let leader = cluster.leader(&tp.topic, tp.partition).ok_or_else(|| {
            brook_producer::Error::broker(
                ErrorCode::LEADER_NOT_AVAILABLE,
                format!("{}-{}", tp.topic, tp.partition),
            )
        })?;
        by_leader.entry(leader.leader).or_default().push(tp.clone());
    }
    let mut out = HashMap::new();
    for (node, tps) in by_leader {
        let conn = client.connection(node).await?;
        let topics = group_by_topic(tps.into_iter().map(|tp| (tp, ())))
            .into_iter()
            .map(|(name, ps)| ListOffsetsTopic {
                name: name.to_string(),
                partitions: ps
                    .into_iter()
                    .map(|(p, ())| ListOffsetsPartition {
                        partition_index: p,
                        current_leader_epoch: -1,
                        timestamp,
                        max_num_offsets: 1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let req = ListOffsetsRequest {
            replica_id: -1,
            isolation_level: isolation,
            topics,
            ..Default::default()
        };
        let resp = conn.request(&req).await?;
        for t in resp.topics {
            let topic: Arc<str> = Arc::from(t.name.as_str());
            for p in t.partitions {
                let code = ErrorCode::from_i16(p.error_code);
                if !code.is_ok() {
                    return Err(brook_producer::Error::broker(
                        code,
                        format!("ListOffsets {}-{}", topic, p.partition_index),
                    )
                    .into());
                }
                let offset = if p.offset >= 0 {
                    p.offset
                } else {
                    p.old_style_offsets.first().copied().unwrap_or(-1)
                };
                out.insert(
                    TopicPartition {
                        topic: topic.clone(),
                        partition: p.partition_index,
                    },
                    offset,
                );
            }
        }
    }
    Ok(out)
}

/// The node id and `host:port` of `group`'s coordinator.
///
/// # Errors
/// Connection errors or the FindCoordinator error code (e.g. COORDINATOR_NOT_AVAILABLE).
pub(crate) async fn find_coordinator(client: &Client, group: &str) -> Result<(i32, String)> {
    let conn = client.any_connection().await?;
    let req = FindCoordinatorRequest {
        key: group.to_owned(),
        key_type: 0,
        coordinator_keys: vec![group.to_owned()],
        ..Default::default()
    };
    let resp = conn.request(&req).await?;
    // v4+ answers in `coordinators`; earlier versions in the top-level fields.
    let (code, node, host, port) = match resp.coordinators.first() {
        Some(c) => (c.error_code, c.node_id, c.host.clone(), c.port),
        None => (resp.error_code, resp.node_id, resp.host.clone(), resp.port),
    };
    let code = ErrorCode::from_i16(code);
    if !code.is_ok() {
        return Err(brook_producer::Error::broker(code, format!("FindCoordinator {group}")).into());
    }
    Ok((node, format!("{host}:{port}")))
}

/// The connection to `group`'s coordinator.
///
/// # Errors
/// As [`find_coordinator`], or connection errors.
pub(crate) async fn coordinator(client: &Client, group: &str) -> Result<Arc<Connection>> {
    let (node, addr) = find_coordinator(client, group).await?;
    Ok(client.connection_at(node, &addr).await?)
}

/// Who commits: a group member (generation, member id, static instance id), or
/// a simple consumer outside any generation ([`CommitIdentity::default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitIdentity {
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
}

impl Default for CommitIdentity {
    fn default() -> Self {
        Self {
            generation: -1,
            member_id: String::new(),
            instance_id: None,
        }
    }
}

/// Commits `offsets` for `group` as `who`.
///
/// # Errors
/// Connection errors or the first partition error code.
pub(crate) async fn commit(
    client: &Client,
    group: &str,
    who: &CommitIdentity,
    offsets: &[(TopicPartition, i64)],
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let conn = coordinator(client, group).await?;
    let topics = group_by_topic(offsets.iter().cloned())
        .into_iter()
        .map(|(name, ps)| OffsetCommitRequestTopic {
            name: name.to_string(),
            partitions: ps
                .into_iter()
                .map(|(p, offset)| OffsetCommitRequestPartition {
                    partition_index: p,
                    committed_offset: offset,
                    committed_leader_epoch: -1,
                    commit_timestamp: -1,
                    committed_metadata: Some(String::new()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    let req = OffsetCommitRequest {
        group_id: group.to_owned(),
        generation_id_or_member_epoch: who.generation,
        member_id: who.member_id.clone(),
        group_instance_id: who.instance_id.clone(),
        retention_time_ms: -1,
        topics,
        ..Default::default()
    };
    let resp = conn.request(&req).await?;
    for t in resp.topics {
        for p in t.partitions {
            let code = ErrorCode::from_i16(p.error_code);
            if !code.is_ok() {
                return Err(brook_producer::Error::broker(
                    code,
                    format!("OffsetCommit {}-{}", t.name, p.partition_index),
                )
                .into());
            }
        }
    }
    Ok(())
}

/// Committed offsets of `tps` for `group`; `None` where nothing is committed.
///
/// # Errors
/// Connection errors, or the response's error code.
pub(crate) async fn committed(
    client: &Client,
    group: &str,
    tps: &[TopicPartition],
) -> Result<HashMap<TopicPartition, Option<i64>>> {
    let conn = coordinator(client, group).await?;
    let topics = group_by_topic(tps.iter().map(|tp| (tp.clone(), ())))
        .into_iter()
        .map(|(name, ps)| OffsetFetchRequestTopic {
            name: name.to_string(),
            partition_indexes: ps.into_iter().map(|(p, ())| p).collect(),
            ..Default::default()
        })
        .collect();
    let req = OffsetFetchRequest {
        group_id: group.to_owned(),
        topics: Some(topics),
        require_stable: false,
        ..Default::default()
    };
    let resp = conn.request(&req).await?;
    let code = ErrorCode::from_i16(resp.error_code);
    if !code.is_ok() {
        return Err(brook_producer::Error::broker(code, format!("OffsetFetch {group}")).into());
    }
    let mut out = HashMap::new();
    for t in resp.topics {
        let topic: Arc<str> = Arc::from(t.name.as_str());
        for p in t.partitions {
            let code = ErrorCode::from_i16(p.error_code);
            if !code.is_ok() {
                return Err(brook_producer::Error::broker(
                    code,
                    format!("OffsetFetch {}-{}", topic, p.partition_index),
                )
                .into());
            }
            let offset = (p.committed_offset >= 0).then_some(p.committed_offset);
            out.insert(
                TopicPartition {
                    topic: topic.clone(),
                    partition: p.partition_index,
                },
                offset,
            );
        }
    }
    Ok(out)
}
