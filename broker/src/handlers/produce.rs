//! Produce (key 0): validate and append each partition's record set, then answer
//! per `acks`: 0 → no response, 1 → after the leader's append, -1 (all) → once
//! the batch is committed: the HW passed it, so it is on every ISR member
//! (durable there under fsync-before-ack). acks=all is refused with
//! NOT_ENOUGH_REPLICAS before the append when the ISR is below
//! `min.insync.replicas`, and answered NOT_ENOUGH_REPLICAS_AFTER_APPEND when
//! it shrinks below it while the batch waits.
//!
// Hot path: no copy of the record set (the log writes it from the request
// buffer, with offsets and epoch patched in copies of the batch headers), no
// per-record work beyond CRC validation, no logging above debug.

use std::collections::BTreeMap;
use std::time::Duration;

use brook_protocol::codec::{Message, Records};
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use brook_protocol::messages::ProduceRequest;
use bytes::Bytes;

use super::Ctx;
use crate::error::BrokerError;
use crate::producer_state::Refusal;
use crate::server::connection::Reply;

/// Produce v0–2 is advertised (librdkafka needs that to enable compression) but
/// refused: answer every partition with UNSUPPORTED_VERSION.
pub(super) fn unsupported_version(ctx: &Ctx, mut body: Bytes) -> Reply {
    let Ok(req) = ProduceRequest::decode(&mut body, ctx.version) else {
        return Reply::Close;
    };
    if req.acks == 0 {
        return Reply::None;
    }
    let resp = ProduceResponse {
        responses: req
            .topic_data
            .iter()
            .map(|t| TopicProduceResponse {
                name: t.name.clone(),
                partition_responses: t
                    .partition_data
                    .iter()
                    .map(|p| partition_error(p.index, ErrorCode::UNSUPPORTED_VERSION.code(), None))
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    ctx.reply(&resp)
}

fn partition_error(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    crate::metrics::api_error(brook_protocol::api::ApiKey::Produce, code);
    PartitionProduceResponse {
        index,
        error_code: code,
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
        error_message: message,
        ..Default::default()
    }
}

struct Pending {
    topic: usize,
    slot: usize,
    partition: std::sync::Arc<crate::partition::Partition>,
    last_offset: i64,
    epoch: i32,
}

pub(super) async fn handle(ctx: Ctx, req: ProduceRequest) -> Reply {
    let acks = req.acks;
    if req.transactional_id.is_some() {
        // Transactions are a later milestone; refuse clearly rather than
        // pretending to be transactional.
        return respond_all(
            &ctx,
            &req,
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code(),
            acks,
        );
    }
    if !(-1..=1).contains(&acks) {
        return respond_all(&ctx, &req, ErrorCode::INVALID_REQUIRED_ACKS.code(), acks);
    }
    let now = now_ms();
    let recv_us = crate::path_trace::stamp();
    // One acks=all batch with nothing behind it on the connection: its
    // fsync may run right here (see `Partition::flush_inline`); a request
    // for several partitions flushes them in parallel on the flush pool,
    // and a pipelining client's next requests are read meanwhile and share
    // the following fsync.
    let inline_flush = acks == -1
        && !ctx.pipelined
        && ctx.broker.config().log_flush_inline_enable
        && matches!(req.topic_data.as_slice(), [t] if t.partition_data.len() == 1);
    let mut topics: Vec<TopicProduceResponse> = Vec::with_capacity(req.topic_data.len());
    let mut waits: Vec<Pending> = Vec::new();
    for (ti, t) in req.topic_data.into_iter().enumerate() {
        let mut parts = Vec::with_capacity(t.partition_data.len());
        let topic = match ctx.broker.topic_or_create(&t.name, true).await {
            Ok(topic) => topic,
            Err(e) => {
                for p in &t.partition_data {
                    parts.push(partition_error(p.index, e.code(), e.message()));
                }
                topics.push(TopicProduceResponse {
                    name: t.name,
                    partition_responses: parts,
                    ..Default::default()
                });
                continue;
            }
        };
        if topic.as_ref().is_some_and(|topic| topic.is_internal()) {
            // Kafka refuses client writes to internal topics: a forged record in
            // `__consumer_offsets` would become a real commit on replay.
            for p in &t.partition_data {
                parts.push(partition_error(
                    p.index,
                    ErrorCode::INVALID_TOPIC_EXCEPTION.code(),
                    Some(format!("cannot produce to internal topic {}", t.name)),
                ));
            }
            topics.push(TopicProduceResponse {
                name: t.name,
                partition_responses: parts,
                ..Default::default()
            });
            continue;
        }
        for p in t.partition_data {
            let Some(partition) = topic.as_ref().and_then(|topic| topic.partition(p.index)) else {
                parts.push(partition_error(
                    p.index,
                    topic
                        .as_ref()
                        .map_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(), |t| {
                            t.absent_code(p.index)
                        }),
                    None,
                ));
                continue;
            };
            if !partition.is_leader() {
                if let Some(Records::Bytes(b)) = &p.records {
                    partition.refuse(b, Refusal::NotLeader).await;
                }
                parts.push(partition_error(
                    p.index,
                    ErrorCode::NOT_LEADER_OR_FOLLOWER.code(),
                    None,
                ));
                continue;
            }
            let records = match p.records {
                Some(Records::Bytes(b)) if !b.is_empty() => b,
                _ => {
                    parts.push(partition_error(
                        p.index,
                        ErrorCode::CORRUPT_MESSAGE.code(),
                        Some("empty record set".into()),
                    ));
                    continue;
                }
            };
            let config = partition.config();
            let max = config.max_message_bytes as usize;
            if records.len() > max.saturating_add(brook_protocol::records::header::LOG_OVERHEAD) {
                let e = BrokerError::MessageTooLarge {
                    size: records.len(),
                    max,
                };
                parts.push(partition_error(p.index, e.code(), e.message()));
                continue;
            }
            if acks == -1 {
                if let (false, isr) = partition.enough_replicas() {
                    let min = usize::try_from(config.min_insync_replicas).unwrap_or(1);
                    partition
                        .refuse(&records, Refusal::NotEnoughReplicas { isr, min })
                        .await;
                    let e = BrokerError::NotEnoughReplicas { isr, min };
                    parts.push(partition_error(p.index, e.code(), e.message()));
                    continue;
                }
            }
            if ctx.broker.partition_offline(&partition) {
                partition.refuse(&records, Refusal::Storage).await;
                let e = BrokerError::Storage(
                    "the partition's log directory is offline after a storage failure".into(),
                );
                parts.push(partition_error(p.index, e.code(), e.message()));
                continue;
            }
            let bytes_in = records.len();
            match partition.append(&records, now).await {
                Ok(a) => {
                    tracing::trace!(target: "brook::path", stage = "appended",
                        part = %format_args!("{}-{}", partition.topic, partition.index),
                        first = a.base_offset, last = a.last_offset, recv_us,
                        us = crate::path_trace::now_us());
                    if let Some(topic) = &topic {
                        topic.probe.produced(bytes_in as u64, a.records);
                    }
                    if acks == -1 {
                        // Start the fsync now, so the partitions of this request
                        // flush in parallel while the response waits for them.
                        if !inline_flush || !partition.flush_inline() {
                            partition.request_flush();
                        }
                        waits.push(Pending {
                            topic: ti,
                            slot: parts.len(),
                            partition: partition.clone(),
                            last_offset: a.last_offset,
                            epoch: a.leader_epoch,
                        });
                    }
                    parts.push(PartitionProduceResponse {
                        index: p.index,
                        error_code: 0,
                        base_offset: a.base_offset,
                        log_append_time_ms: a.log_append_time,
                        log_start_offset: a.log_start_offset,
                        ..Default::default()
                    });
                    if acks != -1
                        && !a.duplicate
                        && config.durability == brook_config::Durability::FsyncBeforeAck
                    {
                        // Nobody waits for this flush, but consumers see records only
                        // once durable: start the (group-committed) fsync now.
                        partition.request_flush();
                    }
                }
                Err(e) => {
                    if matches!(e, BrokerError::Log(_))
                        && e.error_code() == ErrorCode::KAFKA_STORAGE_ERROR
                    {
                        ctx.broker
                            .set_offline(&partition, &format!("append failed: {e}"));
                    }
                    let mut resp = partition_error(p.index, e.code(), e.message());
                    if let BrokerError::RecordErrors { errors, .. } = &e {
                        resp.record_errors = errors
                            .iter()
                            .map(|(i, m)| BatchIndexAndErrorMessage {
                                batch_index: *i,
                                batch_index_error_message: Some(m.clone()),
                                ..Default::default()
                            })
                            .collect();
                    }
                    parts.push(resp);
                }
            }
        }
        topics.push(TopicProduceResponse {
            name: t.name,
            partition_responses: parts,
            ..Default::default()
        });
    }
    if acks == 0 {
        return Reply::None;
    }
    let mut resp = ProduceResponse {
        responses: topics,
        ..Default::default()
    };
    if waits.is_empty() {
        trace_respond(&ctx);
        return ctx.reply(&resp);
    }
    // Settled already (an inline flush on a single node): answer without a
    // task of its own.
    let settled: Option<Vec<_>> = waits
        .iter()
        .map(|w| w.partition.committed_now(w.last_offset, w.epoch))
        .collect();
    if let Some(results) = settled {
        settle(&ctx, &mut resp, &waits, results);
        return ctx.reply(&resp);
    }
    // One deadline for the whole request, as Kafka's `timeout_ms` means.
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0).max(1));
    let task = tokio::spawn(async move {
        // Each partition's flusher is already working; awaiting them in turn
        // under one deadline costs no more than the slowest.
        let results = futures_join(waits.iter().map(|w| {
            let partition = w.partition.clone();
            let (last, epoch) = (w.last_offset, w.epoch);
            async move { partition.wait_committed(last, epoch, deadline).await }
        }))
        .await;
        settle(&ctx, &mut resp, &waits, results);
        ctx.frame(&resp, Vec::new())
    });
    Reply::from_task(task)
}

/// Put the acks=all waits' outcomes into the response.
fn settle(
    ctx: &Ctx,
    resp: &mut ProduceResponse,
    waits: &[Pending],
    results: Vec<Result<(), crate::partition::NotCommitted>>,
) {
    for (w, r) in waits.iter().zip(results) {
        let slot = &mut resp.responses[w.topic].partition_responses[w.slot];
        if let Err(e) = r {
            if e == crate::partition::NotCommitted::Storage {
                ctx.broker.set_offline(&w.partition, "flush failed");
            }
            let e = BrokerError::from(e);
            *slot = partition_error(slot.index, e.code(), e.message());
        }
    }
    trace_respond(ctx);
}

/// Path tracing: this request's response is built.
fn trace_respond(ctx: &Ctx) {
    tracing::trace!(target: "brook::path", stage = "produce_respond", port = ctx.peer.port(),
        corr = ctx.header.correlation_id, us = crate::path_trace::now_us());
}

async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    // Every partition's flush was requested at append time, so awaiting the
    // waits in turn costs no more than the slowest.
    for f in futs {
        out.push(f.await);
    }
    out
}

fn respond_all(ctx: &Ctx, req: &ProduceRequest, code: i16, acks: i16) -> Reply {
    if acks == 0 {
        return Reply::None;
    }
    let mut by_topic: BTreeMap<&str, Vec<PartitionProduceResponse>> = BTreeMap::new();
    for t in &req.topic_data {
        let e = by_topic.entry(&t.name).or_default();
        e.extend(
            t.partition_data
                .iter()
                .map(|p| partition_error(p.index, code, None)),
        );
    }
    let resp = ProduceResponse {
        responses: by_topic
            .into_iter()
            .map(|(name, parts)| TopicProduceResponse {
                name: name.to_owned(),
                partition_responses: parts,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    ctx.reply(&resp)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
