//! OffsetDelete (key 47), v0: delete some committed offsets of a group, refused
//! per partition (GROUP_SUBSCRIBED_TO_TOPIC) for topics its active members
//! subscribe to.

use brook_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use brook_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::Ctx;
use crate::group::{Command, GroupError, Reply as GroupReply};
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: OffsetDeleteRequest) -> Reply {
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.clone(), p.partition_index))
        })
        .collect();
    let missing = GroupReply::DeleteOffsets(Err(GroupError::GroupIdNotFound));
    let cmd = Command::DeleteOffsets {
        partitions: partitions.clone(),
    };
    let stepped = ctx
        .broker
        .groups()
        .execute(&ctx.broker, &req.group_id, cmd, false, missing)
        .await;
    let result = match stepped.finish().await {
        GroupReply::DeleteOffsets(r) => r,
        _ => Err(GroupError::CoordinatorNotAvailable),
    };
    let per = match result {
        Ok(per) => per,
        Err(e) => {
            return ctx.reply(&OffsetDeleteResponse {
                error_code: e.code(),
                ..Default::default()
            })
        }
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for ((topic, partition), r) in partitions.into_iter().zip(per) {
        let code = r.err().map_or(0, |e| e.code());
        let part = OffsetDeleteResponsePartition {
            partition_index: partition,
            error_code: code,
            ..Default::default()
        };
        match topics.last_mut() {
            Some(t) if t.name == topic => t.partitions.push(part),
            _ => topics.push(OffsetDeleteResponseTopic {
                name: topic,
                partitions: vec![part],
                ..Default::default()
            }),
        }
    }
    ctx.reply(&OffsetDeleteResponse {
        error_code: 0,
        topics,
        ..Default::default()
    })
}
