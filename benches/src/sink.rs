//! A loopback *sink* broker: the ceiling for the end-to-end benchmark.
//!
//! It speaks just enough of the Kafka protocol for librdkafka to produce to it and
//! consume from it, and does no storage work at all, so a client talking to it is
//! limited by its own cost (and the loopback socket), not by the broker:
//!
//! - ApiVersions: the versions brook advertises ([`brook_protocol::SUPPORTED_APIS`])
//!   for the APIs served here, so librdkafka picks the same request versions it
//!   picks against brook.
//! - Metadata: every requested topic exists with one partition led by the sink.
//! - InitProducerId: a fixed producer id, so idempotent producers work.
//! - FindCoordinator: the sink itself (librdkafka's `assign` needs a `group.id`,
//!   and a consumer with one looks up its coordinator even if it never commits).
//! - Produce: acknowledged with success and a fake, increasing base offset; the
//!   records are never looked at beyond the batch headers (for the count).
//! - Fetch: one pre-built batch ([`FetchTemplate`]) repeated, its base offsets
//!   patched for the requested position, up to the partition's `max_bytes`; the log
//!   has [`SinkConfig::log_records`] records, and a fetch at its end waits
//!   `max_wait_ms` as a real broker's long poll would.
//!
//! Anything else closes the connection and is reported through the error callback
//! given to [`serve`]: the benchmark must not silently measure an error path.
//!
//! Concurrency: one task per connection; requests are answered in order, as Kafka
//! requires. The only shared mutable state is the produce offset counter (atomic).
//! Nothing is written to disk, so a crash loses nothing.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::api::{ApiKey, SUPPORTED_APIS};
use brook_protocol::codec::{Chunk, DecodeError, EncodeError, Encoder, Message, Records, Uuid};
use brook_protocol::error::ErrorCode;
use brook_protocol::frame::{FrameDecoder, FrameError, DEFAULT_MAX_FRAME};
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
use brook_protocol::records::header::{set_base_offset, BatchIter};
use brook_protocol::records::{BatchBuilder, Compression, RecordError};
use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The sink's node id, reported in Metadata.
const NODE_ID: i32 = 1;
/// The producer id handed to idempotent producers.
const PRODUCER_ID: i64 = 4242;
/// Read at least this much per socket read: produce requests are up to ~1 MB.
const READ_CHUNK: usize = 256 * 1024;
/// Responses smaller than this are coalesced into one write.
const COALESCE: usize = 64 * 1024;
/// APIs the sink answers (everything else closes the connection).
const SERVED: [ApiKey; 6] = [
    ApiKey::Produce,
    ApiKey::FindCoordinator,
    ApiKey::Fetch,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::InitProducerId,
];

/// Why a sink connection ended early, or why the sink could not start.
#[derive(Debug, Error)]
pub enum SinkError {
    #[error("socket i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    #[error("decoding a request: {0}")]
    Decode(#[from] DecodeError),
    #[error("encoding a response: {0}")]
    Encode(#[from] EncodeError),
    #[error("building the fetch template: {0}")]
    Record(#[from] RecordError),
    #[error("the sink does not serve api key {key} version {version}")]
    Unsupported { key: i16, version: i16 },
    #[error("invalid sink configuration: {0}")]
    Config(&'static str),
}

/// What the sink serves.
#[derive(Debug, Clone, Copy)]
pub struct SinkConfig {
    /// Value size of the records served by Fetch (no key, no headers).
    pub record_size: usize,
    /// Records in the (virtual) partition log that Fetch serves; the high-water mark.
    /// Rounded up to whole template batches.
    pub log_records: i64,
    /// Target size of each served batch (records per batch are derived from it).
    pub batch_bytes: usize,
}

/// One pre-built record batch, served repeatedly with patched base offsets.
#[derive(Debug, Clone)]
pub struct FetchTemplate {
    batch: Bytes,
    records_per_batch: i64,
}

impl FetchTemplate {
    /// Build a batch of as many `record_size`-byte records as fit `batch_bytes`
    /// (at least one), stamped with the current time.
    ///
    /// # Errors
    /// [`SinkError::Record`] if the batch cannot be encoded.
    pub fn build(record_size: usize, batch_bytes: usize) -> Result<Self, SinkError> {
        let value = payload(record_size);
        let now = now_ms();
        let mut b = BatchBuilder::new();
        b.append(now, None, Some(&value), &[])?;
        while b.estimated_size() + b.size_of_next(now, None, Some(&value), &[])? <= batch_bytes {
            b.append(now, None, Some(&value), &[])?;
        }
        Ok(Self {
            records_per_batch: i64::from(b.record_count()),
            batch: b.build(Compression::None)?,
        })
    }

    /// Records in each served batch.
    pub fn records_per_batch(&self) -> i64 {
        self.records_per_batch
    }

    /// Bytes of each served batch.
    pub fn batch_len(&self) -> usize {
        self.batch.len()
    }

    /// Whole batches starting at `offset`, at most `max_bytes` of them (but at least
    /// one, as Kafka returns an oversized first batch), none starting at or past
    /// `log_end`. Returns the record set, empty when `offset >= log_end`.
    pub fn serve(&self, offset: i64, max_bytes: usize, log_end: i64) -> Result<Bytes, SinkError> {
        if offset >= log_end {
            return Ok(Bytes::new());
        }
        let by_size = (max_bytes / self.batch.len()).max(1);
        let remaining = (log_end - offset + self.records_per_batch - 1) / self.records_per_batch;
        let n = by_size.min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let mut out = BytesMut::with_capacity(n * self.batch.len());
        for i in 0..n {
            let at = out.len();
            out.extend_from_slice(&self.batch);
            // `i < n <= remaining`, which came from an i64: no overflow.
            let base = offset + self.records_per_batch * i as i64;
            set_base_offset(&mut out[at..], base).map_err(|_| SinkError::Config("bad template"))?;
        }
        Ok(out.freeze())
    }
}

/// The deterministic value bytes of every benchmark record of `size` bytes.
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

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

/// Shared state of one sink.
#[derive(Debug)]
pub struct Sink {
    template: FetchTemplate,
    log_end: i64,
    next_offset: AtomicI64,
}

impl Sink {
    /// # Errors
    /// [`SinkError::Config`] for zero sizes or a negative log length;
    /// [`SinkError::Record`] if the template cannot be built.
    pub fn new(cfg: SinkConfig) -> Result<Self, SinkError> {
        if cfg.record_size == 0 || cfg.batch_bytes == 0 {
            return Err(SinkError::Config("record_size and batch_bytes must be > 0"));
        }
        if cfg.log_records < 0 {
            return Err(SinkError::Config("log_records must be >= 0"));
        }
        let template = FetchTemplate::build(cfg.record_size, cfg.batch_bytes)?;
        let per = template.records_per_batch();
        let log_end = (cfg.log_records + per - 1) / per * per;
        Ok(Self {
            template,
            log_end,
            next_offset: AtomicI64::new(0),
        })
    }

    /// The template Fetch serves.
    pub fn template(&self) -> &FetchTemplate {
        &self.template
    }

    /// The high-water mark Fetch reports.
    pub fn log_end(&self) -> i64 {
        self.log_end
    }
}

/// Accept connections on `listener` forever, one task each; a connection that
/// fails is reported to `on_error` and closed.
///
/// # Errors
/// Only when `accept` itself fails.
pub async fn serve<F>(listener: TcpListener, sink: Arc<Sink>, on_error: F) -> Result<(), SinkError>
where
    F: Fn(SinkError) + Clone + Send + 'static,
{
    let advertised = listener.local_addr()?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let sink = sink.clone();
        let on_error = on_error.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, advertised, &sink).await {
                on_error(e);
            }
        });
    }
}

/// Output queue of one connection: small responses are coalesced, large record
/// sets are queued as they are (no copy).
#[derive(Default)]
struct Out {
    small: BytesMut,
    queue: Vec<Bytes>,
}

impl Out {
    fn push(&mut self, b: Bytes) {
        if b.len() < COALESCE {
            self.small.extend_from_slice(&b);
        } else {
            self.flush_small();
            self.queue.push(b);
        }
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.queue.push(self.small.split().freeze());
        }
    }

    async fn write_to(&mut self, stream: &mut TcpStream) -> Result<(), SinkError> {
        self.flush_small();
        for b in self.queue.drain(..) {
            stream.write_all(&b).await?;
        }
        Ok(())
    }
}

async fn connection(
    mut stream: TcpStream,
    advertised: std::net::SocketAddr,
    sink: &Sink,
) -> Result<(), SinkError> {
    let mut frames = FrameDecoder::new(DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Out::default();
    loop {
        while let Some(frame) = frames.decode(&mut buf)? {
            if let Some(wait) = handle(frame, advertised, sink, &mut out)? {
                // A fetch at the end of the log: long-poll like a broker would, so
                // the client does not spin. Earlier responses go out first.
                out.write_to(&mut stream).await?;
                tokio::time::sleep(wait.duration).await;
                out.push(wait.response);
            }
        }
        out.write_to(&mut stream).await?;
        buf.reserve(READ_CHUNK);
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// A response to send only after `duration`.
struct Delayed {
    duration: Duration,
    response: Bytes,
}

fn handle(
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
            if req.acks != 0 {
                respond(&header, key, &produce(req, sink), out)?;
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

fn produce(req: ProduceRequest, sink: &Sink) -> ProduceResponse {
    let responses = req
        .topic_data
        .into_iter()
        .map(|t| TopicProduceResponse {
            name: t.name,
            partition_responses: t
                .partition_data
                .into_iter()
                .map(|p| {
                    let count: i64 = match &p.records {
                        Some(Records::Bytes(b)) => BatchIter::new(b)
                            .map(|(_, h)| i64::from(h.record_count()))
                            .sum(),
                        _ => 0,
                    };
                    PartitionProduceResponse {
                        index: p.index,
                        base_offset: sink.next_offset.fetch_add(count, Ordering::Relaxed),
                        log_append_time_ms: -1,
                        log_start_offset: 0,
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    ProduceResponse {
        responses,
        ..Default::default()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::records::decode_batches;

    #[test]
    fn template_serves_contiguous_offsets_up_to_the_log_end(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let t = FetchTemplate::build(100, 4096)?;
        let per = t.records_per_batch();
        assert!(per > 1 && t.batch_len() <= 4096);
        let data = t.serve(7, 3 * t.batch_len(), 1_000)?;
        let mut expected = 7;
        let mut batches = 0;
        for batch in decode_batches(&data, 1 << 24) {
            let batch = batch?;
            assert_eq!(batch.base_offset(), expected);
            for r in batch.records() {
                let r = r?;
                assert_eq!(r.offset, expected);
                assert_eq!(r.value.as_deref().map(<[u8]>::len), Some(100));
                expected += 1;
            }
            batches += 1;
        }
        assert_eq!(batches, 3);
        assert_eq!(expected, 7 + 3 * per);
        // Never past the log end, and always at least one batch.
        assert_eq!(t.serve(1_000, 1 << 20, 1_000)?.len(), 0);
        assert_eq!(t.serve(0, 1, 1_000)?.len(), t.batch_len());
        Ok(())
    }
}
