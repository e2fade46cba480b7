//! Opening a broker: the data directories and their identity, the metadata
//! image, every hosted partition log, the group coordinator and the other
//! services; then joining the cluster (register, be unfenced, catch up).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use brook_config::{BrokerConfig, TopicConfig};
use tokio::sync::Mutex;
use tracing::info;

use super::dirs::sweep_partition_dirs;
use super::topic_table::TopicTable;
use super::{
    identity, log_dirs, open_partition, remove_deleted_partition_dirs,
    rewrite_checkpoints_at_startup, write, Broker, StartupCheckpoints, Topic, METADATA_DIR,
    UNFENCE_TIMEOUT,
};
use crate::controller::membership::Membership;
use crate::controller::Controller;
use crate::metadata::legacy::MetadataStore;

impl Broker {
    /// Open (or initialise) the data directory and every partition log in
    /// it, join the controller quorum and register as a broker.
    ///
    /// # Errors
    /// Unreadable metadata, a log that cannot be opened/recovered, no
    /// controller, or not unfenced in time.
    pub async fn open(config: BrokerConfig) -> anyhow::Result<Self> {
        Self::open_with(config, Arc::new(crate::log::FsyncSyncer), None).await
    }

    /// [`Broker::open`] with the given [`crate::log::Syncer`] for every partition
    /// log (tests inject fsync failures and delays through it).
    ///
    /// # Errors
    /// As [`Broker::open`].
    #[doc(hidden)]
    pub async fn open_with_syncer(
        config: BrokerConfig,
        syncer: Arc<dyn crate::log::Syncer>,
    ) -> anyhow::Result<Self> {
        Self::open_with(config, syncer, None).await
    }

    /// [`Broker::open`], registering `bound` (the Kafka listener's real
    /// address, when `listeners` asked for port 0) as this broker's endpoint.
    ///
    /// # Errors
    /// As [`Broker::open`].
    pub async fn open_with(
        config: BrokerConfig,
        syncer: Arc<dyn crate::log::Syncer>,
        bound: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<Self> {
        let data_dir = config
            .log_dirs
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("log.dirs is empty: set at least one directory"))?;
        for dir in &config.log_dirs {
            crate::fsio::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create log dir {}: {e}", dir.display()))?;
        }
        let legacy = MetadataStore::new(&data_dir);
        let cluster_id = identity::cluster_id(&data_dir, &config, &legacy)?;
        for dir in &config.log_dirs {
            identity::check_meta_properties(dir, config.node_id, &cluster_id)?;
        }
        let log_dirs = log_dirs::LogDirs::new(&config.log_dirs);
        let config = Arc::new(config);
        let controller = Arc::new(
            Controller::start(config.clone(), &data_dir.join(METADATA_DIR), &cluster_id).await?,
        );
        identity::import_legacy(&controller, &legacy, config.node_id).await?;
        let applied = controller.applied();
        let image = applied.image.clone();
        let mut topics = BTreeMap::new();
        // Where each partition was durable and where its log starts, from the
        // data dir's checkpoint files (absent on a first start).
        let mut checkpoints = HashMap::new();
        for dir in log_dirs.paths() {
            remove_deleted_partition_dirs(dir);
            checkpoints.insert(dir.to_path_buf(), StartupCheckpoints::load(dir)?);
        }
        let isr_wake = Arc::new(tokio::sync::Notify::new());
        let inline_flushes = Arc::new(crate::partition::InlineFlushes::default());
        let follower_wakes = Arc::new(crate::partition::FollowerWakes::new(
            config.rack_aware_fetch(),
        ));
        let mut load: HashMap<PathBuf, usize> = HashMap::new();
        for t in image.topics.values() {
            let name = &t.name;
            let overrides = image.topic_configs(name);
            let tc = Arc::new(TopicConfig::resolve(&config, &overrides)?);
            let topic = Topic::new(name, t.id, overrides);
            topic
                .count
                .store(t.partitions.len() as i32, Ordering::Release);
            for p in t.partitions.values() {
                if !p.replicas.contains(&config.node_id) {
                    continue;
                }
                let key = (name.clone(), p.partition);
                let dir = log_dirs
                    .place(name, p.partition, |d| load.get(d).copied().unwrap_or(0))
                    .ok_or_else(|| anyhow::anyhow!("no log directory is online"))?;
                *load.entry(dir.clone()).or_default() += 1;
                let cp = &checkpoints[&dir];
                let opts = cp.open_options(&key, syncer.clone());
                let setup = crate::partition::ReplicaSetup {
                    node: config.node_id,
                    hw: cp.hw(&key),
                    lag_max_ms: u64::try_from(config.replica_lag_time_max_ms).unwrap_or(30_000),
                    isr_wake: isr_wake.clone(),
                    inline_flushes: inline_flushes.clone(),
                    follower_wakes: follower_wakes.clone(),
                };
                let part = open_partition(&dir, name, t.id, p, tc.clone(), opts, setup)?;
                write(&topic.partitions).insert(p.partition, Arc::new(part));
            }
            topics.insert(name.clone(), Arc::new(topic));
        }
        info!(topics = topics.len(), dir = %data_dir.display(), "broker state loaded");
        let hosted: Vec<_> = topics.values().flat_map(|t| t.partitions()).collect();
        for dir in log_dirs.paths() {
            rewrite_checkpoints_at_startup(dir, &hosted);
        }
        let offsets = topics.get(crate::group::OFFSETS_TOPIC);
        let groups = crate::group::GroupCoordinator::load(
            crate::group::GroupConfig::from_broker(&config),
            Arc::new(crate::log::SystemClock),
            &offsets
                .map(|t: &Arc<Topic>| t.partitions())
                .unwrap_or_default(),
            offsets.map_or(0, |t| t.partition_count()),
        )?;
        let cleaner = crate::cleaner::Cleaner::new(&config);
        let views = crate::views::ViewHost::new(&data_dir, &config);
        let quotas = crate::quota::QuotaManager::new(crate::quota::Window::new(
            config.quota_window_num,
            config.quota_window_size_seconds,
        ));
        quotas.set_table(image.quotas.clone());
        let membership = Arc::new(Membership::new(
            config.node_id,
            identity::endpoints(&config, bound),
            config.broker_rack.clone(),
        ));
        let replicas = crate::replication::ReplicaManager::new(&config);
        let fetch_sessions = std::sync::Mutex::new(
            crate::fetch_session::FetchSessionCache::new(
                usize::try_from(config.max_incremental_fetch_session_cache_slots).unwrap_or(0),
                crate::fetch_session::MIN_EVICTION_MS,
            )
            // A follower's narrowed session reads every partition this often,
            // which refreshes the leader's record of it well within the ISR's
            // lag limit.
            .with_rescan_ms(
                crate::fetch_session::DEFAULT_RESCAN_MS
                    .min(u64::try_from(config.replica_lag_time_max_ms / 4).unwrap_or(0)),
            ),
        );
        let broker = Self {
            cluster_id,
            config,
            data_dir,
            topics: RwLock::new(TopicTable::from(topics)),
            publishing: Mutex::new(()),
            image: RwLock::new((image, applied.offset)),
            controller,
            membership,
            // (next id to hand out, end of the reserved block): nothing reserved yet.
            producer_ids: std::sync::Mutex::new((0, 0)),
            reserving: Mutex::new(()),
            log_dirs,
            bound: RwLock::new(bound.map(|a| (a.ip().to_string(), i32::from(a.port())))),
            groups,
            cleaner,
            views,
            syncer,
            isr_wake,
            inline_flushes,
            follower_wakes,
            replicas,
            quotas,
            fetch_sessions,
        };
        if broker.config.is_broker() {
            broker.join_cluster().await?;
        } else {
            // A controller only: it serves no clients and hosts no
            // partitions; it keeps its image current for its own answers.
            broker.catch_up().await?;
        }
        Ok(broker)
    }

    /// Register, wait to be unfenced, start heartbeats, and publish the image
    /// that unfencing produced (this broker leads its partitions again).
    async fn join_cluster(&self) -> anyhow::Result<()> {
        let c = &self.controller;
        c.register(&self.membership).await?;
        c.wait_unfenced(&self.membership, UNFENCE_TIMEOUT)
            .await
            .map_err(|e| anyhow::anyhow!("broker {} was not unfenced: {e}", self.node_id()))?;
        let interval = std::time::Duration::from_millis(
            u64::try_from(self.config.broker_heartbeat_interval_ms).unwrap_or(2000),
        );
        tokio::spawn(crate::controller::membership::heartbeat_loop(
            Arc::downgrade(c),
            self.membership.clone(),
            interval,
        ));
        self.catch_up().await?;
        self.set_aside_strays()?;
        Ok(())
    }

    /// [`sweep_partition_dirs`] of every online log directory, against the
    /// image this broker caught up to.
    fn set_aside_strays(&self) -> anyhow::Result<()> {
        let image = self.image();
        let open: std::collections::HashSet<(String, i32)> = self
            .topics()
            .iter()
            .flat_map(|t| {
                t.partitions()
                    .into_iter()
                    .map(|p| (t.name.to_string(), p.index))
            })
            .collect();
        for dir in self.log_dirs.paths() {
            if !self.log_dirs.dir_offline(dir) {
                sweep_partition_dirs(dir, &image, self.node_id(), &open)?;
            }
        }
        Ok(())
    }
}
