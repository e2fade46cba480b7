//! Metadata (key 3, v0–12), answered from this broker's metadata image: the
//! unfenced brokers, the active controller, and topics with each partition's
//! leader, epoch, replicas and ISR. Unknown topics are created when the
//! request allows it (v4+ `allow_auto_topic_creation`, always for v0–3) and
//! `auto.create.topics.enable` is on.

use brook_protocol::codec::Uuid;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use brook_protocol::messages::MetadataRequest;

use super::{
    Ctx, CLUSTER_AUTHORIZED_OPERATIONS, OPERATIONS_NOT_REQUESTED, TOPIC_AUTHORIZED_OPERATIONS,
};
use crate::broker::Topic;
use crate::metadata::MetadataImage;
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: MetadataRequest) -> Reply {
    let broker = &ctx.broker;
    // v0 with an empty list means "all topics"; v1+ uses null for that.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.version == 0,
    };
    let topic_ops = if req.include_topic_authorized_operations {
        TOPIC_AUTHORIZED_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let mut topics = Vec::new();
    if all {
        let image = broker.image();
        for t in broker.topics() {
            topics.push(describe(&image, &t, topic_ops));
        }
    } else {
        let auto = if ctx.version >= 4 {
            req.allow_auto_topic_creation
        } else {
            true
        };
        // Each topic is answered once, however often it is named (Kafka uses a
        // set), so a small request cannot demand a huge response.
        let mut seen = std::collections::HashSet::new();
        for rt in req.topics.unwrap_or_default() {
            if !seen.insert((rt.name.clone(), rt.topic_id)) {
                continue;
            }
            let topic = match (&rt.name, rt.topic_id) {
                (Some(name), _) => broker.topic_or_create(name, auto).await,
                (None, id) if id != Uuid::ZERO => Ok(broker.topic_by_id(&id)),
                (None, _) => Ok(None),
            };
            topics.push(match topic {
                Ok(Some(t)) => describe(&broker.image(), &t, topic_ops),
                Ok(None) => MetadataResponseTopic {
                    error_code: if rt.name.is_none() {
                        ErrorCode::UNKNOWN_TOPIC_ID.code()
                    } else {
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
                    },
                    name: rt.name.clone(),
                    topic_id: rt.topic_id,
                    topic_authorized_operations: OPERATIONS_NOT_REQUESTED,
                    ..Default::default()
                },
                Err(e) => MetadataResponseTopic {
                    error_code: e.code(),
                    name: rt.name.clone(),
                    topic_id: rt.topic_id,
                    topic_authorized_operations: OPERATIONS_NOT_REQUESTED,
                    ..Default::default()
                },
            });
        }
    }
    let brokers = broker
        .live_brokers()
        .into_iter()
        .map(|(node_id, host, port, rack)| MetadataResponseBroker {
            node_id,
            host,
            port,
            rack,
            ..Default::default()
        })
        .collect();
    let resp = MetadataResponse {
        brokers,
        cluster_id: Some(broker.cluster_id().to_owned()),
        controller_id: broker.controller_id_for_clients(),
        topics,
        cluster_authorized_operations: if req.include_cluster_authorized_operations {
            CLUSTER_AUTHORIZED_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        },
        ..Default::default()
    };
    ctx.reply(&resp)
}

fn describe(image: &MetadataImage, t: &Topic, topic_ops: i32) -> MetadataResponseTopic {
    let fenced = |id: &i32| image.brokers.get(id).is_none_or(|b| b.fenced);
    let partitions = image
        .topics
        .get(&t.id)
        .map(|ti| {
            ti.partitions
                .values()
                .map(|p| MetadataResponsePartition {
                    error_code: if p.leader < 0 {
                        ErrorCode::LEADER_NOT_AVAILABLE.code()
                    } else {
                        0
                    },
                    partition_index: p.partition,
                    leader_id: p.leader,
                    leader_epoch: p.leader_epoch,
                    replica_nodes: p.replicas.clone(),
                    isr_nodes: p.isr.clone(),
                    offline_replicas: p.replicas.iter().copied().filter(fenced).collect(),
                    ..Default::default()
                })
                .collect()
        })
        .unwrap_or_default();
    MetadataResponseTopic {
        error_code: 0,
        name: Some(t.name.to_string()),
        topic_id: t.id,
        is_internal: t.is_internal(),
        partitions,
        topic_authorized_operations: topic_ops,
        ..Default::default()
    }
}
