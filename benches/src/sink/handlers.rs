//! Request handlers of the sink broker: decode, answer, encode. See the parent
//! module for what each API answers and why.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::Ordering;
use std::time::Duration;

use brook_protocol::api::{ApiKey, SUPPORTED_APIS};
use brook_protocol::codec::{Chunk, EncodeError, Encoder, Message, Records, Uuid};
use brook_protocol::error::ErrorCode;
use brook_protocol::header::{response_header_version, RequestHeader, ResponseHeader};
use brook_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use brook_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use brook_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use brook_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use brook_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use brook_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use brook_protocol::messages::{
    ApiVersionsRequest, FetchRequest, FindCoordinatorRequest, InitProducerIdRequest,
    MetadataRequest, ProduceRequest,
};
use brook_protocol::records::header::BatchIter;
use bytes::{Bytes, BytesMut};

use super::{Out, Sink, SinkError};

/// The sink's node id, reported in Metadata.
const NODE_ID: i32 = 1;
/// The producer id handed to idempotent producers.
const PRODUCER_ID: i64 = 4242;
/// APIs the sink answers (everything else closes the connection).
const SERVED: [ApiKey; 6] = [
    ApiKey::Produce,
    ApiKey::FindCoordinator,
    ApiKey::Fetch,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::InitProducerId,
];

/// A stable topic id derived from the name, so Metadata and Fetch v13+ agree.
fn topic_id(name: &str) -> Uuid {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    let a = h.finish();
    "brook-sink".hash(&mut h);
    let b = h.finish();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    Uuid::from_bytes(bytes)
}

/// A response to send only after `duration`.
pub(super) struct Delayed {
    pub(super) duration: Duration,
    pub(super) response: Bytes,
}

pub(super) fn handle(
    mut frame: Bytes,
    advertised: std::net::SocketAddr,
    sink: &Sink,
    out: &mut Out,
) -> Result<Option<Delayed>, SinkError> {
    let header = RequestHeader::decode(&mut frame)?;
    let version = header.api_version;
    let unsupported = SinkError::Unsupported {
        key: header.api_key,
        version,
    };
    let Some(key) = header.key() else {
        return Err(unsupported);
    };
    if key == ApiKey::ApiVersions {
        return api_versions(&header, frame, out).map(|()| None);
    }
    let in_range = SUPPORTED_APIS
        .iter()
        .any(|r| r.key == key && (r.min..=r.max).contains(&version));
    if !SERVED.contains(&key) || !in_range {
        return Err(unsupported);
    }
    match key {
        ApiKey::Metadata => {
            let req = MetadataRequest::decode(&mut frame, version)?;
            respond(&header, key, &metadata(req, advertised), out)?;
        }
        ApiKey::InitProducerId => {
            InitProducerIdRequest::decode(&mut frame, version)?;
            let resp = InitProducerIdResponse {
                producer_id: PRODUCER_ID,
                producer_epoch: 0,
                ..Default::default()
            };
            respond(&header, key, &resp, out)?;
        }
        ApiKey::FindCoordinator => {
            let req = FindCoordinatorRequest::decode(&mut frame, version)?;
            respond(&header, key, &find_coordinator(req, advertised), out)?;
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut frame, version)?;
            let acks = req.acks;
            let (resp, stored) = produce(req, sink)?;
            if acks == -1 {
                out.sync_to = stored.max(out.sync_to);
            }
            if acks != 0 {
                respond(&header, key, &resp, out)?;
            }
        }
        ApiKey::Fetch => {
            let req = FetchRequest::decode(&mut frame, version)?;
            return fetch(&header, req, sink, out);
        }
        _ => return Err(unsupported),
    }
    Ok(None)
}

/// Encode `msg` as the response frame to `header`; its record sets (given as
/// regions numbered into `records`) are queued without being copied.
fn encode<M: Message>(
    header: &RequestHeader,
    key: ApiKey,
    msg: &M,
    records: &[Bytes],
) -> Result<Vec<Bytes>, SinkError> {
    let version = header.api_version;
    let mut e = Encoder::with_capacity(256);
    let prefix = e.reserve_length_prefix();
    ResponseHeader {
        correlation_id: header.correlation_id,
        unknown_tagged_fields: Vec::new(),
    }
    .encode(&mut e, response_header_version(key, version))?;
    msg.encode(&mut e, version)?;
    e.patch_length_prefix(prefix)?;
    e.finish()
        .into_iter()
        .map(|c| match c {
            Chunk::Bytes(b) => Ok(b),
            Chunk::Region { id, .. } => usize::try_from(id)
                .ok()
                .and_then(|i| records.get(i).cloned())
                .ok_or(SinkError::Config("record region without data")),
        })
        .collect()
}

fn respond<M: Message>(
    header: &RequestHeader,
    key: ApiKey,
    msg: &M,
    out: &mut Out,
) -> Result<(), SinkError> {
    for b in encode(header, key, msg, &[])? {
        out.push(b);
    }
    Ok(())
}

fn api_versions(header: &RequestHeader, mut body: Bytes, out: &mut Out) -> Result<(), SinkError> {
    let api_keys = SUPPORTED_APIS
        .iter()
        .filter(|r| SERVED.contains(&r.key))
        .map(|r| ApiVersion {
            api_key: r.key.as_i16(),
            min_version: r.min,
            max_version: r.max,
            ..Default::default()
        })
        .collect();
    let mut resp = ApiVersionsResponse {
        api_keys,
        ..Default::default()
    };
    let (min, max) = ApiVersionsRequest::VERSIONS;
    if !(min..=max).contains(&header.api_version) {
        // KIP-511: answer an unknown version in the v0 layout with the list.
        resp.error_code = ErrorCode::UNSUPPORTED_VERSION.code();
        let mut v0 = header.clone();
        v0.api_version = 0;
        return respond(&v0, ApiKey::ApiVersions, &resp, out);
    }
    ApiVersionsRequest::decode(&mut body, header.api_version)?;
    respond(header, ApiKey::ApiVersions, &resp, out)
}

fn metadata(req: MetadataRequest, advertised: std::net::SocketAddr) -> MetadataResponse {
    let topics = req
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| match t.name {
            Some(name) => MetadataResponseTopic {
                topic_id: topic_id(&name),
                name: Some(name),
                partitions: vec![MetadataResponsePartition {
                    partition_index: 0,
                    leader_id: NODE_ID,
                    leader_epoch: 0,
                    replica_nodes: vec![NODE_ID],
                    isr_nodes: vec![NODE_ID],
                    ..Default::default()
                }],
                topic_authorized_operations: i32::MIN,
                ..Default::default()
            },
            None => MetadataResponseTopic {
                error_code: ErrorCode::UNKNOWN_TOPIC_ID.code(),
                topic_id: t.topic_id,
                topic_authorized_operations: i32::MIN,
                ..Default::default()
            },
        })
        .collect();
    MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: NODE_ID,
            host: advertised.ip().to_string(),
            port: i32::from(advertised.port()),
            ..Default::default()
        }],
        cluster_id: Some("brook-sink".into()),
        controller_id: NODE_ID,
        topics,
        cluster_authorized_operations: i32::MIN,
        ..Default::default()
    }
}

fn find_coordinator(
    req: FindCoordinatorRequest,
    advertised: std::net::SocketAddr,
) -> FindCoordinatorResponse {
    let host = advertised.ip().to_string();
    let port = i32::from(advertised.port());
    // v4 batches keys; v0-3 answer the single `key` in the top-level fields.
    let coordinators = req
        .coordinator_keys
        .into_iter()
        .map(|key| Coordinator {
            key,
            node_id: NODE_ID,
            host: host.clone(),
            port,
            ..Default::default()
        })
        .collect();
    FindCoordinatorResponse {
        node_id: NODE_ID,
        host,
        port,
        coordinators,
        ..Default::default()
    }
}

/// The response to a produce request, and (storing sink) the store position
/// its record sets reach.
fn produce(req: ProduceRequest, sink: &Sink) -> Result<(ProduceResponse, Option<u64>), SinkError> {
    let mut stored = None;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let mut partition_responses = Vec::with_capacity(t.partition_data.len());
        for p in t.partition_data {
            let count: i64 = match &p.records {
                Some(Records::Bytes(b)) => {
                    if let Some(store) = &sink.store {
                        stored = Some(store.append(b)?);
                    }
                    BatchIter::new(b)
                        .map(|(_, h)| i64::from(h.record_count()))
                        .sum()
                }
                _ => 0,
            };
            partition_responses.push(PartitionProduceResponse {
                index: p.index,
                base_offset: sink.next_offset.fetch_add(count, Ordering::Relaxed),
                log_append_time_ms: -1,
                log_start_offset: 0,
                ..Default::default()
            });
        }
        responses.push(TopicProduceResponse {
            name: t.name,
            partition_responses,
            ..Default::default()
        });
    }
    let resp = ProduceResponse {
        responses,
        ..Default::default()
    };
    Ok((resp, stored))
}

fn fetch(
    header: &RequestHeader,
    req: FetchRequest,
    sink: &Sink,
    out: &mut Out,
) -> Result<Option<Delayed>, SinkError> {
    let mut budget = usize::try_from(req.max_bytes).unwrap_or(0);
    let mut records = Vec::new();
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let mut pd = PartitionData {
                partition_index: p.partition,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                preferred_read_replica: -1,
                records: Some(Records::Bytes(Bytes::new())),
                ..Default::default()
            };
            if p.partition != 0 {
                pd.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
                partitions.push(pd);
                continue;
            }
            pd.high_watermark = sink.log_end;
            pd.last_stable_offset = sink.log_end;
            pd.log_start_offset = 0;
            let max = usize::try_from(p.partition_max_bytes)
                .unwrap_or(0)
                .min(budget);
            let data = sink.template.serve(p.fetch_offset, max, sink.log_end)?;
            if !data.is_empty() {
                budget = budget.saturating_sub(data.len());
                let len = u32::try_from(data.len())
                    .map_err(|_| EncodeError::LengthOverflow(data.len()))?;
                pd.records = Some(Records::Region {
                    id: records.len() as u64,
                    len,
                });
                records.push(data);
            }
            partitions.push(pd);
        }
        responses.push(FetchableTopicResponse {
            topic: t.topic,
            topic_id: t.topic_id,
            partitions,
            ..Default::default()
        });
    }
    let resp = FetchResponse {
        responses,
        ..Default::default()
    };
    let chunks = encode(header, ApiKey::Fetch, &resp, &records)?;
    if records.is_empty() && req.max_wait_ms > 0 {
        let mut response = BytesMut::new();
        for c in chunks {
            response.extend_from_slice(&c);
        }
        return Ok(Some(Delayed {
            duration: Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)),
            response: response.freeze(),
        }));
    }
    for c in chunks {
        out.push(c);
    }
    Ok(None)
}
