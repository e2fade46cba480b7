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
//! Nothing is written to disk, so a crash loses nothing; unless the sink is
//! built with a [`Store`] (`e2e sink --store-dir`), which appends every produced
//! record set to a file and syncs it: the *storing sink*, whose figure is the
//! ceiling for any broker that keeps its records (see [`store`]).

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use brook_protocol::codec::{DecodeError, EncodeError};
use brook_protocol::frame::{FrameDecoder, FrameError, DEFAULT_MAX_FRAME};
use brook_protocol::records::header::set_base_offset;
use brook_protocol::records::{BatchBuilder, Compression, RecordError};
use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod handlers;
pub mod store;

use handlers::handle;
pub use store::Store;

/// Read at least this much per socket read: produce requests are up to ~1 MB.
const READ_CHUNK: usize = 256 * 1024;
/// Responses smaller than this are coalesced into one write.
const COALESCE: usize = 64 * 1024;

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

/// Shared state of one sink.
#[derive(Debug)]
pub struct Sink {
    template: FetchTemplate,
    log_end: i64,
    next_offset: AtomicI64,
    store: Option<Arc<Store>>,
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
            store: None,
        })
    }

    /// The storing sink: the same, with every produced record set appended to
    /// `store` (acks=all answered after an `fdatasync` covering it).
    ///
    /// # Errors
    /// As [`Sink::new`].
    pub fn storing(cfg: SinkConfig, store: Arc<Store>) -> Result<Self, SinkError> {
        Ok(Self {
            store: Some(store),
            ..Self::new(cfg)?
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
    /// Store position the queued responses wait for: acks=all produce
    /// answers go out only once it is durable.
    sync_to: Option<u64>,
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

    fn is_empty(&self) -> bool {
        self.small.is_empty() && self.queue.is_empty()
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.queue.push(self.small.split().freeze());
        }
    }

    async fn write_to<W: AsyncWriteExt + Unpin>(
        &mut self,
        stream: &mut W,
    ) -> Result<(), SinkError> {
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
    if let Some(store) = &sink.store {
        return storing_connection(stream, advertised, sink, store).await;
    }
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

/// Responses of the storing sink on their way to the writer half.
struct Pending {
    /// Store position they wait for (acks=all), if any.
    sync_to: Option<u64>,
    /// A long-poll's wait before they go out.
    delay: Option<std::time::Duration>,
    out: Out,
}

/// The storing sink's connection: the reader half keeps reading and storing
/// while the writer half holds each answer back until the flusher's sync
/// covers what it acknowledges, as a broker with group commit does. At most
/// [`PENDING_MAX`] batches of answers wait; the reader then waits too.
async fn storing_connection(
    stream: TcpStream,
    advertised: std::net::SocketAddr,
    sink: &Sink,
    store: &Store,
) -> Result<(), SinkError> {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Pending>(PENDING_MAX);
    let writer = async move {
        while let Some(mut p) = rx.recv().await {
            if let Some(end) = p.sync_to {
                store.synced(end).await?;
            }
            if let Some(d) = p.delay {
                tokio::time::sleep(d).await;
            }
            p.out.write_to(&mut wr).await?;
        }
        Ok::<(), SinkError>(())
    };
    let reader = async move {
        let mut frames = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            let mut out = Out::default();
            while let Some(frame) = frames.decode(&mut buf)? {
                if let Some(wait) = handle(frame, advertised, sink, &mut out)? {
                    let sync_to = out.sync_to.take();
                    let before = std::mem::take(&mut out);
                    let sent = tx.send(Pending {
                        sync_to,
                        delay: None,
                        out: before,
                    });
                    sent.await.map_err(|_| closed())?;
                    out.push(wait.response);
                    let delayed = std::mem::take(&mut out);
                    let sent = tx.send(Pending {
                        sync_to: None,
                        delay: Some(wait.duration),
                        out: delayed,
                    });
                    sent.await.map_err(|_| closed())?;
                }
            }
            let sync_to = out.sync_to.take();
            if sync_to.is_some() || !out.is_empty() {
                let sent = tx.send(Pending {
                    sync_to,
                    delay: None,
                    out,
                });
                sent.await.map_err(|_| closed())?;
            }
            buf.reserve(READ_CHUNK);
            if rd.read_buf(&mut buf).await? == 0 {
                return Ok::<(), SinkError>(());
            }
        }
    };
    // The reader ends first on a clean close; the writer then drains what is
    // queued and ends when the channel closes. When the writer fails, the
    // reader's error is only that its queue closed: report the writer's.
    let (r, w) = tokio::join!(reader, writer);
    w.and(r)
}

/// Batches of answers the storing sink's reader may queue for its writer.
const PENDING_MAX: usize = 64;

fn closed() -> SinkError {
    SinkError::Io(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the connection's writer ended",
    ))
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

    /// The storing sink keeps what an acks=all producer sends: every record
    /// set in its file, in order, synced by the time the last answer arrived.
    #[test]
    fn the_storing_sink_keeps_what_it_acknowledges() -> Result<(), Box<dyn std::error::Error>> {
        use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
        use rdkafka::ClientConfig;

        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path(), false)?;
        let cfg = SinkConfig {
            record_size: 10,
            log_records: 0,
            batch_bytes: 1000,
        };
        let sink = Arc::new(Sink::storing(cfg, Arc::clone(&store))?);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let server = std::thread::spawn(move || {
            rt.block_on(async {
                let serving = serve(listener, sink, |e| panic!("sink connection failed: {e}"));
                // Serve until the test's producer is done (the thread is detached).
                let _ = serving.await;
            });
        });
        drop(server);
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", addr.to_string())
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()?;
        let values: Vec<String> = (0..20).map(|i| format!("stored-{i:03}")).collect();
        for v in &values {
            producer
                .send(BaseRecord::<(), str>::to("t").partition(0).payload(v))
                .map_err(|(e, _)| e)?;
        }
        rdkafka::producer::Producer::flush(&producer, std::time::Duration::from_secs(30))?;
        // Every delivery succeeded (flush returned); the last answer waited
        // for a sync covering everything stored before it.
        let synced = store.synced_len();
        assert!(
            synced >= store.len() && !store.is_empty(),
            "answered before synced"
        );
        let file = Bytes::from(std::fs::read(dir.path().join("store.log"))?);
        let mut seen = Vec::new();
        for batch in decode_batches(&file, 1 << 24) {
            for r in batch?.records() {
                let value = r?.value.map(|v| String::from_utf8_lossy(&v).into_owned());
                seen.push(value.unwrap_or_default());
            }
        }
        assert_eq!(
            seen, values,
            "the store holds other records than were produced"
        );
        Ok(())
    }
}
