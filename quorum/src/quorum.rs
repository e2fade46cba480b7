//! [`Quorum`]: opens storage, starts the controller listener and the Raft node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, SnapshotPolicy};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::{App, AppRpcHandler};
use crate::log_store::{LogOptions, LogStore, LogStoreError};
use crate::network::{serve, NetworkFactory, ServerCtx};
use crate::state_machine::{AppHandle, StateMachine, StateMachineError};
use crate::types::{AppRequest, LogId, NodeId, Raft, RaftMetrics};

/// Where the controller listener comes from.
#[derive(Debug)]
pub enum Listen {
    /// Bind this address.
    Addr(SocketAddr),
    /// Use a listener the caller already bound (tests bind port 0 first).
    Bound(std::net::TcpListener),
}

/// Settings of one quorum member.
#[derive(Debug)]
pub struct QuorumConfig {
    /// This node's id (`node.id`).
    pub node_id: NodeId,
    /// Cluster id; peers with another one are refused.
    pub cluster_id: String,
    /// Data directory (holds `log/` and `snapshot/`).
    pub dir: PathBuf,
    /// Controller listener.
    pub listen: Listen,
    /// Voters and their controller addresses (`controller.quorum.voters`).
    pub voters: BTreeMap<NodeId, String>,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max: Duration,
    /// Leader heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Build a snapshot after this many applied entries since the last one.
    pub snapshot_after_entries: u64,
    /// Log entries kept behind the latest snapshot for lagging followers;
    /// one further behind is sent the snapshot instead.
    pub logs_kept_after_snapshot: u64,
    /// Log storage tuning.
    pub log: LogOptions,
}

impl QuorumConfig {
    /// A config with Kafka-like defaults (election 1–2 s, heartbeat 500 ms).
    pub fn new(
        node_id: NodeId,
        cluster_id: impl Into<String>,
        dir: impl Into<PathBuf>,
        listen: Listen,
        voters: BTreeMap<NodeId, String>,
    ) -> Self {
        QuorumConfig {
            node_id,
            cluster_id: cluster_id.into(),
            dir: dir.into(),
            listen,
            voters,
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            heartbeat_interval: Duration::from_millis(500),
            snapshot_after_entries: 10_000,
            logs_kept_after_snapshot: 1000,
            log: LogOptions::default(),
        }
    }
}

/// Errors starting or stopping a [`Quorum`].
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The Raft log could not be opened.
    #[error(transparent)]
    Log(#[from] LogStoreError),
    /// The state machine or its snapshot could not be opened.
    #[error(transparent)]
    StateMachine(#[from] StateMachineError),
    /// The controller listener could not be bound or adopted.
    #[error("controller listener: {0}")]
    Listen(#[source] std::io::Error),
    /// Settings openraft rejects.
    #[error("invalid quorum config: {0}")]
    Config(String),
    /// openraft failed (stopped, or a storage error made it fatal).
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a write was not committed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader; send the write to `leader_id` at `leader_addr` if known.
    #[error("not the leader; forward to {leader_id:?} at {leader_addr:?}")]
    ForwardToLeader {
        /// The leader this node knows of.
        leader_id: Option<NodeId>,
        /// Its controller address.
        leader_addr: Option<String>,
    },
    /// The Raft node has stopped or failed.
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// Anything else (e.g. a membership change in progress).
    #[error("write failed: {0}")]
    Other(String),
}

/// A running controller-quorum member.
pub struct Quorum<A> {
    node_id: NodeId,
    raft: Raft,
    app: AppHandle<A>,
    local_addr: SocketAddr,
    server: JoinHandle<()>,
    log_exited: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl<A> std::fmt::Debug for Quorum<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("node_id", &self.node_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl<A: App> Quorum<A> {
    /// Open storage in `config.dir`, restore `app` from the latest snapshot,
    /// start the listener and the Raft node, and, if this node is a voter and
    /// its log is fresh, initialize membership from `config.voters` (every
    /// voter may do this with the same voters; "already initialized" is fine).
    ///
    /// # Errors
    ///
    /// [`QuorumError`] when storage cannot be opened, the listener cannot be
    /// bound, the config is invalid or openraft fails to start.
    pub async fn start<H: AppRpcHandler>(
        config: QuorumConfig,
        app: A,
        handler: H,
    ) -> Result<Quorum<A>, QuorumError> {
        let raft_config = Config {
            cluster_name: config.cluster_id.clone(),
            election_timeout_min: u64::try_from(config.election_timeout_min.as_millis())
                .unwrap_or(u64::MAX),
            election_timeout_max: u64::try_from(config.election_timeout_max.as_millis())
                .unwrap_or(u64::MAX),
            heartbeat_interval: u64::try_from(config.heartbeat_interval.as_millis())
                .unwrap_or(u64::MAX),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            max_in_snapshot_log_to_keep: config.logs_kept_after_snapshot,
            ..Config::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;

        let log = LogStore::open(&config.dir.join("log"), config.log.clone())?;
        let log_exited = Box::pin(log.writer_exited());
        let sm = StateMachine::open(&config.dir.join("snapshot"), app)?;
        let app = sm.app();

        let listener = match config.listen {
            Listen::Addr(addr) => tokio::net::TcpListener::bind(addr)
                .await
                .map_err(QuorumError::Listen)?,
            Listen::Bound(l) => {
                l.set_nonblocking(true).map_err(QuorumError::Listen)?;
                tokio::net::TcpListener::from_std(l).map_err(QuorumError::Listen)?
            }
        };
        let local_addr = listener.local_addr().map_err(QuorumError::Listen)?;

        let network = NetworkFactory::new(&config.cluster_id, config.node_id);
        let raft = Raft::new(config.node_id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;

        let ctx = Arc::new(ServerCtx {
            node_id: config.node_id,
            cluster_id: config.cluster_id.clone(),
            raft: raft.clone(),
            handler: Arc::new(handler),
        });
        let server = tokio::spawn(serve(listener, ctx));

        let quorum = Quorum {
            node_id: config.node_id,
            raft,
            app,
            local_addr,
            server,
            log_exited,
        };
        if config.voters.contains_key(&config.node_id) {
            let members: BTreeMap<NodeId, BasicNode> = config
                .voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect();
            match quorum.raft.initialize(members).await {
                Ok(()) => tracing::info!(
                    node_id = config.node_id,
                    "initialized controller quorum membership"
                ),
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(QuorumError::Raft(e.to_string())),
            }
        }
        Ok(quorum)
    }

    /// Replicate `command` and wait until it is applied on this (leader) node.
    /// Returns its log id (term = controller epoch) and [`App::apply`]'s result.
    ///
    /// # Errors
    ///
    /// [`WriteError::ForwardToLeader`] on a non-leader, otherwise another [`WriteError`].
    pub async fn write(&self, command: Vec<u8>) -> Result<(LogId, Vec<u8>), WriteError> {
        match self.raft.client_write(AppRequest(command)).await {
            Ok(resp) => Ok((resp.log_id, resp.data.0)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(WriteError::ForwardToLeader {
                    leader_id: f.leader_id,
                    leader_addr: f.leader_node.map(|n| n.addr),
                })
            }
            Err(RaftError::APIError(e)) => Err(WriteError::Other(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(WriteError::Fatal(e.to_string())),
        }
    }

    /// The leader this node currently knows of and its term (controller epoch).
    pub fn leader(&self) -> Option<(NodeId, u64)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.current_leader.map(|l| (l, m.vote.leader_id().term))
    }

    /// openraft's metrics, to watch for leadership, terms and applied indexes.
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics> {
        self.raft.metrics()
    }

    /// Read access to the replicated application state.
    pub fn app(&self) -> &AppHandle<A> {
        &self.app
    }

    /// The underlying openraft handle (membership changes, linearizable reads).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address the controller listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop the listener and the Raft node, and wait until the log writer has
    /// flushed and released the data directory (so it can be reopened).
    ///
    /// # Errors
    ///
    /// [`QuorumError::Raft`] if openraft's task failed to join.
    pub async fn shutdown(self) -> Result<(), QuorumError> {
        self.server.abort();
        let _ = self.server.await;
        let res = self
            .raft
            .shutdown()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()));
        // The log store is dropped with the Raft core; its writer then exits.
        drop(self.raft);
        self.log_exited.await;
        res
    }
}
