//! [`ConsumerConfig`]: typed consumer settings and their cross-key rules.

use super::keys::CONSUMER_KEYS;
use super::ExplicitClientKeys;
use crate::error::ConfigError;
use crate::typed::typed_config;
use crate::value::HostPort;

/// What to do when a partition has no valid position (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOffsetReset {
    /// Start at the log start offset.
    Earliest,
    /// Start at the log end offset.
    Latest,
    /// Report an error to the application.
    None,
}

typed_config! {
    /// Consumer configuration with the Java client's names and defaults.
    /// `Default` equals `ConsumerConfig::from_map::<_, &str, &str>([])`.
    pub struct ConsumerConfig {
        bootstrap_servers: Vec<HostPort> = "bootstrap.servers" => vec![HostPort::new("127.0.0.1", 9092)],
        client_id: String = "client.id" => String::new(),
        group_id: String = "group.id" => String::new(),
        group_instance_id: String = "group.instance.id" => String::new(),
        enable_auto_commit: bool = "enable.auto.commit" => true,
        auto_commit_interval_ms: i32 = "auto.commit.interval.ms" => 5_000,
        auto_offset_reset_setting: String = "auto.offset.reset" => "latest".to_owned(),
        fetch_min_bytes: i32 = "fetch.min.bytes" => 1,
        fetch_max_bytes: i32 = "fetch.max.bytes" => 52_428_800,
        fetch_max_wait_ms: i32 = "fetch.max.wait.ms" => 500,
        max_partition_fetch_bytes: i32 = "max.partition.fetch.bytes" => 1_048_576,
        max_poll_records: i32 = "max.poll.records" => 500,
        isolation_level_setting: String = "isolation.level" => "read_uncommitted".to_owned(),
        request_timeout_ms: i32 = "request.timeout.ms" => 30_000,
        retry_backoff_ms: i64 = "retry.backoff.ms" => 100,
        metadata_max_age_ms: i64 = "metadata.max.age.ms" => 300_000,
        session_timeout_ms: i32 = "session.timeout.ms" => 45_000,
        heartbeat_interval_ms: i32 = "heartbeat.interval.ms" => 3_000,
        max_poll_interval_ms: i32 = "max.poll.interval.ms" => 300_000,
        partition_assignment_strategy: Vec<String> = "partition.assignment.strategy" => vec!["range".to_owned(), "cooperative-sticky".to_owned()],
        check_crcs: bool = "check.crcs" => true,
    }
    extra {
        /// Keys set through [`ConsumerConfig::from_map`] / [`ConsumerConfig::set`].
        pub explicit: ExplicitClientKeys = ExplicitClientKeys::default(),
    }
}

client_config_api!(ConsumerConfig, CONSUMER_KEYS, "consumer");

impl ConsumerConfig {
    /// Checks rules that span several keys.
    ///
    /// # Errors
    /// [`ConfigError::Inconsistent`] naming the keys and values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval_ms >= self.session_timeout_ms {
            return Err(ConfigError::Inconsistent {
                message: format!(
                    "heartbeat.interval.ms ({}) must be lower than session.timeout.ms ({})",
                    self.heartbeat_interval_ms, self.session_timeout_ms
                ),
            });
        }
        Ok(())
    }

    /// `auto.offset.reset` as an enum.
    pub fn auto_offset_reset(&self) -> AutoOffsetReset {
        match self.auto_offset_reset_setting.as_str() {
            "earliest" => AutoOffsetReset::Earliest,
            "none" => AutoOffsetReset::None,
            _ => AutoOffsetReset::Latest,
        }
    }

    /// `isolation.level` as sent in Fetch/ListOffsets: 0 read_uncommitted, 1 read_committed.
    pub fn isolation_level(&self) -> i8 {
        i8::from(self.isolation_level_setting == "read_committed")
    }

    /// The group id, if one is configured.
    pub fn group(&self) -> Option<&str> {
        (!self.group_id.is_empty()).then_some(self.group_id.as_str())
    }

    /// `group.instance.id`, if this is a static member.
    pub fn group_instance(&self) -> Option<&str> {
        (!self.group_instance_id.is_empty()).then_some(self.group_instance_id.as_str())
    }

    /// The bootstrap servers as `host:port` strings.
    pub fn bootstrap(&self) -> Vec<String> {
        self.bootstrap_servers
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}
