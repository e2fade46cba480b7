//! The broker's shared state: configuration, cluster identity, the metadata
//! image and the topic registry built from it, and the producer-id allocator.
//!
//! Metadata changes (create, delete, add partitions, alter configs, producer-id
//! blocks, view definitions) go to the active controller, which commits them
//! as records in the metadata log ([`crate::controller`]). Each node applies
//! the log to its image; `publish` then makes the registry and the hosted
//! partitions follow the image (opens, reconfigures, deletes partitions, and
//! moves leadership), so a crash never leaves a topic half-known. Admin
//! requests answer only once this node has published what they committed.
//!
//! # Layout
//! - this file: [`Broker`] (accessors, producer ids, shutdown), [`Topic`],
//!   topic-name rules.
//! - `open`: opening the data directories and partitions, joining the cluster.
//! - `identity`: the data directory's identity (cluster id, node id).
//! - `admin`: topic creation, deletion, partition growth and config changes.
//! - `publish`: following the image.
//! - `log_dir_health`: offline log directories and partition placement on them.

mod admin;
pub use admin::Placement;
mod dirs;
mod identity;
mod log_dir_health;
pub mod log_dirs;
mod open;
mod producer_ids;
mod publish;
mod topic_table;

pub(crate) use dirs::{
    open_partition, remove_deleted_partition_dirs, retire_partition_dir,
    rewrite_checkpoints_at_startup, StartupCheckpoints,
};
use topic_table::TopicTable;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use brook_config::{BrokerConfig, TopicConfig};
use brook_protocol::codec::Uuid;
use tokio::sync::Mutex;
use tracing::warn;

use crate::controller::membership::Membership;
use crate::controller::Controller;
use crate::error::BrokerError;
use crate::log::LogConfig;
use crate::metadata::MetadataImage;
use crate::partition::Partition;

/// The metadata log's directory under the first log dir (Kafka's name).
pub const METADATA_DIR: &str = "__cluster_metadata-0";
/// How long a starting broker waits to be unfenced.
const UNFENCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Longest legal topic name (Kafka's limit).
const MAX_TOPIC_NAME_LEN: usize = 249;

/// One topic.
#[derive(Debug)]
pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    /// Per-topic counters (bytes/records in and out).
    pub probe: crate::metrics::TopicProbe,
    overrides: RwLock<BTreeMap<String, String>>,
    /// The partitions hosted here, by index.
    partitions: RwLock<BTreeMap<i32, Arc<Partition>>>,
    /// How many partitions the topic has in the cluster.
    count: std::sync::atomic::AtomicI32,
}

impl Topic {
    fn new(name: &str, id: Uuid, overrides: BTreeMap<String, String>) -> Self {
        Self {
            name: name.into(),
            id,
            probe: crate::metrics::TopicProbe::new(name),
            overrides: RwLock::new(overrides),
            partitions: RwLock::new(BTreeMap::new()),
            count: std::sync::atomic::AtomicI32::new(0),
        }
    }

    /// The partitions hosted by this broker.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        read(&self.partitions).values().cloned().collect()
    }

    /// Partition `index`, if this broker hosts it.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        read(&self.partitions).get(&index).cloned()
    }

    /// The topic's partition count in the cluster.
    pub fn partition_count(&self) -> i32 {
        self.count.load(Ordering::Acquire)
    }

    /// The error for a partition this broker does not host: it exists
    /// elsewhere (NOT_LEADER_OR_FOLLOWER, clients refresh metadata) or not
    /// at all.
    pub fn absent_code(&self, index: i32) -> i16 {
        use brook_protocol::error::ErrorCode;
        if (0..self.partition_count()).contains(&index) {
            ErrorCode::NOT_LEADER_OR_FOLLOWER.code()
        } else {
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        }
    }

    pub fn overrides(&self) -> BTreeMap<String, String> {
        read(&self.overrides).clone()
    }

    /// Internal topics are flagged in Metadata and closed to clients' writes,
    /// deletion and growth.
    pub fn is_internal(&self) -> bool {
        is_internal_topic(&self.name)
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The broker.
#[derive(Debug)]
pub struct Broker {
    config: Arc<BrokerConfig>,
    data_dir: PathBuf,
    cluster_id: String,
    topics: RwLock<TopicTable>,
    /// Serialises publishing.
    publishing: Mutex<()>,
    /// The image the registry reflects (published), with its offset.
    image: RwLock<(Arc<MetadataImage>, u64)>,
    /// The metadata quorum member and controller client.
    controller: Arc<Controller>,
    /// This broker's registration and heartbeats.
    membership: Arc<Membership>,
    producer_ids: std::sync::Mutex<(i64, i64)>,
    /// Serialises producer-id block reservations.
    reserving: Mutex<()>,
    /// `log.dirs`: where partitions live, which are offline.
    log_dirs: log_dirs::LogDirs,
    /// The address bound at startup when the config left the port to the OS.
    bound: RwLock<Option<(String, i32)>>,
    /// The consumer group coordinator (groups loaded from `__consumer_offsets`).
    groups: crate::group::GroupCoordinator,
    /// The log cleaner's maps, throttle and schedule.
    cleaner: crate::cleaner::Cleaner,
    /// Materialized views hosted here.
    views: crate::views::ViewHost,
    /// How partition logs reach the disk (fsync; a seam for tests).
    syncer: Arc<dyn crate::log::Syncer>,
    /// Woken when a partition proposes an ISR change.
    isr_wake: Arc<tokio::sync::Notify>,
    /// Shared by the partitions: how many flush inline at once.
    inline_flushes: Arc<crate::partition::InlineFlushes>,
    follower_wakes: Arc<crate::partition::FollowerWakes>,
    /// Followers fetching from leaders.
    replicas: crate::replication::ReplicaManager,
    /// Client quotas: limits from the image, measured rates per client id.
    quotas: crate::quota::QuotaManager,
    /// Incremental fetch sessions of consumers and followers.
    fetch_sessions: std::sync::Mutex<crate::fetch_session::FetchSessionCache>,
}

impl Broker {
    /// Follow the metadata log: publish every newly applied image until
    /// `stop` turns true.
    pub async fn follow_metadata(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut applied = self.controller.subscribe();
        if self.config.is_broker() {
            // Followers start fetching, leaders start their ISR upkeep.
            for t in self.topics() {
                for p in t.partitions() {
                    self.replicas
                        .follow(&t.name, &p, p.role(), p.leader_epoch());
                    if &*t.name == crate::group::OFFSETS_TOPIC && p.is_leader() {
                        self.groups.ensure_shard(&p, t.partition_count());
                    }
                }
            }
            self.replicas.start(&self, stop.clone());
            tokio::spawn(crate::replication::isr::run(self.clone(), stop.clone()));
        }
        loop {
            if let Err(e) = self.catch_up().await {
                warn!(error = %e, "publishing metadata failed");
            }
            tokio::select! {
                _ = stop.changed() => return,
                r = applied.changed() => if r.is_err() { return },
            }
        }
    }

    /// Publish the latest applied image, if newer than the published one.
    ///
    /// # Errors
    /// A partition this node now hosts could not be opened.
    pub(crate) async fn catch_up(&self) -> Result<(), BrokerError> {
        let _guard = self.publishing.lock().await;
        let latest = self.controller.applied();
        let (old, offset) = read(&self.image).clone();
        if latest.offset <= offset && Arc::ptr_eq(&old, &latest.image) {
            return Ok(());
        }
        let delta = crate::metadata::MetadataDelta::between(&old, &latest.image);
        *write(&self.image) = (latest.image.clone(), latest.offset);
        if delta.is_empty() {
            return Ok(());
        }
        self.publish(&old, &latest.image, &delta).await
    }

    /// The controller quorum member and client.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// This broker's registration.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Ask the controller for controlled shutdown: leadership moves to other
    /// replicas (or, with none, the partition waits offline for this one).
    pub async fn controlled_shutdown(&self) {
        self.controller
            .controlled_shutdown(&self.membership, std::time::Duration::from_secs(10))
            .await;
        let _ = self.catch_up().await;
    }

    /// Host, port and rack of broker `id` for clients (this broker: its
    /// advertised listener; others: their first registered endpoint).
    pub fn broker_endpoint(&self, id: i32) -> Option<(String, i32, Option<String>)> {
        let image = self.image();
        let b = image.brokers.get(&id)?;
        let (host, port) = if id == self.node_id() {
            self.advertised()
        } else {
            let e = b.endpoints.first()?;
            (e.host.clone(), i32::from(e.port))
        };
        Some((host, port, b.rack.clone()))
    }

    /// The controller id clients see (Metadata, DescribeCluster): the active
    /// controller when it is also a live broker, else this broker. Clients
    /// send admin requests to that id, and only brokers have client
    /// listeners; any broker forwards to the active controller (Kafka's
    /// KRaft brokers answer the same way).
    pub fn controller_id_for_clients(&self) -> i32 {
        let live = |id: i32| self.image().brokers.get(&id).is_some_and(|b| !b.fenced);
        match self.controller.active() {
            Some((id, _)) if live(id) => id,
            _ if live(self.node_id()) => self.node_id(),
            _ => -1,
        }
    }

    /// The unfenced brokers clients may use: (id, host, port, rack).
    pub fn live_brokers(&self) -> Vec<(i32, String, i32, Option<String>)> {
        let image = self.image();
        image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| self.broker_endpoint(b.id).map(|(h, p, r)| (b.id, h, p, r)))
            .collect()
    }

    /// The leader and leader epoch of a partition in the published image
    /// (-1, -1 when unknown).
    pub fn leader_of(&self, topic_id: &Uuid, partition: i32) -> (i32, i32) {
        read(&self.image)
            .0
            .partition(topic_id, partition)
            .map_or((-1, -1), |p| (p.leader, p.leader_epoch))
    }

    /// The materialized views hosted by this broker.
    pub fn views(&self) -> &crate::views::ViewHost {
        &self.views
    }

    /// The log cleaner's shared state.
    pub fn cleaner(&self) -> &crate::cleaner::Cleaner {
        &self.cleaner
    }

    /// The consumer group coordinator.
    pub fn groups(&self) -> &crate::group::GroupCoordinator {
        &self.groups
    }

    /// How a partition replica opened now is set up (`hw`: its checkpointed HW).
    pub(crate) fn replica_setup(&self, hw: i64) -> crate::partition::ReplicaSetup {
        crate::partition::ReplicaSetup {
            node: self.node_id(),
            hw,
            lag_max_ms: u64::try_from(self.config.replica_lag_time_max_ms).unwrap_or(30_000),
            isr_wake: self.isr_wake.clone(),
            inline_flushes: self.inline_flushes.clone(),
            follower_wakes: self.follower_wakes.clone(),
        }
    }

    /// Each follower broker's wake-up for appends to partitions led here.
    pub(crate) fn follower_wakes(&self) -> &crate::partition::FollowerWakes {
        &self.follower_wakes
    }

    /// Woken when a partition proposes an ISR change.
    pub(crate) fn isr_wake(&self) -> &Arc<tokio::sync::Notify> {
        &self.isr_wake
    }

    /// The followers' fetchers.
    pub(crate) fn replica_manager(&self) -> &crate::replication::ReplicaManager {
        &self.replicas
    }

    /// The incremental fetch session cache (a short critical section per fetch).
    pub fn fetch_sessions(
        &self,
    ) -> std::sync::MutexGuard<'_, crate::fetch_session::FetchSessionCache> {
        self.fetch_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Client quotas (limits and measured rates).
    pub fn quotas(&self) -> &crate::quota::QuotaManager {
        &self.quotas
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Host and port clients should connect to.
    pub fn advertised(&self) -> (String, i32) {
        if self.config.advertised_listeners.is_none() {
            if let Some(b) = read(&self.bound).clone() {
                return b;
            }
        }
        match self.config.advertised().first() {
            Some(hp) => (hp.host.clone(), i32::from(hp.port)),
            None => ("127.0.0.1".into(), 9092),
        }
    }

    /// Record the listener's bound address (used when `listeners` asked for port 0).
    pub fn set_bound(&self, addr: std::net::SocketAddr) {
        *write(&self.bound) = Some((addr.ip().to_string(), i32::from(addr.port())));
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        read(&self.topics).get(name).cloned()
    }

    /// The topic with id `id` (Fetch v13+ and Metadata name topics by id):
    /// a hash look-up, not a scan of every topic.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        read(&self.topics).by_id(id)
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        read(&self.topics).values().cloned().collect()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic)?.partition(index)
    }

    /// The published metadata image (what the registry reflects).
    pub fn image(&self) -> Arc<MetadataImage> {
        read(&self.image).0.clone()
    }

    /// The offset of the published image in the metadata log.
    pub fn image_offset(&self) -> u64 {
        read(&self.image).1
    }

    /// Flush every partition and close the logs cleanly (graceful shutdown),
    /// then leave the controller quorum.
    pub async fn shutdown(&self) {
        self.close_logs().await;
        self.controller.shutdown().await;
    }

    async fn close_logs(&self) {
        for t in self.topics() {
            for p in t.partitions() {
                if let Err(e) = p.flush_all().await {
                    warn!(topic = %t.name, partition = p.index, error = %e, "flush at shutdown failed");
                }
                if let Err(e) = p.close() {
                    warn!(topic = %t.name, partition = p.index, error = %e, "closing log failed");
                }
            }
        }
    }
}

/// Map a topic's config to the log's.
pub fn log_config(tc: &TopicConfig) -> LogConfig {
    LogConfig {
        segment_bytes: tc.segment_bytes,
        segment_ms: tc.segment_ms,
        segment_index_bytes: u64::from(tc.segment_index_bytes),
        index_interval_bytes: u64::from(tc.index_interval_bytes),
        retention_ms: tc.retention_ms,
        retention_bytes: tc.retention_bytes,
        max_message_bytes: u64::from(tc.max_message_bytes),
    }
}

/// The topics the broker itself owns (Kafka's set; `__transaction_state`
/// arrives with transactions).
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// Whether `name` is one of [`INTERNAL_TOPICS`].
pub fn is_internal_topic(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// Kafka's topic name rules: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
///
/// # Errors
/// [`BrokerError::InvalidTopic`] naming the problem.
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    if name.is_empty() {
        return Err(BrokerError::InvalidTopic("topic name is empty".into()));
    }
    if name == "." || name == ".." {
        return Err(BrokerError::InvalidTopic(format!(
            "topic name cannot be '{name}'"
        )));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(BrokerError::InvalidTopic(format!(
            "topic name is {} characters; the limit is {MAX_TOPIC_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(BrokerError::InvalidTopic(format!(
            "topic name '{name}' contains '{c}'; allowed are ASCII letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod power_loss_tests;
