//! Request dispatch: one file per Kafka API.
//!
//! [`dispatch`] decodes the body for the request's (key, version), refuses what
//! brook does not serve, runs the handler and encodes its response. Unknown API
//! keys, unsupported versions (except ApiVersions, which always answers, and
//! Produce 0–2, which get UNSUPPORTED_VERSION) and undecodable bodies close the
//! connection, as Kafka does: the client cannot parse a response in a version
//! it did not ask for. Bytes after a complete body are ignored, as Kafka does.
//!
//! Client quotas are enforced here, around the handler, so no handler knows
//! about them: [`dispatch`] records the request's bytes and handling time,
//! caps a Fetch at what the client's window allows, and sets
//! `throttle_time_ms`, delays the response and mutes the connection when the
//! client is over its quota (see [`crate::quota`]).

mod alter_client_quotas;
mod api_versions;
pub(crate) mod configs;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_client_quotas;
mod describe_cluster;
mod describe_groups;
mod elect_leaders;
mod fetch;
mod fetch_incremental;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod reassignments;
mod sync_group;

use std::sync::Arc;
use std::time::Instant;

use brook_protocol::api::{is_supported, ApiKey};
use brook_protocol::codec::{Encoder, Message};
use brook_protocol::header::{response_header_version, RequestHeader, ResponseHeader};
use brook_protocol::messages::RequestBody;
use bytes::Bytes;
use tracing::debug;

use crate::broker::Broker;
use crate::log::FileRegion;
use crate::quota::{Kind, Mute, QuotaManager, RequestQuota};
use crate::server::connection::{Closed, Reply};
use crate::server::writer::Frame;

pub use api_versions::advertised_versions;
pub(crate) use produce::now_ms;

/// Whether brook serves this API yet. Exhaustive: adding an API to the protocol
/// table forces a decision here.
pub fn implemented(key: ApiKey) -> bool {
    match key {
        ApiKey::Produce
        | ApiKey::Fetch
        | ApiKey::ListOffsets
        | ApiKey::Metadata
        | ApiKey::ApiVersions
        | ApiKey::CreateTopics
        | ApiKey::DeleteTopics
        | ApiKey::DeleteRecords
        | ApiKey::InitProducerId
        | ApiKey::OffsetForLeaderEpoch
        | ApiKey::DescribeConfigs
        | ApiKey::AlterConfigs
        | ApiKey::CreatePartitions
        | ApiKey::IncrementalAlterConfigs
        | ApiKey::DescribeCluster
        | ApiKey::OffsetCommit
        | ApiKey::OffsetFetch
        | ApiKey::FindCoordinator
        | ApiKey::JoinGroup
        | ApiKey::Heartbeat
        | ApiKey::LeaveGroup
        | ApiKey::SyncGroup
        | ApiKey::DescribeGroups
        | ApiKey::ListGroups
        | ApiKey::DeleteGroups
        | ApiKey::ElectLeaders
        | ApiKey::AlterPartitionReassignments
        | ApiKey::ListPartitionReassignments
        | ApiKey::OffsetDelete
        | ApiKey::DescribeClientQuotas
        | ApiKey::AlterClientQuotas => true,
    }
}

/// ACL operation bits (Kafka's `AclOperation` codes) a client may perform on a
/// cluster; brook has no authorizer yet, so it reports every cluster operation Kafka
/// supports (CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS, IDEMPOTENT_WRITE), which is
/// what Kafka reports without an authorizer.
pub const CLUSTER_AUTHORIZED_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// The same for a topic: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub const TOPIC_AUTHORIZED_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// "Not requested" (Kafka's `Integer.MIN_VALUE`).
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Request context handed to handlers.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub broker: Arc<Broker>,
    /// The client's address (reported as the member host of consumer groups).
    pub peer: std::net::SocketAddr,
    pub header: Arc<RequestHeader>,
    pub key: ApiKey,
    pub version: i16,
    /// Fires when the client is gone (a long-poll stops waiting).
    pub closed: Closed,
    /// The client sent more after this request (already read, not yet
    /// handled): a pipelining client.
    pub pipelined: bool,
}

impl Ctx {
    /// Encode `msg` as this request's response frame.
    pub fn frame<M: Message>(&self, msg: &M, regions: Vec<FileRegion>) -> Option<Frame> {
        encode_frame(&self.header, self.key, msg, regions)
    }

    /// A ready reply.
    pub fn reply<M: Message>(&self, msg: &M) -> Reply {
        match self.frame(msg, Vec::new()) {
            Some(f) => Reply::Ready(f),
            None => Reply::Close,
        }
    }
}

fn encode_frame<M: Message>(
    header: &RequestHeader,
    key: ApiKey,
    msg: &M,
    regions: Vec<FileRegion>,
) -> Option<Frame> {
    let version = header.api_version;
    let mut e = Encoder::with_capacity(256);
    let prefix = e.reserve_length_prefix();
    let rh = ResponseHeader {
        correlation_id: header.correlation_id,
        unknown_tagged_fields: Vec::new(),
    };
    let res = rh
        .encode(&mut e, response_header_version(key, version))
        .and_then(|()| msg.encode(&mut e, version))
        .and_then(|()| e.patch_length_prefix(prefix));
    match res {
        Ok(()) => {
            let throttle_at = e.throttle_offset();
            Some(Frame {
                chunks: e.finish(),
                regions,
                throttle_at,
            })
        }
        Err(err) => {
            debug!(api = %key, version, error = %err, "cannot encode response; closing connection");
            None
        }
    }
}

/// Decode and serve one request. `mute` is the connection's: a client over
/// its quota mutes it until its throttle delay ends.
pub async fn dispatch(
    broker: &Arc<Broker>,
    peer: std::net::SocketAddr,
    header: RequestHeader,
    mut body: Bytes,
    mute: &Arc<Mute>,
    closed: &Closed,
    pipelined: bool,
) -> Reply {
    let Some(key) = header.key() else {
        debug!(
            api_key = header.api_key,
            "unknown API key; closing connection"
        );
        crate::metrics::request_error(None);
        return Reply::Close;
    };
    let version = header.api_version;
    let ctx = Ctx {
        broker: broker.clone(),
        peer,
        header: Arc::new(header),
        key,
        version,
        closed: closed.clone(),
        pipelined,
    };
    if key == ApiKey::ApiVersions {
        return api_versions::handle(&ctx, body);
    }
    if !implemented(key) || !is_supported(key, version) {
        if key == ApiKey::Produce && (0..3).contains(&version) {
            return produce::unsupported_version(&ctx, body);
        }
        debug!(api = %key, version, "unsupported API or version; closing connection");
        crate::metrics::request_error(Some(key));
        return Reply::Close;
    }
    let request_bytes = body.len();
    let mut request = match RequestBody::decode(key, version, &mut body) {
        Ok(r) => {
            // Kafka ignores bytes after a complete body, and librdkafka 2.x sends
            // three of them after an all-topics Metadata v12 request; so do we.
            if !body.is_empty() {
                debug!(api = %key, version, trailing = body.len(), "ignoring bytes after the request body");
            }
            r
        }
        Err(e) => {
            debug!(api = %key, version, error = %e, "undecodable request; closing connection");
            crate::metrics::request_error(Some(key));
            return Reply::Close;
        }
    };
    let mut quota = quota_start(broker, &ctx.header, &mut request);
    let header = ctx.header.clone();
    let started = Instant::now();
    let reply = match request {
        RequestBody::Produce(r) => produce::handle(ctx, r).await,
        RequestBody::Fetch(r) => fetch::handle(ctx, r).await,
        RequestBody::ListOffsets(r) => list_offsets::handle(&ctx, r),
        RequestBody::Metadata(r) => metadata::handle(&ctx, r).await,
        RequestBody::CreateTopics(r) => create_topics::handle(&ctx, r).await,
        RequestBody::DeleteTopics(r) => delete_topics::handle(&ctx, r).await,
        RequestBody::DeleteRecords(r) => delete_records::handle(&ctx, r).await,
        RequestBody::InitProducerId(r) => init_producer_id::handle(&ctx, r).await,
        RequestBody::OffsetForLeaderEpoch(r) => offset_for_leader_epoch::handle(&ctx, r),
        RequestBody::DescribeConfigs(r) => configs::describe(&ctx, r),
        RequestBody::AlterConfigs(r) => configs::alter(&ctx, r).await,
        RequestBody::IncrementalAlterConfigs(r) => configs::incremental_alter(&ctx, r).await,
        RequestBody::CreatePartitions(r) => create_partitions::handle(&ctx, r).await,
        RequestBody::DescribeCluster(r) => describe_cluster::handle(&ctx, r),
        RequestBody::FindCoordinator(r) => find_coordinator::handle(&ctx, r).await,
        RequestBody::JoinGroup(r) => join_group::handle(ctx, r).await,
        RequestBody::SyncGroup(r) => sync_group::handle(ctx, r).await,
        RequestBody::Heartbeat(r) => heartbeat::handle(&ctx, r).await,
        RequestBody::LeaveGroup(r) => leave_group::handle(ctx, r).await,
        RequestBody::OffsetCommit(r) => offset_commit::handle(ctx, r).await,
        RequestBody::OffsetFetch(r) => offset_fetch::handle(&ctx, r).await,
        RequestBody::DescribeGroups(r) => describe_groups::handle(&ctx, r).await,
        RequestBody::ListGroups(r) => list_groups::handle(&ctx, r).await,
        RequestBody::DeleteGroups(r) => delete_groups::handle(&ctx, r).await,
        RequestBody::OffsetDelete(r) => offset_delete::handle(&ctx, r).await,
        RequestBody::ElectLeaders(r) => elect_leaders::handle(&ctx, r).await,
        RequestBody::AlterPartitionReassignments(r) => reassignments::alter(&ctx, r).await,
        RequestBody::ListPartitionReassignments(r) => reassignments::list(&ctx, r),
        RequestBody::DescribeClientQuotas(r) => describe_client_quotas::handle(&ctx, r),
        RequestBody::AlterClientQuotas(r) => alter_client_quotas::handle(&ctx, r).await,
        _ => Reply::Close,
    };
    let handled = started.elapsed();
    let reply = match reply {
        // Long-poll fetches and acks=all produces answer later: their latency ends
        // when the writer takes the response, not when the handler returned.
        Reply::Pending(pending) => Reply::Pending(Box::pin(async move {
            let frame = pending.await;
            crate::metrics::request_done(key, started.elapsed());
            frame
        })),
        other => {
            crate::metrics::request_done(key, started.elapsed());
            other
        }
    };
    match quota.as_mut() {
        Some(q) => {
            let quotas = broker.quotas();
            let now = quotas.now_ms();
            if key == ApiKey::Produce {
                q.record(quotas, Kind::Produce, request_bytes as f64, now);
            }
            // Kafka's unit: percent of one thread over the window, so 10 ms of
            // handling is 1.0 here.
            q.record(quotas, Kind::Request, handled.as_secs_f64() * 100.0, now);
            quota_finish(broker, header, key, quota, mute, reply)
        }
        None => reply,
    }
}

/// The quota accounting of a request, `None` for replication traffic (a Fetch
/// from a replica), which client quotas never touch. A client's Fetch is
/// capped at what its window allows.
fn quota_start(
    broker: &Broker,
    header: &RequestHeader,
    request: &mut RequestBody,
) -> Option<RequestQuota> {
    if let RequestBody::Fetch(r) = request {
        if r.replica_id >= 0 || r.replica_state.replica_id >= 0 {
            return None;
        }
    }
    let quotas = broker.quotas();
    let q = RequestQuota::start(quotas, header.client_id.as_deref().unwrap_or(""));
    if let RequestBody::Fetch(r) = request {
        if let Some(max) = quotas.max_in_window(&q.client, Kind::Fetch) {
            r.max_bytes = r.max_bytes.min(max.clamp(1.0, f64::from(i32::MAX)) as i32);
        }
    }
    Some(q)
}

/// Apply the request's throttle to its reply: record a Fetch response's
/// bytes, replace a throttled Fetch's records with an empty response, set
/// `throttle_time_ms`, hold the response for the delay and mute the
/// connection until it ends.
fn quota_finish(
    broker: &Arc<Broker>,
    header: Arc<RequestHeader>,
    key: ApiKey,
    quota: Option<RequestQuota>,
    mute: &Arc<Mute>,
    reply: Reply,
) -> Reply {
    let Some(mut q) = quota else {
        return reply;
    };
    if key != ApiKey::Fetch && q.throttle_ms() > 0 {
        // The throttle is known now: mute at once, so a pipelining client's
        // next requests wait even while this response is still being made
        // (an acks=all produce waiting for fsync).
        let quotas = broker.quotas();
        mute.until(quotas.now_ms() + q.throttle_ms());
    }
    match reply {
        Reply::Ready(frame) if key != ApiKey::Fetch && q.throttle_ms() == 0 => Reply::Ready(frame),
        Reply::Ready(frame) => {
            let quotas = broker.quotas();
            let (frame, until) = settle(quotas, &header, key, &mut q, mute, frame);
            match until {
                None => Reply::Ready(frame),
                Some(until) => {
                    let at = quotas.instant(until);
                    Reply::Pending(Box::pin(async move {
                        tokio::time::sleep_until(at.into()).await;
                        Some(frame)
                    }))
                }
            }
        }
        Reply::Pending(pending) => {
            let broker = broker.clone();
            let mute = mute.clone();
            Reply::Pending(Box::pin(async move {
                let frame = pending.await?;
                let quotas = broker.quotas();
                let (frame, until) = settle(quotas, &header, key, &mut q, &mute, frame);
                if let Some(until) = until {
                    tokio::time::sleep_until(quotas.instant(until).into()).await;
                }
                Some(frame)
            }))
        }
        // acks=0: no response to hold, but the connection is still muted.
        Reply::None => {
            let quotas = broker.quotas();
            q.apply(quotas, mute, quotas.now_ms());
            Reply::None
        }
        Reply::Close => Reply::Close,
    }
}

/// The response as sent, and the end of its delay when throttled.
fn settle(
    quotas: &QuotaManager,
    header: &RequestHeader,
    key: ApiKey,
    q: &mut RequestQuota,
    mute: &Mute,
    mut frame: Frame,
) -> (Frame, Option<u64>) {
    let now = quotas.now_ms();
    if key == ApiKey::Fetch {
        let bytes = frame.len() as f64;
        q.record(quotas, Kind::Fetch, bytes, now);
        if q.throttle_ms() > 0 {
            // Kafka: a throttled fetch returns no records, and they do not
            // count against the client.
            quotas.unrecord(&q.client, Kind::Fetch, bytes, now);
            let empty = brook_protocol::messages::FetchResponse::default();
            if let Some(f) = encode_frame(header, key, &empty, Vec::new()) {
                frame = f;
            }
        }
    }
    let Some(until) = q.apply(quotas, mute, now) else {
        return (frame, None);
    };
    frame.set_throttle_time(i32::try_from(q.throttle_ms()).unwrap_or(i32::MAX));
    (frame, Some(until))
}
