//! The registry and the typed structs must agree: every key has exactly one
//! field, every registry default parses and equals the Rust `Default`, and the
//! synonym links are sound. These are the checks that make the `Internal`
//! error unreachable.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{ensure, Context, Result};
use brook_config::registry::{self, Kind, Scope};
use brook_config::{BrokerConfig, ConfigType, TopicConfig, Value};

#[test]
fn names_are_unique_lowercase_and_env_reversible() -> Result<()> {
    let mut seen = BTreeSet::new();
    for def in registry::all() {
        ensure!(seen.insert(def.name), "duplicate key {}", def.name);
        ensure!(
            def.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.'),
            "key {} must be lower-case letters, digits and dots (BROOK_ env mapping)",
            def.name
        );
        ensure!(!def.doc.is_empty(), "key {} has no documentation", def.name);
    }
    Ok(())
}

#[test]
fn every_broker_key_has_exactly_one_field() -> Result<()> {
    let registry: BTreeSet<&str> = registry::all()
        .filter(|d| d.scope.is_broker())
        .map(|d| d.name)
        .collect();
    let fields: BTreeSet<&str> = BrokerConfig::FIELD_KEYS.iter().copied().collect();
    ensure!(
        fields.len() == BrokerConfig::FIELD_KEYS.len(),
        "a broker key is mapped to two fields"
    );
    ensure!(
        registry == fields,
        "registry vs BrokerConfig fields differ: {:?}",
        registry.symmetric_difference(&fields).collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn every_topic_key_has_exactly_one_field() -> Result<()> {
    let registry: BTreeSet<&str> = registry::all()
        .filter(|d| d.scope.is_topic())
        .map(|d| d.name)
        .collect();
    let fields: BTreeSet<&str> = TopicConfig::FIELD_KEYS.iter().copied().collect();
    ensure!(
        fields.len() == TopicConfig::FIELD_KEYS.len(),
        "a topic key is mapped to two fields"
    );
    ensure!(
        registry == fields,
        "registry vs TopicConfig fields differ: {:?}",
        registry.symmetric_difference(&fields).collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn rust_defaults_equal_registry_defaults() -> Result<()> {
    // Parsing an empty file applies nothing, so it must equal Default; and each
    // key's registry default, set explicitly, must not change the typed value.
    let default = BrokerConfig::default();
    ensure!(BrokerConfig::from_toml_str("")? == default);
    for def in registry::all().filter(|d| d.scope.is_broker()) {
        let Some(text) = def.default else {
            ensure!(
                default.value(def.name) == Some(Value::Null),
                "{} has no registry default but a Rust one",
                def.name
            );
            continue;
        };
        let mut cfg = BrokerConfig::default();
        cfg.set(def.name, text)
            .with_context(|| format!("registry default of {} does not parse", def.name))?;
        ensure!(
            cfg.value(def.name) == default.value(def.name),
            "{}: registry default {text:?} != Rust default {:?}",
            def.name,
            default.value(def.name)
        );
    }
    Ok(())
}

#[test]
fn topic_defaults_follow_broker_defaults() -> Result<()> {
    let resolved = TopicConfig::resolve(&BrokerConfig::default(), &BTreeMap::new())?;
    ensure!(
        resolved == TopicConfig::default(),
        "TopicConfig::default() differs from resolving the default broker"
    );
    // The topic key's own registry default must agree with what its broker
    // synonyms produce by default (Kafka documents both).
    for def in registry::all().filter(|d| d.scope.is_topic()) {
        let text = def
            .default
            .with_context(|| format!("topic key {} needs a default", def.name))?;
        let mut overrides = BTreeMap::new();
        overrides.insert(def.name.to_owned(), text.to_owned());
        let explicit = TopicConfig::resolve(&BrokerConfig::default(), &overrides)?;
        ensure!(
            explicit.value(def.name) == resolved.value(def.name),
            "{}: topic default {text:?} != broker-derived {:?}",
            def.name,
            resolved.value(def.name)
        );
    }
    Ok(())
}

#[test]
fn synonyms_point_at_broker_keys_of_matching_type() -> Result<()> {
    for def in registry::all() {
        match def.scope {
            Scope::Broker => ensure!(
                def.synonyms.is_empty(),
                "broker key {} has synonyms",
                def.name
            ),
            Scope::Both => ensure!(
                def.synonyms.len() == 1 && def.synonyms[0].key == def.name,
                "{} must be its own synonym",
                def.name
            ),
            Scope::Topic => {}
        }
        for syn in def.synonyms {
            let target = registry::broker_key(syn.key)
                .with_context(|| format!("{} → {} is not a broker key", def.name, syn.key))?;
            if syn.scale == 1 {
                ensure!(
                    target.kind.config_type() == def.kind.config_type(),
                    "{} and its synonym {} differ in type",
                    def.name,
                    syn.key
                );
            } else {
                ensure!(
                    def.kind.config_type() == ConfigType::Long,
                    "{} is scaled from {} and must be long",
                    def.name,
                    syn.key
                );
            }
        }
    }
    Ok(())
}

#[test]
fn integer_bounds_fit_their_types() -> Result<()> {
    for def in registry::all() {
        let ok = match def.kind {
            Kind::Short { min, max } => {
                min >= i64::from(i16::MIN) && max <= i64::from(i16::MAX) && min <= max
            }
            Kind::Int { min, max } => {
                min >= i64::from(i32::MIN) && max <= i64::from(i32::MAX) && min <= max
            }
            Kind::Long { min, max } => min <= max,
            Kind::Double { min, max } => min <= max,
            _ => true,
        };
        ensure!(ok, "bad bounds on {}", def.name);
    }
    Ok(())
}

#[test]
fn kafka_topic_config_names_are_all_present() -> Result<()> {
    // Kafka 3.x/4.x topic configs (TopicConfig.java), minus the ones removed in
    // 4.0 that were already deprecated (message.format.version,
    // message.timestamp.difference.max.ms).
    let kafka = [
        "cleanup.policy",
        "compression.type",
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.zstd.level",
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "follower.replication.throttled.replicas",
        "index.interval.bytes",
        "leader.replication.throttled.replicas",
        "local.retention.bytes",
        "local.retention.ms",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "message.downconversion.enable",
        "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.type",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "preallocate",
        "remote.storage.enable",
        "remote.log.copy.disable",
        "remote.log.delete.on.disable",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.index.bytes",
        "segment.jitter.ms",
        "segment.ms",
        "unclean.leader.election.enable",
    ];
    for key in kafka {
        ensure!(
            registry::topic_key(key).is_some(),
            "missing topic key {key}"
        );
    }
    Ok(())
}
