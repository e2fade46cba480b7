//! The admin HTTP API end to end: `/v1/health`, `/v1/cluster`, `/v1/topics` and
//! `/v1/topics/{name}` against what librdkafka produced, 404 JSON for unknown
//! topics and groups, `brook cluster status --json` against the admin address, and
//! the per-partition cardinality guard (`metrics.max.partition.series`,
//! `metrics.per.partition.enable`) as seen in `/metrics`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use brook_tests::{brook_binary, http_get, metric_value, Broker, BrokerOptions};
use common::{produce_all, producer, TestRecord};
use serde_json::Value;

/// GET `path`; returns the status code and the body parsed as JSON.
fn get_json(addr: SocketAddr, path: &str) -> Result<(u16, Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .with_context(|| format!("reading GET {path}"))?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed response to GET {path}: {raw:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("no status line in {head:?}"))?;
    ensure!(
        head.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("content-type:") && l.contains("application/json")
        }),
        "GET {path} is not JSON: {head}"
    );
    let v = serde_json::from_str(body).with_context(|| format!("GET {path} body {body:?}"))?;
    Ok((status, v))
}

/// Produce `counts[p]` records to each partition `p` of `topic`.
fn produce(broker: &Broker, topic: &str, counts: &[usize]) -> Result<()> {
    let p = producer(&broker.bootstrap(), &[])?;
    for (partition, &n) in counts.iter().enumerate() {
        let partition = i32::try_from(partition)?;
        produce_all(&p, topic, n, |i| {
            (
                Some(partition),
                TestRecord {
                    key: Some(format!("k{i}").into_bytes()),
                    value: Some(vec![b'a'; 64]),
                    headers: Vec::new(),
                },
            )
        })?;
    }
    Ok(())
}

#[test]
fn admin_api_describes_health_cluster_and_topics() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(3))?;
    let admin = broker.admin_addr();
    let topic = "admin-topic";
    let counts = [50usize, 0, 17];
    produce(&broker, topic, &counts)?;

    let (code, health) = get_json(admin, "/v1/health")?;
    ensure!(
        code == 200 && health["ready"] == true && health["live"] == true,
        "/v1/health answered {code} {health}"
    );

    let (code, cluster) = get_json(admin, "/v1/cluster")?;
    ensure!(code == 200, "/v1/cluster answered {code} {cluster}");
    let cluster_id = cluster["cluster_id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("/v1/cluster has no cluster id: {cluster}"))?;
    let brokers = cluster["brokers"]
        .as_array()
        .ok_or_else(|| anyhow!("/v1/cluster has no brokers: {cluster}"))?;
    ensure!(
        brokers.len() == 1 && brokers[0]["node_id"] == 1 && cluster["controller_id"] == 1,
        "/v1/cluster should list broker 1 as the only broker and controller: {cluster}"
    );
    ensure!(
        brokers[0]["port"] == broker.kafka_addr().port(),
        "/v1/cluster advertises {} but the Kafka listener is {}",
        brokers[0],
        broker.kafka_addr()
    );

    let (code, desc) = get_json(admin, &format!("/v1/topics/{topic}"))?;
    ensure!(code == 200, "/v1/topics/{topic} answered {code} {desc}");
    let parts = desc["partitions"]
        .as_array()
        .ok_or_else(|| anyhow!("/v1/topics/{topic} has no partition list: {desc}"))?;
    ensure!(
        parts.len() == counts.len() && desc["partition_count"] == counts.len(),
        "/v1/topics/{topic} lists {} partitions, want {}: {desc}",
        parts.len(),
        counts.len()
    );
    let mut total_size = 0;
    for (i, &n) in counts.iter().enumerate() {
        let p = parts
            .iter()
            .find(|p| p["partition"] == i)
            .ok_or_else(|| anyhow!("partition {i} missing from {desc}"))?;
        let size = p["size_bytes"].as_u64().unwrap_or(0);
        ensure!(
            p["log_end_offset"] == n
                && p["high_watermark"] == n
                && p["log_start_offset"] == 0
                && p["leader"] == 1
                && (n == 0 || size > 0),
            "partition {i} after producing {n} records: {p}"
        );
        total_size += size;
    }
    ensure!(
        desc["size_bytes"] == total_size,
        "topic size {} is not the sum {total_size} of its partitions",
        desc["size_bytes"]
    );

    let (code, list) = get_json(admin, "/v1/topics")?;
    let listed = list
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == topic));
    ensure!(
        code == 200 && listed.is_some_and(|t| t["partitions"] == counts.len()),
        "/v1/topics answered {code} without {topic} and its partition count: {list}"
    );

    for path in ["/v1/topics/no-such-topic", "/v1/groups/no-such-group"] {
        let (code, body) = get_json(admin, path)?;
        ensure!(
            code == 404
                && body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("no-such")),
            "{path} answered {code} {body}, want 404 with an error naming it"
        );
    }

    let out = Command::new(brook_binary()?)
        .args(["cluster", "status", "--admin", &admin.to_string(), "--json"])
        .output()
        .context("running brook cluster status")?;
    ensure!(
        out.status.success(),
        "brook cluster status failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "brook cluster status --json printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let status_topic = status["topics"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == topic));
    ensure!(
        status["health"]["ready"] == true
            && status["cluster"]["cluster_id"] == cluster_id
            && status_topic.is_some(),
        "brook cluster status --json disagrees with the admin API: {status}"
    );
    Ok(())
}

/// Number of sample lines of `name` (any labels) in Prometheus text.
fn series_count(body: &str, name: &str) -> usize {
    let labelled = format!("{name}{{");
    let bare = format!("{name} ");
    body.lines()
        .filter(|l| l.starts_with(&labelled) || l.starts_with(&bare))
        .count()
}

/// A broker with `extra` config and a 5-partition topic holding one record each;
/// returns its `/metrics` text.
fn scrape_with_five_partitions(extra: &[(&str, &str)]) -> Result<String> {
    let mut opts = BrokerOptions::default().partitions(5);
    for (k, v) in extra {
        opts = opts.config(k, v);
    }
    let broker = Broker::start(opts)?;
    produce(&broker, "wide", &[1; 5])?;
    http_get(broker.admin_addr(), "/metrics")
}

const PER_PARTITION: [&str; 4] = [
    "brook_partition_high_watermark",
    "brook_partition_log_end_offset",
    "brook_partition_log_start_offset",
    "brook_partition_size_bytes",
];

#[test]
fn partition_series_are_capped_by_max_partition_series() -> Result<()> {
    let body = scrape_with_five_partitions(&[("metrics.max.partition.series", "2")])?;
    for name in PER_PARTITION {
        let n = series_count(&body, name);
        ensure!(n == 2, "{n} series of {name} with a cap of 2:\n{body}");
    }
    let dropped = metric_value(&body, "brook_partition_series_dropped");
    ensure!(
        dropped.is_some_and(|d| d >= 3.0),
        "brook_partition_series_dropped = {dropped:?} with 5 partitions and a cap of 2"
    );
    ensure!(
        metric_value(&body, "brook_partitions").is_some_and(|p| p >= 5.0),
        "brook_partitions must still count every partition:\n{body}"
    );
    Ok(())
}

#[test]
fn partition_series_can_be_disabled() -> Result<()> {
    let body = scrape_with_five_partitions(&[("metrics.per.partition.enable", "false")])?;
    for name in PER_PARTITION {
        let n = series_count(&body, name);
        ensure!(
            n == 0,
            "{n} series of {name} with per-partition metrics off"
        );
    }
    let dropped = metric_value(&body, "brook_partition_series_dropped");
    ensure!(
        dropped.is_some_and(|d| d >= 5.0),
        "brook_partition_series_dropped = {dropped:?} with 5 partitions left out"
    );
    Ok(())
}
