//! FindCoordinator (key 10), v0–4: a group's coordinator is the leader of
//! its `__consumer_offsets` partition, found in this broker's image; the topic
//! is created on first use. Transaction coordinators (key type 1) do not
//! exist yet and get COORDINATOR_NOT_AVAILABLE with a message saying so.

use brook_protocol::error::ErrorCode;
use brook_protocol::messages::find_coordinator_response::Coordinator;
use brook_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use super::Ctx;
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: FindCoordinatorRequest) -> Reply {
    let keys = if ctx.version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    let mut answers = Vec::with_capacity(keys.len());
    for key in keys {
        answers.push(find(ctx, req.key_type, key).await);
    }
    let resp = if ctx.version >= 4 {
        FindCoordinatorResponse {
            coordinators: answers,
            ..Default::default()
        }
    } else {
        let a = answers.into_iter().next().unwrap_or_default();
        FindCoordinatorResponse {
            error_code: a.error_code,
            error_message: a.error_message,
            node_id: a.node_id,
            host: a.host,
            port: a.port,
            ..Default::default()
        }
    };
    ctx.reply(&resp)
}

async fn find(ctx: &Ctx, key_type: i8, key: String) -> Coordinator {
    let refuse = |key: String, code: ErrorCode, msg: String| Coordinator {
        key,
        node_id: -1,
        host: String::new(),
        port: -1,
        error_code: code.code(),
        error_message: Some(msg),
        ..Default::default()
    };
    match key_type {
        0 => {}
        1 => {
            return refuse(
                key,
                ErrorCode::COORDINATOR_NOT_AVAILABLE,
                "brook does not support transactions yet".into(),
            );
        }
        other => {
            return refuse(
                key,
                ErrorCode::INVALID_REQUEST,
                format!("unknown coordinator key type {other}"),
            )
        }
    }
    if key.is_empty() {
        return refuse(
            key,
            ErrorCode::INVALID_GROUP_ID,
            "the group id is empty".into(),
        );
    }
    // Create __consumer_offsets now, as Kafka does, so the first JoinGroup does
    // not pay for it.
    match crate::group::offsets_partition(&ctx.broker, &key).await {
        Ok(_) | Err(crate::group::GroupError::NotCoordinator) => {}
        Err(e) => return refuse(key, e.error_code(), e.to_string()),
    }
    let leader = ctx.broker.topic(crate::group::OFFSETS_TOPIC).and_then(|t| {
        let index = crate::group::partition_for(&key, t.partition_count());
        let (leader, _) = ctx.broker.leader_of(&t.id, index);
        ctx.broker
            .broker_endpoint(leader)
            .map(|(host, port, _)| (leader, host, port))
    });
    let Some((node_id, host, port)) = leader else {
        return refuse(
            key,
            ErrorCode::COORDINATOR_NOT_AVAILABLE,
            "the group's __consumer_offsets partition has no leader right now".into(),
        );
    };
    Coordinator {
        key,
        node_id,
        host,
        port,
        error_code: 0,
        error_message: None,
        ..Default::default()
    }
}
