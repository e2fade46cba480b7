//! ListGroups (key 16), v0–4; v4 filters by state (case-insensitive, as Kafka).

use brook_protocol::messages::list_groups_response::ListedGroup;
use brook_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

use super::Ctx;
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: ListGroupsRequest) -> Reply {
    let groups = ctx
        .broker
        .groups()
        .list()
        .await
        .into_iter()
        .filter(|g| {
            req.states_filter.is_empty()
                || req
                    .states_filter
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(g.phase.name()))
        })
        .map(|g| ListedGroup {
            group_id: g.group_id,
            protocol_type: g.protocol_type,
            group_state: g.phase.name().into(),
            ..Default::default()
        })
        .collect();
    ctx.reply(&ListGroupsResponse {
        error_code: 0,
        groups,
        ..Default::default()
    })
}
