//! Consumer-group gauges and the admin API's group view: members and, per
//! committed partition, the committed offset, the log end offset consumers see
//! (the high-water mark, as ListOffsets "latest" reports it) and the lag.

use std::sync::Arc;

use serde::Serialize;

use crate::broker::Broker;
use crate::group::assignment_partitions;

/// Lag of one partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub log_end_offset: i64,
    pub lag: i64,
}

/// One member, with its decoded assignment.
#[derive(Debug, Clone, Serialize)]
pub struct MemberReport {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group's state, members and lag.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub members: Vec<MemberReport>,
    pub partitions: Vec<PartitionLag>,
    pub total_lag: i64,
}

/// Build the report of one group; `None` when it does not exist.
pub async fn report(broker: &Arc<Broker>, group: &str) -> Option<GroupReport> {
    let view = broker.groups().view(group).await?;
    let summary = broker.groups().describe(group).await;
    let partitions: Vec<PartitionLag> = view
        .offsets
        .iter()
        .map(|((topic, partition), v)| {
            let log_end = broker
                .partition(topic, *partition)
                .map_or(-1, |p| p.high_watermark());
            PartitionLag {
                topic: topic.clone(),
                partition: *partition,
                committed_offset: v.offset,
                log_end_offset: log_end,
                lag: if log_end >= 0 && v.offset >= 0 {
                    (log_end - v.offset).max(0)
                } else {
                    0
                },
            }
        })
        .collect();
    let members = summary
        .map(|s| {
            s.members
                .iter()
                .map(|m| MemberReport {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    assignment: assignment_partitions(&m.assignment).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(GroupReport {
        group_id: group.to_owned(),
        state: view.phase.name(),
        protocol_type: view.protocol_type,
        protocol: view.protocol,
        generation: view.generation,
        total_lag: partitions.iter().map(|p| p.lag).sum(),
        members,
        partitions,
    })
}

/// Reports of every group (scrape time).
pub async fn all(broker: &Arc<Broker>) -> Vec<GroupReport> {
    let mut ids = broker.groups().group_ids();
    ids.sort();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = report(broker, &id).await {
            out.push(r);
        }
    }
    out
}

/// Set the group gauges from reports, spending at most `budget` per-partition
/// series; returns how many partition series were left out.
pub fn record(reports: &[GroupReport], budget: usize) -> usize {
    let mut used = 0usize;
    let mut dropped = 0usize;
    for r in reports {
        metrics::gauge!("brook_group_members", "group" => r.group_id.clone())
            .set(r.members.len() as f64);
        for p in &r.partitions {
            if used >= budget {
                dropped += 1;
                continue;
            }
            used += 1;
            metrics::gauge!(
                "brook_group_lag_records",
                "group" => r.group_id.clone(),
                "topic" => p.topic.clone(),
                "partition" => p.partition.to_string()
            )
            .set(p.lag as f64);
        }
    }
    dropped
}
