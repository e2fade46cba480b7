//! [`ProducerConfig`]: typed producer settings and their cross-key rules.

use super::keys::PRODUCER_KEYS;
use super::ExplicitClientKeys;
use crate::error::ConfigError;
use crate::typed::typed_config;
use crate::value::HostPort;

typed_config! {
    /// Producer configuration with the Java client's names and defaults.
    /// `Default` equals `ProducerConfig::from_map::<_, &str, &str>([])`.
    pub struct ProducerConfig {
        bootstrap_servers: Vec<HostPort> = "bootstrap.servers" => vec![HostPort::new("127.0.0.1", 9092)],
        client_id: String = "client.id" => String::new(),
        acks_setting: String = "acks" => "all".to_owned(),
        enable_idempotence: bool = "enable.idempotence" => true,
        retries: i32 = "retries" => i32::MAX,
        retry_backoff_ms: i64 = "retry.backoff.ms" => 100,
        delivery_timeout_ms: i32 = "delivery.timeout.ms" => 120_000,
        request_timeout_ms: i32 = "request.timeout.ms" => 30_000,
        linger_ms: i64 = "linger.ms" => 5,
        batch_size: i32 = "batch.size" => 16_384,
        buffer_memory: i64 = "buffer.memory" => 33_554_432,
        max_block_ms: i64 = "max.block.ms" => 60_000,
        max_request_size: i32 = "max.request.size" => 1_048_576,
        compression_type: String = "compression.type" => "none".to_owned(),
        max_in_flight: i32 = "max.in.flight.requests.per.connection" => 5,
        metadata_max_age_ms: i64 = "metadata.max.age.ms" => 300_000,
        partitioner_ignore_keys: bool = "partitioner.ignore.keys" => false,
    }
    extra {
        /// Keys set through [`ProducerConfig::from_map`] / [`ProducerConfig::set`].
        pub explicit: ExplicitClientKeys = ExplicitClientKeys::default(),
    }
}

client_config_api!(ProducerConfig, PRODUCER_KEYS, "producer");

impl ProducerConfig {
    /// Checks rules that span several keys (the Java client's rules).
    ///
    /// # Errors
    /// [`ConfigError::Inconsistent`] naming the keys and values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let inconsistent = |message: String| Err(ConfigError::Inconsistent { message });
        if self.explicit.contains("enable.idempotence") && self.enable_idempotence {
            if self.acks() != -1 {
                return inconsistent(format!(
                    "enable.idempotence=true requires acks=all, not acks={}",
                    self.acks_setting
                ));
            }
            if self.max_in_flight > 5 {
                return inconsistent(format!(
                    "enable.idempotence=true requires max.in.flight.requests.per.connection <= 5, not {}",
                    self.max_in_flight
                ));
            }
            if self.retries == 0 {
                return inconsistent("enable.idempotence=true requires retries > 0".to_owned());
            }
        }
        let floor = self
            .linger_ms
            .saturating_add(i64::from(self.request_timeout_ms));
        if i64::from(self.delivery_timeout_ms) < floor {
            return inconsistent(format!(
                "delivery.timeout.ms ({}) must be at least linger.ms + request.timeout.ms ({floor})",
                self.delivery_timeout_ms
            ));
        }
        Ok(())
    }

    /// `acks` as sent on the wire: 0, 1 or -1 (all).
    pub fn acks(&self) -> i16 {
        match self.acks_setting.as_str() {
            "0" => 0,
            "1" => 1,
            _ => -1,
        }
    }

    /// Whether the idempotent producer is in effect: `enable.idempotence`, unless
    /// it was left at its default and another explicit setting conflicts with it
    /// (as in the Java client).
    pub fn idempotence(&self) -> bool {
        self.enable_idempotence && self.acks() == -1 && self.max_in_flight <= 5 && self.retries > 0
    }

    /// The bootstrap servers as `host:port` strings.
    pub fn bootstrap(&self) -> Vec<String> {
        self.bootstrap_servers
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}
