//! Heartbeat (key 12), v0–4: keeps a member's session alive and tells it when
//! a rebalance has started (REBALANCE_IN_PROGRESS).

use brook_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::Ctx;
use crate::group::{Command, GroupError, Reply as GroupReply};
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: HeartbeatRequest) -> Reply {
    let cmd = Command::Heartbeat {
        member_id: req.member_id,
        instance_id: req.group_instance_id.filter(|i| !i.is_empty()),
        generation: req.generation_id,
    };
    let missing = GroupReply::Heartbeat(Err(GroupError::UnknownMemberId));
    let stepped = ctx
        .broker
        .groups()
        .execute(&ctx.broker, &req.group_id, cmd, false, missing)
        .await;
    // A heartbeat writes no records, so finishing does not wait on I/O.
    let code = match stepped.finish().await {
        GroupReply::Heartbeat(r) => r.err().map_or(0, |e| e.code()),
        _ => GroupError::CoordinatorNotAvailable.code(),
    };
    ctx.reply(&HeartbeatResponse {
        error_code: code,
        ..Default::default()
    })
}
