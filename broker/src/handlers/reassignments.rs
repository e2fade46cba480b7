//! AlterPartitionReassignments (key 45, v0–1) and ListPartitionReassignments
//! (key 46, v0), KIP-455. The controller decides (see
//! `controller/reassign.rs`); the alter answer comes once the change is in
//! this broker's image, and the list is read from that image.

use std::collections::BTreeMap;

use brook_protocol::api::ApiKey;
use brook_protocol::messages::alter_partition_reassignments_response::{
    AlterPartitionReassignmentsResponse, ReassignablePartitionResponse, ReassignableTopicResponse,
};
use brook_protocol::messages::list_partition_reassignments_response::{
    ListPartitionReassignmentsResponse, OngoingPartitionReassignment, OngoingTopicReassignment,
};
use brook_protocol::messages::{
    AlterPartitionReassignmentsRequest, ListPartitionReassignmentsRequest,
};

use super::Ctx;
use crate::error::BrokerError;
use crate::server::connection::Reply;

pub(super) async fn alter(ctx: &Ctx, req: AlterPartitionReassignmentsRequest) -> Reply {
    let image = ctx.broker.image();
    // Refused here, per partition: a change of replication factor the client
    // did not allow (KIP-860).
    let mut refused: BTreeMap<(String, i32), BrokerError> = BTreeMap::new();
    let mut wanted = Vec::new();
    for t in req.topics {
        for p in t.partitions {
            let current = image
                .topic(&t.name)
                .and_then(|topic| topic.partitions.get(&p.partition_index))
                .map(|rec| rec.target_replicas().len());
            match (&p.replicas, current) {
                (Some(target), Some(n))
                    if !req.allow_replication_factor_change && target.len() != n =>
                {
                    refused.insert(
                        (t.name.clone(), p.partition_index),
                        BrokerError::InvalidReplicationFactor(format!(
                            "the target has {} replicas, the partition {n}, and the request does not allow a change",
                            target.len()
                        )),
                    );
                }
                _ => wanted.push((t.name.clone(), p.partition_index, p.replicas)),
            }
        }
    }
    let mut results: Vec<(String, i32, i16, Option<String>)> = refused
        .into_iter()
        .map(|((t, p), e)| (t, p, e.code(), e.message()))
        .collect();
    if !wanted.is_empty() {
        match ctx.broker.alter_reassignments(wanted).await {
            Ok(r) => results.extend(r),
            Err(e) => {
                crate::metrics::api_error(ApiKey::AlterPartitionReassignments, e.code());
                return ctx.reply(&AlterPartitionReassignmentsResponse {
                    error_code: e.code(),
                    error_message: e.message(),
                    allow_replication_factor_change: req.allow_replication_factor_change,
                    ..Default::default()
                });
            }
        }
    }
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for (topic, partition_index, error_code, error_message) in results {
        crate::metrics::api_error(ApiKey::AlterPartitionReassignments, error_code);
        by_topic
            .entry(topic)
            .or_default()
            .push(ReassignablePartitionResponse {
                partition_index,
                error_code,
                error_message,
                ..Default::default()
            });
    }
    ctx.reply(&AlterPartitionReassignmentsResponse {
        allow_replication_factor_change: req.allow_replication_factor_change,
        responses: by_topic
            .into_iter()
            .map(|(name, partitions)| ReassignableTopicResponse {
                name,
                partitions,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

pub(super) fn list(ctx: &Ctx, req: ListPartitionReassignmentsRequest) -> Reply {
    let image = ctx.broker.image();
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for (name, p) in crate::controller::reassign::ongoing(&image, wanted.as_deref()) {
        by_topic
            .entry(name.to_owned())
            .or_default()
            .push(OngoingPartitionReassignment {
                partition_index: p.partition,
                replicas: p.replicas.clone(),
                adding_replicas: p.adding.clone(),
                removing_replicas: p.removing.clone(),
                ..Default::default()
            });
    }
    ctx.reply(&ListPartitionReassignmentsResponse {
        topics: by_topic
            .into_iter()
            .map(|(name, partitions)| OngoingTopicReassignment {
                name,
                partitions,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}
