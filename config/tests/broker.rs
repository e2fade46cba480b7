//! BrokerConfig: defaults, every input form, environment precedence and the
//! content of error messages.

use std::path::PathBuf;

use anyhow::{bail, ensure, Result};
use brook_config::{
    BrokerConfig, CleanupPolicy, CompressionType, ConfigError, HostPort, Origin, TimestampType,
};

fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<Vec<_>>()
        .into_iter()
}

fn err_text(r: Result<BrokerConfig, ConfigError>) -> Result<String> {
    match r {
        Ok(cfg) => bail!("expected an error, got {cfg:?}"),
        Err(e) => Ok(e.to_string()),
    }
}

#[test]
fn defaults_are_the_documented_single_node_setup() {
    let c = BrokerConfig::default();
    assert_eq!(c.node_id, 1);
    assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
    assert_eq!(c.listeners, vec![HostPort::new("127.0.0.1", 9092)]);
    assert_eq!(c.advertised(), &[HostPort::new("127.0.0.1", 9092)]);
    assert_eq!(c.admin_listener, HostPort::new("127.0.0.1", 9644));
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.default_replication_factor, 1);
    assert!(c.auto_create_topics_enable && c.delete_topic_enable);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.max_connections, 10_000);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.retention_ms(), 7 * 24 * 3_600_000);
    assert_eq!(c.roll_ms(), 7 * 24 * 3_600_000);
    assert_eq!(c.log_segment_bytes, 1 << 30);
    assert_eq!(c.log_cleanup_policy, CleanupPolicy::DELETE);
    assert_eq!(c.compression_type, CompressionType::Producer);
    assert_eq!(c.log_message_timestamp_type, TimestampType::CreateTime);
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert_eq!(c.group_max_size, i32::MAX);
    assert!(!c.unclean_leader_election_enable);
    assert_eq!(c.explicit_keys().count(), 0);
}

#[test]
fn dotted_quoted_table_and_inline_table_forms_are_equivalent() -> Result<()> {
    let forms = [
        "log.dirs = [\"/a\", \"/b\"]\nlog.segment.bytes = 1024\n",
        "\"log.dirs\" = [\"/a\", \"/b\"]\n\"log.segment.bytes\" = 1024\n",
        "[log]\ndirs = [\"/a\", \"/b\"]\nsegment.bytes = 1024\n",
        "[log]\ndirs = [\"/a\", \"/b\"]\n[log.segment]\nbytes = 1024\n",
        "log = { dirs = [\"/a\", \"/b\"], segment = { bytes = 1024 } }\n",
    ];
    for text in forms {
        let c = BrokerConfig::from_toml_str(text)?;
        ensure!(
            c.log_dirs == vec![PathBuf::from("/a"), PathBuf::from("/b")],
            "form {text:?}"
        );
        ensure!(c.log_segment_bytes == 1024, "form {text:?}");
        ensure!(c.is_explicit("log.dirs") && c.is_explicit("log.segment.bytes"));
    }
    Ok(())
}

#[test]
fn strings_for_numbers_bools_and_lists_are_accepted() -> Result<()> {
    let c = BrokerConfig::from_toml_str(
        "num.partitions = \"3\"\nauto.create.topics.enable = \"FALSE\"\nlog.dirs = \"/a, /b\"\n\
         log.cleaner.min.cleanable.ratio = \"0.25\"\nlisteners = \"PLAINTEXT://0.0.0.0:19092\"\n",
    )?;
    assert_eq!(c.num_partitions, 3);
    assert!(!c.auto_create_topics_enable);
    assert_eq!(c.log_dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    assert!((c.log_cleaner_min_cleanable_ratio - 0.25).abs() < f64::EPSILON);
    assert_eq!(c.listeners, vec![HostPort::new("0.0.0.0", 19092)]);
    Ok(())
}

#[test]
fn env_overrides_file_and_is_tracked() -> Result<()> {
    let mut c = BrokerConfig::from_toml_str("num.partitions = 2\nlog.dirs = [\"/file\"]\n")?;
    c.apply_env(env(&[
        ("BROOK_NUM_PARTITIONS", "7"),
        ("BROOK_LOG_DIRS", "/x,/y"),
        ("PATH", "/usr/bin"),
        ("BROOK_CONFIG", "/etc/brook.toml"),
        ("BROOK_LOG", "debug"),
    ]))?;
    assert_eq!(c.num_partitions, 7);
    assert_eq!(c.log_dirs, vec![PathBuf::from("/x"), PathBuf::from("/y")]);
    assert_eq!(
        c.origin_of("num.partitions"),
        Some(&Origin::Env("BROOK_NUM_PARTITIONS".to_owned()))
    );
    Ok(())
}

#[test]
fn failed_env_leaves_config_unchanged() -> Result<()> {
    let mut c = BrokerConfig::from_toml_str("num.partitions = 2\n")?;
    let before = c.clone();
    let r = c.apply_env(env(&[
        ("BROOK_NUM_PARTITIONS", "9"),
        ("BROOK_LOG_DIR", "/x"),
    ]));
    let Err(e) = r else {
        bail!("unknown env key accepted")
    };
    let text = e.to_string();
    ensure!(
        text.contains("BROOK_LOG_DIR")
            && text.contains("`log.dir`")
            && text.contains("did you mean `log.dirs`"),
        "{text}"
    );
    ensure!(c == before, "partial env applied");
    Ok(())
}

#[test]
fn unknown_key_suggests_the_nearest() -> Result<()> {
    let text = err_text(BrokerConfig::from_toml_str("num.partition = 3\n"))?;
    ensure!(
        text.contains("unknown broker config key `num.partition`"),
        "{text}"
    );
    ensure!(text.contains("did you mean `num.partitions`?"), "{text}");
    let text = err_text(BrokerConfig::from_toml_str("retention.ms = 1000\n"))?;
    ensure!(
        text.contains("`log.retention.ms`"),
        "topic key in broker file should point at the broker key: {text}"
    );
    Ok(())
}

#[test]
fn every_error_names_key_value_allowed_and_origin() -> Result<()> {
    let cases: &[(&str, &[&str])] = &[
        (
            "num.partitions = 0",
            &["`num.partitions`", "0", "[1,...]", "TOML config"],
        ),
        (
            "num.partitions = \"many\"",
            &["`num.partitions`", "\"many\"", "an integer", "[1,...]"],
        ),
        (
            "num.partitions = 3000000000",
            &["`num.partitions`", "3000000000", "[1,...]"],
        ),
        (
            "auto.create.topics.enable = \"yes\"",
            &["`auto.create.topics.enable`", "\"yes\"", "true or false"],
        ),
        (
            "log.cleanup.policy = \"delete,shrink\"",
            &[
                "`log.cleanup.policy`",
                "\"delete,shrink\"",
                "compact, delete",
            ],
        ),
        (
            "compression.type = \"brotli\"",
            &[
                "`compression.type`",
                "\"brotli\"",
                "uncompressed, zstd, lz4, snappy, gzip, producer",
            ],
        ),
        (
            "listeners = [\"localhost\"]",
            &["`listeners`", "localhost", "host:port", "missing `:port`"],
        ),
        (
            "listeners = [\"SSL://h:1\"]",
            &["`listeners`", "SSL", "not supported"],
        ),
        ("log.dirs = []", &["`log.dirs`", "[]", "non-empty list"]),
        ("log.dirs = [1]", &["`log.dirs`", "[1]", "list of strings"]),
        (
            "log.cleaner.min.cleanable.ratio = 1.5",
            &["`log.cleaner.min.cleanable.ratio`", "1.5", "[0,...,1]"],
        ),
        (
            "offsets.topic.replication.factor = 40000",
            &["`offsets.topic.replication.factor`", "40000", "[1,...]"],
        ),
        ("cluster.id = 5", &["`cluster.id`", "5", "a string"]),
    ];
    for (text, needles) in cases {
        let msg = err_text(BrokerConfig::from_toml_str(text))?;
        for needle in *needles {
            ensure!(
                msg.contains(needle),
                "error for {text:?} lacks {needle:?}: {msg}"
            );
        }
    }
    Ok(())
}

#[test]
fn file_errors_name_the_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("brook.toml");
    std::fs::write(&path, "num.partitions = -1\n")?;
    let msg = err_text(BrokerConfig::from_file(&path))?;
    ensure!(
        msg.contains(&format!("config file {}", path.display())),
        "{msg}"
    );

    std::fs::write(&path, "log.dirs = [\"/d\"]\nnode.id = 4\n")?;
    let c = BrokerConfig::from_file(&path)?;
    ensure!(c.node_id == 4 && c.origin_of("node.id") == Some(&Origin::File(path.clone())));

    let missing = dir.path().join("missing.toml");
    let msg = err_text(BrokerConfig::from_file(&missing))?;
    ensure!(
        msg.contains("cannot read config file") && msg.contains("missing.toml"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn syntax_and_duplicate_errors() -> Result<()> {
    let msg = err_text(BrokerConfig::from_toml_str("num.partitions = = 3"))?;
    ensure!(msg.contains("TOML syntax error"), "{msg}");
    let msg = err_text(BrokerConfig::from_toml_str(
        "\"log.dirs\" = [\"/a\"]\nlog.dirs = [\"/b\"]\n",
    ))?;
    ensure!(msg.contains("`log.dirs` is set more than once"), "{msg}");
    Ok(())
}

#[test]
fn retention_precedence_is_ms_then_minutes_then_hours() -> Result<()> {
    let hours = BrokerConfig::from_toml_str("log.retention.hours = 2")?;
    ensure!(hours.retention_ms() == 2 * 3_600_000);
    let minutes =
        BrokerConfig::from_toml_str("log.retention.hours = 2\nlog.retention.minutes = 3")?;
    ensure!(minutes.retention_ms() == 3 * 60_000);
    let ms = BrokerConfig::from_toml_str(
        "log.retention.hours = 2\nlog.retention.minutes = 3\nlog.retention.ms = 5",
    )?;
    ensure!(ms.retention_ms() == 5);
    let unlimited = BrokerConfig::from_toml_str("log.retention.hours = -1")?;
    ensure!(unlimited.retention_ms() == -1);
    let roll = BrokerConfig::from_toml_str("log.roll.hours = 1\nlog.roll.ms = 10")?;
    ensure!(roll.roll_ms() == 10);
    Ok(())
}

#[test]
fn cross_key_rules_are_checked() -> Result<()> {
    let msg = err_text(BrokerConfig::from_toml_str(
        "group.min.session.timeout.ms = 10\ngroup.max.session.timeout.ms = 5\n",
    ))?;
    ensure!(
        msg.contains("group.min.session.timeout.ms (10)")
            && msg.contains("group.max.session.timeout.ms (5)"),
        "{msg}"
    );
    let msg = err_text(BrokerConfig::from_toml_str("log.dirs = [\"/a\", \"/a\"]"))?;
    ensure!(msg.contains("log.dirs lists /a twice"), "{msg}");
    Ok(())
}

#[test]
fn set_validates_and_is_atomic() -> Result<()> {
    let mut c = BrokerConfig::default();
    c.set("advertised.listeners", "broker1:9092")?;
    ensure!(c.advertised() == [HostPort::new("broker1", 9092)]);
    ensure!(c.set("num.partitions", "0").is_err());
    ensure!(c.num_partitions == 1 && !c.is_explicit("num.partitions"));
    Ok(())
}
