//! Topic configs: resolution from broker defaults and overrides, durability,
//! override validation, and DescribeConfigs sources for topics and brokers.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};
use brook_config::{
    describe_broker, describe_topic, validate_topic_override, BrokerConfig, CleanupPolicy,
    ConfigEntry, ConfigSource, ConfigType, Durability, TimestampType, TopicConfig,
};

fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn find<'a>(entries: &'a [ConfigEntry], name: &str) -> Result<&'a ConfigEntry> {
    entries
        .iter()
        .find(|e| e.name == name)
        .with_context(|| format!("no entry {name}"))
}

#[test]
fn broker_settings_become_topic_defaults() -> Result<()> {
    let broker = BrokerConfig::from_toml_str(
        "log.retention.minutes = 30\nlog.segment.bytes = 4096\nlog.cleanup.policy = [\"compact\"]\n\
         message.max.bytes = 2000\nmin.insync.replicas = 2\nlog.roll.hours = 1\nlog.index.interval.bytes = 128\n\
         log.message.timestamp.type = \"LogAppendTime\"\nlog.roll.jitter.hours = 2\n",
    )?;
    let t = TopicConfig::resolve(&broker, &BTreeMap::new())?;
    assert_eq!(t.retention_ms, 30 * 60_000);
    assert_eq!(t.segment_bytes, 4096);
    assert_eq!(t.cleanup_policy, CleanupPolicy::COMPACT);
    assert_eq!(t.max_message_bytes, 2000);
    assert_eq!(t.min_insync_replicas, 2);
    assert_eq!(t.segment_ms, 3_600_000);
    assert_eq!(t.segment_jitter_ms, 2 * 3_600_000);
    assert_eq!(t.index_interval_bytes, 128);
    assert_eq!(t.message_timestamp_type, TimestampType::LogAppendTime);
    Ok(())
}

#[test]
fn direct_field_assignment_reaches_topics() -> Result<()> {
    // Tests elsewhere configure brokers by assigning fields; topics must see it.
    let broker = BrokerConfig {
        log_segment_bytes: 512,
        log_retention_ms: Some(10),
        ..BrokerConfig::default()
    };
    let t = TopicConfig::resolve(&broker, &BTreeMap::new())?;
    ensure!(t.segment_bytes == 512 && t.retention_ms == 10);
    Ok(())
}

#[test]
fn overrides_win_over_broker() -> Result<()> {
    let broker = BrokerConfig::from_toml_str("log.retention.ms = 1000\n")?;
    let t = TopicConfig::resolve(
        &broker,
        &overrides(&[
            ("retention.ms", "-1"),
            ("cleanup.policy", "compact,delete"),
            ("segment.bytes", "100"),
        ]),
    )?;
    assert_eq!(t.retention_ms, -1);
    assert_eq!(
        t.cleanup_policy,
        CleanupPolicy {
            delete: true,
            compact: true
        }
    );
    assert_eq!(t.segment_bytes, 100);
    Ok(())
}

#[test]
fn durability_defaults_to_fsync_before_ack() -> Result<()> {
    let none = TopicConfig::resolve(&BrokerConfig::default(), &BTreeMap::new())?;
    ensure!(none.durability == Durability::FsyncBeforeAck);
    // Explicitly setting the default value still opts into periodic flushing.
    let topic = TopicConfig::resolve(
        &BrokerConfig::default(),
        &overrides(&[("flush.ms", "9223372036854775807")]),
    )?;
    ensure!(topic.durability == Durability::Periodic);
    let broker = BrokerConfig::from_toml_str("log.flush.interval.messages = 1000\n")?;
    let from_broker = TopicConfig::resolve(&broker, &BTreeMap::new())?;
    ensure!(from_broker.durability == Durability::Periodic && from_broker.flush_messages == 1000);
    Ok(())
}

#[test]
fn override_validation_names_key_value_and_allowed() -> Result<()> {
    validate_topic_override("retention.ms", "86400000")?;
    validate_topic_override("follower.replication.throttled.replicas", "0:1,1:2")?;
    validate_topic_override("leader.replication.throttled.replicas", "*")?;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "retention.m",
            "1",
            &[
                "unknown topic config key `retention.m`",
                "did you mean `retention.ms`?",
            ],
        ),
        (
            "log.retention.ms",
            "1",
            &["`log.retention.ms` is a broker config", "`retention.ms`"],
        ),
        (
            "segment.bytes",
            "10",
            &[
                "`segment.bytes`",
                "\"10\"",
                "[14,...]",
                "topic config override",
            ],
        ),
        (
            "cleanup.policy",
            "zap",
            &["`cleanup.policy`", "\"zap\"", "compact, delete"],
        ),
        (
            "min.cleanable.dirty.ratio",
            "2",
            &["`min.cleanable.dirty.ratio`", "\"2\"", "[0,...,1]"],
        ),
        (
            "message.timestamp.type",
            "createtime",
            &["CreateTime, LogAppendTime"],
        ),
        (
            "follower.replication.throttled.replicas",
            "x:y",
            &["partitionId:brokerId"],
        ),
        ("remote.storage.enable", "true", &["tiered storage"]),
    ];
    for (key, value, needles) in cases {
        let Err(e) = validate_topic_override(key, value) else {
            bail!("{key}={value} accepted")
        };
        let msg = e.to_string();
        for needle in *needles {
            ensure!(
                msg.contains(needle),
                "error for {key}={value} lacks {needle:?}: {msg}"
            );
        }
        ensure!(
            TopicConfig::resolve(&BrokerConfig::default(), &overrides(&[(key, value)])).is_err()
        );
    }
    Ok(())
}

#[test]
fn inconsistent_compaction_lags_are_rejected() -> Result<()> {
    let r = TopicConfig::resolve(
        &BrokerConfig::default(),
        &overrides(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]),
    );
    let Err(e) = r else { bail!("accepted") };
    ensure!(e.to_string().contains("min.compaction.lag.ms (10)"), "{e}");
    Ok(())
}

#[test]
fn describe_topic_reports_sources() -> Result<()> {
    let broker = BrokerConfig::from_toml_str("log.retention.hours = 1\n")?;
    let entries = describe_topic(&broker, &overrides(&[("segment.bytes", "2048")]));
    let n_topic_keys = brook_config::registry::all()
        .filter(|d| d.scope.is_topic())
        .count();
    ensure!(
        entries.len() == n_topic_keys,
        "every topic key is described"
    );

    let seg = find(&entries, "segment.bytes")?;
    ensure!(seg.value.as_deref() == Some("2048") && seg.source == ConfigSource::DynamicTopicConfig);
    ensure!(
        seg.source.code() == 1 && seg.config_type == ConfigType::Int && seg.config_type.code() == 3
    );
    ensure!(seg.synonyms.first().map(|s| s.source) == Some(ConfigSource::DynamicTopicConfig));
    ensure!(!seg.read_only && !seg.sensitive && !seg.documentation.is_empty());

    let ret = find(&entries, "retention.ms")?;
    ensure!(ret.value.as_deref() == Some("3600000"), "{ret:?}");
    ensure!(ret.source == ConfigSource::StaticBrokerConfig && ret.source.code() == 4);
    ensure!(ret.synonyms.iter().any(|s| s.name == "log.retention.hours"
        && s.source == ConfigSource::StaticBrokerConfig
        && s.value.as_deref() == Some("1")));

    let cleanup = find(&entries, "cleanup.policy")?;
    ensure!(
        cleanup.value.as_deref() == Some("delete") && cleanup.source == ConfigSource::DefaultConfig
    );
    ensure!(cleanup.source.code() == 5 && cleanup.config_type.code() == 7);

    let flush = find(&entries, "flush.messages")?;
    ensure!(flush.value.as_deref() == Some("9223372036854775807") && flush.config_type.code() == 5);
    Ok(())
}

#[test]
fn describe_broker_reports_static_and_default() -> Result<()> {
    let broker = BrokerConfig::from_toml_str("num.partitions = 6\n")?;
    let entries = describe_broker(&broker);
    let n = find(&entries, "num.partitions")?;
    ensure!(
        n.value.as_deref() == Some("6")
            && n.source == ConfigSource::StaticBrokerConfig
            && n.read_only
    );
    let dirs = find(&entries, "log.dirs")?;
    ensure!(dirs.value.as_deref() == Some("./data") && dirs.source == ConfigSource::DefaultConfig);
    let ms = find(&entries, "log.retention.ms")?;
    ensure!(ms.value.is_none(), "unset keys have no value");
    let ratio = find(&entries, "log.cleaner.min.cleanable.ratio")?;
    ensure!(ratio.value.as_deref() == Some("0.5") && ratio.config_type == ConfigType::Double);
    let auto = find(&entries, "auto.create.topics.enable")?;
    ensure!(auto.config_type.code() == 1);
    let rf = find(&entries, "offsets.topic.replication.factor")?;
    ensure!(rf.config_type.code() == 4);
    ensure!(
        find(&entries, "retention.ms").is_err(),
        "topic-only keys are not broker entries"
    );
    Ok(())
}
