//! AlterClientQuotas (key 49, v0–1): set or remove quota keys of client-quota
//! entities. Each entry goes to the active controller on its own and gets
//! its own error; an entry is applied whole or not at all. The answer comes
//! once this broker has published the change; every broker enforces it from
//! its next image.

use brook_protocol::messages::alter_client_quotas_response::{
    AlterClientQuotasResponse, EntityResult, EntryResult,
};
use brook_protocol::messages::AlterClientQuotasRequest;

use super::Ctx;
use crate::metadata::QuotaValue;
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: AlterClientQuotasRequest) -> Reply {
    let mut entries = Vec::with_capacity(req.entries.len());
    for e in req.entries {
        let parts: Vec<(String, Option<String>)> = e
            .entity
            .iter()
            .map(|p| (p.entity_type.clone(), p.entity_name.clone()))
            .collect();
        let ops = e
            .ops
            .into_iter()
            .map(|o| (o.key, (!o.remove).then_some(QuotaValue(o.value))))
            .collect();
        let mut out = EntryResult {
            entity: e
                .entity
                .into_iter()
                .map(|p| EntityResult {
                    entity_type: p.entity_type,
                    entity_name: p.entity_name,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        if let Err(err) = ctx
            .broker
            .alter_client_quota(parts, ops, req.validate_only)
            .await
        {
            crate::metrics::api_error(ctx.key, err.code());
            out.error_code = err.code();
            out.error_message = err.message();
        }
        entries.push(out);
    }
    ctx.reply(&AlterClientQuotasResponse {
        entries,
        ..Default::default()
    })
}
