//! DescribeClientQuotas (key 48, v0–1): the configured quota entries whose
//! entity passes the request's filter, from this broker's metadata image.

use brook_protocol::messages::describe_client_quotas_response::{
    DescribeClientQuotasResponse, EntityData, EntryData, ValueData,
};
use brook_protocol::messages::DescribeClientQuotasRequest;

use super::Ctx;
use crate::quota::entity::Filter;
use crate::server::connection::Reply;

pub(super) fn handle(ctx: &Ctx, req: DescribeClientQuotasRequest) -> Reply {
    let components: Vec<(String, i8, Option<String>)> = req
        .components
        .into_iter()
        .map(|c| (c.entity_type, c.match_type, c.r#match))
        .collect();
    let filter = match Filter::new(&components, req.strict) {
        Ok(f) => f,
        Err(e) => {
            crate::metrics::api_error(ctx.key, e.code());
            return ctx.reply(&DescribeClientQuotasResponse {
                error_code: e.code(),
                error_message: e.message(),
                entries: None,
                ..Default::default()
            });
        }
    };
    let image = ctx.broker.image();
    let entries = filter
        .select(&image.quotas)
        .map(|(entity, values)| EntryData {
            entity: entity
                .0
                .iter()
                .map(|(t, n)| EntityData {
                    entity_type: t.clone(),
                    entity_name: n.clone(),
                    ..Default::default()
                })
                .collect(),
            values: values
                .iter()
                .map(|(k, v)| ValueData {
                    key: k.clone(),
                    value: v.0,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    ctx.reply(&DescribeClientQuotasResponse {
        entries: Some(entries),
        ..Default::default()
    })
}
