//! The upgrade: a data directory written by the last release before the
//! metadata log (commit 3e50745, fixture made by
//! `tests/fixtures/make-upgrade-fixture.sh`) starts under this brook with
//! every topic, topic id, config, record and committed offset intact, and
//! still does after a second start (which reads the metadata log only).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use brook_tests::{http_get, workspace_root, Broker, BrokerOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

fn expected() -> Result<Value> {
    let path = workspace_root().join("tests/fixtures/upgrade-3e50745.json");
    Ok(serde_json::from_str(&std::fs::read_to_string(&path)?)?)
}

/// Every check of the fixture's content against a running broker.
fn check(broker: &Broker, want: &Value) -> Result<()> {
    // Topics, ids and configs.
    let topics: Value = serde_json::from_str(&http_get(broker.admin_addr(), "/v1/topics")?)?;
    for t in want["topics"].as_array().context("topics")? {
        let name = t["topic"].as_str().context("topic name")?;
        let got = topics
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .with_context(|| format!("topic {name} is missing after the upgrade: {topics}"))?;
        ensure!(
            got["topic_id"] == t["topic_id"],
            "{name}: id {} != {}",
            got["topic_id"],
            t["topic_id"]
        );
        ensure!(
            got["partitions"] == t["partitions"],
            "{name}: partitions {}",
            got["partitions"]
        );
        let configs = &want["metadata_file"]["topics"][name]["configs"];
        ensure!(
            &got["configs"] == configs,
            "{name}: configs {} != {configs}",
            got["configs"]
        );
    }
    // Every record at its offset.
    let consumer = common::consumer(&broker.bootstrap(), &[])?;
    for (topic, records) in want["records"].as_object().context("records")? {
        let partitions: Vec<i32> = (0..want["metadata_file"]["topics"][topic]["partitions"]
            .as_i64()
            .context("partition count")? as i32)
            .collect();
        let got = common::consume_all(&consumer, topic, &partitions)?;
        let mut seen: Vec<(i64, i64, String, String)> = got
            .values()
            .flatten()
            .map(|c| {
                (
                    i64::from(c.partition),
                    c.offset,
                    String::from_utf8_lossy(c.record.key.as_deref().unwrap_or_default())
                        .into_owned(),
                    String::from_utf8_lossy(c.record.value.as_deref().unwrap_or_default())
                        .into_owned(),
                )
            })
            .collect();
        seen.sort();
        let want: Vec<(i64, i64, String, String)> = records
            .as_array()
            .context("record list")?
            .iter()
            .map(|r| {
                (
                    r[0].as_i64().unwrap_or(-1),
                    r[1].as_i64().unwrap_or(-1),
                    r[2].as_str().unwrap_or_default().to_owned(),
                    r[3].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        ensure!(
            seen == want,
            "{topic}: records differ after the upgrade:\n got {seen:?}\nwant {want:?}"
        );
    }
    // The group's committed offsets.
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "upgrade-group")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let mut want_offsets = BTreeMap::new();
    for o in want["group"]["offsets"]
        .as_array()
        .context("group offsets")?
    {
        let p = o["partition"].as_i64().context("partition")? as i32;
        tpl.add_partition(o["topic"].as_str().context("topic")?, p);
        want_offsets.insert(p, o["committed"].as_i64().context("committed")?);
    }
    let committed = group.committed_offsets(tpl, Duration::from_secs(30))?;
    for e in committed.elements() {
        let want = want_offsets[&e.partition()];
        ensure!(
            e.offset() == Offset::Offset(want),
            "upgrade-group {}/{}: committed {:?}, want {want}",
            e.topic(),
            e.partition(),
            e.offset()
        );
    }
    Ok(())
}

#[test]
fn a_data_dir_of_the_previous_release_starts_with_everything_intact() -> Result<()> {
    let want = expected()?;
    let dir = tempfile::tempdir()?;
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-xzf")
        .arg(workspace_root().join("tests/fixtures/upgrade-3e50745.tar.gz"))
        .status()
        .context("running tar")?;
    ensure!(status.success(), "tar failed: {status}");
    let data = dir.path().join("data");
    let mut opts = BrokerOptions::default();
    opts.env
        .push(("BROOK_LOG_DIRS".into(), data.to_string_lossy().into_owned()));
    let mut broker = Broker::start(opts)?;
    check(&broker, &want).with_context(|| broker.log_tail())?;
    ensure!(
        !data.join("__brook_metadata.json").exists()
            && data.join("__brook_metadata.json.imported").exists(),
        "the legacy metadata file was not imported exactly once"
    );
    let props = std::fs::read_to_string(data.join("meta.properties"))?;
    let cluster = want["metadata_file"]["cluster_id"]
        .as_str()
        .context("cluster id")?;
    ensure!(
        props.contains(&format!("cluster.id={cluster}")),
        "meta.properties: {props}"
    );
    // The second start reads the metadata log only.
    broker.restart()?;
    check(&broker, &want).with_context(|| broker.log_tail())?;
    Ok(())
}
