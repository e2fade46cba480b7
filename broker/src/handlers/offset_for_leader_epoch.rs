//! OffsetForLeaderEpoch (key 23, v2–4): the end offset of a leader epoch, from
//! the leader-epoch cache. Followers (and consumers detecting truncation) use it
//! to find where their log diverges from the leader's.

use brook_protocol::error::ErrorCode;
use brook_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};
use brook_protocol::messages::OffsetForLeaderEpochRequest;

use super::fetch::epoch_check;
use super::Ctx;
use crate::server::connection::Reply;

pub(super) fn handle(ctx: &Ctx, req: OffsetForLeaderEpochRequest) -> Reply {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.topic(&t.topic);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = EpochEndOffset {
                        partition: p.partition,
                        leader_epoch: -1,
                        end_offset: -1,
                        ..Default::default()
                    };
                    let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                        r.error_code = topic
                            .as_ref()
                            .map_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(), |t| {
                                t.absent_code(p.partition)
                            });
                        return r;
                    };
                    if let Some(code) = epoch_check(&part, p.current_leader_epoch) {
                        r.error_code = code;
                        return r;
                    }
                    let (epoch, end) = part.log().end_offset_for_epoch(p.leader_epoch);
                    r.leader_epoch = epoch;
                    r.end_offset = end;
                    r
                })
                .collect();
            OffsetForLeaderTopicResult {
                topic: t.topic,
                partitions,
                ..Default::default()
            }
        })
        .collect();
    ctx.reply(&OffsetForLeaderEpochResponse {
        topics,
        ..Default::default()
    })
}
