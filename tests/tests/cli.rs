//! The `brook topic …` admin CLI against a running broker, through its `--json`
//! output: create (with partitions and config), list, describe, alter-config
//! (set and delete), delete, and the errors for duplicates and invalid configs.

use std::process::{Command, Output};

use anyhow::{anyhow, ensure, Context, Result};
use brook_tests::{brook_binary, Broker};
use serde_json::Value;

fn brook(broker: &Broker, args: &[&str]) -> Result<Output> {
    let bin = brook_binary()?;
    let b = broker.bootstrap();
    let mut full = vec!["topic", "--bootstrap", b.as_str(), "--json"];
    full.extend(args);
    Command::new(&bin)
        .args(&full)
        .output()
        .with_context(|| format!("running brook {full:?}"))
}

/// Run and require success; parse stdout as JSON.
fn brook_json(broker: &Broker, args: &[&str]) -> Result<Value> {
    let out = brook(broker, args)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "brook topic {args:?} failed ({})\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("brook topic {args:?} printed non-JSON: {stdout:?}"))
}

/// Run and require failure with a message on stderr.
fn brook_fails(broker: &Broker, args: &[&str]) -> Result<String> {
    let out = brook(broker, args)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        !out.status.success(),
        "brook topic {args:?} succeeded but should fail\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    ensure!(
        !stderr.trim().is_empty(),
        "brook topic {args:?} failed silently"
    );
    Ok(stderr)
}

fn listed(broker: &Broker) -> Result<Vec<(String, u64)>> {
    let v = brook_json(broker, &["list"])?;
    let arr = v
        .as_array()
        .ok_or_else(|| anyhow!("list --json is not an array: {v}"))?;
    arr.iter()
        .map(|t| {
            let name = t["topic"]
                .as_str()
                .ok_or_else(|| anyhow!("entry without topic: {t}"))?;
            let parts = t["partitions"]
                .as_u64()
                .ok_or_else(|| anyhow!("entry without partitions: {t}"))?;
            Ok((name.to_owned(), parts))
        })
        .collect()
}

/// A topic config override from `describe --json`, whether `configs` is an object or
/// a list of `[key, value]` pairs / `{name, value}` objects.
fn override_of(describe: &Value, key: &str) -> Option<String> {
    let configs = &describe["configs"];
    if let Some(map) = configs.as_object() {
        return map.get(key).and_then(Value::as_str).map(str::to_owned);
    }
    configs.as_array()?.iter().find_map(|e| match e {
        Value::Array(kv) if kv.first().and_then(Value::as_str) == Some(key) => {
            kv.get(1).and_then(Value::as_str).map(str::to_owned)
        }
        Value::Object(o) if o.get("name").and_then(Value::as_str) == Some(key) => {
            o.get("value").and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    })
}

#[test]
fn topic_lifecycle_through_the_cli() -> Result<()> {
    let broker = Broker::start_default()?;

    let created = brook_json(
        &broker,
        &[
            "create",
            "cli-t",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
        ],
    )?;
    ensure!(
        created["topic"] == "cli-t" && created["partitions"] == 3,
        "create printed {created}"
    );

    let topics = listed(&broker)?;
    ensure!(
        topics.contains(&("cli-t".to_owned(), 3)),
        "list does not show cli-t with 3 partitions: {topics:?}"
    );

    let d = brook_json(&broker, &["describe", "cli-t"])?;
    let parts = d["partitions"]
        .as_array()
        .ok_or_else(|| anyhow!("describe: {d}"))?;
    ensure!(
        parts.len() == 3,
        "describe shows {} partitions",
        parts.len()
    );
    for p in parts {
        ensure!(p["leader"] == 1, "partition without leader 1: {p}");
    }
    ensure!(
        override_of(&d, "retention.ms").as_deref() == Some("3600000"),
        "describe does not show retention.ms=3600000: {d}"
    );

    brook_json(
        &broker,
        &[
            "alter-config",
            "cli-t",
            "--set",
            "retention.ms=1000",
            "--set",
            "segment.bytes=1048576",
        ],
    )?;
    let d = brook_json(&broker, &["describe", "cli-t"])?;
    ensure!(
        override_of(&d, "retention.ms").as_deref() == Some("1000"),
        "after --set: {d}"
    );
    ensure!(
        override_of(&d, "segment.bytes").as_deref() == Some("1048576"),
        "after --set: {d}"
    );

    brook_json(
        &broker,
        &["alter-config", "cli-t", "--delete", "retention.ms"],
    )?;
    let d = brook_json(&broker, &["describe", "cli-t"])?;
    ensure!(
        override_of(&d, "retention.ms").is_none(),
        "retention.ms still overridden after --delete: {d}"
    );
    ensure!(
        override_of(&d, "segment.bytes").as_deref() == Some("1048576"),
        "--delete removed too much: {d}"
    );

    brook_fails(&broker, &["create", "cli-t", "--partitions", "1"])?;
    // Placed by hand, as `kafka-topics --replica-assignment`.
    let placed = brook_json(&broker, &["create", "cli-m", "--replica-assignment", "1,1"])?;
    ensure!(
        placed["partitions"] == 2 && placed["replication_factor"] == 1,
        "create --replica-assignment printed {placed}"
    );
    brook_json(&broker, &["delete", "cli-m"])?;
    for (bad, why) in [
        ("1:2", "no such broker is registered"),
        ("1:1", "more than once"),
        ("1,x", "'x' is not a broker id"),
    ] {
        let err = brook_fails(&broker, &["create", "cli-m", "--replica-assignment", bad])?;
        ensure!(err.contains(why), "--replica-assignment {bad}: {err}");
    }
    brook_fails(
        &broker,
        &[
            "create",
            "cli-m",
            "--replica-assignment",
            "1",
            "--partitions",
            "1",
        ],
    )?;
    brook_fails(
        &broker,
        &["create", "cli-bad", "--config", "cleanup.policy=bogus"],
    )?;
    brook_fails(
        &broker,
        &[
            "alter-config",
            "cli-t",
            "--set",
            "retention.ms=not-a-number",
        ],
    )?;

    let deleted = brook_json(&broker, &["delete", "cli-t"])?;
    ensure!(deleted["deleted"] == "cli-t", "delete printed {deleted}");
    let topics = listed(&broker)?;
    ensure!(
        !topics.iter().any(|(n, _)| n == "cli-t" || n == "cli-bad"),
        "after delete: {topics:?}"
    );
    brook_fails(&broker, &["describe", "cli-t"])?;
    Ok(())
}
