//! TCP transport for the controller quorum: brook's own framing, a
//! handshake that checks cluster and node ids, Raft RPCs and application RPCs.
//!
//! # Wire format
//!
//! ```text
//! frame = len: u32 BE | payload: [u8; len]      (len <= MAX_FRAME, checked before allocating)
//! payload = postcard(message)
//! ```
//!
//! A connection opens with one `Hello { magic, version, cluster_id, from, to }`
//! frame from the client. The server answers `HelloReply::Accepted`, or
//! `HelloReply::Refused(reason)` and closes (with a `warn!` naming the
//! mismatch) when the magic, version or cluster id differ or `to` is not its
//! node id. After that the client sends `Request` frames and reads one
//! `Response` frame for each, strictly in turn: a connection has at most one
//! request in flight, so every per-connection buffer is one frame.
//!
//! # Layout
//!
//! - `server`: accept loop and per-connection dispatch (bounded connections).
//! - `client`: `RaftNetworkFactory` with per-peer connection reuse, and
//!   [`call_app`] for application RPCs from any node.

mod client;
mod server;

use std::io;

use openraft::error::SnapshotMismatch;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use client::{call_app, CallError, NetworkFactory, PeerClient};
pub(crate) use server::{serve, ServerCtx};

use crate::types::{NodeId, SnapshotMeta, TypeConfig, Vote};

/// Largest frame accepted or sent (64 MiB); bounds snapshot size too.
pub const MAX_FRAME: usize = 64 << 20;

/// "BRKQ": first field of every handshake.
const MAGIC: u32 = 0x4252_4b51;
/// Protocol version; bumped on any incompatible change to the messages.
const VERSION: u16 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    magic: u32,
    version: u16,
    cluster_id: String,
    from: NodeId,
    to: NodeId,
}

#[derive(Debug, Serialize, Deserialize)]
enum HelloReply {
    Accepted,
    Refused(String),
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    FullSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    App(Vec<u8>),
}

#[derive(Debug, Serialize, Deserialize)]
enum Response {
    AppendEntries(AppendEntriesResponse<NodeId>),
    Vote(VoteResponse<NodeId>),
    InstallSnapshot(InstallSnapshotResponse<NodeId>),
    SnapshotMismatch(SnapshotMismatch),
    FullSnapshot(SnapshotResponse<NodeId>),
    App(Vec<u8>),
    /// The application handler failed.
    AppError(String),
    /// The remote Raft could not handle the request (stopped or fatal).
    RaftError(String),
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Write one frame holding `msg`.
async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    let mut buf =
        postcard::to_extend(msg, vec![0u8; 4]).map_err(|e| invalid(format!("encode: {e}")))?;
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(invalid(format!(
            "message of {len} bytes exceeds the {MAX_FRAME} byte frame limit"
        )));
    }
    // len <= MAX_FRAME fits in u32.
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    w.write_all(&buf).await?;
    w.flush().await
}

/// Read one whole frame, checking its length before allocating, then decode it.
async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(r: &mut R) -> io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(invalid(format!(
            "peer sent a {len} byte frame; the limit is {MAX_FRAME}"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    postcard::from_bytes(&buf).map_err(|e| invalid(format!("decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversized_frame_is_refused_before_allocating() {
        let mut data = Vec::new();
        data.extend_from_slice(&u32::MAX.to_be_bytes());
        let err = read_frame::<_, Hello>(&mut data.as_slice())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = Vec::new();
        let hello = Hello {
            magic: MAGIC,
            version: VERSION,
            cluster_id: "c".into(),
            from: 1,
            to: 2,
        };
        write_frame(&mut buf, &hello).await.unwrap();
        let back: Hello = read_frame(&mut buf.as_slice()).await.unwrap();
        assert_eq!(
            (back.magic, back.cluster_id.as_str(), back.from, back.to),
            (MAGIC, "c", 1, 2)
        );
    }
}
