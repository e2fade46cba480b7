//! DescribeConfigs support: [`ConfigEntry`] lists for the broker and topic
//! resources, with Kafka's source, type and synonym information.

use std::collections::BTreeMap;

use crate::broker::{registry_default, BrokerConfig};
use crate::registry::{self, KeyDef};
use crate::topic::parse_override;
use crate::value::{ConfigType, Value};

/// Kafka's `ConfigSource` (the numbers are wire values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// 0
    Unknown,
    /// 1: a per-topic override.
    DynamicTopicConfig,
    /// 2: a per-broker dynamic config (not used by brook yet).
    DynamicBrokerConfig,
    /// 3: a cluster-wide dynamic broker default (not used by brook yet).
    DynamicDefaultBrokerConfig,
    /// 4: set in the broker's config file or environment.
    StaticBrokerConfig,
    /// 5: the built-in default.
    DefaultConfig,
    /// 6: a dynamic logger level (not used by brook).
    DynamicBrokerLoggerConfig,
}

impl ConfigSource {
    /// The number DescribeConfigs puts on the wire.
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::Unknown => 0,
            ConfigSource::DynamicTopicConfig => 1,
            ConfigSource::DynamicBrokerConfig => 2,
            ConfigSource::DynamicDefaultBrokerConfig => 3,
            ConfigSource::StaticBrokerConfig => 4,
            ConfigSource::DefaultConfig => 5,
            ConfigSource::DynamicBrokerLoggerConfig => 6,
        }
    }
}

/// One synonym of a described config, most specific first (Kafka's order).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSynonym {
    /// Key name (a topic key or a broker key).
    pub name: String,
    /// Its value in Kafka's string form.
    pub value: Option<String>,
    /// Where that value comes from.
    pub source: ConfigSource,
}

/// One entry of a DescribeConfigs response.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    /// Key name.
    pub name: String,
    /// Effective value in Kafka's string form; `None` for unset keys.
    pub value: Option<String>,
    /// Where the effective value comes from.
    pub source: ConfigSource,
    /// Whether AlterConfigs may change it (broker configs are static in brook).
    pub read_only: bool,
    /// Whether the value must be hidden (passwords; brook has none yet).
    pub sensitive: bool,
    /// Kafka's type.
    pub config_type: ConfigType,
    /// Documentation from the registry.
    pub documentation: &'static str,
    /// Where else the value could come from, for `include_synonyms`.
    pub synonyms: Vec<ConfigSynonym>,
}

fn entry(
    def: &KeyDef,
    value: &Value,
    source: ConfigSource,
    read_only: bool,
    synonyms: Vec<ConfigSynonym>,
) -> ConfigEntry {
    let config_type = def.kind.config_type();
    ConfigEntry {
        name: def.name.to_owned(),
        value: value.to_kafka_string(),
        source,
        read_only,
        sensitive: config_type == ConfigType::Password,
        config_type,
        documentation: def.doc,
        synonyms,
    }
}

/// Describes every broker-scope key of `broker`, in registry order.
pub fn describe_broker(broker: &BrokerConfig) -> Vec<ConfigEntry> {
    registry::all()
        .filter(|d| d.scope.is_broker())
        .map(|def| {
            let value = broker.value(def.name).unwrap_or(Value::Null);
            let source = if broker.is_explicit(def.name) {
                ConfigSource::StaticBrokerConfig
            } else {
                ConfigSource::DefaultConfig
            };
            let synonyms = vec![ConfigSynonym {
                name: def.name.to_owned(),
                value: value.to_kafka_string(),
                source,
            }];
            entry(def, &value, source, true, synonyms)
        })
        .collect()
}

/// Describes every topic key for a topic with `overrides` on `broker`.
/// Overrides that fail validation are shown as given (they should have been
/// rejected by [`crate::validate_topic_override`] before being stored);
/// unknown override keys are left out.
pub fn describe_topic(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    registry::all()
        .filter(|d| d.scope.is_topic())
        .map(|def| {
            let mut synonyms = Vec::new();
            let override_value =
                overrides
                    .get(def.name)
                    .map(|raw| match parse_override(def.name, raw) {
                        Ok((_, v)) => v,
                        Err(_) => Value::Str(raw.clone()),
                    });
            if let Some(v) = &override_value {
                synonyms.push(ConfigSynonym {
                    name: def.name.to_owned(),
                    value: v.to_kafka_string(),
                    source: ConfigSource::DynamicTopicConfig,
                });
            }
            for syn in def.synonyms.iter().filter(|s| broker.is_explicit(s.key)) {
                synonyms.push(ConfigSynonym {
                    name: syn.key.to_owned(),
                    value: broker.value(syn.key).and_then(|v| v.to_kafka_string()),
                    source: ConfigSource::StaticBrokerConfig,
                });
            }
            // The broker-level value is computed even if an override wins, so
            // the default synonym is always listed, as Kafka does.
            let (broker_value, from) = broker
                .topic_default(def)
                .unwrap_or_else(|_| (registry_default(def).unwrap_or(Value::Null), None));
            let broker_source = match from {
                Some(key) if broker.is_explicit(key) => ConfigSource::StaticBrokerConfig,
                _ => ConfigSource::DefaultConfig,
            };
            let default_name = def.synonyms.last().map_or(def.name, |s| s.key);
            synonyms.push(ConfigSynonym {
                name: default_name.to_owned(),
                value: registry::lookup(default_name)
                    .and_then(|d| registry_default(d).ok())
                    .and_then(|v| v.to_kafka_string()),
                source: ConfigSource::DefaultConfig,
            });
            match override_value {
                Some(v) => entry(def, &v, ConfigSource::DynamicTopicConfig, false, synonyms),
                None => entry(def, &broker_value, broker_source, false, synonyms),
            }
        })
        .collect()
}
