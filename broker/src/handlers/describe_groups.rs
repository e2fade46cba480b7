//! DescribeGroups (key 15), v0–5. As in Kafka, member metadata and assignments
//! (and the protocol name) are reported only for a Stable group; an unknown
//! group is reported as state "Dead" with no error.

use brook_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use brook_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::{Ctx, OPERATIONS_NOT_REQUESTED};
use crate::group::Phase;
use crate::server::connection::Reply;

/// READ, DESCRIBE and DELETE on a group (Kafka's bits without an authorizer).
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub(super) async fn handle(ctx: &Ctx, req: DescribeGroupsRequest) -> Reply {
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let ops = if req.include_authorized_operations {
            GROUP_AUTHORIZED_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        };
        if let Err(e) = ctx.broker.groups().check_coordinator(&id) {
            groups.push(DescribedGroup {
                error_code: e.code(),
                group_id: id,
                authorized_operations: ops,
                ..Default::default()
            });
            continue;
        }
        let Some(g) = ctx.broker.groups().describe(&id).await else {
            groups.push(DescribedGroup {
                group_id: id,
                group_state: Phase::Dead.name().into(),
                authorized_operations: ops,
                ..Default::default()
            });
            continue;
        };
        let stable = g.phase == Phase::Stable;
        groups.push(DescribedGroup {
            error_code: 0,
            group_id: g.group_id,
            group_state: g.phase.name().into(),
            protocol_type: g.protocol_type,
            protocol_data: if stable {
                g.protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|m| DescribedGroupMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    member_metadata: if stable {
                        m.metadata(&g.protocol).cloned().unwrap_or_default()
                    } else {
                        Default::default()
                    },
                    member_assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Default::default()
                    },
                    ..Default::default()
                })
                .collect(),
            authorized_operations: ops,
            ..Default::default()
        });
    }
    ctx.reply(&DescribeGroupsResponse {
        groups,
        ..Default::default()
    })
}
