//! brook-config: typed, validated configuration for the brook broker and its
//! topics (DESIGN.md section 12).
//!
//! Configuration is TOML with Kafka's own key names (`log.dirs`,
//! `num.partitions`, `retention.ms`, …), overridable by `BROOK_<KEY>`
//! environment variables. Every key has a documented default, so an empty file
//! runs a single-node broker with data in `./data`, the Kafka listener on
//! 127.0.0.1:9092 and the admin listener on 127.0.0.1:9644. Unknown keys and bad
//! values are errors naming the key, the value, what is allowed and where the
//! value came from.
//!
//! ```
//! use std::collections::BTreeMap;
//! use brook_config::{BrokerConfig, TopicConfig};
//!
//! let mut broker = BrokerConfig::from_toml_str("log.dirs = [\"/var/lib/brook\"]\n[log.retention]\nhours = 24\n")?;
//! broker.apply_env([("BROOK_NUM_PARTITIONS".to_owned(), "3".to_owned())].into_iter())?;
//! assert_eq!(broker.num_partitions, 3);
//!
//! let overrides = BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
//! let topic = TopicConfig::resolve(&broker, &overrides)?;
//! assert_eq!(topic.retention_ms, 24 * 3_600_000);
//! assert!(topic.cleanup_policy.compact);
//! # Ok::<(), brook_config::ConfigError>(())
//! ```
//!
//! No I/O beyond reading the one config file; no async; no global state (the
//! process environment is passed in by the caller).
//!
//! # Layout
//!
//! - [`registry`]: the static table of every key (type, range, default, scope,
//!   broker synonyms, docs). It drives parsing, defaults, docs and DescribeConfigs.
//! - `value`: [`Value`] and the domain types of typed fields ([`HostPort`],
//!   [`QuorumVoter`], [`ProcessRole`], [`CompressionType`], [`TimestampType`],
//!   [`CleanupPolicy`]), [`ConfigType`].
//! - `parse`: validation of TOML / string input against a key's kind; TOML
//!   flattening; the environment-variable mapping.
//! - `typed`: the macro mapping typed struct fields to registry keys.
//! - `broker`: [`BrokerConfig`] (file, env, explicit-key tracking, precedence helpers).
//! - `topic`: [`TopicConfig`], [`Durability`], [`validate_topic_override`].
//! - `describe`: [`describe_broker`], [`describe_topic`] for DescribeConfigs.
//! - `views`: [`ViewDecl`], the `[views.NAME]` materialized-view tables
//!   (file-only; checked for shape here, for meaning by the broker).
//! - `reference`: [`reference_markdown`] for the README.
//! - `suggest`: "did you mean" hints.
//! - `error`: [`ConfigError`], [`Origin`].
//! - [`client`]: `ProducerConfig` / `ConsumerConfig` (the Java clients' keys).

mod broker;
pub mod client;
mod describe;
mod error;
mod parse;
mod reference;
pub mod registry;
mod suggest;
mod topic;
mod typed;
mod value;
mod views;

pub use broker::{BrokerConfig, ExplicitKeys};
pub use describe::{describe_broker, describe_topic, ConfigEntry, ConfigSource, ConfigSynonym};
pub use error::{ConfigError, Origin};
pub use parse::{key_to_env, ENV_PREFIX, ENV_RESERVED};
pub use reference::reference_markdown;
pub use topic::{validate_topic_override, Durability, TopicConfig};
pub use value::{
    CleanupPolicy, CompressionType, ConfigType, FieldValue, HostPort, ListItem, ProcessRole,
    QuorumVoter, TimestampType, Value, PLAINTEXT_LISTENER,
};
pub use views::{ViewDecl, VIEW_FORMATS, VIEW_KINDS, VIEW_NAME_MAX_LEN};
