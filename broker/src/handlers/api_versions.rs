//! ApiVersions (key 18): answers every version. An unsupported version gets the
//! v0 layout with UNSUPPORTED_VERSION and the full list, so the client can pick
//! a version both sides know (KIP-511).

use brook_protocol::api::{ApiKey, SUPPORTED_APIS};
use brook_protocol::codec::Message;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use brook_protocol::messages::ApiVersionsRequest;
use bytes::Bytes;

use super::{encode_frame, implemented, Ctx};
use crate::server::connection::Reply;

/// The (key, min, max) rows brook advertises: the protocol table, restricted to
/// the APIs this broker serves.
pub fn advertised_versions() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .filter(|row| implemented(row.key))
        .map(|row| ApiVersion {
            api_key: row.key.as_i16(),
            min_version: row.min,
            max_version: row.max,
            ..Default::default()
        })
        .collect()
}

pub(super) fn handle(ctx: &Ctx, mut body: Bytes) -> Reply {
    let (min, max) = ApiVersionsRequest::VERSIONS;
    let supported = SUPPORTED_APIS
        .iter()
        .find(|r| r.key == ApiKey::ApiVersions)
        .is_some_and(|r| (r.min..=r.max).contains(&ctx.version))
        && (min..=max).contains(&ctx.version);
    let mut resp = ApiVersionsResponse {
        api_keys: advertised_versions(),
        ..Default::default()
    };
    if !supported {
        resp.error_code = ErrorCode::UNSUPPORTED_VERSION.code();
        let mut header = (*ctx.header).clone();
        header.api_version = 0;
        return match encode_frame(&header, ApiKey::ApiVersions, &resp, Vec::new()) {
            Some(f) => Reply::Ready(f),
            None => Reply::Close,
        };
    }
    // A malformed body still gets an answer (INVALID_REQUEST), as Kafka does, so
    // the client learns why.
    if ApiVersionsRequest::decode(&mut body, ctx.version).is_err() {
        resp.error_code = ErrorCode::INVALID_REQUEST.code();
    }
    ctx.reply(&resp)
}
