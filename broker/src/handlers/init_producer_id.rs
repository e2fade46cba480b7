//! InitProducerId (key 22, v0–5) for idempotent producers. A new producer gets a
//! fresh id with epoch 0; a producer that names its current id and epoch (v3+,
//! KIP-360) gets the epoch bumped, or a fresh id when the epoch is exhausted.
//! Transactional ids are a later milestone and are refused.

use brook_protocol::error::ErrorCode;
use brook_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use brook_protocol::messages::InitProducerIdRequest;

use super::Ctx;
use crate::server::connection::Reply;

pub(super) async fn handle(ctx: &Ctx, req: InitProducerIdRequest) -> Reply {
    let mut resp = InitProducerIdResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    };
    if req.transactional_id.is_some() {
        resp.error_code = ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code();
        return ctx.reply(&resp);
    }
    if req.producer_id >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        resp.producer_id = req.producer_id;
        resp.producer_epoch = req.producer_epoch + 1;
        return ctx.reply(&resp);
    }
    match ctx.broker.allocate_producer_id().await {
        Ok(id) => {
            resp.producer_id = id;
            resp.producer_epoch = 0;
        }
        Err(e) => resp.error_code = e.code(),
    }
    ctx.reply(&resp)
}
