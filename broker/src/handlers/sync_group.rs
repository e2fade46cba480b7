//! SyncGroup (key 14), v0–5: the leader delivers the assignment; every member's
//! answer is parked until then (and until the assignment is durable).

use brook_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::Ctx;
use crate::group::{Command, GroupError, Pending, Reply as GroupReply, SyncRequest};
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: Ctx, req: SyncGroupRequest) -> Reply {
    let sync = SyncRequest {
        member_id: req.member_id,
        instance_id: req.group_instance_id.filter(|i| !i.is_empty()),
        generation: req.generation_id,
        protocol_type: req.protocol_type,
        protocol_name: req.protocol_name,
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id, a.assignment))
            .collect(),
    };
    let missing = GroupReply::Sync(Pending::Now(Err(GroupError::UnknownMemberId)));
    let stepped = ctx
        .broker
        .groups()
        .execute(
            &ctx.broker,
            &req.group_id,
            Command::Sync(sync),
            false,
            missing,
        )
        .await;
    Reply::spawn(async move {
        let result = match stepped.finish().await {
            GroupReply::Sync(Pending::Now(r)) => r,
            _ => Err(GroupError::CoordinatorNotAvailable),
        };
        let resp = match result {
            Ok(r) => SyncGroupResponse {
                error_code: 0,
                protocol_type: r.protocol_type,
                protocol_name: r.protocol,
                assignment: r.assignment,
                ..Default::default()
            },
            Err(e) => SyncGroupResponse {
                error_code: e.code(),
                ..Default::default()
            },
        };
        ctx.frame(&resp, Vec::new())
    })
}
