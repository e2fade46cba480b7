//! OffsetCommit (key 8), v2–9: validate the member and generation (or accept a
//! "simple" commit with generation -1 to a group without members), append the
//! offsets to `__consumer_offsets` and answer once they are durable.
//! Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION, as in Kafka.

use brook_protocol::error::ErrorCode;
use brook_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use brook_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::Ctx;
use crate::group::{Command, CommitOffset, CommitRequest, GroupError, Reply as GroupReply};
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: Ctx, req: OffsetCommitRequest) -> Reply {
    // (topic index, partition, Some(slot in the commit) | None = refused here with code)
    let mut plan: Vec<(usize, i32, Result<usize, i16>)> = Vec::new();
    let mut offsets = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let topic = ctx.broker.topic(&t.name);
        for p in &t.partitions {
            // The partition must exist in the cluster; the coordinator need not
            // host a replica of it.
            let known = topic
                .as_ref()
                .is_some_and(|topic| (0..topic.partition_count()).contains(&p.partition_index));
            if !known {
                plan.push((
                    ti,
                    p.partition_index,
                    Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()),
                ));
                continue;
            }
            plan.push((ti, p.partition_index, Ok(offsets.len())));
            offsets.push(CommitOffset {
                topic: t.name.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.clone(),
            });
        }
    }
    let names: Vec<String> = req.topics.iter().map(|t| t.name.clone()).collect();
    let result = if req.group_id.is_empty() {
        Err(GroupError::InvalidGroupId)
    } else if offsets.is_empty() {
        Ok(Vec::new())
    } else {
        let cmd = Command::Commit(CommitRequest {
            member_id: req.member_id,
            instance_id: req.group_instance_id.filter(|i| !i.is_empty()),
            generation: req.generation_id_or_member_epoch,
            retention_ms: req.retention_time_ms,
            offsets,
        });
        let stepped = ctx
            .broker
            .groups()
            .execute(&ctx.broker, &req.group_id, cmd, true, GroupReply::None)
            .await;
        return Reply::spawn(async move {
            let result = match stepped.finish().await {
                GroupReply::Commit(r) => r,
                _ => Err(GroupError::CoordinatorNotAvailable),
            };
            ctx.frame(&response(&names, &plan, &result), Vec::new())
        });
    };
    ctx.reply(&response(&names, &plan, &result))
}

fn response(
    names: &[String],
    plan: &[(usize, i32, Result<usize, i16>)],
    result: &Result<Vec<Result<(), GroupError>>, GroupError>,
) -> OffsetCommitResponse {
    let mut topics: Vec<OffsetCommitResponseTopic> = names
        .iter()
        .map(|n| OffsetCommitResponseTopic {
            name: n.clone(),
            ..Default::default()
        })
        .collect();
    for (ti, partition, slot) in plan {
        let code = match (slot, result) {
            (Err(code), _) => *code,
            (Ok(_), Err(e)) => e.code(),
            (Ok(i), Ok(per)) => per
                .get(*i)
                .and_then(|r| r.as_ref().err())
                .map_or(0, GroupError::code),
        };
        if let Some(t) = topics.get_mut(*ti) {
            t.partitions.push(OffsetCommitResponsePartition {
                partition_index: *partition,
                error_code: code,
                ..Default::default()
            });
        }
    }
    OffsetCommitResponse {
        topics,
        ..Default::default()
    }
}
