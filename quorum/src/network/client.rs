//! Outgoing connections: openraft's `RaftNetworkFactory`/`RaftNetwork`, and
//! [`call_app`] for application RPCs.
//!
//! Each [`PeerClient`] (openraft makes one per replication stream or vote
//! round) keeps one connection to its peer and reuses it across RPCs. A
//! failure on a reused connection is retried once on a fresh one (the peer may
//! have restarted); any error or timeout drops the connection, since a
//! half-read frame would desynchronize it.
//!
//! Error mapping: cannot connect, handshake refused, or the remote Raft is
//! stopped → `Unreachable` (openraft backs off); I/O or protocol errors on an
//! established connection → `NetworkError` (openraft retries); no answer
//! within the RPC's TTL → `Timeout`.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::Snapshot;
use openraft::{BasicNode, OptionalSend};
use tokio::net::TcpStream;

use super::{read_frame, write_frame, Hello, HelloReply, Request, Response, MAGIC, VERSION};
use crate::types::{NodeId, TypeConfig, Vote};

/// Errors of an outgoing call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No TCP connection could be made.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The peer address.
        addr: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The peer refused the handshake (wrong cluster id or node id).
    #[error("{addr} refused the connection: {reason}")]
    Refused {
        /// The peer address.
        addr: String,
        /// The peer's explanation.
        reason: String,
    },
    /// I/O or framing failed on an established connection.
    #[error("talking to {addr}: {source}")]
    Io {
        /// The peer address.
        addr: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No answer in time.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout {
        /// The peer address.
        addr: String,
        /// The limit that passed.
        timeout: Duration,
    },
    /// The peer handled the request and reported a failure.
    #[error("{addr} failed the request: {message}")]
    Remote {
        /// The peer address.
        addr: String,
        /// The peer's message.
        message: String,
    },
    /// The peer answered with a response of the wrong kind.
    #[error("{addr} sent an unexpected response")]
    Protocol {
        /// The peer address.
        addr: String,
    },
}

impl CallError {
    /// True when no request reached the peer's request handler, so retrying
    /// elsewhere or later cannot double-apply anything.
    pub fn not_delivered(&self) -> bool {
        matches!(self, CallError::Connect { .. } | CallError::Refused { .. })
    }
}

/// Connect to `addr` and complete the handshake as node `from` addressing `to`.
async fn connect(
    addr: &str,
    cluster_id: &str,
    from: NodeId,
    to: NodeId,
) -> Result<TcpStream, CallError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|source| CallError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let io = |source| CallError::Io {
        addr: addr.to_string(),
        source,
    };
    stream.set_nodelay(true).map_err(io)?;
    let hello = Hello {
        magic: MAGIC,
        version: VERSION,
        cluster_id: cluster_id.to_string(),
        from,
        to,
    };
    write_frame(&mut stream, &hello).await.map_err(io)?;
    match read_frame(&mut stream).await.map_err(io)? {
        HelloReply::Accepted => Ok(stream),
        HelloReply::Refused(reason) => Err(CallError::Refused {
            addr: addr.to_string(),
            reason,
        }),
    }
}

async fn exchange(stream: &mut TcpStream, req: &Request) -> io::Result<Response> {
    write_frame(stream, req).await?;
    read_frame(stream).await
}

/// Call the application RPC handler of node `to` at `addr`, identifying as
/// node `from`, over a fresh connection. Usable by any broker, voter or not.
///
/// # Errors
///
/// [`CallError`]: connection, handshake, I/O, timeout, or the handler's error.
pub async fn call_app(
    addr: &str,
    cluster_id: &str,
    from: NodeId,
    to: NodeId,
    request: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, CallError> {
    let call = async {
        let mut stream = connect(addr, cluster_id, from, to).await?;
        let resp = exchange(&mut stream, &Request::App(request))
            .await
            .map_err(|source| CallError::Io {
                addr: addr.to_string(),
                source,
            })?;
        match resp {
            Response::App(bytes) => Ok(bytes),
            Response::AppError(message) => Err(CallError::Remote {
                addr: addr.to_string(),
                message,
            }),
            _ => Err(CallError::Protocol {
                addr: addr.to_string(),
            }),
        }
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| CallError::Timeout {
            addr: addr.to_string(),
            timeout,
        })?
}

/// Creates a [`PeerClient`] per target for openraft.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    cluster_id: Arc<str>,
    node_id: NodeId,
}

impl NetworkFactory {
    /// Clients of node `node_id` in cluster `cluster_id`.
    pub fn new(cluster_id: &str, node_id: NodeId) -> Self {
        NetworkFactory {
            cluster_id: cluster_id.into(),
            node_id,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            cluster_id: self.cluster_id.clone(),
            from: self.node_id,
            target,
            addr: node.addr.clone(),
            conn: None,
        }
    }
}

/// openraft's connection to one peer; reuses one TCP connection.
#[derive(Debug)]
pub struct PeerClient {
    cluster_id: Arc<str>,
    from: NodeId,
    target: NodeId,
    addr: String,
    conn: Option<TcpStream>,
}

/// An RPC failure before interpretation as an openraft error.
enum Failure {
    Call(CallError),
    Timeout(Duration),
}

impl PeerClient {
    async fn rpc(&mut self, req: &Request, ttl: Duration) -> Result<Response, Failure> {
        match tokio::time::timeout(ttl, self.rpc_inner(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                self.conn = None;
                Err(Failure::Call(e))
            }
            Err(_) => {
                self.conn = None;
                Err(Failure::Timeout(ttl))
            }
        }
    }

    async fn rpc_inner(&mut self, req: &Request) -> Result<Response, CallError> {
        if let Some(stream) = self.conn.as_mut() {
            match exchange(stream, req).await {
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    tracing::debug!(target_node = self.target, error = %e, "reused connection failed; reconnecting");
                    self.conn = None;
                }
            }
        }
        let mut stream = connect(&self.addr, &self.cluster_id, self.from, self.target).await?;
        let resp = exchange(&mut stream, req)
            .await
            .map_err(|source| CallError::Io {
                addr: self.addr.clone(),
                source,
            })?;
        self.conn = Some(stream);
        Ok(resp)
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        action: RPCTypes,
        f: Failure,
    ) -> RPCError<NodeId, BasicNode, E> {
        match f {
            Failure::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: self.from,
                target: self.target,
                timeout,
            }),
            Failure::Call(
                e @ (CallError::Connect { .. }
                | CallError::Refused { .. }
                | CallError::Remote { .. }),
            ) => RPCError::Unreachable(Unreachable::new(&e)),
            Failure::Call(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn remote_failure(&self, resp: Response) -> Failure {
        Failure::Call(match resp {
            Response::RaftError(message) | Response::AppError(message) => CallError::Remote {
                addr: self.addr.clone(),
                message,
            },
            _ => CallError::Protocol {
                addr: self.addr.clone(),
            },
        })
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let action = RPCTypes::AppendEntries;
        match self
            .rpc(&Request::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            Ok(Response::AppendEntries(r)) => Ok(r),
            Ok(other) => Err(self.rpc_error(action, self.remote_failure(other))),
            Err(f) => Err(self.rpc_error(action, f)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let action = RPCTypes::InstallSnapshot;
        match self
            .rpc(&Request::InstallSnapshot(rpc), option.hard_ttl())
            .await
        {
            Ok(Response::InstallSnapshot(r)) => Ok(r),
            Ok(Response::SnapshotMismatch(m)) => Err(RPCError::RemoteError(RemoteError::new(
                self.target,
                RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m)),
            ))),
            Ok(other) => Err(self.rpc_error(action, self.remote_failure(other))),
            Err(f) => Err(self.rpc_error(action, f)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let action = RPCTypes::Vote;
        match self.rpc(&Request::Vote(rpc), option.hard_ttl()).await {
            Ok(Response::Vote(r)) => Ok(r),
            Ok(other) => Err(self.rpc_error(action, self.remote_failure(other))),
            Err(f) => Err(self.rpc_error(action, f)),
        }
    }

    /// Sends the whole snapshot in one frame (metadata snapshots are small;
    /// the frame limit bounds them).
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let req = Request::FullSnapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot.into_inner(),
        };
        let res = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            res = self.rpc(&req, option.hard_ttl()) => res,
        };
        let failure = match res {
            Ok(Response::FullSnapshot(r)) => return Ok(r),
            Ok(other) => self.remote_failure(other),
            Err(f) => f,
        };
        Err(
            match self.rpc_error::<openraft::error::Infallible>(RPCTypes::InstallSnapshot, failure)
            {
                RPCError::Timeout(t) => StreamingError::Timeout(t),
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                RPCError::PayloadTooLarge(p) => StreamingError::Network(NetworkError::new(&p)),
                RPCError::RemoteError(r) => StreamingError::Network(NetworkError::new(&r)),
            },
        )
    }
}
