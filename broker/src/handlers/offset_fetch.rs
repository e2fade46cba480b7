//! OffsetFetch (key 9), v1–9: committed offsets of one group (v1–7) or several
//! (v8+); a null topic list (v2+) means every partition the group committed.
//! Partitions without a commit answer offset -1 and an empty metadata string,
//! as Kafka does. brook has no transactional offsets, so `require_stable`
//! never finds unstable ones.

use brook_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use brook_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use super::Ctx;
use crate::group::OffsetValue;
use crate::server::connection::Reply;

type Fetched = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

pub(super) async fn handle(ctx: &Ctx, req: OffsetFetchRequest) -> Reply {
    if ctx.version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name, t.partition_indexes))
                    .collect()
            });
            let (fetched, error_code) = match fetch(ctx, &g.group_id, wanted).await {
                Ok(f) => (f, 0),
                Err(e) => (Vec::new(), e.code()),
            };
            groups.push(OffsetFetchResponseGroup {
                group_id: g.group_id,
                topics: fetched
                    .into_iter()
                    .map(|(name, parts)| OffsetFetchResponseTopics {
                        name,
                        partitions: parts
                            .into_iter()
                            .map(|(partition_index, v)| OffsetFetchResponsePartitions {
                                partition_index,
                                committed_offset: v.as_ref().map_or(-1, |v| v.offset),
                                committed_leader_epoch: v.as_ref().map_or(-1, |v| v.leader_epoch),
                                metadata: Some(v.map(|v| v.metadata).unwrap_or_default()),
                                error_code: 0,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                error_code,
                ..Default::default()
            });
        }
        return ctx.reply(&OffsetFetchResponse {
            groups,
            ..Default::default()
        });
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let (fetched, error_code) = match fetch(ctx, &req.group_id, wanted).await {
        Ok(f) => (f, 0),
        Err(e) => (Vec::new(), e.code()),
    };
    let topics = fetched
        .into_iter()
        .map(|(name, parts)| OffsetFetchResponseTopic {
            name,
            partitions: parts
                .into_iter()
                .map(|(partition_index, v)| OffsetFetchResponsePartition {
                    partition_index,
                    committed_offset: v.as_ref().map_or(-1, |v| v.offset),
                    committed_leader_epoch: v.as_ref().map_or(-1, |v| v.leader_epoch),
                    metadata: Some(v.map(|v| v.metadata).unwrap_or_default()),
                    error_code: 0,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    ctx.reply(&OffsetFetchResponse {
        topics,
        error_code,
        ..Default::default()
    })
}

async fn fetch(
    ctx: &Ctx,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Fetched, crate::group::GroupError> {
    let keys: Option<Vec<(String, i32)>> = wanted.map(|w| {
        w.into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            .collect()
    });
    let rows = ctx
        .broker
        .groups()
        .fetch_offsets(group, keys.as_deref())
        .await?;
    let mut out: Fetched = Vec::new();
    for ((topic, partition), v) in rows {
        match out.last_mut() {
            Some((t, parts)) if *t == topic => parts.push((partition, v)),
            _ => out.push((topic, vec![(partition, v)])),
        }
    }
    Ok(out)
}
