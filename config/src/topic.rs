//! [`TopicConfig`]: a topic's effective configuration = broker-wide defaults
//! (through each key's synonyms) overlaid with the topic's own overrides.
//!
//! Overrides arrive as Kafka does them, `name → string` (CreateTopics configs,
//! AlterConfigs, the metadata log), and are validated by the same registry as
//! the broker file.

use std::collections::BTreeMap;

use crate::broker::BrokerConfig;
use crate::error::{ConfigError, Origin};
use crate::parse::{parse_value, Raw};
use crate::registry::{self, KeyDef};
use crate::suggest;
use crate::typed::typed_config;
use crate::value::{CleanupPolicy, CompressionType, TimestampType, Value};

/// When a partition's log is fsynced relative to acknowledging producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// brook's default: fsync (group-committed) before acknowledging acks=all,
    /// and followers fsync before reporting their fetch offset.
    FsyncBeforeAck,
    /// Kafka's model, chosen by setting `flush.messages` or `flush.ms` (or
    /// their broker keys) explicitly: fsync every `flush_messages` messages or
    /// `flush_ms` ms, acknowledge without waiting for it.
    Periodic,
}

typed_config! {
    /// Effective configuration of one topic. `Default` equals
    /// `TopicConfig::resolve(&BrokerConfig::default(), &BTreeMap::new())`.
    pub struct TopicConfig {
        cleanup_policy: CleanupPolicy = "cleanup.policy" => CleanupPolicy::DELETE,
        compression_type: CompressionType = "compression.type" => CompressionType::Producer,
        compression_gzip_level: i32 = "compression.gzip.level" => -1,
        compression_lz4_level: i32 = "compression.lz4.level" => 9,
        compression_zstd_level: i32 = "compression.zstd.level" => 3,
        delete_retention_ms: i64 = "delete.retention.ms" => 86_400_000,
        file_delete_delay_ms: i64 = "file.delete.delay.ms" => 60_000,
        flush_messages: i64 = "flush.messages" => i64::MAX,
        flush_ms: i64 = "flush.ms" => i64::MAX,
        follower_replication_throttled_replicas: Vec<String> = "follower.replication.throttled.replicas" => Vec::new(),
        leader_replication_throttled_replicas: Vec<String> = "leader.replication.throttled.replicas" => Vec::new(),
        index_interval_bytes: u32 = "index.interval.bytes" => 4096,
        local_retention_bytes: i64 = "local.retention.bytes" => -2,
        local_retention_ms: i64 = "local.retention.ms" => -2,
        max_compaction_lag_ms: i64 = "max.compaction.lag.ms" => i64::MAX,
        max_message_bytes: u32 = "max.message.bytes" => 1_048_588,
        message_downconversion_enable: bool = "message.downconversion.enable" => true,
        message_timestamp_after_max_ms: i64 = "message.timestamp.after.max.ms" => 3_600_000,
        message_timestamp_before_max_ms: i64 = "message.timestamp.before.max.ms" => i64::MAX,
        message_timestamp_type: TimestampType = "message.timestamp.type" => TimestampType::CreateTime,
        min_cleanable_dirty_ratio: f64 = "min.cleanable.dirty.ratio" => 0.5,
        min_compaction_lag_ms: i64 = "min.compaction.lag.ms" => 0,
        min_insync_replicas: i32 = "min.insync.replicas" => 1,
        preallocate: bool = "preallocate" => false,
        remote_storage_enable: bool = "remote.storage.enable" => false,
        remote_log_copy_disable: bool = "remote.log.copy.disable" => false,
        remote_log_delete_on_disable: bool = "remote.log.delete.on.disable" => false,
        retention_bytes: i64 = "retention.bytes" => -1,
        retention_ms: i64 = "retention.ms" => 604_800_000,
        segment_bytes: u64 = "segment.bytes" => 1_073_741_824,
        segment_index_bytes: u32 = "segment.index.bytes" => 10_485_760,
        segment_jitter_ms: i64 = "segment.jitter.ms" => 0,
        segment_ms: i64 = "segment.ms" => 604_800_000,
        unclean_leader_election_enable: bool = "unclean.leader.election.enable" => false,
    }
    extra {
        /// Fsync policy derived from whether `flush.messages`/`flush.ms` (or
        /// their broker keys) were set explicitly; see [`Durability`].
        pub durability: Durability = Durability::FsyncBeforeAck,
    }
}

const FLUSH_KEYS: [&str; 2] = ["flush.messages", "flush.ms"];

impl TopicConfig {
    /// Resolves a topic's effective config from the broker's config and the
    /// topic's overrides.
    ///
    /// # Errors
    /// Unknown override keys, bad values, or an inconsistent result (e.g.
    /// `min.compaction.lag.ms` above `max.compaction.lag.ms`).
    pub fn resolve(
        broker: &BrokerConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ConfigError> {
        let mut topic = TopicConfig::default();
        for def in registry::all().filter(|d| d.scope.is_topic()) {
            let (value, _) = broker.topic_default(def)?;
            topic.set_value(def.name, &value)?;
        }
        for (key, raw) in overrides {
            let (def, value) = parse_override(key, raw)?;
            topic.set_value(def.name, &value)?;
        }
        let broker_flush_explicit = registry::all()
            .filter(|d| FLUSH_KEYS.contains(&d.name))
            .flat_map(|d| d.synonyms)
            .any(|s| broker.is_explicit(s.key));
        let topic_flush_explicit = FLUSH_KEYS.iter().any(|k| overrides.contains_key(*k));
        topic.durability = if broker_flush_explicit || topic_flush_explicit {
            Durability::Periodic
        } else {
            Durability::FsyncBeforeAck
        };
        topic.validate()?;
        Ok(topic)
    }

    /// Checks rules that span several keys.
    ///
    /// # Errors
    /// [`ConfigError::Inconsistent`] naming the keys and values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return Err(ConfigError::Inconsistent {
                message: format!(
                    "min.compaction.lag.ms ({}) must not exceed max.compaction.lag.ms ({})",
                    self.min_compaction_lag_ms, self.max_compaction_lag_ms
                ),
            });
        }
        Ok(())
    }
}

/// Validates one topic override (as CreateTopics / AlterConfigs must before
/// accepting it).
///
/// # Errors
/// [`ConfigError::UnknownKey`] (with a suggestion, or a note when a broker key
/// was used), [`ConfigError::InvalidValue`] or [`ConfigError::OutOfRange`].
pub fn validate_topic_override(name: &str, value: &str) -> Result<(), ConfigError> {
    parse_override(name, value).map(|_| ())
}

pub(crate) fn parse_override(
    key: &str,
    raw: &str,
) -> Result<(&'static KeyDef, Value), ConfigError> {
    let def = registry::topic_key(key).ok_or_else(|| ConfigError::UnknownKey {
        key: key.to_owned(),
        scope: "topic",
        origin: Origin::TopicOverride,
        hint: suggest::topic_hint(key),
    })?;
    let value = parse_value(def, Raw::Text(raw), &Origin::TopicOverride)?;
    // Tiered storage keys are accepted for client compatibility, but turning
    // it on would silently not do what the user asked.
    if def.name == "remote.storage.enable" && value == Value::Bool(true) {
        return Err(ConfigError::InvalidValue {
            key: def.name.to_owned(),
            value: format!("{raw:?}"),
            expected: "false (brook does not implement tiered storage)".to_owned(),
            origin: Origin::TopicOverride,
        });
    }
    Ok((def, value))
}
