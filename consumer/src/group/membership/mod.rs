//! The membership task: one per subscribed [`crate::Consumer`].
//!
//! It runs the classic protocol against the group coordinator on a connection
//! of its own (JoinGroup may be parked by the coordinator for up to the
//! rebalance timeout, so that connection's request timeout is
//! `max.poll.interval.ms` + 5 s, as in the Java client):
//!
//! 1. before joining, an eager member revokes everything it owns, a member
//!    that was removed from the group reports its partitions lost;
//! 2. JoinGroup (member id required flow of v4+; one protocol per assignor,
//!    owned partitions included for the cooperative protocol);
//! 3. the leader runs the assignor (`leader`), everyone SyncGroups;
//! 4. the assignment is applied: a cooperative member first revokes what it
//!    lost and, if it revoked anything, rejoins at once (the second phase);
//! 5. Heartbeat every `heartbeat.interval.ms` until the coordinator asks for a
//!    rebalance, the subscription or its metadata changes, or the application
//!    stops polling for longer than `max.poll.interval.ms` (then the member
//!    leaves and rejoins at the next poll).
//!
//! Revoke / lost / assign are [`Event`]s the consumer applies inside `poll`;
//! the task waits for each acknowledgement (heartbeating meanwhile), so a
//! revoked partition's position is committed before the member rejoins and
//! nobody else can be assigned the partition before that commit.
//!
//! Errors, as the Java client: UNKNOWN_MEMBER_ID resets the member id,
//! ILLEGAL_GENERATION the generation (both lose the partitions), and
//! REBALANCE_IN_PROGRESS rejoins; NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE
//! and lost connections rediscover the coordinator; FENCED_INSTANCE_ID and
//! configuration errors are fatal and reported by the next `poll`.
//!
//! `rpc` holds the coordinator exchanges and the error mapping.
//!
//! If the consumer is dropped without `close`, the task ends without
//! LeaveGroup, like a crashed process: the session timeout removes it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_producer::client::{Client, Connection};
use brook_producer::TopicPartition;
use regex::Regex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{leader, Assignor, RebalanceProtocol, Subscription};
use crate::error::Error;
use crate::offsets;

mod rpc;

/// What the consumer must do; each carries the acknowledgement to send once done.
#[derive(Debug)]
pub(crate) enum Event {
    /// Commit (auto commit) and give up these partitions.
    Revoke(Vec<TopicPartition>, oneshot::Sender<()>),
    /// Give up these partitions without committing.
    Lost(Vec<TopicPartition>, oneshot::Sender<()>),
    /// The full assignment of `generation`.
    Assigned {
        generation: i32,
        member_id: String,
        partitions: Vec<TopicPartition>,
        done: oneshot::Sender<()>,
    },
    /// The task stopped for this reason.
    Fatal(Error),
}

/// What the consumer asks of the task.
#[derive(Debug)]
pub(crate) enum Command {
    /// New subscription: rejoin with it.
    Subscribe(Topics),
    /// Leave the group (unless static) and stop.
    Close(oneshot::Sender<()>),
}

/// A subscription.
#[derive(Debug, Clone)]
pub(crate) enum Topics {
    List(Vec<String>),
    Pattern(Regex),
}

/// State the consumer reads: the live generation (for commits) and when it
/// last polled (for `max.poll.interval.ms`).
#[derive(Debug)]
pub(crate) struct Shared {
    pub generation: i32,
    pub member_id: String,
    pub last_poll: Instant,
}

/// Settings taken from the consumer config.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub group: String,
    pub instance: Option<String>,
    pub client_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub heartbeat_interval: Duration,
    pub retry_backoff: Duration,
    pub request_timeout: Duration,
    pub metadata_max_age: Duration,
    pub assignors: Vec<Arc<dyn Assignor>>,
    pub protocol: RebalanceProtocol,
}

/// The consumer's side of a running task.
#[derive(Debug)]
pub(crate) struct Handle {
    pub events: mpsc::UnboundedReceiver<Event>,
    pub commands: mpsc::UnboundedSender<Command>,
    pub shared: Arc<Mutex<Shared>>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the task.
pub(crate) fn start(client: Client, settings: Settings, topics: Topics) -> Handle {
    let (events_tx, events) = mpsc::unbounded_channel();
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Mutex::new(Shared {
        generation: -1,
        member_id: String::new(),
        last_poll: Instant::now(),
    }));
    let task = Task {
        client,
        s: settings,
        topics,
        events: events_tx,
        commands: commands_rx,
        shared: shared.clone(),
        conn: None,
        member_id: String::new(),
        generation: -1,
        owned: Vec::new(),
        lost: false,
        rejoin: false,
        counts: BTreeMap::new(),
    };
    let task = tokio::spawn(task.run());
    Handle {
        events,
        commands,
        shared,
        task,
    }
}

/// Why a step ended early.
enum Ctl {
    /// Rejoin after `retry.backoff.ms`.
    Retry,
    /// Rejoin now.
    Rejoin,
    /// Stop the task (closed, consumer dropped, or fatal).
    Stop,
}

struct Task {
    client: Client,
    s: Settings,
    topics: Topics,
    events: mpsc::UnboundedSender<Event>,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Mutex<Shared>>,
    conn: Option<Arc<Connection>>,
    member_id: String,
    generation: i32,
    /// What the consumer owns (applied events only).
    owned: Vec<TopicPartition>,
    /// The member was removed: `owned` must be reported lost before rejoining.
    lost: bool,
    /// The coordinator asked for a rebalance while we waited on the consumer.
    rejoin: bool,
    /// Partition counts of the subscribed topics at the last join.
    counts: BTreeMap<String, i32>,
}

impl Task {
    async fn run(mut self) {
        loop {
            let backoff = match self.cycle().await {
                Ctl::Retry => true,
                Ctl::Rejoin => false,
                Ctl::Stop => break,
            };
            if backoff {
                let sleep = tokio::time::sleep(self.s.retry_backoff);
                tokio::select! {
                    () = sleep => {}
                    cmd = self.commands.recv() => {
                        if let Ctl::Stop = self.command(cmd).await {
                            break;
                        }
                    }
                }
            }
        }
        if let Some(c) = self.conn.take() {
            c.close("consumer group task ended");
        }
    }

    /// One join/sync/heartbeat cycle.
    async fn cycle(&mut self) -> Ctl {
        if let Err(c) = self.prepare().await {
            return c;
        }
        let conn = match self.coordinator().await {
            Ok(c) => c,
            Err(c) => return c,
        };
        let topics = match self.resolve_topics().await {
            Ok(t) => t,
            Err(c) => return c,
        };
        // A rebalance asked for while we waited on the consumer is this join.
        self.rejoin = false;
        // JoinGroup may be parked for the rebalance timeout; commands (close,
        // a new subscription) must not wait that long.
        let mut commands = std::mem::replace(&mut self.commands, mpsc::unbounded_channel().1);
        let join = tokio::select! {
            r = self.join(&conn, &topics) => Ok(r),
            cmd = commands.recv() => Err(cmd),
        };
        self.commands = commands;
        let join = match join {
            Ok(j) => j,
            Err(cmd) => {
                // Abandon the parked JoinGroup: its connection is dropped.
                self.drop_coordinator();
                return match self.command(cmd).await {
                    Ctl::Stop => Ctl::Stop,
                    _ => Ctl::Rejoin,
                };
            }
        };
        let join = match join {
            Ok(j) => j,
            Err(c) => return c,
        };
        let assignment = match self.sync(&conn, join).await {
            Ok(a) => a,
            Err(c) => return c,
        };
        if let Err(c) = self.apply(assignment).await {
            return c;
        }
        if std::mem::take(&mut self.rejoin) {
            return Ctl::Rejoin;
        }
        self.heartbeat_loop().await
    }

    /// Before joining: report lost partitions, or revoke all (eager).
    async fn prepare(&mut self) -> Result<(), Ctl> {
        if self.lost {
            self.lost = false;
            let parts = std::mem::take(&mut self.owned);
            if !parts.is_empty() {
                self.hand(|done| Event::Lost(parts.clone(), done)).await?;
            }
        }
        if self.s.protocol == RebalanceProtocol::Eager && !self.owned.is_empty() {
            let parts = self.owned.clone();
            self.hand(|done| Event::Revoke(parts.clone(), done)).await?;
            self.owned.clear();
        }
        Ok(())
    }

    async fn command(&mut self, cmd: Option<Command>) -> Ctl {
        match cmd {
            None => Ctl::Stop,
            Some(Command::Close(done)) => {
                self.leave("consumer closed").await;
                let _ = done.send(());
                Ctl::Stop
            }
            Some(Command::Subscribe(topics)) => {
                self.topics = topics;
                Ctl::Rejoin
            }
        }
    }

    fn fatal(&mut self, e: Error) -> Ctl {
        tracing::error!("group {}: {e}", self.s.group);
        let _ = self.events.send(Event::Fatal(e));
        Ctl::Stop
    }

    fn drop_coordinator(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close("coordinator changed or unreachable");
        }
    }

    /// The dedicated coordinator connection, discovering it if needed.
    async fn coordinator(&mut self) -> Result<Arc<Connection>, Ctl> {
        if let Some(c) = self.conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (_, addr) = offsets::find_coordinator(&self.client, &self.s.group)
            .await
            .map_err(|e| {
                tracing::debug!("group {}: finding the coordinator: {e}", self.s.group);
                Ctl::Retry
            })?;
        let rebalance =
            Duration::from_millis(u64::try_from(self.s.rebalance_timeout_ms).unwrap_or(0));
        let timeout = self
            .s
            .request_timeout
            .max(rebalance + Duration::from_secs(5));
        let conn = Connection::connect(&addr, &self.s.client_id, Duration::from_secs(10), timeout)
            .await
            .map_err(|e| {
                tracing::debug!("group {}: connecting to {addr}: {e}", self.s.group);
                Ctl::Retry
            })?;
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    /// The subscribed topic names (a pattern is matched against all topics).
    async fn resolve_topics(&mut self) -> Result<Vec<String>, Ctl> {
        match &self.topics {
            Topics::List(t) => Ok(t.clone()),
            Topics::Pattern(re) => {
                let re = re.clone();
                let all = rpc::all_topics(&self.client).await.map_err(|e| {
                    tracing::debug!("group {}: listing topics: {e}", self.s.group);
                    Ctl::Retry
                })?;
                Ok(all.into_iter().filter(|t| re.is_match(t)).collect())
            }
        }
    }

    fn subscription(&self, topics: &[String]) -> Subscription {
        let cooperative = self.s.protocol == RebalanceProtocol::Cooperative;
        Subscription {
            topics: topics.to_vec(),
            user_data: None,
            owned: if cooperative {
                self.owned.clone()
            } else {
                Vec::new()
            },
            generation: if cooperative { self.generation } else { -1 },
        }
    }

    /// Hands the new assignment to the consumer (revoking first if cooperative).
    async fn apply(&mut self, mut partitions: Vec<TopicPartition>) -> Result<(), Ctl> {
        partitions.sort();
        partitions.dedup();
        if self.s.protocol == RebalanceProtocol::Cooperative {
            let revoked: Vec<TopicPartition> = self
                .owned
                .iter()
                .filter(|tp| !partitions.contains(tp))
                .cloned()
                .collect();
            if !revoked.is_empty() {
                self.hand(|done| Event::Revoke(revoked.clone(), done))
                    .await?;
                self.owned.retain(|tp| !revoked.contains(tp));
                // Second phase: the revoked partitions can now go elsewhere.
                self.rejoin = true;
            }
        }
        let (generation, member_id) = (self.generation, self.member_id.clone());
        self.hand(|done| Event::Assigned {
            generation,
            member_id: member_id.clone(),
            partitions: partitions.clone(),
            done,
        })
        .await?;
        self.owned = partitions;
        if self.lost {
            return Err(Ctl::Rejoin);
        }
        Ok(())
    }

    /// Sends an event and waits until the consumer applied it, heartbeating
    /// meanwhile and leaving the group if the application stops polling.
    ///
    /// If the consumer drops the event unacknowledged (a `poll` future
    /// cancelled halfway, e.g. by a timeout around it), the event is sent
    /// again: applying one twice is harmless, skipping one is not.
    async fn hand(&mut self, event: impl Fn(oneshot::Sender<()>) -> Event) -> Result<(), Ctl> {
        let (tx, mut rx) = oneshot::channel();
        if self.events.send(event(tx)).is_err() {
            return Err(Ctl::Stop);
        }
        let mut tick = tokio::time::interval(self.s.heartbeat_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                r = &mut rx => {
                    if r.is_ok() {
                        return Ok(());
                    }
                    let (tx, next) = oneshot::channel();
                    if self.events.send(event(tx)).is_err() {
                        // The consumer is gone.
                        return Err(Ctl::Stop);
                    }
                    rx = next;
                }
                _ = tick.tick() => {
                    if self.poll_expired() {
                        self.leave("max.poll.interval.ms exceeded").await;
                        continue;
                    }
                    if self.member_id.is_empty() || self.generation < 0 {
                        continue;
                    }
                    match self.heartbeat().await {
                        Ok(()) => {}
                        Err(Ctl::Stop) => return Err(Ctl::Stop),
                        Err(_) => self.rejoin = true,
                    }
                }
                cmd = self.commands.recv() => match self.command(cmd).await {
                    Ctl::Stop => return Err(Ctl::Stop),
                    _ => self.rejoin = true,
                },
            }
        }
    }

    fn poll_expired(&self) -> bool {
        let limit = Duration::from_millis(u64::try_from(self.s.rebalance_timeout_ms).unwrap_or(0));
        self.shared
            .lock()
            .map(|s| s.last_poll.elapsed() > limit)
            .unwrap_or(false)
    }

    async fn heartbeat_loop(&mut self) -> Ctl {
        let mut tick = tokio::time::interval(self.s.heartbeat_interval);
        tick.tick().await;
        let mut metadata_check = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if self.poll_expired() {
                        self.leave("max.poll.interval.ms exceeded").await;
                        return Ctl::Rejoin;
                    }
                    if let Err(c) = self.heartbeat().await {
                        return c;
                    }
                    let age = match self.topics {
                        // A pattern may match new topics at any time; look often.
                        Topics::Pattern(_) => self.s.metadata_max_age.min(Duration::from_secs(5)),
                        Topics::List(_) => self.s.metadata_max_age,
                    };
                    if metadata_check.elapsed() >= age {
                        metadata_check = Instant::now();
                        if self.subscription_changed().await {
                            return Ctl::Rejoin;
                        }
                    }
                }
                cmd = self.commands.recv() => return self.command(cmd).await,
            }
        }
    }

    /// Whether the matched topics or their partition counts changed since the join.
    async fn subscription_changed(&mut self) -> bool {
        let Ok(topics) = self.resolve_topics().await else {
            return false;
        };
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        match leader::partition_counts(&self.client, &names).await {
            Ok(c) if c != self.counts => {
                tracing::info!(
                    "group {}: subscribed topics changed; rejoining",
                    self.s.group
                );
                true
            }
            _ => false,
        }
    }
}
