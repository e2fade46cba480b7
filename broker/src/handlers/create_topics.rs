//! CreateTopics (key 19, v2–7), placed by counts or by replica assignment.
//! `num_partitions`/`replication_factor` of -1 mean
//! the broker defaults; invalid configs are INVALID_CONFIG; `validate_only`
//! checks without creating.

use std::collections::BTreeMap;

use brook_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use brook_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use brook_protocol::messages::CreateTopicsRequest;

use super::Ctx;
use crate::broker::Placement;
use crate::error::BrokerError;
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: CreateTopicsRequest) -> Reply {
    let mut results = Vec::with_capacity(req.topics.len());
    let mut seen = std::collections::HashSet::new();
    for t in req.topics {
        let mut res = CreatableTopicResult {
            name: t.name.clone(),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        };
        if !seen.insert(t.name.clone()) {
            let e = BrokerError::InvalidRequest(format!(
                "topic {} appears more than once in the request",
                t.name
            ));
            res.error_code = e.code();
            res.error_message = e.message();
            results.push(res);
            continue;
        }
        let outcome = create(
            ctx,
            &t.name,
            t.num_partitions,
            t.replication_factor,
            &t.assignments,
            &t.configs,
            req.validate_only,
        )
        .await;
        match outcome {
            Ok(topic) => {
                res.topic_id = topic.id;
                let overrides = topic.overrides();
                let entries = brook_config::describe_topic(ctx.broker.config(), &overrides);
                res.num_partitions = if req.validate_only {
                    if t.num_partitions == -1 {
                        ctx.broker.config().num_partitions
                    } else {
                        t.num_partitions
                    }
                } else {
                    topic.partition_count()
                };
                res.replication_factor = replication_factor(ctx, &t, req.validate_only);
                res.configs = Some(
                    entries
                        .into_iter()
                        .map(|e| CreatableTopicConfigs {
                            name: e.name,
                            value: e.value,
                            read_only: e.read_only,
                            config_source: e.source.code(),
                            is_sensitive: e.sensitive,
                            ..Default::default()
                        })
                        .collect(),
                );
            }
            Err(e) => {
                res.error_code = e.code();
                res.error_message = e.message();
            }
        }
        results.push(res);
    }
    ctx.reply(&CreateTopicsResponse {
        topics: results,
        ..Default::default()
    })
}

async fn create(
    ctx: &Ctx,
    name: &str,
    partitions: i32,
    rf: i16,
    assignments: &[CreatableReplicaAssignment],
    configs: &[CreatableTopicConfig],
    validate_only: bool,
) -> Result<std::sync::Arc<crate::broker::Topic>, BrokerError> {
    let placement = if assignments.is_empty() {
        Placement::Counts {
            partitions,
            replication_factor: i32::from(rf),
        }
    } else {
        if partitions != -1 || rf != -1 {
            return Err(BrokerError::InvalidRequest(
                "give either replica assignments or num_partitions/replication_factor, not both"
                    .into(),
            ));
        }
        Placement::Manual(manual_lists(assignments)?)
    };
    let mut map = BTreeMap::new();
    for c in configs {
        match &c.value {
            Some(v) => {
                map.insert(c.name.clone(), v.clone());
            }
            None => {
                return Err(BrokerError::InvalidConfig(format!(
                    "config {} has a null value",
                    c.name
                )));
            }
        }
    }
    ctx.broker
        .create_topic_as(name, placement, map, validate_only)
        .await
}

/// The replica lists of a manual assignment, ordered by partition; the
/// indexes must be 0, 1, 2, … in any order.
fn manual_lists(assignments: &[CreatableReplicaAssignment]) -> Result<Vec<Vec<i32>>, BrokerError> {
    let mut sorted: Vec<&CreatableReplicaAssignment> = assignments.iter().collect();
    sorted.sort_by_key(|a| a.partition_index);
    for (i, a) in sorted.iter().enumerate() {
        if a.partition_index != i as i32 {
            return Err(BrokerError::InvalidReplicaAssignment(format!(
                "partition indexes must run 0, 1, 2, … without gaps or repeats; found {} where {i} belongs",
                a.partition_index
            )));
        }
    }
    Ok(sorted.into_iter().map(|a| a.broker_ids.clone()).collect())
}

/// The replication factor a CreateTopics response reports: the created
/// topic's, or for `validate_only` what the request would have used.
fn replication_factor(ctx: &Ctx, t: &CreatableTopic, validate_only: bool) -> i16 {
    let rf = if let Some(first) = t.assignments.first() {
        first.broker_ids.len() as i32
    } else if validate_only {
        if t.replication_factor == -1 {
            ctx.broker.config().default_replication_factor
        } else {
            i32::from(t.replication_factor)
        }
    } else {
        ctx.broker
            .image()
            .topic(&t.name)
            .and_then(|topic| topic.partitions.values().next())
            .map_or(-1, |p| p.replicas.len() as i32)
    };
    i16::try_from(rf).unwrap_or(-1)
}
