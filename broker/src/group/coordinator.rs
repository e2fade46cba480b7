//! [`GroupCoordinator`]: the I/O shell around the pure group state machine.
//!
//! Concurrency: the group table is a `std` mutex held only to look up or
//! insert a group; each group has its own tokio mutex held across
//! step → append → durable → replay, so a group's requests are applied one at
//! a time in arrival order while different groups proceed in parallel (and
//! their fsyncs are still group-committed). Parked JoinGroup/SyncGroup
//! responses are delivered after the lock is released ([`Stepped::finish`]),
//! so a member waiting for a rebalance never blocks the group's other members.
//! Creating `__consumer_offsets` (admin lock, fsyncs) happens before a group's
//! lock is taken, never under it.
//!
//! A slot removed from the table (its group became vacant) is marked
//! `retired`; a request that was waiting on its lock looks the group up again,
//! so there is never more than one live slot per group id.
//!
//! Crash behaviour: records are replayed into the group, and responses
//! (including the ones parked for other members) delivered, only once the
//! records are durable, so OffsetFetch never returns an offset a crash could
//! take back and a client never acts on an assignment a crash could undo. A
//! failed append or fsync leaves the group exactly as it was before the step.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use brook_protocol::records::{BatchBuilder, Compression};
use bytes::BytesMut;
use tokio::sync::{oneshot, watch, Mutex};
use tracing::{debug, warn};

use super::error::GroupError;
use super::machine::{Command, Effect, JoinResult, Pending, Reply, SyncResult};
use super::records::GroupRecord;
use super::state::{Group, GroupConfig, GroupView, Member, Phase};
use super::{partition_for, OFFSETS_TOPIC};
use crate::broker::Broker;
use crate::log::Clock;
use crate::partition::Partition;

mod shards;

/// How often the timer checks session, rebalance and retention deadlines.
const TICK: Duration = Duration::from_millis(100);
/// Longest wait for group records to be committed (Kafka's `offsets.commit.timeout.ms` default).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

type JoinTx = oneshot::Sender<JoinResult>;
type SyncTx = oneshot::Sender<Result<SyncResult, GroupError>>;

#[derive(Debug)]
struct Slot {
    /// Removed from the table: whoever holds this slot must look the group up again.
    retired: bool,
    /// The shard load this slot belongs to: a slot from an earlier load (this
    /// broker lost and regained the partition since) is stale.
    generation: u64,
    group: Group,
    /// Parked JoinGroup / SyncGroup responses by member id.
    joins: HashMap<String, JoinTx>,
    syncs: HashMap<String, SyncTx>,
}

/// Lists and describes groups for ListGroups / DescribeGroups.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub group_id: String,
    pub phase: Phase,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<Member>,
}

/// Whether this broker coordinates the groups of one `__consumer_offsets`
/// partition (a shard): it does while it leads the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shard {
    /// The image makes this broker the partition's leader, but its replica is
    /// still being opened (COORDINATOR_LOAD_IN_PROGRESS: clients that were
    /// told this broker coordinates retry instead of giving up).
    Opening,
    /// Becoming leader: replaying the partition (COORDINATOR_LOAD_IN_PROGRESS).
    Loading(u64),
    /// Loaded by the load with this generation, while this broker leads the
    /// partition in this leader epoch.
    Loaded(u64, i32),
}

type Table = HashMap<String, Arc<Mutex<Slot>>>;

/// The coordinator of the groups whose `__consumer_offsets` partition this
/// broker leads (one shard per partition). A shard is loaded by replaying its
/// partition once the partition's HW covers the whole log (everything in it
/// committed), and unloaded when leadership moves away; requests for groups
/// of other shards get NOT_COORDINATOR.
pub struct GroupCoordinator {
    cfg: GroupConfig,
    clock: Arc<dyn Clock>,
    groups: Arc<StdMutex<Table>>,
    shards: Arc<StdMutex<BTreeMap<i32, Shard>>>,
    /// Partitions of `__consumer_offsets` (0 until the topic exists).
    partitions: std::sync::atomic::AtomicI32,
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

enum Delivery {
    Join(JoinTx, JoinResult),
    Sync(SyncTx, Result<SyncResult, GroupError>),
}

/// A step applied in order; [`Stepped::finish`] waits for durability, delivers
/// the responses it produced and resolves the caller's own.
#[must_use = "finish() delivers other members' responses"]
pub struct Stepped {
    reply: Reply,
    join_rx: Option<oneshot::Receiver<JoinResult>>,
    sync_rx: Option<oneshot::Receiver<Result<SyncResult, GroupError>>>,
    /// The step's records could not be made durable (the step was undone).
    failed: Option<GroupError>,
    deliveries: Vec<Delivery>,
}

impl std::fmt::Debug for Stepped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stepped")
            .field("reply", &self.reply)
            .finish_non_exhaustive()
    }
}

impl Stepped {
    fn ready(reply: Reply) -> Self {
        Self {
            reply,
            join_rx: None,
            sync_rx: None,
            failed: None,
            deliveries: Vec::new(),
        }
    }

    /// Deliver the parked responses the step completed and return the caller's
    /// reply with any `Pending::Wait` resolved. The step's records are already
    /// durable (or the step failed and was undone).
    pub async fn finish(self) -> Reply {
        let failed = self.failed;
        for d in self.deliveries {
            // A receiver that is gone belongs to a connection that closed.
            match d {
                Delivery::Join(tx, r) => {
                    let r = match &failed {
                        Some(e) => JoinResult {
                            error: Some(e.clone()),
                            ..r
                        },
                        None => r,
                    };
                    let _ = tx.send(r);
                }
                Delivery::Sync(tx, r) => {
                    let _ = tx.send(failed.clone().map_or(r, Err));
                }
            }
        }
        match self.reply {
            Reply::Join(Pending::Wait(id)) => {
                let r = match self.join_rx {
                    Some(rx) => rx.await.unwrap_or_else(|_| {
                        JoinResult::error_for(GroupError::UnknownMemberId, &id)
                    }),
                    None => JoinResult::error_for(GroupError::UnknownMemberId, &id),
                };
                Reply::Join(Pending::Now(r))
            }
            Reply::Join(Pending::Now(r)) => Reply::Join(Pending::Now(match failed {
                Some(e) if r.error.is_none() => JoinResult {
                    error: Some(e),
                    ..r
                },
                _ => r,
            })),
            Reply::Sync(Pending::Wait(_)) => {
                let r = match self.sync_rx {
                    Some(rx) => rx.await.unwrap_or(Err(GroupError::RebalanceInProgress)),
                    None => Err(GroupError::RebalanceInProgress),
                };
                Reply::Sync(Pending::Now(r))
            }
            Reply::Commit(Ok(_)) | Reply::DeleteOffsets(Ok(_)) | Reply::Delete(Ok(()))
                if failed.is_some() =>
            {
                let e = failed.unwrap_or(GroupError::CoordinatorNotAvailable);
                match self.reply {
                    Reply::Commit(_) => Reply::Commit(Err(e)),
                    Reply::DeleteOffsets(_) => Reply::DeleteOffsets(Err(e)),
                    _ => Reply::Delete(Err(e)),
                }
            }
            other => other,
        }
    }
}

impl JoinResult {
    /// An error answer for `member_id`.
    pub fn error_for(e: GroupError, member_id: &str) -> Self {
        Self {
            error: Some(e),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

fn new_slot(group: Group, generation: u64) -> Arc<Mutex<Slot>> {
    Arc::new(Mutex::new(Slot {
        retired: false,
        generation,
        group,
        joins: HashMap::new(),
        syncs: HashMap::new(),
    }))
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl GroupCoordinator {
    /// A coordinator with no shards yet.
    pub fn new(cfg: GroupConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            cfg,
            clock,
            groups: Arc::new(StdMutex::new(HashMap::new())),
            shards: Arc::new(StdMutex::new(BTreeMap::new())),
            partitions: std::sync::atomic::AtomicI32::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Load at startup, before clients are served, the shards whose
    /// partitions this broker leads with everything committed (a single
    /// node's case); the others load when their HW catches up.
    ///
    /// # Errors
    /// Storage errors reading the topic.
    pub fn load(
        cfg: GroupConfig,
        clock: Arc<dyn Clock>,
        offsets_partitions: &[Arc<Partition>],
        count: i32,
    ) -> anyhow::Result<Self> {
        let c = Self::new(cfg, clock);
        c.partitions
            .store(count, std::sync::atomic::Ordering::Release);
        let mut loaded = 0;
        for p in offsets_partitions {
            if p.is_leader() && p.high_watermark() >= p.log_end_offset() {
                let generation = c.next_generation();
                let groups = super::load::load_groups(
                    std::slice::from_ref(p),
                    p.log_end_offset(),
                    c.clock.now_ms(),
                )?;
                loaded += groups.len();
                lock(&c.groups).extend(
                    groups
                        .into_iter()
                        .map(|(id, g)| (id, new_slot(g, generation))),
                );
                lock(&c.shards).insert(p.index, Shard::Loaded(generation, p.leader_epoch()));
            }
        }
        tracing::info!(groups = loaded, "consumer groups loaded");
        Ok(c)
    }

    fn next_generation(&self) -> u64 {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1
    }

    pub fn config(&self) -> &GroupConfig {
        &self.cfg
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        lock(&self.groups)
    }

    /// The group's slot (a new one with `create`), if this broker
    /// coordinates it.
    fn slot(&self, group: &str, create: bool) -> Result<Option<Arc<Mutex<Slot>>>, GroupError> {
        let generation = self.shard_of(group)?;
        let mut t = self.table();
        if let Some(s) = t.get(group) {
            return Ok(Some(s.clone()));
        }
        if !create {
            return Ok(None);
        }
        // Without the topic nothing is coordinated yet: the append creates it
        // (and fails with NOT_COORDINATOR when another broker leads the shard).
        let s = new_slot(
            Group::new(group, self.clock.now_ms()),
            generation.unwrap_or(0),
        );
        t.insert(group.to_owned(), s.clone());
        Ok(Some(s))
    }

    /// Whether a locked slot is still the live one for its group.
    fn is_current(&self, group: &str, s: &Slot) -> bool {
        !s.retired
            && match self.shard_of(group) {
                Ok(Some(g)) => g == s.generation,
                Ok(None) => true,
                Err(_) => false,
            }
    }

    /// Ids of all groups.
    pub fn group_ids(&self) -> Vec<String> {
        self.table().keys().cloned().collect()
    }

    /// Apply `cmd` to `group`. `create` makes an unknown group (JoinGroup,
    /// OffsetCommit); otherwise `missing` is the reply for an unknown group.
    pub async fn execute(
        &self,
        broker: &Arc<Broker>,
        group: &str,
        cmd: Command,
        create: bool,
        missing: Reply,
    ) -> Stepped {
        if create && broker.topic(OFFSETS_TOPIC).is_none() {
            // Create the topic now, outside the group's lock. A failure here is
            // met again (and reported) by the append below.
            let _ = offsets_partition(broker, group).await;
        }
        let (slot, mut s) = loop {
            let slot = match self.slot(group, create) {
                Ok(Some(slot)) => slot,
                Ok(None) => return Stepped::ready(missing),
                Err(e) => return Stepped::ready(cmd.refused(e)),
            };
            let s = slot.clone().lock_owned().await;
            if self.is_current(group, &s) {
                break (slot, s);
            }
            if !s.retired {
                // A slot of an earlier load of this shard: replace it.
                let mut t = self.table();
                if t.get(group).is_some_and(|x| Arc::ptr_eq(x, &slot)) {
                    t.remove(group);
                }
            }
        };
        let now = self.clock.now_ms();
        // Offsets change only by replay; everything else a step may change is
        // restored from this copy if its records cannot be made durable.
        let before = s.group.clone_without_offsets();
        let out = s.group.step(cmd, now, &self.cfg);
        let mut stepped = Stepped::ready(out.reply);
        match &stepped.reply {
            Reply::Join(Pending::Wait(id)) => {
                let (tx, rx) = oneshot::channel();
                s.joins.insert(id.clone(), tx);
                stepped.join_rx = Some(rx);
            }
            Reply::Sync(Pending::Wait(id)) => {
                let (tx, rx) = oneshot::channel();
                s.syncs.insert(id.clone(), tx);
                stepped.sync_rx = Some(rx);
            }
            _ => {}
        }
        for e in out.effects {
            match e {
                Effect::Join { member_id, result } => {
                    if let Some(tx) = s.joins.remove(&member_id) {
                        stepped.deliveries.push(Delivery::Join(tx, result));
                    }
                }
                Effect::Sync { member_id, result } => {
                    if let Some(tx) = s.syncs.remove(&member_id) {
                        stepped.deliveries.push(Delivery::Sync(tx, result));
                    }
                }
            }
        }
        if !out.records.is_empty() {
            match self.append_durably(broker, group, &out.records, now).await {
                Ok(()) => {
                    for r in &out.records {
                        s.group.replay(r, now);
                    }
                }
                Err(e) => {
                    warn!(group, error = %e, "cannot persist group records; step undone");
                    let offsets = std::mem::take(&mut s.group.offsets);
                    s.group = before;
                    s.group.offsets = offsets;
                    // The caller's own parked response would wait for a rebalance
                    // that is not happening: answer it now.
                    match &stepped.reply {
                        Reply::Join(Pending::Wait(id)) => {
                            s.joins.remove(id);
                            stepped.join_rx = None;
                            stepped.reply =
                                Reply::Join(Pending::Now(JoinResult::error_for(e.clone(), id)));
                        }
                        Reply::Sync(Pending::Wait(id)) => {
                            s.syncs.remove(id);
                            stepped.sync_rx = None;
                            stepped.reply = Reply::Sync(Pending::Now(Err(e.clone())));
                        }
                        _ => {}
                    }
                    stepped.failed = Some(e);
                }
            }
        }
        if s.group.is_vacant() {
            // Dead (deleted) or never really created: forget it. Requests waiting
            // on this slot see `retired` and look the group up again; parked
            // responses left behind are answered by their dropped senders.
            s.retired = true;
            let mut t = self.table();
            if t.get(group).is_some_and(|x| Arc::ptr_eq(x, &slot)) {
                t.remove(group);
            }
        }
        stepped
    }

    /// Append `records` to the group's offsets partition and wait until they are
    /// committed (the partition's HW passed them: durable on every ISR member).
    /// A failed fsync takes the log directory offline.
    async fn append_durably(
        &self,
        broker: &Arc<Broker>,
        group: &str,
        records: &[GroupRecord],
        now: i64,
    ) -> Result<(), GroupError> {
        let (p, last, epoch) = self.append(broker, group, records, now).await?;
        p.request_flush();
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        if let Err(e) = p.wait_committed(last, epoch, deadline).await {
            if e == crate::partition::NotCommitted::Storage {
                broker.set_offline(&p, "group metadata flush failed");
            }
            return Err(GroupError::Storage(
                crate::error::BrokerError::from(e).to_string(),
            ));
        }
        Ok(())
    }

    async fn append(
        &self,
        broker: &Arc<Broker>,
        group: &str,
        records: &[GroupRecord],
        now: i64,
    ) -> Result<(Arc<Partition>, i64, i32), GroupError> {
        let partition = offsets_partition(broker, group).await?;
        // Append only in the leadership term the shard was loaded in.
        let expected = self.shard_epoch(group).ok().flatten().map(|(_, e)| e);
        let mut b = BatchBuilder::new();
        for r in records {
            let (k, v) = r.encode();
            b.append(now, Some(&k), v.as_deref(), &[])
                .map_err(|e| GroupError::Storage(e.to_string()))?;
        }
        let batch = b
            .build(Compression::None)
            .map_err(|e| GroupError::Storage(e.to_string()))?;
        let buf = BytesMut::from(&batch[..]);
        let a = partition
            .append_in_epoch(&buf, now, expected)
            .await
            .map_err(|e| GroupError::Storage(e.to_string()))?;
        Ok((partition, a.last_offset, a.leader_epoch))
    }

    /// Committed offsets of `group`: all of them, or those of `wanted`
    /// (`(topic, partition)`), absent ones as `None`.
    pub async fn fetch_offsets(
        &self,
        group: &str,
        wanted: Option<&[(String, i32)]>,
    ) -> Result<Vec<((String, i32), Option<super::OffsetValue>)>, GroupError> {
        let none = || {
            wanted
                .map(|w| w.iter().map(|k| (k.clone(), None)).collect())
                .unwrap_or_default()
        };
        let Some(slot) = self.slot(group, false)? else {
            return Ok(none());
        };
        let s = slot.lock().await;
        if !self.is_current(group, &s) {
            self.check_coordinator(group)?;
            return Ok(none());
        }
        Ok(match wanted {
            Some(w) => w
                .iter()
                .map(|k| (k.clone(), s.group.offsets.get(k).cloned()))
                .collect(),
            None => s
                .group
                .offsets
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
        })
    }

    /// A group's summary, or `None` if it does not exist.
    pub async fn describe(&self, group: &str) -> Option<GroupSummary> {
        let slot = self.slot(group, false).ok().flatten()?;
        let s = slot.lock().await;
        if !self.is_current(group, &s) || s.group.is_vacant() {
            return None;
        }
        let g = &s.group;
        Some(GroupSummary {
            group_id: g.id.clone(),
            phase: g.phase,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: g.protocol.clone().unwrap_or_default(),
            members: g.members.values().cloned().collect(),
        })
    }

    /// Summaries of every group, by id.
    pub async fn list(&self) -> Vec<GroupSummary> {
        let mut ids = self.group_ids();
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            if let Some(s) = self.describe(&id).await {
                out.push(s);
            }
        }
        out
    }

    /// The persistent view of a group (tests, tools).
    pub async fn view(&self, group: &str) -> Option<GroupView> {
        let slot = self.slot(group, false).ok().flatten()?;
        let s = slot.lock().await;
        Some(s.group.view())
    }

    /// Run timeouts and retention for every group.
    pub async fn tick_all(&self, broker: &Arc<Broker>) {
        for id in self.group_ids() {
            let stepped = self
                .execute(broker, &id, Command::Tick, false, Reply::None)
                .await;
            // Ticks answer nobody themselves; deliver what they completed
            // without holding up the other groups.
            tokio::spawn(stepped.finish());
        }
    }
}

/// The `__consumer_offsets` partition of `group`, creating the topic on first use.
///
/// # Errors
/// The topic cannot be created.
pub async fn offsets_partition(broker: &Broker, group: &str) -> Result<Arc<Partition>, GroupError> {
    let topic = match broker.topic(OFFSETS_TOPIC) {
        Some(t) => t,
        None => {
            let n = broker.config().offsets_topic_num_partitions;
            let configs = BTreeMap::from([
                ("cleanup.policy".to_owned(), "compact".to_owned()),
                (
                    "segment.bytes".to_owned(),
                    broker.config().offsets_topic_segment_bytes.to_string(),
                ),
            ]);
            match broker
                .create_topic(OFFSETS_TOPIC, n, -1, configs, false)
                .await
            {
                Ok(t) => t,
                Err(crate::error::BrokerError::TopicAlreadyExists(_)) => broker
                    .topic(OFFSETS_TOPIC)
                    .ok_or(GroupError::CoordinatorNotAvailable)?,
                Err(e) => return Err(GroupError::Storage(e.to_string())),
            }
        }
    };
    // The topic's real partition count decides placement (a changed
    // offsets.topic.num.partitions must not move existing groups). Only the
    // partition's leader coordinates the group.
    let index = partition_for(group, topic.partition_count());
    match topic.partition(index) {
        Some(p) if p.is_leader() => Ok(p),
        _ => Err(GroupError::NotCoordinator),
    }
}

/// The coordinator's timer: session, rebalance and initial-delay deadlines and
/// offset retention, until `stop` turns true.
pub async fn run_timer(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => broker.groups().tick_all(&broker).await,
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    debug!("group timer stopped");
                    return;
                }
            }
        }
    }
}
