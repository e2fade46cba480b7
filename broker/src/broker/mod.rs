//! The broker's shared state: configuration, cluster identity, the metadata
//! image and the topic registry built from it, and the producer-id allocator.
//!
//! Metadata changes (create, delete, add partitions, alter configs, producer-id
//! blocks, view definitions) are records: `commit` replays them onto the
//! current image, makes the result durable, publishes it, and only then acts
//! on the delta (opens, reconfigures or deletes partitions), so a crash never
//! leaves a topic half-known. Commits are serialised by `admin`.
//!
//! # Layout
//! - this file: [`Broker`] (open, accessors, commit, producer ids, shutdown),
//!   [`Topic`], topic-name rules.
//! - `admin`: topic creation, deletion, partition growth and config changes.
//! - `publish`: acting on a committed delta.

mod admin;
mod publish;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use brook_config::{BrokerConfig, TopicConfig};
use brook_protocol::codec::Uuid;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::error::BrokerError;
use crate::log::{read_offset_checkpoint, LogConfig, OpenOptions, PartitionLog};
use crate::metadata::legacy::{LegacyImage, MetadataStore};
use crate::metadata::{MetadataDelta, MetadataImage, MetadataRecord};
use crate::partition::Partition;
use crate::producer_state::ProducerStateTable;

/// Producer ids are reserved on disk in blocks of this size.
const PRODUCER_ID_BLOCK: i64 = 1000;
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
    partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        read(&self.partitions).clone()
    }

    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| read(&self.partitions).get(i).cloned())
    }

    pub fn partition_count(&self) -> i32 {
        read(&self.partitions).len() as i32
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
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises metadata commits.
    admin: Mutex<()>,
    /// The current metadata image: replaced whole by each commit.
    image: RwLock<Arc<MetadataImage>>,
    store: MetadataStore,
    producer_ids: std::sync::Mutex<(i64, i64)>,
    offline: AtomicBool,
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
}

impl Broker {
    /// Open (or initialise) the data directory and every partition log in it.
    ///
    /// # Errors
    /// Unreadable metadata, or a log that cannot be opened/recovered.
    pub fn open(config: BrokerConfig) -> anyhow::Result<Self> {
        Self::open_with_syncer(config, Arc::new(crate::log::FsyncSyncer))
    }

    /// [`Broker::open`] with the given [`crate::log::Syncer`] for every partition
    /// log (tests inject fsync failures and delays through it).
    ///
    /// # Errors
    /// As [`Broker::open`].
    #[doc(hidden)]
    pub fn open_with_syncer(
        config: BrokerConfig,
        syncer: Arc<dyn crate::log::Syncer>,
    ) -> anyhow::Result<Self> {
        let data_dir = config
            .log_dirs
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("log.dirs is empty: set at least one directory"))?;
        if config.log_dirs.len() > 1 {
            warn!(
                "brook uses only the first of log.dirs for now: {}",
                data_dir.display()
            );
        }
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create log dir {}: {e}", data_dir.display()))?;
        let store = MetadataStore::new(&data_dir);
        let legacy = match store.load()? {
            Some(img) => img,
            None => {
                let img = LegacyImage {
                    cluster_id: config
                        .cluster_id
                        .clone()
                        .unwrap_or_else(|| Uuid::from_bytes(rand::random()).to_string()),
                    ..Default::default()
                };
                store.save(&img)?;
                img
            }
        };
        if let Some(configured) = config.cluster_id.as_deref() {
            anyhow::ensure!(
                configured == legacy.cluster_id,
                "cluster.id is {configured}, but the data in {} belongs to cluster {}: a log dir cannot move between clusters",
                data_dir.display(),
                legacy.cluster_id
            );
        }
        check_meta_properties(&data_dir, config.node_id, &legacy.cluster_id)?;
        let cluster_id = legacy.cluster_id.clone();
        let mut image = MetadataImage::default();
        let records = legacy
            .to_records(config.node_id)
            .map_err(|e| anyhow::anyhow!("metadata: {e}"))?;
        image
            .replay_all(&records, &mut MetadataDelta::default())
            .map_err(|(i, e)| anyhow::anyhow!("metadata: record {i} of the import: {e}"))?;
        let config = Arc::new(config);
        let mut topics = BTreeMap::new();
        // Where each partition was durable and where its log starts, from the
        // data dir's checkpoint files (absent on a first start).
        let recovery = checkpoint_map(&data_dir, "recovery-point-offset-checkpoint")?;
        let starts = checkpoint_map(&data_dir, "log-start-offset-checkpoint")?;
        let cleaned = checkpoint_map(&data_dir, crate::cleaner::CHECKPOINT_FILE)?;
        for t in image.topics.values() {
            let name = &t.name;
            let overrides = image.topic_configs(name);
            let tc = Arc::new(TopicConfig::resolve(&config, &overrides)?);
            let mut parts = Vec::new();
            for p in t.partitions.values() {
                if !p.replicas.contains(&config.node_id) {
                    continue;
                }
                let key = (name.clone(), p.partition);
                let opts = OpenOptions {
                    recovery_point: recovery.get(&key).copied().unwrap_or(0),
                    log_start_offset: starts.get(&key).copied().unwrap_or(0),
                    cleaner_offset: cleaned.get(&key).copied().unwrap_or(0),
                    syncer: syncer.clone(),
                    ..OpenOptions::default()
                };
                parts.push(Arc::new(open_partition(
                    &data_dir,
                    name,
                    t.id,
                    p,
                    tc.clone(),
                    opts,
                )?));
            }
            topics.insert(
                name.clone(),
                Arc::new(Topic {
                    name: name.as_str().into(),
                    id: t.id,
                    probe: crate::metrics::TopicProbe::new(name),
                    overrides: RwLock::new(overrides),
                    partitions: RwLock::new(parts),
                }),
            );
        }
        info!(topics = topics.len(), dir = %data_dir.display(), "broker state loaded");
        let groups = crate::group::GroupCoordinator::load(
            crate::group::GroupConfig::from_broker(&config),
            Arc::new(crate::log::SystemClock),
            &topics
                .get(crate::group::OFFSETS_TOPIC)
                .map(|t: &Arc<Topic>| t.partitions())
                .unwrap_or_default(),
        )?;
        let next = image.next_producer_id;
        let cleaner = crate::cleaner::Cleaner::new(&config);
        let views = crate::views::ViewHost::new(&data_dir, &config);
        Ok(Self {
            cluster_id,
            config,
            data_dir,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            image: RwLock::new(Arc::new(image)),
            store,
            // (next id to hand out, end of the reserved block): nothing reserved yet.
            producer_ids: std::sync::Mutex::new((next, next)),
            offline: AtomicBool::new(false),
            bound: RwLock::new(None),
            groups,
            cleaner,
            views,
            syncer,
        })
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

    pub fn set_offline(&self) {
        self.offline.store(true, Ordering::Release);
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        read(&self.topics).get(name).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        read(&self.topics).values().find(|t| &t.id == id).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        read(&self.topics).values().cloned().collect()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic)?.partition(index)
    }

    /// Hand out a new producer id, reserving ids on disk in blocks so a restart
    /// never reuses one.
    ///
    /// # Errors
    /// Storage failure while reserving a block.
    pub async fn allocate_producer_id(&self) -> Result<i64, BrokerError> {
        if let Ok(id) = self.take_reserved_id() {
            return Ok(id);
        }
        // The admin lock serialises block reservations; the id counter's std lock
        // is never held across the commit below.
        let admin = self.admin.lock().await;
        let reserved_end = match self.take_reserved_id() {
            Ok(id) => return Ok(id),
            Err(end) => end,
        };
        let start = self.image().next_producer_id.max(reserved_end);
        self.commit(
            &admin,
            vec![MetadataRecord::ProducerIds {
                broker_id: self.node_id(),
                broker_epoch: -1,
                next: start + PRODUCER_ID_BLOCK,
            }],
        )
        .await?;
        *self
            .producer_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            (start + 1, start + PRODUCER_ID_BLOCK);
        Ok(start)
    }

    /// The next id of the reserved block, or `Err(end of the block)` when it is used up.
    fn take_reserved_id(&self) -> Result<i64, i64> {
        let mut ids = self
            .producer_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ids.0 < ids.1 {
            ids.0 += 1;
            Ok(ids.0 - 1)
        } else {
            Err(ids.1)
        }
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        read(&self.image).clone()
    }

    /// Commit `records`: replay them onto the current image, make the result
    /// durable (atomically, with fsyncs, on the blocking pool: never on an
    /// async runtime thread), publish it, then act on what changed. The
    /// caller holds the admin lock, so commits never interleave.
    ///
    /// # Errors
    /// [`BrokerError::Metadata`] when the image refuses a record (nothing
    /// changes); [`BrokerError::Storage`] when the image could not be written
    /// (nothing changes) or a partition it adds could not be opened.
    pub(crate) async fn commit(
        &self,
        _admin: &tokio::sync::MutexGuard<'_, ()>,
        records: Vec<MetadataRecord>,
    ) -> Result<(), BrokerError> {
        let old = self.image();
        let mut next = (*old).clone();
        let mut delta = MetadataDelta::default();
        next.replay_all(&records, &mut delta)
            .map_err(|(i, e)| BrokerError::Metadata(format!("record {i} refused: {e}")))?;
        let store = self.store.clone();
        let file = LegacyImage::from_image(&self.cluster_id, &next);
        tokio::task::spawn_blocking(move || store.save(&file))
            .await
            .map_err(|_| BrokerError::Internal("metadata write panicked"))?
            .map_err(|e| BrokerError::Storage(e.to_string()))?;
        let next = Arc::new(next);
        *write(&self.image) = next.clone();
        self.publish(&old, &next, &delta).await
    }

    /// Flush every partition and close the logs cleanly (graceful shutdown).
    pub async fn shutdown(&self) {
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

/// Read one of Kafka's offset-checkpoint files into a map; empty when absent.
fn checkpoint_map(dir: &Path, name: &str) -> anyhow::Result<HashMap<(String, i32), i64>> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(HashMap::new());
    }
    Ok(read_offset_checkpoint(&path)?
        .into_iter()
        .map(|e| ((e.topic, e.partition), e.offset))
        .collect())
}

fn open_partition(
    data_dir: &Path,
    topic: &str,
    id: Uuid,
    record: &crate::metadata::PartitionRecord,
    tc: Arc<TopicConfig>,
    opts: OpenOptions,
) -> anyhow::Result<Partition> {
    let index = record.partition;
    let dir = data_dir.join(format!("{topic}-{index}"));
    let created = !dir.exists();
    std::fs::create_dir_all(&dir)?;
    if created {
        // The new directory's entry must survive a power loss with its files.
        crate::log::checkpoint::sync_dir(data_dir)?;
    }
    let meta = dir.join("partition.metadata");
    if !meta.exists() {
        crate::log::checkpoint::write_atomically(
            &meta,
            format!("version: 0\ntopic_id: {id}\n").as_bytes(),
        )?;
    }
    let log = PartitionLog::open_with(&dir, log_config(&tc), opts)?;
    // After an unclean stop the recovered tail may be in the page cache only:
    // make it durable before anything of it is served, so an offset a consumer
    // reads can never vanish in a later power loss. A no-op after a clean stop.
    log.flush()?;
    let mut producers = ProducerStateTable::default();
    crate::producer_state::rebuild(&log, &mut producers)?;
    Ok(Partition::new(
        topic.into(),
        id,
        index,
        log,
        record.leader_epoch,
        tc,
        producers,
    ))
}

/// Write `meta.properties` on a first start; afterwards it must name this
/// node and cluster (Kafka refuses a log dir of another node or cluster too).
fn check_meta_properties(dir: &Path, node_id: i32, cluster_id: &str) -> anyhow::Result<()> {
    let path = dir.join("meta.properties");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return crate::log::checkpoint::write_atomically(
                &path,
                format!("version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n").as_bytes(),
            )
            .map_err(Into::into);
        }
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    for line in text.lines() {
        match line.split_once('=') {
            Some(("node.id", v)) if v.trim() != node_id.to_string() => {
                anyhow::bail!(
                    "{} belongs to node {}, but node.id is {node_id}: use that node's config or another log dir",
                    path.display(),
                    v.trim()
                )
            }
            Some(("cluster.id", v)) if v.trim() != cluster_id => {
                anyhow::bail!(
                    "{} belongs to cluster {}, but this node is in cluster {cluster_id}: a log dir cannot move between clusters",
                    path.display(),
                    v.trim()
                )
            }
            _ => {}
        }
    }
    Ok(())
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
