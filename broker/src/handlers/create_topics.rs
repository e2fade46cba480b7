//! CreateTopics (key 19, v2–7). `num_partitions`/`replication_factor` of -1 mean
//! the broker defaults; invalid configs are INVALID_CONFIG; `validate_only`
//! checks without creating.

use std::collections::BTreeMap;

use brook_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use brook_protocol::messages::CreateTopicsRequest;

use super::Ctx;
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
                res.replication_factor = 1;
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
    assignments: &[brook_protocol::messages::create_topics_request::CreatableReplicaAssignment],
    configs: &[brook_protocol::messages::create_topics_request::CreatableTopicConfig],
    validate_only: bool,
) -> Result<std::sync::Arc<crate::broker::Topic>, BrokerError> {
    let mut partitions = partitions;
    let mut rf = i32::from(rf);
    if !assignments.is_empty() {
        if partitions != -1 || rf != -1 {
            return Err(BrokerError::InvalidRequest(
                "give either replica assignments or num_partitions/replication_factor, not both"
                    .into(),
            ));
        }
        let node = ctx.broker.node_id();
        for (i, a) in assignments.iter().enumerate() {
            if a.partition_index != i as i32 {
                return Err(BrokerError::InvalidReplicaAssignment(
                    "partitions must be assigned as 0, 1, 2, …".into(),
                ));
            }
            if a.broker_ids != [node] {
                return Err(BrokerError::InvalidReplicaAssignment(format!(
                    "partition {} is assigned to brokers {:?}; this cluster has only broker {node}",
                    a.partition_index, a.broker_ids
                )));
            }
        }
        partitions = assignments.len() as i32;
        rf = 1;
    }
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
        .create_topic(name, partitions, rf, map, validate_only)
        .await
}
