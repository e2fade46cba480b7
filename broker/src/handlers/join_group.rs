//! JoinGroup (key 11), v0–9. The answer is parked until the rebalance
//! completes (all members rejoined, the rebalance timeout, or the initial
//! delay of a new group), so it is returned as a pending reply; the request
//! itself is applied to the group before the next request on the connection.

use brook_protocol::messages::join_group_response::JoinGroupResponseMember;
use brook_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::Ctx;
use crate::group::{Command, JoinRequest, JoinResult, Pending, Reply as GroupReply};
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: Ctx, req: JoinGroupRequest) -> Reply {
    if req.group_id.is_empty() {
        return ctx.reply(&response(
            &ctx,
            JoinResult::error_for(crate::group::GroupError::InvalidGroupId, &req.member_id),
        ));
    }
    let client_id = ctx.header.client_id.clone().unwrap_or_default();
    let join = JoinRequest {
        new_member_id: new_member_id(&client_id),
        member_id: req.member_id,
        instance_id: req.group_instance_id.filter(|i| !i.is_empty()),
        client_id,
        // Kafka reports the host as "/<ip>".
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if req.rebalance_timeout_ms < 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        protocol_type: req.protocol_type,
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name, p.metadata))
            .collect(),
        require_known_member: ctx.version >= 4,
    };
    let stepped = ctx
        .broker
        .groups()
        .execute(
            &ctx.broker,
            &req.group_id,
            Command::Join(join),
            true,
            GroupReply::None,
        )
        .await;
    Reply::spawn(async move {
        let result = match stepped.finish().await {
            GroupReply::Join(Pending::Now(r)) => r,
            _ => JoinResult::error_for(crate::group::GroupError::CoordinatorNotAvailable, ""),
        };
        ctx.frame(&response(&ctx, result), Vec::new())
    })
}

fn response(ctx: &Ctx, r: JoinResult) -> JoinGroupResponse {
    let code = r.error.as_ref().map_or(0, crate::group::GroupError::code);
    JoinGroupResponse {
        error_code: code,
        generation_id: r.generation,
        protocol_type: r.protocol_type,
        // Before v7 the field is not nullable: an empty string stands for none.
        protocol_name: if ctx.version >= 7 {
            r.protocol
        } else {
            Some(r.protocol.unwrap_or_default())
        },
        leader: r.leader,
        member_id: r.member_id,
        members: r
            .members
            .into_iter()
            .map(
                |(member_id, group_instance_id, metadata)| JoinGroupResponseMember {
                    member_id,
                    group_instance_id,
                    metadata,
                    ..Default::default()
                },
            )
            .collect(),
        ..Default::default()
    }
}

/// Kafka's form: `<client id>-<random UUID>`.
fn new_member_id(client_id: &str) -> String {
    let r: u128 = rand::random();
    let h = format!("{r:032x}");
    format!(
        "{client_id}-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
