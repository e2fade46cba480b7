//! DeleteRecords (key 21, v0–2): move a partition's log start offset forward;
//! whole segments below it are deleted. Offset -1 means "up to the high-water mark".

use brook_protocol::error::ErrorCode;
use brook_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use brook_protocol::messages::DeleteRecordsRequest;

use super::Ctx;
use crate::error::BrokerError;
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: DeleteRecordsRequest) -> Reply {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = ctx.broker.topic(&t.name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let mut r = DeleteRecordsPartitionResult {
                partition_index: p.partition_index,
                low_watermark: -1,
                ..Default::default()
            };
            let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition_index)) else {
                r.error_code = topic
                    .as_ref()
                    .map_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(), |t| {
                        t.absent_code(p.partition_index)
                    });
                partitions.push(r);
                continue;
            };
            if !part.is_leader() {
                r.error_code = ErrorCode::NOT_LEADER_OR_FOLLOWER.code();
                partitions.push(r);
                continue;
            }
            let hw = part.high_watermark();
            let target = if p.offset == -1 { hw } else { p.offset };
            if target < 0 || target > hw {
                r.error_code = ErrorCode::OFFSET_OUT_OF_RANGE.code();
                partitions.push(r);
                continue;
            }
            let log = part.log().clone();
            let res = tokio::task::spawn_blocking(move || log.delete_records_before(target)).await;
            match res {
                Ok(Ok(start)) => r.low_watermark = start,
                Ok(Err(e)) => r.error_code = BrokerError::from(e).code(),
                Err(_) => r.error_code = ErrorCode::UNKNOWN_SERVER_ERROR.code(),
            }
            partitions.push(r);
        }
        topics.push(DeleteRecordsTopicResult {
            name: t.name,
            partitions,
            ..Default::default()
        });
    }
    // The new log start offsets must survive a restart: write the checkpoint
    // now rather than at the next periodic pass.
    let broker = ctx.broker.clone();
    let _ =
        tokio::task::spawn_blocking(move || crate::maintenance::write_checkpoints(&broker)).await;
    ctx.reply(&DeleteRecordsResponse {
        topics,
        ..Default::default()
    })
}
