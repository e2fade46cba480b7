//! One pipelined connection to one broker.
//!
//! Requests are encoded by the caller's task and handed to a writer task, which
//! coalesces whatever is queued into one write. Before writing a request that
//! expects a response, the writer passes its [`Pending`] entry (correlation id,
//! reply channel, deadline) to the reader task, so the reader always knows the
//! request a response belongs to before the response can arrive. Kafka brokers
//! answer in request order on a connection, so the reader matches each frame
//! with the oldest pending entry and checks the correlation id; a mismatch is a
//! protocol error that closes the connection.
//!
//! Failure behaviour: any I/O error, protocol error or a response later than
//! `request.timeout.ms` closes the connection (as the Java client does); every
//! request still pending fails with [`Error::Disconnected`] — whether it took
//! effect is unknown, which is what the idempotent producer's sequences resolve.
//! A closed connection is never reused; [`super::Client`] opens a new one.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::api::{self, ApiKey};
use brook_protocol::codec::{Encoder, Message, Request};
use brook_protocol::error::ErrorCode;
use brook_protocol::frame::FrameDecoder;
use brook_protocol::header::{
    request_header_version, response_header_version, RequestHeader, ResponseHeader,
};
use brook_protocol::messages::api_versions_request::ApiVersionsRequest;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Largest response frame accepted (fetch responses are bounded by
/// `fetch.max.bytes`, 50 MiB by default).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;
/// Queued requests the writer accepts before senders wait.
const QUEUE: usize = 1024;

/// Highest version this client implements per API. Fetch stops at 12 and
/// OffsetFetch at 7 because later versions address topics by id or batch
/// groups, which this client does not use.
fn client_max(key: ApiKey) -> i16 {
    match key {
        ApiKey::Fetch => 12,
        ApiKey::OffsetFetch => 7,
        _ => i16::MAX,
    }
}

/// Lowest version this client implements per API (record batch v2 needs
/// Produce v3 and Fetch v4).
fn client_min(key: ApiKey) -> i16 {
    match key {
        ApiKey::Produce => 3,
        ApiKey::Fetch => 4,
        _ => 0,
    }
}

/// A response frame (header included) or why there is none.
pub type Reply = Result<Bytes>;

/// Where a response goes.
#[derive(Debug)]
pub enum ReplyTo {
    /// A one-shot waiter.
    Once(oneshot::Sender<Reply>),
    /// A long-lived channel (the producer's sender, the consumer's fetcher),
    /// with the caller's tag. Responses of one connection arrive in request order.
    Tagged(mpsc::UnboundedSender<(u64, Reply)>, u64),
}

impl ReplyTo {
    fn send(self, reply: Reply) {
        // A receiver that went away no longer cares; nothing to do.
        match self {
            ReplyTo::Once(tx) => {
                let _ = tx.send(reply);
            }
            ReplyTo::Tagged(tx, tag) => {
                let _ = tx.send((tag, reply));
            }
        }
    }
}

struct Outgoing {
    bytes: Bytes,
    correlation: i32,
    /// `false` for acks=0 produce requests, which get no response: the reply
    /// is sent as soon as the bytes are written.
    expects_response: bool,
    reply: ReplyTo,
}

struct Pending {
    correlation: i32,
    deadline: Instant,
    reply: ReplyTo,
}

/// A live connection; cheap to share (`Arc`).
pub struct Connection {
    addr: String,
    client_id: Option<String>,
    correlation: AtomicI32,
    tx: mpsc::Sender<Outgoing>,
    closed: Arc<Closed>,
    versions: HashMap<i16, (i16, i16)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Closed {
    flag: AtomicBool,
    notify: Notify,
    reason: std::sync::Mutex<String>,
}

impl Closed {
    fn close(&self, reason: String) {
        if !self.flag.swap(true, Ordering::SeqCst) {
            if let Ok(mut r) = self.reason.lock() {
                *r = reason;
            }
        }
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
    fn reason(&self) -> String {
        self.reason.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Connection {
    /// Connects to `addr`, starts the reader and writer tasks and negotiates API
    /// versions.
    ///
    /// # Errors
    /// [`Error::Connect`] if the TCP connection or the ApiVersions exchange fails.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Arc<Self>> {
        let connect_err = |reason: String| Error::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(format!("no answer within {connect_timeout:?}")))?
            .map_err(|e| connect_err(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| connect_err(e.to_string()))?;
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::channel(QUEUE);
        let (ptx, prx) = mpsc::unbounded_channel();
        let closed = Arc::new(Closed::default());
        tokio::spawn(writer(
            write,
            rx,
            ptx,
            closed.clone(),
            addr.to_owned(),
            request_timeout,
        ));
        tokio::spawn(reader(read, prx, closed.clone(), addr.to_owned()));
        let mut conn = Self {
            addr: addr.to_owned(),
            client_id: (!client_id.is_empty()).then(|| client_id.to_owned()),
            correlation: AtomicI32::new(0),
            tx,
            closed,
            versions: HashMap::new(),
        };
        conn.versions = conn
            .negotiate()
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        Ok(Arc::new(conn))
    }

    async fn negotiate(&self) -> Result<HashMap<i16, (i16, i16)>> {
        let req = ApiVersionsRequest {
            client_software_name: "brook-rust".to_owned(),
            client_software_version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Default::default()
        };
        let mut resp = self.request_version(&req, 3).await?;
        if ErrorCode::from_i16(resp.error_code) == ErrorCode::UNSUPPORTED_VERSION {
            resp = self.request_version(&req, 0).await?;
        }
        let code = ErrorCode::from_i16(resp.error_code);
        if !code.is_ok() {
            return Err(Error::broker(code, "ApiVersions"));
        }
        Ok(resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect())
    }

    /// The broker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection has failed; a closed connection fails every request.
    pub fn is_closed(&self) -> bool {
        self.closed.flag.load(Ordering::SeqCst)
    }

    /// Waits until the connection closes.
    pub async fn closed(&self) {
        loop {
            let n = self.closed.notify.notified();
            if self.is_closed() {
                return;
            }
            n.await;
        }
    }

    /// The highest version of `key` both sides support.
    ///
    /// # Errors
    /// [`Error::UnsupportedApi`] when the ranges do not overlap.
    pub fn version(&self, key: ApiKey) -> Result<i16> {
        let unsupported = || Error::UnsupportedApi {
            addr: self.addr.clone(),
            api: key.name(),
        };
        let ours = api::schema(key).ok_or_else(unsupported)?;
        let (their_min, their_max) = *self.versions.get(&key.as_i16()).ok_or_else(unsupported)?;
        let max = ours.max.min(their_max).min(client_max(key));
        let min = ours.min.max(their_min).max(client_min(key));
        if max < min {
            return Err(unsupported());
        }
        Ok(max)
    }

    fn encode<R: Request>(&self, req: &R, version: i16) -> Result<(i32, Bytes)> {
        let correlation = self
            .correlation
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        let header = RequestHeader {
            api_key: R::KEY.as_i16(),
            api_version: version,
            correlation_id: correlation,
            client_id: self.client_id.clone(),
            unknown_tagged_fields: Vec::new(),
        };
        debug_assert_eq!(
            header.header_version(),
            request_header_version(R::KEY, version)
        );
        let enc = || -> std::result::Result<Bytes, brook_protocol::EncodeError> {
            let mut e = Encoder::with_capacity(64 + req.encoded_size(version)?);
            let prefix = e.reserve_length_prefix();
            header.encode(&mut e)?;
            req.encode(&mut e, version)?;
            e.patch_length_prefix(prefix)?;
            e.into_bytes()
        };
        let bytes = enc().map_err(|e| Error::Encode(e.to_string()))?;
        Ok((correlation, bytes))
    }

    async fn enqueue(
        &self,
        bytes: Bytes,
        correlation: i32,
        expects_response: bool,
        reply: ReplyTo,
    ) -> Result<()> {
        if self.is_closed() {
            return Err(self.disconnected());
        }
        let out = Outgoing {
            bytes,
            correlation,
            expects_response,
            reply,
        };
        self.tx.send(out).await.map_err(|_| self.disconnected())
    }

    fn disconnected(&self) -> Error {
        Error::Disconnected {
            addr: self.addr.clone(),
            reason: self.closed.reason(),
        }
    }

    /// Sends `req` at `version` and waits for the response.
    ///
    /// # Errors
    /// Connection, timeout or decode errors.
    pub async fn request_version<R: Request>(&self, req: &R, version: i16) -> Result<R::Response> {
        let (correlation, bytes) = self.encode(req, version)?;
        let (tx, rx) = oneshot::channel();
        self.enqueue(bytes, correlation, true, ReplyTo::Once(tx))
            .await?;
        let frame = rx.await.map_err(|_| self.disconnected())??;
        self.decode::<R>(frame, version)
    }

    /// Sends `req` at the negotiated version and waits for the response.
    ///
    /// # Errors
    /// As [`Connection::request_version`], or [`Error::UnsupportedApi`].
    pub async fn request<R: Request>(&self, req: &R) -> Result<R::Response> {
        let version = self.version(R::KEY)?;
        self.request_version(req, version).await
    }

    /// Sends `req` at `version`; the response frame goes to `reply`. With
    /// `expects_response == false` (acks=0 produce) `reply` gets an empty frame
    /// once the request is written.
    ///
    /// # Errors
    /// Encode errors, or [`Error::Disconnected`] if the connection is closed.
    pub async fn send<R: Request>(
        &self,
        req: &R,
        version: i16,
        expects_response: bool,
        reply: ReplyTo,
    ) -> Result<()> {
        let (correlation, bytes) = self.encode(req, version)?;
        self.enqueue(bytes, correlation, expects_response, reply)
            .await
    }

    /// Decodes a response frame of `R` at `version`.
    ///
    /// # Errors
    /// [`Error::Protocol`] for malformed bytes.
    pub fn decode<R: Request>(&self, mut frame: Bytes, version: i16) -> Result<R::Response> {
        let proto = |e: brook_protocol::DecodeError| Error::Protocol {
            addr: self.addr.clone(),
            reason: format!("{} v{version}: {e}", R::KEY.name()),
        };
        ResponseHeader::decode(&mut frame, response_header_version(R::KEY, version))
            .map_err(proto)?;
        R::Response::decode(&mut frame, version).map_err(proto)
    }

    /// Closes the connection; pending requests fail.
    pub fn close(&self, reason: &str) {
        self.closed.close(reason.to_owned());
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.closed.close("connection dropped".to_owned());
    }
}

async fn writer(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    pending: mpsc::UnboundedSender<Pending>,
    closed: Arc<Closed>,
    addr: String,
    request_timeout: Duration,
) {
    let mut batch: Vec<Outgoing> = Vec::new();
    let mut buf = BytesMut::new();
    let mut acked: Vec<ReplyTo> = Vec::new();
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            () = wait_closed(&closed) => None,
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        buf.clear();
        let deadline = Instant::now() + request_timeout;
        for m in batch.drain(..) {
            if closed.flag.load(Ordering::SeqCst) {
                m.reply.send(Err(Error::Disconnected {
                    addr: addr.clone(),
                    reason: closed.reason(),
                }));
                continue;
            }
            if buf.is_empty() && m.bytes.len() > 64 * 1024 {
                // Large requests are written directly rather than copied.
                if !m.expects_response {
                    acked.push(m.reply);
                } else if let Err(p) = pending.send(Pending {
                    correlation: m.correlation,
                    deadline,
                    reply: m.reply,
                }) {
                    p.0.reply.send(Err(Error::Disconnected {
                        addr: addr.clone(),
                        reason: closed.reason(),
                    }));
                    continue;
                }
                if let Err(e) = w.write_all(&m.bytes).await {
                    closed.close(format!("write failed: {e}"));
                }
                continue;
            }
            buf.extend_from_slice(&m.bytes);
            if !m.expects_response {
                acked.push(m.reply);
            } else if let Err(p) = pending.send(Pending {
                correlation: m.correlation,
                deadline,
                reply: m.reply,
            }) {
                p.0.reply.send(Err(Error::Disconnected {
                    addr: addr.clone(),
                    reason: closed.reason(),
                }));
            }
        }
        if !buf.is_empty() {
            if let Err(e) = w.write_all(&buf).await {
                closed.close(format!("write failed: {e}"));
            }
        }
        let ok = !closed.flag.load(Ordering::SeqCst);
        for r in acked.drain(..) {
            r.send(if ok {
                Ok(Bytes::new())
            } else {
                Err(Error::Disconnected {
                    addr: addr.clone(),
                    reason: closed.reason(),
                })
            });
        }
    }
    rx.close();
    while let Ok(m) = rx.try_recv() {
        m.reply.send(Err(Error::Disconnected {
            addr: addr.clone(),
            reason: closed.reason(),
        }));
    }
    let _ = w.shutdown().await;
}

async fn wait_closed(closed: &Closed) {
    loop {
        let n = closed.notify.notified();
        if closed.flag.load(Ordering::SeqCst) {
            return;
        }
        n.await;
    }
}

async fn reader(
    mut r: OwnedReadHalf,
    mut prx: mpsc::UnboundedReceiver<Pending>,
    closed: Arc<Closed>,
    addr: String,
) {
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut frames = FrameDecoder::new(MAX_RESPONSE);
    let reason = 'conn: loop {
        loop {
            match frames.decode(&mut buf) {
                Ok(Some(frame)) => {
                    while let Ok(p) = prx.try_recv() {
                        queue.push_back(p);
                    }
                    let Some(p) = queue.pop_front() else {
                        break 'conn "response without a request".to_owned();
                    };
                    let corr = frame
                        .get(..4)
                        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    if corr != Some(p.correlation) {
                        let msg = format!(
                            "correlation id {corr:?} does not match request {}",
                            p.correlation
                        );
                        p.reply.send(Err(Error::Protocol {
                            addr: addr.clone(),
                            reason: msg.clone(),
                        }));
                        break 'conn msg;
                    }
                    p.reply.send(Ok(frame));
                }
                Ok(None) => break,
                Err(e) => break 'conn format!("bad frame: {e}"),
            }
        }
        let deadline = queue.front().map(|p| p.deadline);
        tokio::select! {
            n = r.read_buf(&mut buf) => match n {
                Ok(0) => break 'conn "closed by broker".to_owned(),
                Ok(_) => {}
                Err(e) => break 'conn format!("read failed: {e}"),
            },
            p = prx.recv() => match p {
                Some(p) => queue.push_back(p),
                None => break 'conn closed.reason(),
            },
            () = sleep_until_opt(deadline) => break 'conn "request timed out (request.timeout.ms)".to_owned(),
            () = wait_closed(&closed) => break 'conn closed.reason(),
        }
    };
    closed.close(reason.clone());
    prx.close();
    while let Ok(p) = prx.try_recv() {
        queue.push_back(p);
    }
    for p in queue {
        p.reply.send(Err(Error::Disconnected {
            addr: addr.clone(),
            reason: reason.clone(),
        }));
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
