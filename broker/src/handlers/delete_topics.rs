//! DeleteTopics (key 20, v1–6): by name, or by topic id from v6.

use brook_protocol::codec::Uuid;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};
use brook_protocol::messages::DeleteTopicsRequest;

use super::Ctx;
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: DeleteTopicsRequest) -> Reply {
    let targets: Vec<(Option<String>, Uuid)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.clone(), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.clone()), Uuid::ZERO))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let name = match name {
            Some(n) => Some(n),
            None => ctx.broker.topic_by_id(&id).map(|t| t.name.to_string()),
        };
        let mut res = DeletableTopicResult {
            name: name.clone(),
            topic_id: id,
            ..Default::default()
        };
        match name {
            None => res.error_code = ErrorCode::UNKNOWN_TOPIC_ID.code(),
            Some(n) => match ctx.broker.delete_topic(&n).await {
                Ok(deleted_id) => res.topic_id = deleted_id,
                Err(e) => {
                    res.error_code = e.code();
                    res.error_message = e.message();
                }
            },
        }
        responses.push(res);
    }
    ctx.reply(&DeleteTopicsResponse {
        responses,
        ..Default::default()
    })
}
