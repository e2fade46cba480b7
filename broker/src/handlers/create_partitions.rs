//! CreatePartitions (key 37, v0–3): grow a topic's partition count.

use brook_protocol::messages::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use brook_protocol::messages::CreatePartitionsRequest;

use super::Ctx;
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: CreatePartitionsRequest) -> Reply {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut res = CreatePartitionsTopicResult {
            name: t.name.clone(),
            ..Default::default()
        };
        let assignments = t
            .assignments
            .map(|a| a.into_iter().map(|x| x.broker_ids).collect());
        let outcome = ctx
            .broker
            .create_partitions(&t.name, t.count, assignments, req.validate_only)
            .await;
        if let Err(e) = outcome {
            res.error_code = e.code();
            res.error_message = e.message();
        }
        results.push(res);
    }
    ctx.reply(&CreatePartitionsResponse {
        results,
        ..Default::default()
    })
}
