//! ElectLeaders (key 43, v0–2): preferred-leader election (move leadership
//! back to each partition's first replica) or, with `election_type` 1,
//! unclean election of partitions without a leader. Decided by the
//! controller; the answer comes once the change is in this broker's image.

use std::collections::BTreeMap;

use brook_protocol::messages::elect_leaders_response::{
    ElectLeadersResponse, PartitionResult, ReplicaElectionResult,
};
use brook_protocol::messages::ElectLeadersRequest;

use super::Ctx;
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: ElectLeadersRequest) -> Reply {
    let unclean = match req.election_type {
        0 => false,
        1 => true,
        other => {
            let e = crate::error::BrokerError::InvalidRequest(format!(
                "election_type {other} is neither 0 (preferred) nor 1 (unclean)"
            ));
            return ctx.reply(&ElectLeadersResponse {
                error_code: e.code(),
                ..Default::default()
            });
        }
    };
    let wanted = req
        .topic_partitions
        .map(|ts| ts.into_iter().map(|t| (t.topic, t.partitions)).collect());
    let results = match ctx.broker.elect_leaders(unclean, wanted).await {
        Ok(r) => r,
        Err(e) => {
            return ctx.reply(&ElectLeadersResponse {
                error_code: e.code(),
                ..Default::default()
            })
        }
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, partition_id, error_code, error_message) in results {
        crate::metrics::api_error(brook_protocol::api::ApiKey::ElectLeaders, error_code);
        by_topic.entry(topic).or_default().push(PartitionResult {
            partition_id,
            error_code,
            error_message,
            ..Default::default()
        });
    }
    ctx.reply(&ElectLeadersResponse {
        replica_election_results: by_topic
            .into_iter()
            .map(|(topic, partition_result)| ReplicaElectionResult {
                topic,
                partition_result,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}
