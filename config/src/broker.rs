//! [`BrokerConfig`]: the broker's typed configuration, loaded from TOML and
//! `BROOK_*` environment variables.
//!
//! Precedence, lowest first: registry defaults, the TOML file, environment
//! variables, [`BrokerConfig::set`]. The config remembers which keys were set
//! explicitly and where, for DescribeConfigs' `STATIC_BROKER_CONFIG` source.
//! Loading reads one file and nothing else; a failed load or override leaves no
//! partial state behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Origin};
use crate::parse::{self, parse_value, Raw};
use crate::registry::{self, KeyDef};
use crate::suggest;
use crate::typed::typed_config;
use crate::value::{
    CleanupPolicy, CompressionType, HostPort, ProcessRole, QuorumVoter, TimestampType, Value,
};
use crate::views::{self, ViewDecl};

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
/// `replica.selector.class` that lets consumers fetch from a follower in their rack.
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

typed_config! {
    /// Typed broker configuration. `Default` is the documented defaults, which
    /// run a single-node broker with data in `./data`.
    ///
    /// Fields may be assigned directly (handy in tests); they are the source of
    /// truth for values, including the broker-wide defaults of topic configs.
    /// Only keys set through parsing, [`BrokerConfig::apply_env`] or
    /// [`BrokerConfig::set`] are reported as explicitly set.
    pub struct BrokerConfig {
        node_id: i32 = "node.id" => 1,
        process_roles: Vec<ProcessRole> = "process.roles" => vec![ProcessRole::Broker, ProcessRole::Controller],
        cluster_id: Option<String> = "cluster.id" => None,
        broker_rack: Option<String> = "broker.rack" => None,
        log_dirs: Vec<PathBuf> = "log.dirs" => vec![PathBuf::from("./data")],
        listeners: Vec<HostPort> = "listeners" => vec![HostPort::new("127.0.0.1", 9092)],
        advertised_listeners: Option<Vec<HostPort>> = "advertised.listeners" => None,
        controller_listener_names: Vec<String> = "controller.listener.names" => vec!["CONTROLLER".to_owned()],
        admin_listener: HostPort = "admin.listener" => HostPort::new("127.0.0.1", 9644),
        num_partitions: i32 = "num.partitions" => 1,
        default_replication_factor: i32 = "default.replication.factor" => 1,
        auto_create_topics_enable: bool = "auto.create.topics.enable" => true,
        delete_topic_enable: bool = "delete.topic.enable" => true,
        socket_request_max_bytes: u32 = "socket.request.max.bytes" => 104_857_600,
        max_connections: u32 = "max.connections" => 10_000,
        connections_max_idle_ms: i64 = "connections.max.idle.ms" => 600_000,
        max_inflight_requests_per_connection: u32 = "max.inflight.requests.per.connection" => 100,
        queued_max_requests: u32 = "queued.max.requests" => 500,
        queued_max_request_bytes: i64 = "queued.max.request.bytes" => -1,
        message_max_bytes: u32 = "message.max.bytes" => 1_048_588,
        fetch_max_bytes: u32 = "fetch.max.bytes" => 57_671_680,
        quota_window_num: u32 = "quota.window.num" => 11,
        quota_window_size_seconds: u32 = "quota.window.size.seconds" => 1,
        log_retention_hours: i32 = "log.retention.hours" => 168,
        log_retention_minutes: Option<i32> = "log.retention.minutes" => None,
        log_retention_ms: Option<i64> = "log.retention.ms" => None,
        log_retention_bytes: i64 = "log.retention.bytes" => -1,
        log_retention_check_interval_ms: i64 = "log.retention.check.interval.ms" => 300_000,
        log_segment_bytes: u64 = "log.segment.bytes" => 1_073_741_824,
        log_roll_hours: i32 = "log.roll.hours" => 168,
        log_roll_ms: Option<i64> = "log.roll.ms" => None,
        log_roll_jitter_hours: i32 = "log.roll.jitter.hours" => 0,
        log_roll_jitter_ms: Option<i64> = "log.roll.jitter.ms" => None,
        log_index_size_max_bytes: u32 = "log.index.size.max.bytes" => 10_485_760,
        log_index_interval_bytes: u32 = "log.index.interval.bytes" => 4096,
        log_flush_interval_messages: i64 = "log.flush.interval.messages" => i64::MAX,
        log_flush_interval_ms: i64 = "log.flush.interval.ms" => i64::MAX,
        log_flush_offset_checkpoint_interval_ms: i32 = "log.flush.offset.checkpoint.interval.ms" => 60_000,
        log_flush_inline_enable: bool = "log.flush.inline.enable" => true,
        log_cleanup_policy: CleanupPolicy = "log.cleanup.policy" => CleanupPolicy::DELETE,
        log_cleaner_delete_retention_ms: i64 = "log.cleaner.delete.retention.ms" => 86_400_000,
        log_cleaner_min_compaction_lag_ms: i64 = "log.cleaner.min.compaction.lag.ms" => 0,
        log_cleaner_max_compaction_lag_ms: i64 = "log.cleaner.max.compaction.lag.ms" => i64::MAX,
        log_cleaner_min_cleanable_ratio: f64 = "log.cleaner.min.cleanable.ratio" => 0.5,
        log_cleaner_enable: bool = "log.cleaner.enable" => true,
        log_cleaner_threads: i32 = "log.cleaner.threads" => 1,
        log_cleaner_dedupe_buffer_size: i64 = "log.cleaner.dedupe.buffer.size" => 134_217_728,
        log_cleaner_io_max_bytes_per_second: f64 = "log.cleaner.io.max.bytes.per.second" => f64::MAX,
        log_cleaner_backoff_ms: i64 = "log.cleaner.backoff.ms" => 15_000,
        log_segment_delete_delay_ms: i64 = "log.segment.delete.delay.ms" => 60_000,
        log_preallocate: bool = "log.preallocate" => false,
        log_message_timestamp_type: TimestampType = "log.message.timestamp.type" => TimestampType::CreateTime,
        log_message_timestamp_before_max_ms: i64 = "log.message.timestamp.before.max.ms" => i64::MAX,
        log_message_timestamp_after_max_ms: i64 = "log.message.timestamp.after.max.ms" => 3_600_000,
        log_message_downconversion_enable: bool = "log.message.downconversion.enable" => true,
        log_local_retention_ms: i64 = "log.local.retention.ms" => -2,
        log_local_retention_bytes: i64 = "log.local.retention.bytes" => -2,
        compression_type: CompressionType = "compression.type" => CompressionType::Producer,
        compression_gzip_level: i32 = "compression.gzip.level" => -1,
        compression_lz4_level: i32 = "compression.lz4.level" => 9,
        compression_zstd_level: i32 = "compression.zstd.level" => 3,
        min_insync_replicas: i32 = "min.insync.replicas" => 1,
        unclean_leader_election_enable: bool = "unclean.leader.election.enable" => false,
        replica_lag_time_max_ms: i64 = "replica.lag.time.max.ms" => 30_000,
        num_replica_fetchers: i32 = "num.replica.fetchers" => 1,
        replica_selector_class: String = "replica.selector.class" => String::new(),
        leader_replication_throttled_rate: i64 = "leader.replication.throttled.rate" => i64::MAX,
        follower_replication_throttled_rate: i64 = "follower.replication.throttled.rate" => i64::MAX,
        replica_fetch_max_bytes: i32 = "replica.fetch.max.bytes" => 1_048_576,
        replica_fetch_response_max_bytes: i32 = "replica.fetch.response.max.bytes" => 10_485_760,
        replica_fetch_wait_max_ms: i32 = "replica.fetch.wait.max.ms" => 500,
        replica_fetch_backoff_ms: i32 = "replica.fetch.backoff.ms" => 1000,
        max_incremental_fetch_session_cache_slots: i32 = "max.incremental.fetch.session.cache.slots" => 1000,
        controller_quorum_voters: Vec<QuorumVoter> = "controller.quorum.voters" => Vec::new(),
        broker_heartbeat_interval_ms: i32 = "broker.heartbeat.interval.ms" => 2000,
        broker_session_timeout_ms: i32 = "broker.session.timeout.ms" => 9000,
        offsets_topic_num_partitions: i32 = "offsets.topic.num.partitions" => 50,
        offsets_topic_segment_bytes: i32 = "offsets.topic.segment.bytes" => 104_857_600,
        offsets_topic_replication_factor: i16 = "offsets.topic.replication.factor" => 1,
        offsets_retention_minutes: i32 = "offsets.retention.minutes" => 10_080,
        group_initial_rebalance_delay_ms: i32 = "group.initial.rebalance.delay.ms" => 3000,
        group_min_session_timeout_ms: i32 = "group.min.session.timeout.ms" => 6000,
        group_max_session_timeout_ms: i32 = "group.max.session.timeout.ms" => 1_800_000,
        group_max_size: i32 = "group.max.size" => i32::MAX,
        transactional_id_expiration_ms: i32 = "transactional.id.expiration.ms" => 604_800_000,
        producer_id_expiration_ms: i32 = "producer.id.expiration.ms" => 86_400_000,
        metrics_per_partition_enable: bool = "metrics.per.partition.enable" => true,
        metrics_max_partition_series: u32 = "metrics.max.partition.series" => 10_000,
        view_block_cache_bytes: i64 = "view.block.cache.bytes" => 67_108_864,
        view_memtable_max_bytes: i64 = "view.memtable.max.bytes" => 16_777_216,
        view_flush_interval_ms: i64 = "view.flush.interval.ms" => 30_000,
        view_flush_max_offsets: i64 = "view.flush.max.offsets" => 100_000,
        view_max_open_files: u32 = "view.max.open.files" => 512,
    }
    extra {
        /// Which keys were set explicitly, and where. Public only so that
        /// `BrokerConfig { field: …, ..BrokerConfig::default() }` works outside
        /// this crate; read it through [`BrokerConfig::is_explicit`].
        pub explicit: ExplicitKeys = ExplicitKeys::default(),
        /// Materialized views declared as `[views.NAME]` tables in the config
        /// file, by name (empty by default). Names and the fields' basic shape
        /// are checked here; the broker validates kinds, field paths and their
        /// combinations with the views crate. Views have no environment or
        /// [`BrokerConfig::set`] form.
        pub views: BTreeMap<String, ViewDecl> = BTreeMap::new(),
    }
}

/// The set of explicitly configured keys and their origins (opaque).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExplicitKeys(BTreeMap<&'static str, Origin>);

impl BrokerConfig {
    /// Parses a TOML document. Keys may be dotted (`log.dirs = …`), quoted
    /// (`"log.dirs" = …`) or tables (`[log]` / `dirs = …`). `[views.NAME]`
    /// tables declare materialized views ([`BrokerConfig::views`]).
    ///
    /// # Errors
    /// Syntax errors, unknown keys, bad or out-of-range values, the same key
    /// given twice, inconsistent combinations, and malformed view tables (bad
    /// name, unknown field, missing or empty `topic`, a `kind` or format that
    /// is not one of the listed values).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_toml_with_origin(text, &Origin::TomlText)
    }

    /// Reads and parses a TOML file; errors name the file.
    ///
    /// # Errors
    /// [`ConfigError::Io`] if the file cannot be read, otherwise as
    /// [`BrokerConfig::from_toml_str`].
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_with_origin(&text, &Origin::File(path.to_owned()))
    }

    fn from_toml_with_origin(text: &str, origin: &Origin) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        let mut cfg = Self::default();
        if let Some(decls) = table.remove(views::VIEWS_TABLE) {
            cfg.views = views::parse_views(&decls, origin)?;
        }
        for (key, value) in parse::flatten_toml(&table, origin)? {
            cfg.apply(&key, Raw::Toml(value), origin)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies `BROOK_<KEY>` overrides (key upper-cased, dots as underscores,
    /// e.g. `BROOK_LOG_DIRS=/a,/b`), which win over the file. Variables without
    /// the prefix and those in [`crate::ENV_RESERVED`] are ignored. Pass
    /// `std::env::vars()` in the binary and a literal list in tests.
    ///
    /// # Errors
    /// As for parsing; on error `self` is unchanged. Views cannot be declared
    /// here: `BROOK_VIEWS…` variables fail with [`ConfigError::ViewOutsideTable`].
    pub fn apply_env(
        &mut self,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut next = self.clone();
        for (var, value) in vars {
            if parse::ENV_RESERVED.contains(&var.as_str()) {
                continue;
            }
            let Some(key) = parse::env_to_key(&var) else {
                continue;
            };
            next.apply(&key, Raw::Text(&value), &Origin::Env(var.clone()))?;
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Sets one key from its string form (as a CLI `--set key=value` would).
    ///
    /// # Errors
    /// As for parsing; on error `self` is unchanged. `views.…` keys fail with
    /// [`ConfigError::ViewOutsideTable`] (views are declared in the file only).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let mut next = self.clone();
        next.apply(key, Raw::Text(value), &Origin::Override)?;
        next.validate()?;
        *self = next;
        Ok(())
    }

    fn apply(&mut self, key: &str, raw: Raw<'_>, origin: &Origin) -> Result<(), ConfigError> {
        if views::is_view_key(key) {
            return Err(ConfigError::ViewOutsideTable {
                key: key.to_owned(),
                origin: origin.clone(),
            });
        }
        let def = registry::broker_key(key).ok_or_else(|| ConfigError::UnknownKey {
            key: key.to_owned(),
            scope: "broker",
            origin: origin.clone(),
            hint: suggest::broker_hint(key),
        })?;
        let value = parse_value(def, raw, origin)?;
        self.set_value(def.name, &value)?;
        self.explicit.0.insert(def.name, origin.clone());
        Ok(())
    }

    /// Checks rules that span several keys, and the list rules that the typed
    /// fields cannot express (no duplicates), so that it also catches fields
    /// assigned directly.
    ///
    /// Roles, listeners and the controller quorum:
    /// - `process.roles` is non-empty and lists each role at most once;
    /// - no two `listeners` share a listener name, or a port other than 0;
    /// - `controller.listener.names` lists each name at most once;
    /// - `advertised.listeners` names each listener at most once, only
    ///   listeners present in `listeners`, and no controller listener;
    /// - `controller.quorum.voters` has no negative and no repeated node id;
    /// - with the `broker` role, `listeners` has a client (non-controller)
    ///   listener; with only the `broker` role, `controller.quorum.voters` is
    ///   set; with only the `controller` role, `listeners` has a controller
    ///   listener;
    /// - with the `controller` role and `controller.quorum.voters` set,
    ///   `node.id` is one of the voters and the controller listener
    ///   ([`BrokerConfig::controller_listener`]) has that voter's port;
    /// - `broker.heartbeat.interval.ms` < `broker.session.timeout.ms`.
    ///
    /// # Errors
    /// [`ConfigError::Inconsistent`] naming the keys and values and saying how
    /// to fix them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(ConfigError::Inconsistent {
                message: format!(
                    "group.min.session.timeout.ms ({}) must not exceed group.max.session.timeout.ms ({})",
                    self.group_min_session_timeout_ms, self.group_max_session_timeout_ms
                ),
            });
        }
        for (i, dir) in self.log_dirs.iter().enumerate() {
            if self.log_dirs[..i].contains(dir) {
                return Err(ConfigError::Inconsistent {
                    message: format!("log.dirs lists {} twice", dir.display()),
                });
            }
        }
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return Err(inconsistent(format!(
                "broker.heartbeat.interval.ms ({}) must be less than broker.session.timeout.ms ({}); \
                 lower broker.heartbeat.interval.ms or raise broker.session.timeout.ms",
                self.broker_heartbeat_interval_ms, self.broker_session_timeout_ms
            )));
        }
        self.validate_replication()?;
        self.validate_roles()?;
        self.validate_listeners()?;
        self.validate_quorum()
    }

    /// Whether consumers with `client.rack` may be sent to a follower in
    /// their rack (KIP-392).
    pub fn rack_aware_fetch(&self) -> bool {
        self.replica_selector_class == RACK_AWARE_SELECTOR
    }

    fn validate_replication(&self) -> Result<(), ConfigError> {
        for (key, value, min) in [
            (
                "num.replica.fetchers",
                i64::from(self.num_replica_fetchers),
                1,
            ),
            (
                "replica.fetch.max.bytes",
                i64::from(self.replica_fetch_max_bytes),
                1,
            ),
            (
                "replica.fetch.response.max.bytes",
                i64::from(self.replica_fetch_response_max_bytes),
                1,
            ),
            (
                "replica.fetch.wait.max.ms",
                i64::from(self.replica_fetch_wait_max_ms),
                0,
            ),
            (
                "replica.fetch.backoff.ms",
                i64::from(self.replica_fetch_backoff_ms),
                0,
            ),
            ("replica.lag.time.max.ms", self.replica_lag_time_max_ms, 1),
            (
                "max.incremental.fetch.session.cache.slots",
                i64::from(self.max_incremental_fetch_session_cache_slots),
                0,
            ),
        ] {
            if value < min {
                return Err(inconsistent(format!(
                    "{key} must be at least {min}, got {value}"
                )));
            }
        }
        if !self.replica_selector_class.is_empty()
            && self.replica_selector_class != RACK_AWARE_SELECTOR
        {
            return Err(inconsistent(format!(
                "replica.selector.class {:?} is not supported: leave it empty (consumers read from leaders) or set {RACK_AWARE_SELECTOR}",
                self.replica_selector_class
            )));
        }
        if i64::from(self.replica_fetch_wait_max_ms) >= self.replica_lag_time_max_ms {
            return Err(inconsistent(format!(
                "replica.fetch.wait.max.ms ({}) must be less than replica.lag.time.max.ms ({}), \
                 or followers would drop out of the ISR while waiting for data",
                self.replica_fetch_wait_max_ms, self.replica_lag_time_max_ms
            )));
        }
        Ok(())
    }

    fn validate_roles(&self) -> Result<(), ConfigError> {
        if self.process_roles.is_empty() {
            return Err(inconsistent(
                "process.roles is empty; set it to broker, controller or broker,controller"
                    .to_owned(),
            ));
        }
        for (i, role) in self.process_roles.iter().enumerate() {
            if self.process_roles[..i].contains(role) {
                return Err(inconsistent(format!(
                    "process.roles lists {role} twice; list each role at most once (e.g. broker,controller)"
                )));
            }
        }
        Ok(())
    }

    fn validate_listeners(&self) -> Result<(), ConfigError> {
        for (i, l) in self.listeners.iter().enumerate() {
            let earlier = &self.listeners[..i];
            if let Some(other) = earlier
                .iter()
                .find(|o| o.listener_name() == l.listener_name())
            {
                return Err(inconsistent(format!(
                    "listeners has two listeners named {} ({other} and {l}); give each listener its own name \
                     (e.g. PLAINTEXT://host:9092,CONTROLLER://host:9093)",
                    l.listener_name()
                )));
            }
            if let Some(other) = earlier.iter().find(|o| l.port != 0 && o.port == l.port) {
                return Err(inconsistent(format!(
                    "listeners has two listeners on port {} ({other} and {l}); give each listener its own port \
                     (or port 0 for any free port)",
                    l.port
                )));
            }
        }
        for (i, name) in self.controller_listener_names.iter().enumerate() {
            if self.controller_listener_names[..i].contains(name) {
                return Err(inconsistent(format!(
                    "controller.listener.names lists {name} twice; list each name at most once"
                )));
            }
        }
        let Some(advertised) = &self.advertised_listeners else {
            return Ok(());
        };
        for (i, a) in advertised.iter().enumerate() {
            let name = a.listener_name();
            if self.is_controller_listener(a) {
                return Err(inconsistent(format!(
                    "advertised.listeners contains {a}, but {name} is a controller listener \
                     (controller.listener.names = {}); controller listeners are not advertised to clients: \
                     remove {a} from advertised.listeners",
                    self.controller_listener_names.join(",")
                )));
            }
            if let Some(other) = advertised[..i].iter().find(|o| o.listener_name() == name) {
                return Err(inconsistent(format!(
                    "advertised.listeners has two entries for listener {name} ({other} and {a}); \
                     advertise each listener at most once"
                )));
            }
            if !self.listeners.iter().any(|l| l.listener_name() == name) {
                return Err(inconsistent(format!(
                    "advertised.listeners contains {a}, but listeners ({}) has no listener named {name}; \
                     every advertised address must name a listener of listeners",
                    join(&self.listeners)
                )));
            }
        }
        Ok(())
    }

    fn validate_quorum(&self) -> Result<(), ConfigError> {
        let voters = &self.controller_quorum_voters;
        for (i, v) in voters.iter().enumerate() {
            if v.id < 0 {
                return Err(inconsistent(format!(
                    "controller.quorum.voters entry {v} has a negative node id; node ids are 0 or more"
                )));
            }
            if let Some(other) = voters[..i].iter().find(|o| o.id == v.id) {
                return Err(inconsistent(format!(
                    "controller.quorum.voters lists node id {} twice ({other} and {v}); give each voter its own node id",
                    v.id
                )));
            }
        }
        let names = self.controller_listener_names.join(",");
        if self.is_broker() && self.client_listeners().is_empty() {
            return Err(inconsistent(format!(
                "process.roles includes broker, but listeners ({}) has only controller listeners \
                 (controller.listener.names = {names}); add a client listener to listeners, \
                 e.g. PLAINTEXT://127.0.0.1:9092",
                join(&self.listeners)
            )));
        }
        if !self.is_controller() && voters.is_empty() {
            return Err(inconsistent(
                "process.roles = broker needs controller.quorum.voters: a broker-only node must be told \
                 where the controllers are (e.g. controller.quorum.voters = \"1@controller1:9093\"); \
                 or add controller to process.roles"
                    .to_owned(),
            ));
        }
        if !self.is_controller() {
            return Ok(());
        }
        if !self.is_broker() && self.controller_listener().is_none() {
            return Err(inconsistent(format!(
                "process.roles = controller, but listeners ({}) has no controller listener \
                 (a listener named in controller.listener.names = {names}); add one, e.g. CONTROLLER://0.0.0.0:9093",
                join(&self.listeners)
            )));
        }
        if voters.is_empty() {
            return Ok(());
        }
        let Some(me) = voters.iter().find(|v| v.id == self.node_id) else {
            return Err(inconsistent(format!(
                "node.id = {id} is not among controller.quorum.voters ({}), but process.roles includes controller \
                 and every controller must be a voter: add {id}@host:port to controller.quorum.voters, \
                 change node.id, or remove controller from process.roles",
                join(voters),
                id = self.node_id
            )));
        };
        match self.controller_listener() {
            None => Err(inconsistent(format!(
                "this node is voter {me} in controller.quorum.voters, but listeners ({}) has no controller listener \
                 (a listener named in controller.listener.names = {names}); add one on port {port}, \
                 e.g. listeners = \"{clients}CONTROLLER://0.0.0.0:{port}\"",
                join(&self.listeners),
                port = me.port,
                clients = self
                    .client_listeners()
                    .iter()
                    .map(|l| format!("{l},"))
                    .collect::<String>()
            ))),
            Some(l) if l.port != me.port => Err(inconsistent(format!(
                "this node is voter {me} in controller.quorum.voters (port {}), but its controller listener {l} \
                 in listeners is on port {}; make the ports match (the hosts may differ, e.g. 0.0.0.0)",
                me.port, l.port
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Whether `process.roles` includes `broker`.
    pub fn is_broker(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Broker)
    }

    /// Whether `process.roles` includes `controller`.
    pub fn is_controller(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Controller)
    }

    /// Whether `listener`'s name is one of `controller.listener.names`.
    pub fn is_controller_listener(&self, listener: &HostPort) -> bool {
        let name = listener.listener_name();
        self.controller_listener_names.iter().any(|n| n == name)
    }

    /// The listeners that serve clients: those of `listeners` whose name is not
    /// in `controller.listener.names`, in `listeners` order.
    pub fn client_listeners(&self) -> Vec<&HostPort> {
        self.listeners
            .iter()
            .filter(|l| !self.is_controller_listener(l))
            .collect()
    }

    /// This node's controller listener: the listener of `listeners` named by
    /// the first entry of `controller.listener.names` that has one; `None`
    /// when no listener is a controller listener.
    pub fn controller_listener(&self) -> Option<&HostPort> {
        self.controller_listener_names
            .iter()
            .find_map(|name| self.listeners.iter().find(|l| l.listener_name() == name))
    }

    /// The controller quorum: `controller.quorum.voters`, or, when that is
    /// empty, this node alone (id `node.id`, at the host and port of
    /// [`BrokerConfig::controller_listener`], else `127.0.0.1:0`).
    pub fn quorum_voters(&self) -> Vec<QuorumVoter> {
        if !self.controller_quorum_voters.is_empty() {
            return self.controller_quorum_voters.clone();
        }
        let (host, port) = self
            .controller_listener()
            .map_or(("127.0.0.1", 0), |l| (l.host.as_str(), l.port));
        vec![QuorumVoter::new(self.node_id, host, port)]
    }

    /// Whether `key` was set explicitly (file, environment or [`BrokerConfig::set`]).
    pub fn is_explicit(&self, key: &str) -> bool {
        self.explicit.0.contains_key(key)
    }

    /// Where an explicitly set key came from.
    pub fn origin_of(&self, key: &str) -> Option<&Origin> {
        self.explicit.0.get(key)
    }

    /// Explicitly set keys, in name order.
    pub fn explicit_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.explicit.0.keys().copied()
    }

    /// Effective log retention in ms: `log.retention.ms`, else
    /// `log.retention.minutes`, else `log.retention.hours` (Kafka's precedence);
    /// any negative value means unlimited and is returned as -1.
    pub fn retention_ms(&self) -> i64 {
        pick_ms(&[
            (self.log_retention_ms, 1),
            (self.log_retention_minutes.map(i64::from), MINUTE_MS),
            (Some(i64::from(self.log_retention_hours)), HOUR_MS),
        ])
    }

    /// Effective segment roll time in ms: `log.roll.ms`, else `log.roll.hours`.
    pub fn roll_ms(&self) -> i64 {
        pick_ms(&[
            (self.log_roll_ms, 1),
            (Some(i64::from(self.log_roll_hours)), HOUR_MS),
        ])
    }

    /// Effective roll jitter in ms: `log.roll.jitter.ms`, else `log.roll.jitter.hours`.
    pub fn roll_jitter_ms(&self) -> i64 {
        pick_ms(&[
            (self.log_roll_jitter_ms, 1),
            (Some(i64::from(self.log_roll_jitter_hours)), HOUR_MS),
        ])
    }

    /// `advertised.listeners`, else `listeners` — all of them, controller
    /// listeners included; see [`BrokerConfig::advertised_client_listeners`]
    /// for what clients should be given.
    pub fn advertised(&self) -> &[HostPort] {
        self.advertised_listeners
            .as_deref()
            .unwrap_or(&self.listeners)
    }

    /// Addresses to give clients (Metadata, FindCoordinator, …):
    /// `advertised.listeners` (which never holds a controller listener), else
    /// [`BrokerConfig::client_listeners`].
    pub fn advertised_client_listeners(&self) -> Vec<&HostPort> {
        match &self.advertised_listeners {
            Some(advertised) => advertised.iter().collect(),
            None => self.client_listeners(),
        }
    }

    /// The broker-wide default of topic key `def`, and the broker key it came
    /// from (`None` when the topic key has no broker synonym).
    pub(crate) fn topic_default(
        &self,
        def: &KeyDef,
    ) -> Result<(Value, Option<&'static str>), ConfigError> {
        for syn in def.synonyms {
            let value = self.value(syn.key).ok_or_else(|| ConfigError::Internal {
                key: syn.key.to_owned(),
            })?;
            if value == Value::Null {
                continue;
            }
            if syn.scale == 1 {
                return Ok((value, Some(syn.key)));
            }
            let n = value.as_i64().ok_or_else(|| ConfigError::Internal {
                key: syn.key.to_owned(),
            })?;
            return Ok((Value::Long(scale(n, syn.scale)), Some(syn.key)));
        }
        Ok((registry_default(def)?, None))
    }
}

fn inconsistent(message: String) -> ConfigError {
    ConfigError::Inconsistent { message }
}

/// `a,b,c` from the items' `Display`.
fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// First present value times its unit; negative means unlimited (-1).
fn pick_ms(candidates: &[(Option<i64>, i64)]) -> i64 {
    candidates
        .iter()
        .find_map(|(v, unit)| v.map(|v| scale(v, *unit)))
        .unwrap_or(-1)
}

fn scale(v: i64, unit: i64) -> i64 {
    if unit == 1 {
        v
    } else if v < 0 {
        -1
    } else {
        v.saturating_mul(unit)
    }
}

/// The registry default of `def` as a validated value.
pub(crate) fn registry_default(def: &KeyDef) -> Result<Value, ConfigError> {
    match def.default {
        None => Ok(Value::Null),
        Some(text) => parse_value(def, Raw::Text(text), &Origin::Override).map_err(|_| {
            ConfigError::Internal {
                key: def.name.to_owned(),
            }
        }),
    }
}
