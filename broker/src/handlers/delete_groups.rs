//! DeleteGroups (key 42), v0–2: delete groups without members, with their
//! committed offsets (tombstones in `__consumer_offsets`).

use brook_protocol::messages::delete_groups_response::DeletableGroupResult;
use brook_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::Ctx;
use crate::group::{Command, GroupError, Reply as GroupReply};
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: DeleteGroupsRequest) -> Reply {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group_id in req.groups_names {
        let missing = GroupReply::Delete(Err(GroupError::GroupIdNotFound));
        let stepped = ctx
            .broker
            .groups()
            .execute(&ctx.broker, &group_id, Command::Delete, false, missing)
            .await;
        let code = match stepped.finish().await {
            GroupReply::Delete(r) => r.err().map_or(0, |e| e.code()),
            _ => GroupError::CoordinatorNotAvailable.code(),
        };
        results.push(DeletableGroupResult {
            group_id,
            error_code: code,
            ..Default::default()
        });
    }
    ctx.reply(&DeleteGroupsResponse {
        results,
        ..Default::default()
    })
}
