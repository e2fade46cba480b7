//! The controller quorum (DESIGN.md section 7): metadata as a Raft log on
//! openraft (`brook-quorum`), the active controller's decisions, broker
//! registration, heartbeats and fencing, and the client every broker uses to
//! reach the active controller.
//!
//! Nodes with `process.roles` including `controller` are voters; a node that
//! is only a broker follows the metadata log as a Raft learner, which the
//! active controller adds when it registers. The active controller is the
//! Raft leader; its term is the
//! controller epoch, stamped on every reply. Requests reach it as JSON in the
//! quorum's application RPCs ([`rpc`]); it decides against its applied image
//! ([`decisions`]), commits the records, and replies with their offset, which
//! the asking broker waits for in its own image before it answers a client.
//! A deposed controller cannot commit: openraft refuses its writes.
//!
//! # Layout
//! - `app`: the image as the quorum's replicated state.
//! - `decisions`: pure request → records functions (placement, election,
//!   fencing).
//! - `rpc`: request and reply shapes.
//! - `active`: the active controller's side (deciding, committing,
//!   learners, the fencing timer).
//! - `membership`: this broker's registration, heartbeats and controlled
//!   shutdown.
//! - this file: [`Controller`] (start, submit to the active controller,
//!   wait for what it committed).

mod active;
pub mod app;
pub mod decisions;
mod departure;
pub mod membership;
mod placement;
pub mod reassign;
pub mod rpc;

#[cfg(test)]
mod placement_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use active::{fence_timer, DecideState};
use app::{Applied, MetadataApp};
use brook_config::BrokerConfig;
use brook_quorum::{AppHandle, AppRpcHandler, Listen, Quorum, QuorumConfig};
use rpc::{ControllerReply, ControllerRequest, ReplyBody};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::BrokerError;
use crate::metadata::MetadataRecord;

/// Producer ids are handed to a broker in blocks of this size.
pub const PRODUCER_ID_BLOCK: i64 = 1000;
/// How long a request may look for an active controller.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one RPC to the active controller may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the active controller looks for expired broker sessions.
const FENCE_CHECK: Duration = Duration::from_millis(250);

/// The quorum member plus this node's view of the active controller.
#[derive(Debug)]
pub struct Controller {
    core: Arc<Core>,
    applied: watch::Receiver<Applied>,
    quorum: StdMutex<Option<Quorum<MetadataApp>>>,
    ticker: tokio::task::JoinHandle<()>,
    /// The highest controller epoch a reply has carried.
    epoch_seen: AtomicU64,
}

/// What the RPC handler, the fencing timer and local submits share.
struct Core {
    node_id: i32,
    cluster_id: String,
    config: Arc<BrokerConfig>,
    raft: brook_quorum::Raft,
    app: AppHandle<MetadataApp>,
    voters: BTreeMap<u64, String>,
    /// This node's address as a learner (`None`: it is a voter).
    learner_addr: Option<String>,
    started: Instant,
    /// Serialises decisions: each one sees the records of the one before.
    decide: tokio::sync::Mutex<DecideState>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// Routes application RPCs to the core once it exists.
#[derive(Clone, Default)]
struct Handler(Arc<OnceLock<Weak<Core>>>);

impl AppRpcHandler for Handler {
    async fn handle(&self, _from: u64, request: Vec<u8>) -> Result<Vec<u8>, String> {
        let core = self
            .0
            .get()
            .and_then(Weak::upgrade)
            .ok_or("controller is starting")?;
        let req: ControllerRequest =
            serde_json::from_slice(&request).map_err(|e| format!("bad controller request: {e}"))?;
        let reply = core.handle(req).await;
        serde_json::to_vec(&reply).map_err(|e| e.to_string())
    }
}

impl Controller {
    /// Open the metadata log in `dir`, join the quorum and start the fencing
    /// timer. Returns once the node knows an active controller and has
    /// applied the log up to what it had on disk.
    ///
    /// # Errors
    /// Storage, listener or quorum failures; no controller elected within
    /// the session timeout.
    pub async fn start(
        config: Arc<BrokerConfig>,
        dir: &Path,
        cluster_id: &str,
    ) -> anyhow::Result<Self> {
        let voters: BTreeMap<u64, String> = config
            .quorum_voters()
            .into_iter()
            .map(|v| (v.id as u64, format!("{}:{}", v.host, v.port)))
            .collect();
        let me = config.node_id as u64;
        let voter = config.is_controller();
        // A learner (broker only) has no controller listener of its own: it
        // takes a free port on its client listener's host, where the active
        // controller replicates the metadata log to it.
        let client_host = config
            .advertised_client_listeners()
            .first()
            .map_or_else(|| "127.0.0.1".to_owned(), |l| l.host.clone());
        // A learner keeps its port across restarts when it can (stored in
        // the metadata dir), so the active controller finds it where it was.
        let port_file = dir.join("learner.port");
        let learner_port = if voter {
            None
        } else {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
        };
        let listen_addr = match config.controller_listener() {
            Some(l) if voter => resolve(&l.host, l.port)?,
            _ if voter => resolve("127.0.0.1", 0)?,
            _ => resolve(&client_host, learner_port.unwrap_or(0))?,
        };
        let listener = match std::net::TcpListener::bind(listen_addr) {
            Ok(l) => l,
            // The stored port is taken now: any free one will do.
            Err(_) if learner_port.is_some() => {
                std::net::TcpListener::bind(resolve(&client_host, 0)?).map_err(|e| {
                    anyhow::anyhow!("cannot listen on {client_host} (metadata learner): {e}")
                })?
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot listen on {listen_addr} (controller listener): {e}"
                ))
            }
        };
        let bound = listener.local_addr()?;
        if !voter && learner_port != Some(bound.port()) {
            std::fs::create_dir_all(dir)?;
            crate::log::checkpoint::write_atomically(
                &port_file,
                bound.port().to_string().as_bytes(),
            )?;
        }
        let learner_addr = (!voter).then(|| {
            let host = if bound.ip().is_unspecified() {
                client_host.clone()
            } else {
                bound.ip().to_string()
            };
            format!("{host}:{}", bound.port())
        });
        let mut voters = voters;
        if voters.len() == 1 && voters.contains_key(&me) {
            // A single voter on an OS-chosen port: record the real one.
            voters.insert(me, bound.to_string());
        }
        let mut qc =
            QuorumConfig::new(me, cluster_id, dir, Listen::Bound(listener), voters.clone());
        let session =
            Duration::from_millis(u64::try_from(config.broker_session_timeout_ms).unwrap_or(9000));
        // Kafka's KRaft defaults: election 1 s (randomised up to 2 s),
        // leader heartbeats every 500 ms; never slower than the broker
        // session allows.
        qc.election_timeout_min = Duration::from_millis(1000).min(session / 3);
        qc.election_timeout_max = qc.election_timeout_min * 2;
        qc.heartbeat_interval = qc.election_timeout_min / 4;
        let (app, applied) = MetadataApp::new();
        let handler = Handler::default();
        let quorum = Quorum::start(qc, app, handler.clone())
            .await
            .map_err(|e| anyhow::anyhow!("controller quorum in {}: {e}", dir.display()))?;
        let core = Arc::new(Core {
            node_id: config.node_id,
            cluster_id: cluster_id.to_owned(),
            config,
            raft: quorum.raft().clone(),
            app: quorum.app().clone(),
            voters,
            learner_addr,
            started: Instant::now(),
            decide: tokio::sync::Mutex::new(DecideState::default()),
        });
        let _ = handler.0.set(Arc::downgrade(&core));
        let ticker = tokio::spawn(fence_timer(Arc::downgrade(&core)));
        info!(node = me, addr = %bound, "controller quorum member started");
        let c = Self {
            core,
            applied,
            quorum: StdMutex::new(Some(quorum)),
            ticker,
            epoch_seen: AtomicU64::new(0),
        };
        if voter {
            c.wait_for_leader(session.max(Duration::from_secs(10)))
                .await?;
        }
        Ok(c)
    }

    /// Wait until an active controller is known and this node has applied
    /// what it had in its log.
    async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut m = self.core.raft.metrics();
        let target = m.borrow().last_log_index.unwrap_or(0);
        let ready = m.wait_for(|m| {
            m.current_leader.is_some() && m.last_applied.map_or(0, |l| l.index) >= target
        });
        tokio::time::timeout(timeout, ready)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no active controller within {} s: are a majority of controller.quorum.voters running and reachable?",
                    timeout.as_secs()
                )
            })?
            .map_err(|_| anyhow::anyhow!("the controller quorum stopped while starting"))?;
        Ok(())
    }

    /// The latest applied image (may be ahead of what the broker published).
    pub fn applied(&self) -> Applied {
        self.applied.borrow().clone()
    }

    /// A receiver that changes whenever an entry is applied.
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.clone()
    }

    /// The active controller and its epoch, when known.
    pub fn active(&self) -> Option<(i32, u64)> {
        let m = self.core.raft.metrics();
        let m = m.borrow();
        m.current_leader
            .map(|l| (l as i32, m.vote.leader_id().term))
    }

    /// Whether this node is the active controller.
    pub fn is_active(&self) -> bool {
        self.core.is_leader()
    }

    /// This node's learner address, when it is not a voter.
    pub fn learner_addr(&self) -> Option<String> {
        self.core.learner_addr.clone()
    }

    /// The voters and their controller addresses.
    pub fn voters(&self) -> &BTreeMap<u64, String> {
        &self.core.voters
    }

    /// openraft's metrics (for status pages).
    pub fn metrics(&self) -> openraft::RaftMetrics<u64, openraft::BasicNode> {
        self.core.raft.metrics().borrow().clone()
    }

    /// Send `req` to the active controller (this node or another), retrying
    /// through elections, and wait until this node has applied what it
    /// committed.
    ///
    /// # Errors
    /// The controller's refusal; [`BrokerError::NotController`] when no
    /// controller answered in time.
    pub async fn submit(&self, req: ControllerRequest) -> Result<ReplyBody, BrokerError> {
        let deadline = tokio::time::Instant::now() + SUBMIT_TIMEOUT;
        let mut backoff = Duration::from_millis(25);
        let mut warned = false;
        let reply = loop {
            let attempt = match self.active() {
                Some((leader, _)) if leader == self.core.node_id => {
                    Some(self.core.handle(req.clone()).await)
                }
                Some((leader, _)) => {
                    // A controller that froze (SIGSTOP, a GC-like pause, a
                    // partition) keeps its connections open, so the call
                    // would only time out: give up on it as soon as the
                    // quorum has moved on to another leader.
                    let mut m = self.core.raft.metrics();
                    tokio::select! {
                        r = self.forward(leader, &req, &mut warned) => r,
                        _ = m.wait_for(|m| m.current_leader != Some(leader as u64)) => None,
                    }
                }
                // A learner hears of the leader only once it has been added
                // (at registration): until then it asks the voters in turn,
                // and only the active controller accepts.
                None if self.core.learner_addr.is_some() => {
                    let voters: Vec<i32> = self.core.voters.keys().map(|v| *v as i32).collect();
                    let mut found = None;
                    for v in voters {
                        if let Some(r) = self.forward(v, &req, &mut warned).await {
                            if !matches!(&r.result, Err(e) if e.kind == rpc::WireErrorKind::NotController)
                            {
                                found = Some(r);
                                break;
                            }
                        }
                    }
                    found
                }
                None => None,
            };
            match attempt {
                // A reply from an older controller epoch than one this node
                // has already heard from is a deposed controller's: ignored.
                Some(r) if r.epoch < self.epoch_seen.load(Ordering::Acquire) => {
                    warn!(
                        epoch = r.epoch,
                        "ignoring a reply from a deposed controller"
                    );
                }
                Some(r) if !matches!(&r.result, Err(e) if e.kind == rpc::WireErrorKind::NotController) =>
                {
                    self.epoch_seen.fetch_max(r.epoch, Ordering::AcqRel);
                    break r;
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BrokerError::NotController);
            }
            // No controller yet, or it is unreachable or was just deposed:
            // back off (doubling, up to 1 s), waking early when leadership
            // news arrives.
            let mut m = self.core.raft.metrics();
            let known = self.active();
            let _ = tokio::time::timeout(
                backoff,
                m.wait_for(|m| m.current_leader.map(|l| l as i32) != known.map(|k| k.0)),
            )
            .await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        };
        let body = reply.result.map_err(BrokerError::from)?;
        self.wait_applied(reply.offset).await?;
        Ok(body)
    }

    async fn forward(
        &self,
        leader: i32,
        req: &ControllerRequest,
        warned: &mut bool,
    ) -> Option<ControllerReply> {
        let addr = self.core.voters.get(&(leader as u64))?;
        let bytes = serde_json::to_vec(req).ok()?;
        let result = brook_quorum::call_app(
            addr,
            &self.core.cluster_id,
            self.core.node_id as u64,
            leader as u64,
            bytes,
            RPC_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())
        .and_then(|resp| {
            serde_json::from_slice::<ControllerReply>(&resp)
                .map_err(|e| format!("unreadable controller reply: {e}"))
        });
        match result {
            Ok(r) => Some(r),
            Err(e) => {
                // Once per request: retries follow with backoff.
                if !std::mem::replace(warned, true) {
                    warn!(leader, %addr, error = %e, "active controller unreachable; retrying");
                }
                None
            }
        }
    }

    /// Wait until this node has applied the metadata log up to `offset`.
    ///
    /// # Errors
    /// [`BrokerError::Timeout`] when it does not within the submit timeout.
    pub async fn wait_applied(&self, offset: u64) -> Result<(), BrokerError> {
        let mut rx = self.applied.clone();
        let ok = tokio::time::timeout(SUBMIT_TIMEOUT, rx.wait_for(|a| a.offset >= offset)).await;
        match ok {
            Ok(Ok(_)) => Ok(()),
            _ => Err(BrokerError::Timeout),
        }
    }

    /// Write records directly (this node must be the active controller); for
    /// the one-time import of a legacy metadata file.
    ///
    /// # Errors
    /// Not the active controller; the image refused the records.
    pub async fn write_local(&self, records: Vec<MetadataRecord>) -> Result<u64, BrokerError> {
        let _guard = self.core.decide.lock().await;
        let (offset, _) = self.core.write(records).await?;
        self.wait_applied(offset).await?;
        Ok(offset)
    }

    /// Stop the quorum member and release its directory.
    pub async fn shutdown(&self) {
        self.ticker.abort();
        let q = self
            .quorum
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(q) = q {
            if let Err(e) = q.shutdown().await {
                warn!(error = %e, "controller quorum shutdown failed");
            }
        }
    }
}

fn resolve(host: &str, port: u16) -> anyhow::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    format!("{host}:{port}")
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("{host}:{port} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host}:{port} does not resolve to an address"))
}
