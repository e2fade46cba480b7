//! LeaveGroup (key 13), v0–5: one member (v0–2) or a batch identified by member
//! id and/or `group.instance.id` (v3+).

use brook_protocol::messages::leave_group_response::MemberResponse;
use brook_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::Ctx;
use crate::group::{Command, GroupError, Reply as GroupReply};
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: Ctx, req: LeaveGroupRequest) -> Reply {
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.group_instance_id.clone().filter(|i| !i.is_empty()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.clone(), None)]
    };
    let missing = GroupReply::Leave(
        members
            .iter()
            .map(|_| Err(GroupError::UnknownMemberId))
            .collect(),
    );
    let cmd = Command::Leave {
        members: members.clone(),
    };
    let stepped = ctx
        .broker
        .groups()
        .execute(&ctx.broker, &req.group_id, cmd, false, missing)
        .await;
    Reply::spawn(async move {
        let results = match stepped.finish().await {
            GroupReply::Leave(r) => r,
            _ => members
                .iter()
                .map(|_| Err(GroupError::CoordinatorNotAvailable))
                .collect(),
        };
        // Not this broker's group: one top-level error, so the client looks
        // for the coordinator again.
        let refused = results.iter().find_map(|r| match r {
            Err(e @ (GroupError::NotCoordinator | GroupError::CoordinatorLoadInProgress)) => {
                Some(e.code())
            }
            _ => None,
        });
        if let Some(code) = refused {
            let resp = LeaveGroupResponse {
                error_code: code,
                ..Default::default()
            };
            return ctx.frame(&resp, Vec::new());
        }
        let resp = if ctx.version >= 3 {
            LeaveGroupResponse {
                error_code: 0,
                members: members
                    .into_iter()
                    .zip(results)
                    .map(|((member_id, group_instance_id), r)| MemberResponse {
                        member_id,
                        group_instance_id,
                        error_code: r.err().map_or(0, |e| e.code()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
        } else {
            let code = results
                .into_iter()
                .next()
                .and_then(Result::err)
                .map_or(0, |e| e.code());
            LeaveGroupResponse {
                error_code: code,
                ..Default::default()
            }
        };
        ctx.frame(&resp, Vec::new())
    })
}
