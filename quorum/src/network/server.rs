//! Accept loop and per-connection request dispatch.
//!
//! Connections are capped by a semaphore; each handles one request at a time
//! and lives in a `JoinSet` owned by the accept task, so aborting that task
//! (on shutdown) closes every connection.

use std::io::{self, Cursor};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::storage::Snapshot;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{read_frame, write_frame, Hello, HelloReply, Request, Response, MAGIC, VERSION};
use crate::app::AppRpcHandler;
use crate::types::{NodeId, Raft};

/// Most connections served at once; further ones wait in the kernel backlog.
const MAX_CONNECTIONS: usize = 256;
/// How long a new connection has to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server needs to answer requests.
pub(crate) struct ServerCtx<H> {
    pub(crate) node_id: NodeId,
    pub(crate) cluster_id: String,
    pub(crate) raft: Raft,
    pub(crate) handler: Arc<H>,
}

/// Serve `listener` until the task running this is aborted.
pub(crate) async fn serve<H: AppRpcHandler>(listener: TcpListener, ctx: Arc<ServerCtx<H>>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        // Reap finished connections so the set stays bounded.
        while conns.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "controller listener accept failed");
                // Typically EMFILE: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        conns.spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, &ctx).await {
                tracing::debug!(%peer, error = %e, "controller connection closed");
            }
        });
    }
}

async fn connection<H: AppRpcHandler>(mut stream: TcpStream, ctx: &ServerCtx<H>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    let hello: Hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no handshake"))??;
    let refusal = if hello.magic != MAGIC || hello.version != VERSION {
        Some(format!(
            "protocol mismatch: magic {:#x} version {} (want {MAGIC:#x} version {VERSION})",
            hello.magic, hello.version
        ))
    } else if hello.cluster_id != ctx.cluster_id {
        Some(format!(
            "cluster id mismatch: peer has {:?}, this node has {:?}",
            hello.cluster_id, ctx.cluster_id
        ))
    } else if hello.to != ctx.node_id {
        Some(format!(
            "node id mismatch: peer addressed node {}, this is node {}",
            hello.to, ctx.node_id
        ))
    } else {
        None
    };
    if let Some(reason) = refusal {
        tracing::warn!(%peer, from = hello.from, "refusing controller connection: {reason}");
        write_frame(&mut stream, &HelloReply::Refused(reason)).await?;
        return Ok(());
    }
    write_frame(&mut stream, &HelloReply::Accepted).await?;

    loop {
        let req: Request = match read_frame(&mut stream).await {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let resp = dispatch(req, hello.from, ctx).await;
        write_frame(&mut stream, &resp).await?;
    }
}

async fn dispatch<H: AppRpcHandler>(req: Request, from: NodeId, ctx: &ServerCtx<H>) -> Response {
    match req {
        Request::AppendEntries(r) => match ctx.raft.append_entries(r).await {
            Ok(x) => Response::AppendEntries(x),
            Err(e) => Response::RaftError(e.to_string()),
        },
        Request::Vote(r) => match ctx.raft.vote(r).await {
            Ok(x) => Response::Vote(x),
            Err(e) => Response::RaftError(e.to_string()),
        },
        Request::InstallSnapshot(r) => match ctx.raft.install_snapshot(r).await {
            Ok(x) => Response::InstallSnapshot(x),
            Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => {
                Response::SnapshotMismatch(m)
            }
            Err(e) => Response::RaftError(e.to_string()),
        },
        Request::FullSnapshot { vote, meta, data } => {
            let snapshot = Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            };
            match ctx.raft.install_full_snapshot(vote, snapshot).await {
                Ok(x) => Response::FullSnapshot(x),
                Err(e) => Response::RaftError(e.to_string()),
            }
        }
        Request::App(bytes) => match ctx.handler.handle(from, bytes).await {
            Ok(x) => Response::App(x),
            Err(e) => Response::AppError(e),
        },
    }
}
