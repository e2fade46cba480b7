//! Materialized views against a real broker process: the README's flow (CLI,
//! kcat, HTTP), read-your-writes with `min_offset`, a model test with `kill -9`
//! and view restarts checked against the topic itself, and a view that gives the
//! same answers before and after the cleaner compacts its topic.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use brook_tests::{
    brook_binary, http_request, kcat_path, require_clients, wait_until, Broker, BrokerOptions,
};
use common::{consume_all, consumer, produce_all, produce_one, producer, TestRecord};
use rand::{Rng, SeedableRng};
use rdkafka::producer::{BaseRecord, Producer};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);

fn start() -> Result<Broker> {
    Broker::start(
        BrokerOptions::default()
            .config("log.cleaner.backoff.ms", "100")
            .config("view.flush.interval.ms", "200"),
    )
}

/// Run the brook CLI; returns stdout, failing on a non-zero exit.
fn brook(args: &[&str]) -> Result<String> {
    let out = Command::new(brook_binary()?).args(args).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "brook {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

fn http_json(
    broker: &Broker,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, Value)> {
    let (status, body) = http_request(broker.admin_addr(), method, path, body)?;
    let v = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).with_context(|| format!("{method} {path}: {body}"))?
    };
    Ok((status, v))
}

fn create_view(broker: &Broker, name: &str, def: &Value) -> Result<()> {
    let (status, v) = http_json(
        broker,
        "PUT",
        &format!("/v1/views/{name}"),
        Some(&def.to_string()),
    )?;
    ensure!(status == 201, "creating view {name}: {status} {v}");
    Ok(())
}

/// Every row of a view (all scan pages), as key → value JSON.
fn scan_all(broker: &Broker, name: &str, min_offset: &str) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path =
            format!("/v1/views/{name}/scan?limit=1000&min_offset={min_offset}&timeout_ms=60000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, v) = http_json(broker, "GET", &path, None)?;
        ensure!(status == 200, "scan {name}: {status} {v}");
        for e in v["entries"].as_array().context("entries")? {
            let key = e["key"].as_str().context("utf8 key")?.to_owned();
            out.insert(key, e["value"].clone());
        }
        match v["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(out),
        }
    }
}

#[test]
fn readme_flow_with_cli_kcat_and_read_your_writes() -> Result<()> {
    let broker = start()?;
    let (boot, admin) = (broker.bootstrap(), broker.admin_addr().to_string());
    brook(&[
        "topic",
        "create",
        "prices",
        "--bootstrap",
        &boot,
        "--config",
        "cleanup.policy=compact",
    ])?;
    brook(&[
        "view",
        "create",
        "latest-prices",
        "--topic",
        "prices",
        "--key-format",
        "utf8",
        "--value-format",
        "json",
        "--admin",
        &admin,
    ])?;
    if let Some(kcat) = kcat_path() {
        let mut child = Command::new(kcat)
            .args(["-b", &boot, "-P", "-t", "prices", "-K:"])
            .stdin(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("kcat stdin")?
            .write_all(b"apple:{\"price\":1}\npear:{\"price\":2}\napple:{\"price\":3}\n")?;
        ensure!(child.wait()?.success(), "kcat failed");
        // The three records are offsets 0..=2: wait for the last one, no sleeping.
        let got = brook(&[
            "view",
            "get",
            "latest-prices",
            "apple",
            "--min-offset",
            "0:2",
            "--admin",
            &admin,
        ])?;
        ensure!(got.trim() == r#"{"price":3}"#, "CLI get: {got:?}");
        let scan = brook(&["view", "scan", "latest-prices", "--admin", &admin])?;
        ensure!(scan.contains("pear\t{\"price\":2}"), "CLI scan: {scan:?}");
    } else if require_clients() {
        bail!("kcat is missing (BROOK_REQUIRE_CLIENTS=1)");
    }

    // Read-your-writes: every acknowledged write is visible to the next read that
    // names its offset.
    let p = producer(&boot, &[("linger.ms", "0")])?;
    for i in 0..200 {
        let value = json!({"price": 100 + i}).to_string();
        let offset = produce_one(&p, "prices", b"fig", Some(value.as_bytes()))?;
        let (status, v) = http_json(
            &broker,
            "GET",
            &format!("/v1/views/latest-prices/keys/fig?min_offset=0:{offset}"),
            None,
        )?;
        ensure!(status == 200, "read {i}: {status} {v}");
        ensure!(v["value"]["price"] == json!(100 + i), "read {i} saw {v}");
        ensure!(v["offsets"]["0"].as_i64() > Some(offset), "offsets {v}");
    }
    // Bad requests name what is wrong.
    let (status, v) = http_json(
        &broker,
        "GET",
        "/v1/views/latest-prices/keys/fig?min_offset=zero",
        None,
    )?;
    ensure!(
        status == 400
            && v["error"]
                .as_str()
                .is_some_and(|e| e.contains("min_offset")),
        "{v}"
    );
    // Bad definitions are refused with a message naming what is wrong.
    for (name, body, names) in [
        ("x", r#"{"topic":"prices","kind":"avg"}"#, "avg"),
        ("y", r#"{"topic":"missing"}"#, "missing"),
        (
            "z",
            r#"{"topic":"prices","kind":"sum","field":"a..b","value_format":"json"}"#,
            "a..b",
        ),
    ] {
        let (status, v) = http_json(&broker, "PUT", &format!("/v1/views/{name}"), Some(body))?;
        ensure!(
            status == 400 && v["error"].as_str().is_some_and(|e| e.contains(names)),
            "definition {body}: {status} {v}"
        );
    }
    let (status, _) = http_json(&broker, "GET", "/v1/views/latest-prices/keys/nothing", None)?;
    ensure!(status == 404, "absent key");
    // A deleted key answers 404 with the offset of its tombstone.
    let tomb = produce_one(&p, "prices", b"fig", None)?;
    let (status, v) = http_json(
        &broker,
        "GET",
        &format!("/v1/views/latest-prices/keys/fig?min_offset=0:{tomb}"),
        None,
    )?;
    ensure!(
        status == 404 && v["deleted_at"] == json!(tomb),
        "deleted key: {status} {v}"
    );
    Ok(())
}

/// What the topic says: (key, value) of every record in offset order.
fn topic_records(broker: &Broker, topic: &str) -> Result<Vec<(String, Option<Value>)>> {
    let c = consumer(&broker.bootstrap(), &[])?;
    let read = consume_all(&c, topic, &[0])?;
    read[&0]
        .iter()
        .map(|c| {
            let key = String::from_utf8(c.record.key.clone().context("key")?)?;
            let value = match &c.record.value {
                Some(v) => Some(serde_json::from_slice(v)?),
                None => None,
            };
            Ok((key, value))
        })
        .collect()
}

#[test]
fn views_survive_kill_9_and_restarts_and_match_the_topic() -> Result<()> {
    let seed: u64 = std::env::var("BROOK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0012);
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut broker = start()?;
    let boot = broker.bootstrap();
    brook(&[
        "topic",
        "create",
        "events",
        "--bootstrap",
        &boot,
        "--config",
        "retention.ms=-1",
    ])?;
    brook(&[
        "topic",
        "create",
        "state",
        "--bootstrap",
        &boot,
        "--config",
        "cleanup.policy=compact",
        "--config",
        "segment.bytes=4096",
        "--config",
        "min.cleanable.dirty.ratio=0.01",
    ])?;
    let defs = [
        (
            "counts",
            json!({"topic": "events", "kind": "count", "key_format": "utf8"}),
        ),
        (
            "sums",
            json!({"topic": "events", "kind": "sum", "field": "amount", "key_format": "utf8", "value_format": "json"}),
        ),
        (
            "table",
            json!({"topic": "state", "key_format": "utf8", "value_format": "json"}),
        ),
    ];
    for (name, def) in &defs {
        create_view(&broker, name, def)?;
    }
    for round in 0..12 {
        let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")])?;
        let n = rng.random_range(50..400);
        for _ in 0..n {
            let key = format!("k{:02}", rng.random_range(0..20));
            let amount = rng.random_range(-50i64..100);
            let value = json!({"amount": amount}).to_string();
            let tombstone = rng.random_bool(0.1);
            for topic in ["events", "state"] {
                let mut r = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, 0)
                    .partition(0)
                    .key(key.as_bytes());
                if !(tombstone && topic == "state") {
                    r = r.payload(value.as_bytes());
                }
                p.send(r).map_err(|(e, _)| e)?;
            }
            p.poll(Duration::ZERO);
        }
        let action = rng.random_range(0..4);
        println!("round {round}: {n} records, action {action}");
        match action {
            // A crash with records in flight: whatever the log kept is the truth.
            0 => {
                p.poll(Duration::from_millis(rng.random_range(0..30)));
                broker.kill9()?;
                drop(p);
                broker.restart()?;
            }
            // A view dropped and rebuilt from the start of its topic.
            1 => {
                p.flush(Duration::from_secs(60))?;
                let (name, def) = &defs[rng.random_range(0..defs.len())];
                let (status, _) = http_json(&broker, "DELETE", &format!("/v1/views/{name}"), None)?;
                ensure!(status == 204, "drop {name}: {status}");
                create_view(&broker, name, def)?;
            }
            // A clean restart.
            2 => {
                p.flush(Duration::from_secs(60))?;
                broker.restart()?;
            }
            _ => p.flush(Duration::from_secs(60))?,
        }
    }

    let events = topic_records(&broker, "events")?;
    let state = topic_records(&broker, "state")?;
    let (mut counts, mut sums, mut table) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (k, v) in &events {
        let v = v.as_ref().context("events has no tombstones")?;
        *counts.entry(k.clone()).or_insert(0i64) += 1;
        *sums.entry(k.clone()).or_insert(0i64) += v["amount"].as_i64().context("amount")?;
    }
    for (k, v) in &state {
        match v {
            Some(v) => table.insert(k.clone(), v.clone()),
            None => table.remove(k),
        };
    }
    let end = |topic: &str| -> Result<i64> {
        let c = consumer(&broker.bootstrap(), &[])?;
        Ok(common::high_watermarks(&c, topic, &[0])?[&0])
    };
    let events_end = end("events")? - 1;
    let state_end = end("state")? - 1;
    let got_counts = scan_all(&broker, "counts", &format!("0:{events_end}"))?;
    let got_sums = scan_all(&broker, "sums", &format!("0:{events_end}"))?;
    let got_table = scan_all(&broker, "table", &format!("0:{state_end}"))?;
    let want_counts: BTreeMap<String, Value> =
        counts.into_iter().map(|(k, c)| (k, json!(c))).collect();
    let want_sums: BTreeMap<String, Value> = sums.into_iter().map(|(k, s)| (k, json!(s))).collect();
    ensure!(
        got_counts == want_counts,
        "counts {got_counts:?} != {want_counts:?}"
    );
    ensure!(got_sums == want_sums, "sums {got_sums:?} != {want_sums:?}");
    ensure!(got_table == table, "table {got_table:?} != {table:?}");
    Ok(())
}

#[test]
fn a_view_answers_the_same_before_and_after_a_clean() -> Result<()> {
    let broker = start()?;
    let (boot, admin) = (broker.bootstrap(), broker.admin_addr().to_string());
    // Nothing is cleanable until min.compaction.lag.ms is lowered below.
    brook(&[
        "topic",
        "create",
        "cfg",
        "--bootstrap",
        &boot,
        "--config",
        "cleanup.policy=compact",
        "--config",
        "segment.bytes=4096",
        "--config",
        "min.cleanable.dirty.ratio=0.01",
        "--config",
        "min.compaction.lag.ms=3600000",
    ])?;
    let def = json!({"topic": "cfg", "key_format": "utf8", "value_format": "json"});
    create_view(&broker, "before", &def)?;
    let p = producer(&boot, &[("batch.size", "1000")])?;
    let n = 3000;
    let delivered = produce_all(&p, "cfg", n, |i| {
        let tombstone = i % 13 == 0 && i + 1 != n;
        (
            Some(0),
            TestRecord {
                key: Some(format!("key-{}", i % 150).into_bytes()),
                value: (!tombstone).then(|| json!({"v": i}).to_string().into_bytes()),
                headers: Vec::new(),
            },
        )
    })?;
    let last = delivered
        .iter()
        .map(|d| d.offset)
        .max()
        .context("offsets")?;
    let answers = scan_all(&broker, "before", &format!("0:{last}"))?;
    ensure!(!answers.is_empty(), "empty view");
    brook(&[
        "topic",
        "alter-config",
        "cfg",
        "--bootstrap",
        &boot,
        "--set",
        "min.compaction.lag.ms=0",
    ])?;
    wait_until("the topic to be cleaned", WAIT, || {
        let (_, v) = http_json(&broker, "GET", "/v1/topics/cfg", None)?;
        Ok(v["partitions"][0]["compaction"]["cleaned_offset"].as_i64() > Some(0))
    })?;
    ensure!(
        scan_all(&broker, "before", "")? == answers,
        "the live view changed after the clean"
    );
    create_view(&broker, "after", &def)?;
    let rebuilt = scan_all(&broker, "after", &format!("0:{last}"))?;
    ensure!(
        rebuilt == answers,
        "a view rebuilt from the cleaned topic differs"
    );
    let _ = admin;
    Ok(())
}
