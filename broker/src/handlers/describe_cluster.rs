//! DescribeCluster (key 60, v0–1), from this broker's image: the unfenced
//! brokers and the active controller.

use brook_protocol::error::ErrorCode;
use brook_protocol::messages::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};
use brook_protocol::messages::DescribeClusterRequest;

use super::{Ctx, CLUSTER_AUTHORIZED_OPERATIONS, OPERATIONS_NOT_REQUESTED};
use crate::server::connection::Reply;

pub(super) fn handle(ctx: &Ctx, req: DescribeClusterRequest) -> Reply {
    let mut resp = DescribeClusterResponse {
        endpoint_type: req.endpoint_type,
        cluster_id: ctx.broker.cluster_id().to_owned(),
        controller_id: ctx.broker.controller_id_for_clients(),
        brokers: ctx
            .broker
            .live_brokers()
            .into_iter()
            .map(|(broker_id, host, port, rack)| DescribeClusterBroker {
                broker_id,
                host,
                port,
                rack,
                ..Default::default()
            })
            .collect(),
        cluster_authorized_operations: if req.include_cluster_authorized_operations {
            CLUSTER_AUTHORIZED_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        },
        ..Default::default()
    };
    // Endpoint type 2 asks for controllers; this node is both.
    if !matches!(req.endpoint_type, 1 | 2) {
        resp.error_code = ErrorCode::UNSUPPORTED_ENDPOINT_TYPE.code();
        resp.error_message = Some(format!("unknown endpoint type {}", req.endpoint_type));
        resp.brokers.clear();
    }
    ctx.reply(&resp)
}
