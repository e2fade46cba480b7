//! One client connection: read length-prefixed frames, dispatch each request in
//! arrival order, and write the responses in the same order (Kafka clients
//! pipeline requests and match responses by order as well as correlation id).
//!
//! Requests are *applied* in order by the reader task (so two pipelined produce
//! requests for one partition append in order), but a request may finish later
//! (an `acks=all` produce waiting for fsync, a fetch long-poll): its response is a
//! pending task that the writer task awaits in order. At most
//! `max.inflight.requests.per.connection` responses are outstanding; beyond that
//! the reader stops reading, which pushes back on the client through TCP.
//!
//! Request bytes across all connections are bounded by [`RequestBudget`]
//! (`queued.max.request.bytes`): a connection whose next frame does not fit
//! stops reading until it does.
//!
//! A client over one of its quotas mutes the connection: the reader takes no
//! further request until the throttle delay ends (Kafka mutes the channel).
//!
//! When the client goes away (end of stream, a read or write error, a protocol
//! error) the connection's [`Closed`] signal fires: pending long-poll fetches stop
//! waiting at once instead of holding their task, and the connection's slot,
//! until `max_wait_ms`. Graceful shutdown does not fire it (in-flight requests
//! finish). A reader paused at the in-flight cap does not read, but still
//! watches (peeking) for the client's end of stream.
//!
//! The reader yields after each request, so a connection with a backlog of
//! requests (a producer flood) takes one request per scheduler turn like every
//! other connection on its worker thread.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::frame::FrameDecoder;
use brook_protocol::header::RequestHeader;
use bytes::{Bytes, BytesMut};
use nix::sys::socket::MsgFlags;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::debug;

use super::writer::{write_frame, Frame};
use crate::broker::Broker;
use crate::handlers;

/// A response the writer awaits.
pub type PendingFrame = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Frame>> + Send>>;

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ready(frame) => f.debug_tuple("Ready").field(frame).finish(),
            Self::Pending(_) => f.write_str("Pending"),
            Self::None => f.write_str("None"),
            Self::Close => f.write_str("Close"),
        }
    }
}

impl Reply {
    /// Produce the response in a task of its own, started now.
    pub fn spawn(fut: impl std::future::Future<Output = Option<Frame>> + Send + 'static) -> Self {
        Self::from_task(tokio::spawn(fut))
    }

    /// A response a task produces (a panicked task closes the connection).
    pub fn from_task(task: JoinHandle<Option<Frame>>) -> Self {
        Self::Pending(Box::pin(async move { task.await.ok().flatten() }))
    }
}

/// What the writer task gets for each request, in request order.
pub enum Reply {
    /// A response ready to write.
    Ready(Frame),
    /// A response still being produced: the writer awaits it in turn
    /// (`None`: it could not be encoded, close). Work that must go on
    /// whether or not the writer has got to it yet (a long-poll, an acks=all
    /// wait) runs in a task of its own, which [`Reply::spawn`] wraps; what
    /// only finishes a response (metrics, a quota delay) is chained onto the
    /// future without another task.
    Pending(PendingFrame),
    /// No response (produce with acks=0).
    None,
    /// Close the connection after the replies before this one are written.
    Close,
}

/// The broker-wide budget of request bytes being read or handled
/// (`queued.max.request.bytes`). A connection takes its next request's size
/// from it as soon as the size prefix has arrived (at most the whole budget, so
/// one large frame cannot wait forever) and gives it back once the request has
/// been handled. A connection that finds the budget spent stops reading until
/// it is not, and TCP pushes back on its client (Kafka's memory pool mutes the
/// channel the same way). With a share the whole frame is allocated at once;
/// without a budget, up to [`UNBUDGETED_RESERVE`] of it.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    bytes: Option<(Arc<Semaphore>, usize)>,
}

impl RequestBudget {
    /// A budget of `bytes`; zero or negative is unbounded.
    pub fn new(bytes: i64) -> Self {
        let bytes = usize::try_from(bytes)
            .ok()
            .filter(|b| *b > 0)
            .map(|b| b.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize));
        Self {
            bytes: bytes.map(|b| (Arc::new(Semaphore::new(b)), b)),
        }
    }

    /// Wait for a share of `size` bytes (capped at the whole budget).
    async fn take(&self, size: usize) -> Option<Share> {
        let (sem, total) = self.bytes.as_ref()?;
        let n = u32::try_from(size.clamp(1, *total)).unwrap_or(u32::MAX);
        let permit = sem.clone().acquire_many_owned(n).await.ok()?;
        crate::metrics::request_bytes_queued(f64::from(n));
        Some(Share {
            _permit: permit,
            bytes: n,
        })
    }

    /// Bytes of the budget not taken (`None` when unbounded).
    pub fn available(&self) -> Option<usize> {
        self.bytes.as_ref().map(|(sem, _)| sem.available_permits())
    }
}

/// A connection's share of the [`RequestBudget`], given back on drop.
#[derive(Debug)]
struct Share {
    _permit: OwnedSemaphorePermit,
    bytes: u32,
}

impl Drop for Share {
    fn drop(&mut self) {
        crate::metrics::request_bytes_queued(-f64::from(self.bytes));
    }
}

/// Fires once the connection's client is gone; handlers whose response waits
/// (a fetch long-poll) select on [`Closed::wait`] and give up, since nobody is
/// left to read the answer.
#[derive(Debug, Clone)]
pub struct Closed(watch::Receiver<bool>);

impl Closed {
    /// A signal and its trigger (`send_replace(true)` fires it).
    pub fn new() -> (Arc<watch::Sender<bool>>, Self) {
        let (tx, rx) = watch::channel(false);
        (Arc::new(tx), Self(rx))
    }

    /// Resolve once the client is gone (or the connection's state is dropped).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|closed| *closed).await;
    }
}

/// Serve one connection until the client closes it, an error occurs, it idles
/// out, or the broker shuts down.
pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    budget: RequestBudget,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = broker.config();
    let max_frame = config.socket_request_max_bytes as usize;
    let idle = Duration::from_millis(
        u64::try_from(config.connections_max_idle_ms)
            .unwrap_or(u64::MAX)
            .max(1),
    );
    let inflight = (config.max_inflight_requests_per_connection as usize).max(1);
    crate::metrics::connection_opened();
    let stream = Arc::new(stream);
    let (tx, rx) = mpsc::channel::<Reply>(inflight);
    let (fire, closed) = Closed::new();
    let writer = tokio::spawn(write_loop(stream.clone(), rx, idle, fire.clone()));
    let conn = Conn {
        stream: &stream,
        peer,
        broker: &broker,
        tx: &tx,
        closed,
        fire: fire.clone(),
        budget,
    };
    let reason = read_loop(conn, max_frame, idle, &mut shutdown).await;
    debug!(%peer, reason, "connection reader finished");
    if reason != "shutdown" {
        // The client is gone or misbehaved: nobody will read a long-poll's
        // answer, so stop waiting for one.
        fire.send_replace(true);
    }
    drop(tx);
    // The writer drains every reply already queued (graceful shutdown finishes
    // in-flight requests) and exits when the channel is closed.
    let _ = writer.await;
    crate::metrics::connection_closed();
}

/// What the reader task works with.
struct Conn<'a> {
    stream: &'a TcpStream,
    peer: SocketAddr,
    broker: &'a Arc<Broker>,
    tx: &'a mpsc::Sender<Reply>,
    closed: Closed,
    /// Fires `closed`.
    fire: Arc<watch::Sender<bool>>,
    budget: RequestBudget,
}

async fn read_loop(
    conn: Conn<'_>,
    max_frame: usize,
    idle: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> &'static str {
    let Conn {
        stream,
        peer,
        broker,
        tx,
        closed,
        fire,
        budget,
    } = conn;
    // The budget share of the frame being read, once its size is known.
    let mut share: Option<Share> = None;
    let mut decoder = FrameDecoder::new(max_frame);
    // Allocated on the first read, not at accept: an idle connection holds no
    // read buffer (8 KiB each was 80 MiB of heap for 10,000 idle connections).
    let mut buf = BytesMut::new();
    // Set when this client is over a quota: no request is read (or taken from
    // what was already read) until its throttle delay ends.
    let mute = Arc::new(crate::quota::Mute::default());
    loop {
        tokio::select! {
            () = mute.wait(broker.quotas()) => {}
            _ = shutdown.changed() => return "shutdown",
        }
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                // Boxed: the handlers' futures are large, and inline they would
                // be part of every connection's task even while it idles.
                let pipelined = !buf.is_empty();
                let reply =
                    Box::pin(handle_frame(broker, peer, frame, &mute, &closed, pipelined)).await;
                // Handled: the request bytes are consumed (a response that
                // completes later holds its own state, not the request).
                drop(share.take());
                let close = matches!(reply, Reply::Close);
                // Waits while `max.inflight.requests.per.connection` responses
                // are outstanding (backpressure), but not past shutdown. Not
                // reading meanwhile, it still watches for the client leaving,
                // which ends the long-polls the writer is waiting on.
                let mut watch_peer = true;
                let slot = loop {
                    tokio::select! {
                        // Biased: a free slot (the usual case) costs no peek.
                        biased;
                        slot = tx.reserve() => break slot,
                        _ = shutdown.changed() => return "shutdown",
                        gone = peer_gone(stream), if watch_peer => {
                            if gone {
                                fire.send_replace(true);
                            }
                            // Gone, or requests are waiting unread: either
                            // way nothing more to learn until the send.
                            watch_peer = false;
                        }
                    }
                };
                let Ok(slot) = slot else {
                    return "writer stopped";
                };
                slot.send(reply);
                if close {
                    return "protocol error";
                }
                // One request per turn: a client whose next request is already
                // buffered (a producer flood) would otherwise run many requests
                // before this worker thread serves another connection.
                tokio::task::yield_now().await;
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                debug!(error = %e, "refusing frame");
                crate::metrics::connection_error();
                return "bad frame";
            }
        }
        if *shutdown.borrow() {
            return "shutdown";
        }
        if share.is_none() {
            if let Some(size) = decoder.pending_size() {
                // Waits while the broker-wide budget is spent: not reading is
                // the back-pressure. Not an idle timeout: the client is not idle.
                share = tokio::select! {
                    s = budget.take(size) => s,
                    _ = shutdown.changed() => return "shutdown",
                };
                // Receive the frame into one allocation, in large reads,
                // instead of growing the buffer 16–64 KiB at a time (each
                // regrowth copies what has arrived so far, and each small read
                // is one more wake-up). A budget share covers the whole frame;
                // without a budget (the default), up to `UNBUDGETED_RESERVE`.
                let cap = if share.is_some() {
                    size
                } else {
                    size.min(UNBUDGETED_RESERVE)
                };
                reserve_frame(&mut buf, cap);
            }
        }
        let read = tokio::select! {
            _ = shutdown.changed() => return "shutdown",
            r = tokio::time::timeout(idle, read_some(stream, &mut buf)) => r,
        };
        match read {
            Err(_) => return "idle timeout",
            Ok(Ok(0)) => return "closed by client",
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return "read error",
        }
    }
}

/// Whether the client has closed its end (or the socket failed), found without
/// consuming anything: resolves `true` on end of stream or an error, `false`
/// once unread bytes are waiting (a pipelining client is still there), and
/// stays pending while the socket is quiet.
async fn peer_gone(stream: &TcpStream) -> bool {
    loop {
        if stream.readable().await.is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let peeked = stream.try_io(Interest::READABLE, || {
            nix::sys::socket::recv(
                stream.as_raw_fd(),
                &mut byte,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            )
            .map_err(std::io::Error::from)
        });
        match peeked {
            Ok(0) => return true,
            Ok(_) => return false,
            // Readiness was stale; `try_io` cleared it, so wait again.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return true,
        }
    }
}

/// The most of a frame's announced size reserved up front when
/// `queued.max.request.bytes` is unbounded (Kafka allocates a request's whole
/// buffer as soon as its size is read). Reserving only maps address space: the
/// pages become memory as bytes arrive, so a client that announces a large
/// frame and sends nothing costs no more than before; the cap bounds the
/// address space such a client holds (a 1 MB batch of a producer's default
/// `batch.size` fits in one allocation).
const UNBUDGETED_RESERVE: usize = 4 << 20;

/// Make room in `buf` (which holds the start of the frame being read) for the
/// rest of a frame of `frame` bytes, in one allocation: the buffer's own when
/// nothing else still holds it, else a new one.
fn reserve_frame(buf: &mut BytesMut, frame: usize) {
    let missing = frame.saturating_sub(buf.len());
    if buf.capacity() - buf.len() < missing {
        buf.reserve(missing);
    }
}

async fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        // The buffer grows only as bytes actually arrive (and only once they
        // do); the frame decoder has already refused any frame larger than the
        // limit.
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        match stream.try_read_buf(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn handle_frame(
    broker: &Arc<Broker>,
    peer: SocketAddr,
    mut frame: Bytes,
    mute: &Arc<crate::quota::Mute>,
    closed: &Closed,
    pipelined: bool,
) -> Reply {
    capture::maybe_capture(&frame);
    let header = match RequestHeader::decode(&mut frame) {
        Ok(h) => h,
        Err(e) => {
            debug!(error = %e, "undecodable request header; closing");
            crate::metrics::connection_error();
            return Reply::Close;
        }
    };
    handlers::dispatch(broker, peer, header, frame, mute, closed, pipelined).await
}

async fn write_loop(
    stream: Arc<TcpStream>,
    mut rx: mpsc::Receiver<Reply>,
    idle: Duration,
    closed: Arc<watch::Sender<bool>>,
) {
    while let Some(reply) = rx.recv().await {
        let frame = match reply {
            Reply::Ready(f) => f,
            Reply::Pending(pending) => match pending.await {
                Some(f) => f,
                // The response could not be encoded: skipping it would shift
                // every later response onto the wrong request, so close.
                None => break,
            },
            Reply::None => continue,
            Reply::Close => break,
        };
        // A client that stops reading must not hold the connection (and its
        // queued responses) forever.
        match tokio::time::timeout(idle, write_frame(&stream, &frame)).await {
            Ok(Ok(())) => {
                if crate::path_trace::enabled() {
                    tracing::trace!(target: "brook::path", stage = "written",
                        port = stream.peer_addr().map_or(0, |a| a.port()),
                        corr = crate::path_trace::correlation_id(&frame),
                        us = crate::path_trace::now_us());
                }
            }
            Ok(Err(e)) => {
                debug!(error = %e, "write failed; closing connection");
                break;
            }
            Err(_) => {
                debug!("client stopped reading responses; closing connection");
                break;
            }
        }
    }
    // Nothing more will be written: replies still queued (or not yet read)
    // must not keep long-polling for nobody.
    closed.send_replace(true);
    // Wake the reader if it is blocked: shutting down the write side makes the
    // client close, and dropping our end closes the socket.
    let _ = nix::sys::socket::shutdown(
        std::os::fd::AsRawFd::as_raw_fd(&*stream),
        nix::sys::socket::Shutdown::Both,
    );
}

/// Request capture for golden test vectors: with `BROOK_CAPTURE_DIR` set, every
/// request frame (header + body, without the size prefix) is written to
/// `<dir>/<seq>-<api key>-v<version>.bin`. Off by default; the check is one
/// atomic load per request.
mod capture {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    static SEQ: AtomicU64 = AtomicU64::new(0);

    pub(super) fn maybe_capture(frame: &[u8]) {
        let Some(dir) =
            DIR.get_or_init(|| std::env::var_os("BROOK_CAPTURE_DIR").map(PathBuf::from))
        else {
            return;
        };
        if frame.len() < 4 {
            return;
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{seq:06}-{key}-v{version}.bin"));
        if let Err(e) = std::fs::write(&path, frame) {
            tracing::warn!(path = %path.display(), error = %e, "request capture failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_received_into_one_allocation() {
        // The start of a 1 MiB frame has arrived: the rest fits without a
        // regrowth, and the bytes already read stay in place.
        let mut buf = BytesMut::with_capacity(16 << 10);
        buf.extend_from_slice(&[7u8; 100]);
        reserve_frame(&mut buf, 1 << 20);
        assert!(buf.capacity() >= 1 << 20, "capacity {}", buf.capacity());
        assert_eq!(&buf[..], &[7u8; 100][..]);
        let before = buf.as_ptr();
        buf.extend_from_slice(&vec![1u8; (1 << 20) - 100]);
        assert_eq!(buf.as_ptr(), before, "the frame's bytes moved");

        // A buffer already large enough is left alone; a frame shorter than
        // what arrived (the next frame's bytes follow) asks for nothing.
        let mut big = BytesMut::with_capacity(2 << 20);
        let ptr = big.as_ptr();
        reserve_frame(&mut big, 1 << 20);
        assert_eq!(big.as_ptr(), ptr);
        let mut ahead = BytesMut::from(&[0u8; 64][..]);
        let cap = ahead.capacity();
        reserve_frame(&mut ahead, 10);
        assert_eq!(ahead.capacity(), cap);
    }
}
