//! What the group leader does between JoinGroup and SyncGroup: decode every
//! member's subscription, look up the partition counts of their topics, run
//! the chosen assignor and encode one assignment per member.

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_producer::client::Client;
use brook_protocol::messages::join_group_response::JoinGroupResponseMember;
use brook_protocol::messages::sync_group_request::SyncGroupRequestAssignment;

use super::{Assignment, Assignor, Member, Subscription};
use crate::error::Result;

/// The members of a JoinGroup response as assignor input. A member whose
/// metadata does not decode is kept with no topics (it gets nothing) rather
/// than failing the whole group.
pub(crate) fn members(raw: &[JoinGroupResponseMember]) -> Vec<Member> {
    raw.iter()
        .map(|m| {
            let sub = Subscription::decode(&m.metadata).unwrap_or_else(|e| {
                tracing::warn!("member {}: {e}; assigning it nothing", m.member_id);
                Subscription::default()
            });
            Member {
                id: m.member_id.clone(),
                instance_id: m.group_instance_id.clone(),
                topics: sub.topics,
                owned: sub.owned,
                generation: sub.generation,
            }
        })
        .collect()
}

/// Runs `assignor` over `members` with fresh metadata for their topics.
///
/// # Errors
/// Metadata errors (connections).
pub(crate) async fn assign(
    client: &Client,
    assignor: &Arc<dyn Assignor>,
    members: &[Member],
) -> Result<(Vec<SyncGroupRequestAssignment>, BTreeMap<String, i32>)> {
    let mut topics: Vec<&str> = members
        .iter()
        .flat_map(|m| m.topics.iter().map(String::as_str))
        .collect();
    topics.sort_unstable();
    topics.dedup();
    let partitions = partition_counts(client, &topics).await?;
    let result = assignor.assign(members, &partitions);
    let assignments = members
        .iter()
        .map(|m| SyncGroupRequestAssignment {
            member_id: m.id.clone(),
            assignment: Assignment {
                partitions: result.get(&m.id).cloned().unwrap_or_default(),
                user_data: None,
            }
            .encode(),
            ..Default::default()
        })
        .collect();
    Ok((assignments, partitions))
}

/// Partition counts of `topics` (topics that do not exist are left out).
///
/// # Errors
/// Metadata errors (connections).
pub(crate) async fn partition_counts(
    client: &Client,
    topics: &[&str],
) -> Result<BTreeMap<String, i32>> {
    if topics.is_empty() {
        return Ok(BTreeMap::new());
    }
    let cluster = client.refresh_metadata(topics).await?;
    Ok(topics
        .iter()
        .filter_map(|t| {
            let meta = cluster.topics.get(*t).filter(|m| m.error.is_ok())?;
            let n = i32::try_from(meta.partitions.len()).ok()?;
            (n > 0).then(|| ((*t).to_owned(), n))
        })
        .collect())
}
