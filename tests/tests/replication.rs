//! Process fault tests for partition replication: three real `brook` nodes
//! (each a broker and a controller voter), topics with replication factor 3
//! and `min.insync.replicas=2`, idempotent acks=all librdkafka producers.
//!
//! Every test checks the same promise after its fault: each acknowledged
//! record is read back exactly once, at the offset it was acknowledged at,
//! with its value; nothing unacknowledged appears twice. Where the fault
//! runs under load, a live consumer also reads throughout: its offsets never
//! go backwards, it never loses its place (librdkafka's truncation and
//! out-of-range errors fail the test), and every record it read is still
//! there afterwards with the same value.
//!
//! Each test takes its own port range (`BASE_*`, 200 ports apart, 24000 and
//! up) so that nextest may run them in parallel. `replica.lag.time.max.ms`
//! is 2 s so ISR changes show within a test's patience.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use brook_tests::{http_get, metric_value, wait_until, Cluster, ClusterOptions};
use common::{consume_until, consumer, produce_all, producer, Delivered, TestRecord};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::ClientConfig;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Runtime;

const BASE_KILL_LEADER: u16 = 24000;
const BASE_PAUSE_FOLLOWER: u16 = 24200;
const BASE_NOT_ENOUGH_REPLICAS: u16 = 24400;
const BASE_COORDINATOR_FAILOVER: u16 = 24600;
const BASE_PAUSE_LEADER: u16 = 24800;
const BASE_ROLLING_RESTART: u16 = 25000;
const BASE_KILL_ALL: u16 = 25200;
const BASE_LAST_REPLICA: u16 = 25400;
const BASE_KAFKA_PYTHON: u16 = 25600;
const BASE_CONFLUENT_KAFKA: u16 = 25800;
const BASE_REASSIGN: u16 = 26000;
const BASE_KAFKA_PYTHON_GROUP: u16 = 28000;
const BASE_ISOLATED_LEADER: u16 = 26200;
const BASE_ELECT_LEADERS: u16 = 26400;
const BASE_FOLLOWER_FETCH: u16 = 26600;
const BASE_THROTTLE: u16 = 26800;
const BASE_FETCH_SESSIONS: u16 = 29000;
const BASE_FULL_LOG_DIR: u16 = 29200;
const BASE_COMMIT_ELSEWHERE: u16 = 29400;
const BASE_NEW_TOPIC: u16 = 29600;
const BASE_JOURNAL: u16 = 29800;
const BASE_HW_WAKE: u16 = 30000;

const TOPIC: &str = "replicated";
const PARTITIONS: i32 = 3;
/// How long the cluster may take to settle or an ISR to change.
const WAIT: Duration = Duration::from_secs(30);

fn options(base: u16) -> ClusterOptions {
    let mut o = ClusterOptions::three(base);
    o.extra = vec![
        ("offsets.topic.replication.factor".into(), "3".into()),
        ("offsets.topic.num.partitions".into(), "1".into()),
        ("replica.lag.time.max.ms".into(), "2000".into()),
        ("replica.fetch.wait.max.ms".into(), "200".into()),
        ("replica.fetch.backoff.ms".into(), "200".into()),
    ];
    o
}

/// Start a three-node cluster, wait until it is settled, run `body`, and
/// attach every node's log tail to a failure.
fn with_cluster(base: u16, body: impl FnOnce(&mut Cluster, &Runtime) -> Result<()>) -> Result<()> {
    with_cluster_opts(options(base), body)
}

fn with_cluster_opts(
    opts: ClusterOptions,
    body: impl FnOnce(&mut Cluster, &Runtime) -> Result<()>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut cluster = Cluster::start(opts)?;
    let r = (|| {
        cluster.wait_active_controller("one agreed controller", WAIT, |_, e| e >= 1)?;
        for n in cluster.node_ids() {
            cluster.wait_broker_state(n, "unfenced", WAIT)?;
        }
        cluster.wait_converged(WAIT)?;
        body(&mut cluster, &rt)
    })();
    let r = r.map_err(|e| match e.downcast_ref::<Duplicate>() {
        Some(d) => {
            let dump = d.batches(&cluster);
            e.context(format!(
                "{dump}\nproducer log:\n{}",
                common::client_log_tail(400)
            ))
        }
        None => e,
    });
    cluster.with_logs(r)
}

/// A record read twice; failure messages add each node's batches around both
/// copies and the producer's log, to tell a client resend from a broker bug.
#[derive(Debug)]
struct Duplicate {
    value: String,
    first: (i32, i64),
    second: (i32, i64),
}

impl std::fmt::Display for Duplicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "duplicate: {} at {:?} and {:?}",
            self.value, self.first, self.second
        )
    }
}

impl std::error::Error for Duplicate {}

impl Duplicate {
    /// Batch headers (offsets, leader epoch, producer id/epoch/sequence) of
    /// every node's copy of the partition, from a little before the first copy
    /// to a little after the second.
    fn batches(&self, c: &Cluster) -> String {
        let (p, lo, hi) = (self.first.0, self.first.1 - 2_000, self.second.1 + 2_000);
        let mut out = String::new();
        for id in c.node_ids() {
            out.push_str(&format!(
                "=== node {id}: {TOPIC}-{p} batches {lo}..{hi} ===\n"
            ));
            let Ok(root) = c.data_dir(id) else { continue };
            for dir in partition_dirs(&root, &format!("{TOPIC}-{p}")) {
                for h in batch_headers(&dir) {
                    if h.last_offset >= lo && h.base_offset <= hi {
                        out.push_str(&format!("{h:?}\n"));
                    }
                }
            }
        }
        out
    }
}

/// Directories named `name` under `root` (any depth: several `log.dirs`).
fn partition_dirs(root: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                if e.file_name() == name {
                    found.push(path);
                } else {
                    stack.push(path);
                }
            }
        }
    }
    found
}

/// The v2 batch header fields a duplicate hunt needs.
#[derive(Debug)]
#[allow(dead_code, reason = "read through Debug in failure messages")]
struct BatchHead {
    segment: String,
    base_offset: i64,
    last_offset: i64,
    leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: i32,
}

/// Every batch header of every segment in a partition directory, in order.
fn batch_headers(dir: &std::path::Path) -> Vec<BatchHead> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for seg in segments {
        let Ok(bytes) = std::fs::read(&seg) else {
            continue;
        };
        let name = seg
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut pos = 0usize;
        while let Some(h) = bytes.get(pos..pos + 61) {
            let i64_at = |o: usize| i64::from_be_bytes(h[o..o + 8].try_into().unwrap_or_default());
            let i32_at = |o: usize| i32::from_be_bytes(h[o..o + 4].try_into().unwrap_or_default());
            let len = i32_at(8);
            if len <= 0 {
                break;
            }
            out.push(BatchHead {
                segment: name.clone(),
                base_offset: i64_at(0),
                last_offset: i64_at(0) + i64::from(i32_at(23)),
                leader_epoch: i32_at(12),
                producer_id: i64_at(43),
                producer_epoch: i16::from_be_bytes([h[51], h[52]]),
                base_sequence: i32_at(53),
                records: i32_at(57),
            });
            pos += 12 + len as usize;
        }
    }
    out
}

fn create_topic(rt: &Runtime, bootstrap: &str, min_isr: &str) -> Result<()> {
    create_topic_with(rt, bootstrap, PARTITIONS, min_isr)
}

fn create_topic_with(rt: &Runtime, bootstrap: &str, partitions: i32, min_isr: &str) -> Result<()> {
    create_topic_configs(
        rt,
        bootstrap,
        partitions,
        &[("min.insync.replicas", min_isr)],
    )
}

fn create_topic_configs(
    rt: &Runtime,
    bootstrap: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    create_topic_placed(
        rt,
        bootstrap,
        partitions,
        TopicReplication::Fixed(3),
        configs,
    )
}

/// Create [`TOPIC`] through librdkafka's admin client, placed by count or
/// by hand (`TopicReplication::Variable`, one replica list per partition).
fn create_topic_placed(
    rt: &Runtime,
    bootstrap: &str,
    partitions: i32,
    replication: TopicReplication<'_>,
    configs: &[(&str, &str)],
) -> Result<()> {
    create_topic_named(rt, bootstrap, TOPIC, partitions, replication, configs)
}

fn create_topic_named(
    rt: &Runtime,
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication: TopicReplication<'_>,
    configs: &[(&str, &str)],
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let mut topic = NewTopic::new(name, partitions, replication);
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(60),
                admin.create_topics([&topic], &opts),
            )
            .await
        })
        .map_err(|_| anyhow!("CreateTopics took over 60 s"))??;
    for r in results {
        r.map_err(|(name, code)| anyhow!("creating {name}: {code:?}"))?;
    }
    Ok(())
}

/// (leader, ISR) of every partition of [`TOPIC`], from `bootstrap`'s Metadata.
fn layout(bootstrap: &str) -> Result<BTreeMap<i32, (i32, Vec<i32>)>> {
    let c = consumer(bootstrap, &[])?;
    let md = rdkafka::consumer::Consumer::fetch_metadata(&c, Some(TOPIC), Duration::from_secs(10))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == TOPIC)
        .ok_or_else(|| anyhow!("{TOPIC} not in Metadata"))?;
    Ok(t.partitions()
        .iter()
        .map(|p| {
            let mut isr = p.isr().to_vec();
            isr.sort_unstable();
            (p.id(), (p.leader(), isr))
        })
        .collect())
}

/// Wait until every partition has a leader and an ISR of `size`, as `bootstrap` sees it.
fn wait_isr(c: &Cluster, bootstrap: &str, size: usize) -> Result<BTreeMap<i32, (i32, Vec<i32>)>> {
    let mut last = BTreeMap::new();
    let r = wait_until(&format!("every ISR has {size} members"), WAIT, || {
        last = layout(bootstrap)?;
        Ok(last.len() == PARTITIONS as usize
            && last.values().all(|(l, isr)| *l >= 0 && isr.len() == size))
    });
    c.with_logs(r.with_context(|| format!("last layout: {last:?}")))?;
    Ok(last)
}

/// A node other than `id`.
fn other_than(c: &Cluster, id: i32) -> Result<i32> {
    c.node_ids()
        .into_iter()
        .find(|n| *n != id)
        .ok_or_else(|| anyhow!("no node other than {id}"))
}

/// Under continuous idempotent acks=all load on partition 0, apply `fault`
/// to its leader, wait until another replica leads, `recover` the old
/// leader, wait until all three are in sync again, and check every
/// acknowledged record.
fn leader_fault(
    c: &mut Cluster,
    rt: &Runtime,
    fault: impl Fn(&mut Cluster, i32) -> Result<()>,
    recover: impl Fn(&mut Cluster, i32) -> Result<()>,
) -> Result<()> {
    create_topic(rt, &c.bootstrap(), "2")?;
    let before = wait_isr(c, &c.bootstrap(), 3)?;
    let leader = before[&0].0;
    let bootstrap = c.bootstrap_of(other_than(c, leader)?)?;
    let (delivered, sent, seen) = produce_during(c, 2_000, Some(0), |c| {
        fault(c, leader)?;
        let moved = wait_until("another replica leads partition 0", WAIT, || {
            Ok(layout(&bootstrap)?
                .get(&0)
                .is_some_and(|(l, _)| *l >= 0 && *l != leader))
        });
        recover(c, leader)?;
        moved
    })?;
    wait_isr(c, &bootstrap, 3)?;
    check_run(&bootstrap, &delivered, sent, &seen)
}

fn record(i: usize) -> TestRecord {
    TestRecord {
        key: Some(format!("key-{}", i % 97).into_bytes()),
        value: Some(format!("value-{i:08}").into_bytes()),
        headers: Vec::new(),
    }
}

/// Read every partition through `bootstrap` and check `delivered` against it:
/// each acknowledged record exactly once, at its acknowledged offset; no
/// value twice anywhere.
fn check_acknowledged(bootstrap: &str, delivered: &[Delivered], produced: usize) -> Result<()> {
    check_run(bootstrap, delivered, produced, &[])
}

/// What a live consumer read during a fault: (partition, offset, value).
type Seen = Vec<(i32, i64, Vec<u8>)>;

/// [`check_acknowledged`], and every record a live consumer read during the
/// fault is still there with the same value (no offset whose value changes:
/// a consumer never saw a record that was later truncated).
fn check_run(
    bootstrap: &str,
    delivered: &[Delivered],
    produced: usize,
    live: &[(i32, i64, Vec<u8>)],
) -> Result<()> {
    let mut ends: HashMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    for d in delivered {
        let e = ends.entry(d.partition).or_default();
        *e = (*e).max(d.offset + 1);
    }
    for (p, offset, _) in live {
        let e = ends.entry(*p).or_default();
        *e = (*e).max(offset + 1);
    }
    let cons = consumer(bootstrap, &[])?;
    let got = consume_until(&cons, TOPIC, &ends)?;
    let mut at: HashMap<(i32, i64), Vec<u8>> = HashMap::new();
    let mut seen: HashMap<Vec<u8>, (i32, i64)> = HashMap::new();
    for (p, recs) in &got {
        let mut last = -1;
        for r in recs {
            ensure!(
                r.offset > last,
                "partition {p}: offset {} after {last}",
                r.offset
            );
            last = r.offset;
            let v = r.record.value.clone().unwrap_or_default();
            if let Some(prev) = seen.insert(v.clone(), (*p, r.offset)) {
                return Err(Duplicate {
                    value: String::from_utf8_lossy(&v).into_owned(),
                    first: prev,
                    second: (*p, r.offset),
                }
                .into());
            }
            at.insert((*p, r.offset), v);
        }
    }
    for (p, offset, v) in live {
        match at.get(&(*p, *offset)) {
            Some(now) if now == v => {}
            now => bail!(
                "a live consumer read {} at ({p}, {offset}); it now reads {:?}",
                String::from_utf8_lossy(v),
                now.map(|n| String::from_utf8_lossy(n).into_owned())
            ),
        }
    }
    for d in delivered {
        let want = record(d.index).value.unwrap_or_default();
        match at.get(&(d.partition, d.offset)) {
            Some(v) if *v == want => {}
            Some(v) => bail!(
                "record {} acknowledged at ({}, {}) reads back as {}",
                d.index,
                d.partition,
                d.offset,
                String::from_utf8_lossy(v)
            ),
            None => bail!(
                "record {} acknowledged at ({}, {}) is lost",
                d.index,
                d.partition,
                d.offset
            ),
        }
    }
    ensure!(
        delivered.len() == produced,
        "{} of {produced} records acknowledged",
        delivered.len()
    );
    Ok(())
}

/// kill -9 the leader of partition 0 while an idempotent acks=all producer
/// sends to every partition and a live consumer reads: the producer rides
/// through the leader change, nothing acknowledged is lost or duplicated,
/// the consumer never reads a record that is later gone, and the killed
/// node rejoins every ISR after a restart (truncating whatever it had not
/// committed).
#[test]
fn kill_the_leader_under_load() -> Result<()> {
    with_cluster(BASE_KILL_LEADER, |c, rt| {
        create_topic(rt, &c.bootstrap(), "2")?;
        let before = wait_isr(c, &c.bootstrap(), 3)?;
        let victim = before[&0].0;
        let survivor = other_than(c, victim)?;
        let bootstrap = c.bootstrap_of(survivor)?;
        let (delivered, sent, seen) = produce_during(c, 10_000, None, |c| {
            c.kill9(victim)?;
            let after = wait_isr(c, &bootstrap, 2)?;
            ensure!(
                after
                    .values()
                    .all(|(l, isr)| *l != victim && !isr.contains(&victim)),
                "the killed node still leads or is in sync: {after:?}"
            );
            Ok(())
        })?;
        check_run(&bootstrap, &delivered, sent, &seen)?;
        c.restart(victim)?;
        wait_isr(c, &bootstrap, 3)?;
        // The restarted node's copy, read where it leads again (it was
        // partition 0's preferred replica).
        brook_cli(&bootstrap, &["cluster", "elect-leaders", "--topic", TOPIC])?;
        wait_until("the restarted node leads partition 0 again", WAIT, || {
            Ok(layout(&bootstrap)?
                .get(&0)
                .is_some_and(|(l, _)| *l == victim))
        })?;
        check_run(&c.bootstrap_of(victim)?, &delivered, sent, &seen)
    })
}

#[test]
fn a_paused_follower_leaves_and_rejoins_the_isr() -> Result<()> {
    const N: usize = 5_000;
    with_cluster(BASE_PAUSE_FOLLOWER, |c, rt| {
        create_topic(rt, &c.bootstrap(), "2")?;
        let before = wait_isr(c, &c.bootstrap(), 3)?;
        let leader0 = before[&0].0;
        let follower = other_than(c, leader0)?;
        let observer = other_than(c, follower)?;
        let bootstrap = c.bootstrap_of(observer)?;
        c.sigstop(follower)?;
        let shrunk = wait_until("the paused follower leaves partition 0's ISR", WAIT, || {
            Ok(layout(&bootstrap)?
                .get(&0)
                .is_some_and(|(_, isr)| isr.len() == 2 && !isr.contains(&follower)))
        });
        c.with_logs(shrunk)?;
        let p = producer(&bootstrap, &[("enable.idempotence", "true")])?;
        let delivered = produce_all(&p, TOPIC, N, |i| (Some(0), record(i)))?;
        c.sigcont(follower)?;
        wait_isr(c, &bootstrap, 3)?;
        check_acknowledged(&bootstrap, &delivered, N)?;
        // The rejoined follower holds the same records: make it the only
        // way to read them by stopping the others' leadership is beyond
        // this test; its log end must at least reach the leader's.
        Ok(())
    })
}

/// Followers fetch through incremental fetch sessions (KIP-227): every
/// follower replica ends up in a leader's session, and acks=all writes are
/// replicated and read back as acknowledged.
#[test]
fn followers_fetch_through_incremental_sessions() -> Result<()> {
    const N: usize = 3_000;
    with_cluster(BASE_FETCH_SESSIONS, |c, rt| {
        create_topic(rt, &c.bootstrap(), "3")?;
        wait_isr(c, &c.bootstrap(), 3)?;
        let sum = |name: &str| -> Result<f64> {
            let mut total = 0.0;
            for n in c.node_ids() {
                let body = http_get(c.admin_addr(n)?, "/metrics")?;
                total += metric_value(&body, name).unwrap_or(0.0);
            }
            Ok(total)
        };
        // Two followers of each of the topic's partitions (and of the
        // offsets topic's one), each in a session of its leader.
        let r = wait_until("every follower replica is in a fetch session", WAIT, || {
            Ok(sum("brook_fetch_session_partitions")? >= f64::from(2 * PARTITIONS))
        });
        c.with_logs(r)?;
        let p = producer(&c.bootstrap(), &[("enable.idempotence", "true")])?;
        let delivered = produce_all(&p, TOPIC, N, |i| {
            (Some((i % PARTITIONS as usize) as i32), record(i))
        })?;
        ensure!(
            delivered.len() == N,
            "only {} of {N} acknowledged",
            delivered.len()
        );
        check_acknowledged(&c.bootstrap(), &delivered, N)?;
        ensure!(sum("brook_fetch_sessions_created_total")? >= 2.0);
        wait_isr(c, &c.bootstrap(), 3)?;
        Ok(())
    })
}

/// With `min.insync.replicas=3` and one follower paused past the lag time,
/// the ISR shrinks to two and acks=all writes are refused with
/// NOT_ENOUGH_REPLICAS before anything is appended; once the follower is
/// back in sync, writes are taken again, and none of the refused records
/// ever appears in the log.
#[test]
fn acks_all_is_refused_below_min_insync_replicas() -> Result<()> {
    with_cluster(BASE_NOT_ENOUGH_REPLICAS, |c, rt| {
        create_topic(rt, &c.bootstrap(), "3")?;
        let before = wait_isr(c, &c.bootstrap(), 3)?;
        let leader0 = before[&0].0;
        let follower = other_than(c, leader0)?;
        let bootstrap = c.bootstrap_of(leader0)?;
        c.sigstop(follower)?;
        let shrunk = wait_until("the paused follower leaves partition 0's ISR", WAIT, || {
            Ok(layout(&bootstrap)?
                .get(&0)
                .is_some_and(|(_, isr)| isr.len() == 2))
        });
        c.with_logs(shrunk)?;
        // No retries, so the delivery report carries the broker's error
        // rather than librdkafka's own timeout.
        let p = producer(
            &bootstrap,
            &[("retries", "0"), ("message.timeout.ms", "10000")],
        )?;
        let refused = produce_all(&p, TOPIC, 10, |i| (Some(0), record(1_000_000 + i)));
        c.sigcont(follower)?;
        let err = match refused {
            Ok(d) => bail!(
                "{} records acknowledged with the ISR below min.insync.replicas",
                d.len()
            ),
            Err(e) => format!("{e:#}"),
        };
        ensure!(
            err.contains("in-sync replicas") || err.contains("NotEnoughReplicas"),
            "expected NOT_ENOUGH_REPLICAS, got: {err}"
        );
        wait_isr(c, &bootstrap, 3)?;
        let p = producer(&bootstrap, &[("enable.idempotence", "true")])?;
        let delivered = produce_all(&p, TOPIC, 100, |i| (Some(0), record(i)))?;
        // Only the 100 accepted records are in partition 0.
        check_acknowledged(&bootstrap, &delivered, 100)?;
        ensure!(
            delivered.iter().all(|d| d.offset < 100),
            "refused records took offsets: {:?}",
            delivered.iter().map(|d| d.offset).max()
        );
        Ok(())
    })
}

/// A subscribed librdkafka consumer in group `group`, committing by hand.
fn group_consumer(bootstrap: &str, group: &str) -> Result<BaseConsumer> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()?;
    c.subscribe(&[TOPIC])?;
    Ok(c)
}

/// Poll until `n` more records arrived; returns their (partition, offset).
fn consume_n(c: &BaseConsumer, n: usize) -> Result<Vec<(i32, i64)>> {
    let mut got = Vec::with_capacity(n);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while got.len() < n {
        ensure!(
            std::time::Instant::now() < deadline,
            "consumed {} of {n} records before the deadline",
            got.len()
        );
        // Coordinator and leader changes surface as transient errors.
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            got.push((m.partition(), m.offset()));
        }
    }
    Ok(got)
}

/// Commit the consumer's position synchronously, retrying through a
/// coordinator change; returns what was committed.
fn commit_position(c: &BaseConsumer) -> Result<BTreeMap<i32, i64>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pos = c.position()?;
        match c.commit(&pos, CommitMode::Sync) {
            Ok(()) => {
                return Ok(pos
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.partition(), o)),
                        _ => None,
                    })
                    .collect())
            }
            Err(_) if std::time::Instant::now() < deadline => {
                let _ = c.poll(Duration::from_millis(200));
            }
            Err(e) => return Err(anyhow!(e).context("commit never succeeded")),
        }
    }
}

/// The group's committed offsets as a fresh client reads them (OffsetFetch).
fn committed(bootstrap: &str, group: &str) -> Result<BTreeMap<i32, i64>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(30))?;
    Ok(got
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// kill -9 the group coordinator (the leader of the only
/// `__consumer_offsets` partition, replicated 3 ways) while a librdkafka
/// consumer group is consuming: the consumer finds the new coordinator,
/// keeps consuming and committing, and no committed offset goes backwards.
#[test]
fn a_consumer_group_rides_through_a_coordinator_failover() -> Result<()> {
    const N: usize = 3_000;
    const GROUP: &str = "failover-group";
    with_cluster(BASE_COORDINATOR_FAILOVER, |c, rt| {
        create_topic(rt, &c.bootstrap(), "2")?;
        wait_isr(c, &c.bootstrap(), 3)?;
        let p = producer(&c.bootstrap(), &[("enable.idempotence", "true")])?;
        produce_all(&p, TOPIC, N, |i| (None, record(i)))?;
        let cons = group_consumer(&c.bootstrap(), GROUP)?;
        consume_n(&cons, N / 3)?;
        let first = commit_position(&cons)?;
        // The coordinator leads __consumer_offsets-0.
        let coordinator = {
            let md = cons.fetch_metadata(Some("__consumer_offsets"), Duration::from_secs(10))?;
            md.topics()
                .first()
                .and_then(|t| t.partitions().first())
                .map(|p| p.leader())
                .ok_or_else(|| anyhow!("no __consumer_offsets partition in Metadata"))?
        };
        c.kill9(coordinator)?;
        consume_n(&cons, N / 3)?;
        // A rebalance after the failover may leave some partitions without
        // a position yet: those keep their earlier commit.
        let second = commit_position(&cons)?;
        drop(cons);
        let survivor = other_than(c, coordinator)?;
        let read = committed(&c.bootstrap_of(survivor)?, GROUP)?;
        for (p, o) in &first {
            ensure!(
                read.get(p).is_some_and(|r| r >= o),
                "partition {p}: committed {o} before the failover, reads {:?} after",
                read.get(p)
            );
        }
        for (p, o) in &second {
            ensure!(
                read.get(p) == Some(o),
                "partition {p}: committed {o} after the failover, reads {:?}",
                read.get(p)
            );
        }
        ensure!(!second.is_empty(), "nothing committed after the failover");
        Ok(())
    })
}

/// A group commits offsets of partitions its coordinator does not host: one
/// replica per partition, one partition per node, so two of the three live
/// away from the coordinator. OffsetCommit refused those with
/// UNKNOWN_TOPIC_OR_PARTITION while it looked for a local replica.
#[test]
fn a_group_commits_offsets_of_partitions_its_coordinator_does_not_host() -> Result<()> {
    const GROUP: &str = "commit-elsewhere";
    with_cluster(BASE_COMMIT_ELSEWHERE, |c, rt| {
        create_topic_placed(
            rt,
            &c.bootstrap(),
            PARTITIONS,
            TopicReplication::Variable(&[&[1], &[2], &[3]]),
            &[],
        )?;
        c.wait_converged(WAIT)?;
        let cons: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", c.bootstrap())
            .set("group.id", GROUP)
            .create()?;
        let mut tpl = TopicPartitionList::new();
        let want: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 10 + i64::from(p))).collect();
        for (&p, &o) in &want {
            tpl.add_partition_offset(TOPIC, p, Offset::Offset(o))?;
        }
        cons.commit(&tpl, CommitMode::Sync)
            .context("committing offsets of all three partitions")?;
        // Read back through every node: each finds the coordinator.
        for n in c.node_ids() {
            let read = committed(&c.bootstrap_of(n)?, GROUP)?;
            ensure!(
                read == want,
                "through node {n}: committed {read:?}, want {want:?}"
            );
        }
        Ok(())
    })
}

/// A follower adds a new partition to its fetch request only once the
/// request it has out, a long-poll on its other partitions, returns. The
/// first acks=all produce to a new topic waited that long-poll out (450–480
/// ms with the default `replica.fetch.wait.max.ms` of 500 ms); the leader
/// now ends a follower's long-poll when a partition it must replicate but
/// does not fetch appears or fills. Here the long-poll is 30 s and the
/// producer gives up after 10 s, so without that every first produce to the
/// new topic fails.
#[test]
fn a_new_topic_takes_acks_all_without_waiting_out_the_followers_long_poll() -> Result<()> {
    const FRESH: &str = "fresh";
    let opts = thirty_second_long_poll(BASE_NEW_TOPIC);
    with_cluster_opts(opts, |c, rt| {
        // Each node leads one partition and follows the other two.
        let placement: &[&[i32]] = &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]];
        create_topic_placed(
            rt,
            &c.bootstrap(),
            PARTITIONS,
            TopicReplication::Variable(placement),
            &[],
        )?;
        wait_isr(c, &c.bootstrap(), 3)?;
        let p = producer(&c.bootstrap(), &[("message.timeout.ms", "10000")])?;
        // Committed on every partition: each follower has fetched from each
        // leader, and its next fetch there is a 30 s long-poll.
        produce_all(&p, TOPIC, 30, |i| (Some(i as i32 % PARTITIONS), record(i)))?;
        create_topic_named(
            rt,
            &c.bootstrap(),
            FRESH,
            PARTITIONS,
            TopicReplication::Variable(placement),
            &[],
        )?;
        let started = std::time::Instant::now();
        let acked = produce_all(&p, FRESH, 3, |i| (Some(i as i32), record(i)))
            .context("first acks=all produce to a new topic")?;
        eprintln!(
            "first acks=all produce to each partition of a new topic: {} records in {:?}",
            acked.len(),
            started.elapsed()
        );
        Ok(())
    })
}

/// A follower's incremental session reads only the partitions journaled for
/// it since its last round (`partition::FollowerWakes`), plus every partition
/// about once a second when a request comes. With a 30 s long-poll, an
/// append the journal missed would wait out the long-poll, past the
/// producer's 10 s timeout. Thirty partitions, each node leading ten: a
/// pass writing one record to every partition, then one partition at a time
/// while the others stay idle.
#[test]
fn every_append_reaches_the_followers_without_waiting_out_their_long_poll() -> Result<()> {
    const BUSY: &str = "busy";
    const BUSY_PARTITIONS: i32 = 30;
    let opts = thirty_second_long_poll(BASE_JOURNAL);
    with_cluster_opts(opts, |c, rt| {
        let placement: Vec<Vec<i32>> = (0..BUSY_PARTITIONS)
            .map(|p| (0..3).map(|k| (p + k) % 3 + 1).collect())
            .collect();
        let placement: Vec<&[i32]> = placement.iter().map(Vec::as_slice).collect();
        create_topic_named(
            rt,
            &c.bootstrap(),
            BUSY,
            BUSY_PARTITIONS,
            TopicReplication::Variable(&placement),
            &[],
        )?;
        let p = producer(&c.bootstrap(), &[("message.timeout.ms", "10000")])?;
        let started = std::time::Instant::now();
        for pass in 0..2 {
            produce_all(&p, BUSY, BUSY_PARTITIONS as usize, |i| {
                (Some(i as i32), record(pass * 1000 + i))
            })
            .with_context(|| format!("pass {pass} over every partition"))?;
        }
        for i in 0..BUSY_PARTITIONS {
            produce_all(&p, BUSY, 1, |_| (Some(i), record(5000 + i as usize)))
                .with_context(|| format!("a record to partition {i} alone"))?;
        }
        eprintln!(
            "{} acks=all records to {BUSY_PARTITIONS} partitions in {:?}",
            3 * BUSY_PARTITIONS,
            started.elapsed()
        );
        Ok(())
    })
}

/// The cluster options with followers long-polling 30 s, and an ISR lag
/// limit above that.
fn thirty_second_long_poll(base: u16) -> ClusterOptions {
    let mut opts = options(base);
    for (k, v) in &mut opts.extra {
        match k.as_str() {
            "replica.fetch.wait.max.ms" => *v = "30000".into(),
            // Must exceed the long-poll.
            "replica.lag.time.max.ms" => *v = "60000".into(),
            _ => {}
        }
    }
    opts
}

/// A consumer that reads every partition of [`TOPIC`] from the start until
/// `stop`, as a live application would through a fault. Fails on an offset
/// that goes backwards within a partition, and on the errors librdkafka
/// reports when what it read is no longer in the log (`auto.offset.reset`
/// is `error`, so a truncation or an out-of-range position surfaces instead
/// of a silent reset). Retriable errors (a leader moving, a node down) are
/// what a fault causes and are skipped.
/// `read` counts the records it has read so far.
fn live_consumer(
    bootstrap: &str,
    stop: Arc<std::sync::atomic::AtomicBool>,
    read: Arc<std::sync::atomic::AtomicUsize>,
) -> Result<std::thread::JoinHandle<Result<Seen>>> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
    use std::sync::atomic::Ordering;
    let cons = consumer(
        bootstrap,
        &[
            ("auto.offset.reset", "error"),
            ("topic.metadata.refresh.interval.ms", "1000"),
        ],
    )?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)?;
    }
    cons.assign(&tpl)?;
    Ok(std::thread::spawn(move || -> Result<Seen> {
        let mut seen = Seen::new();
        let mut last: HashMap<i32, i64> = HashMap::new();
        while !stop.load(Ordering::Acquire) {
            match cons.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => {
                    let (p, offset) = (m.partition(), m.offset());
                    let before = last.insert(p, offset).unwrap_or(-1);
                    ensure!(
                        offset > before,
                        "the live consumer went from offset {before} back to {offset} in partition {p}"
                    );
                    seen.push((p, offset, m.payload().unwrap_or_default().to_vec()));
                    read.store(seen.len(), Ordering::Release);
                }
                Some(Err(e)) => {
                    let code = match &e {
                        KafkaError::MessageConsumption(c) | KafkaError::Global(c) => Some(*c),
                        _ => None,
                    };
                    if matches!(
                        code,
                        Some(Code::AutoOffsetReset | Code::LogTruncation | Code::OffsetOutOfRange)
                    ) {
                        bail!(
                            "the live consumer lost its place after reading {} records: {e}",
                            seen.len()
                        );
                    }
                }
            }
        }
        Ok(seen)
    }))
}

/// Produce records on a thread with an idempotent acks=all producer from
/// before `during` starts (once `min` are acknowledged) until after it ends,
/// so the fault happens under load, while a [`live_consumer`] reads. Returns
/// (deliveries, records sent, what the consumer read); any failed delivery
/// is an error (clients may see only retriable errors).
fn produce_during(
    c: &mut Cluster,
    min: usize,
    partition: Option<i32>,
    during: impl FnOnce(&mut Cluster) -> Result<()>,
) -> Result<(Vec<Delivered>, usize, Seen)> {
    use rdkafka::producer::BaseRecord;
    use std::sync::atomic::{AtomicBool, Ordering};
    let p = Arc::new(producer(
        &c.bootstrap(),
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("debug", "eos"),
            ("request.timeout.ms", "5000"),
            ("message.timeout.ms", "120000"),
        ],
    )?);
    let stop = Arc::new(AtomicBool::new(false));
    let (sender, stopping) = (p.clone(), stop.clone());
    let sending = std::thread::spawn(move || -> Result<usize> {
        let mut i = 0usize;
        while !stopping.load(Ordering::Acquire) {
            let rec = record(i);
            let mut r: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(TOPIC, i);
            if let Some(pt) = partition {
                r = r.partition(pt);
            }
            if let (Some(k), Some(v)) = (rec.key.as_deref(), rec.value.as_deref()) {
                r = r.key(k).payload(v);
            }
            match sender.send(r) {
                Ok(()) => i += 1,
                Err(_) => {
                    // Queue full: serve delivery reports.
                    sender.poll(Duration::from_millis(20));
                }
            }
            if i.is_multiple_of(100) {
                sender.poll(Duration::ZERO);
            }
        }
        sender.flush(Duration::from_secs(120))?;
        Ok(i)
    });
    let reading = Arc::new(AtomicBool::new(false));
    let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = live_consumer(&c.bootstrap(), reading.clone(), read.clone())?;
    wait_until("the first records acknowledged", WAIT, || {
        Ok(p.context().acked() >= min)
    })?;
    // The consumer must be reading before the fault, or a short fault can
    // end before it has fetched anything, and "it read through the fault"
    // would not be checked at all.
    wait_until("the live consumer reads", WAIT, || {
        Ok(read.load(Ordering::Acquire) > 0 || reader.is_finished())
    })?;
    let r = during(c);
    stop.store(true, Ordering::Release);
    let sent = sending
        .join()
        .map_err(|_| anyhow!("producer thread panicked"))??;
    reading.store(true, Ordering::Release);
    let seen = reader
        .join()
        .map_err(|_| anyhow!("consumer thread panicked"))??;
    r?;
    ensure!(
        !seen.is_empty(),
        "the live consumer read nothing during the fault"
    );
    let failed = p
        .context()
        .failed
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .clone();
    ensure!(
        failed.is_empty(),
        "{} of {sent} records failed delivery; first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let ok = p
        .context()
        .ok
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .clone();
    Ok((ok, sent, seen))
}

/// SIGSTOP the leader of partition 0 past the broker session timeout: the
/// controller fences it and another replica leads; the producer rides
/// through. After SIGCONT the old leader acknowledges nothing more, becomes
/// a follower, truncates what it had not committed and rejoins the ISR.
#[test]
fn a_paused_leader_is_replaced_and_rejoins_as_follower() -> Result<()> {
    with_cluster(BASE_PAUSE_LEADER, |c, rt| {
        leader_fault(c, rt, |c, l| c.sigstop(l), |c, l| c.sigcont(l))
    })
}

/// Restart every node in turn with SIGTERM (controlled shutdown) while an
/// idempotent producer sends: every record is acknowledged (clients saw only
/// retriable errors) and nothing is lost or duplicated.
#[test]
fn a_rolling_restart_loses_nothing() -> Result<()> {
    with_cluster(BASE_ROLLING_RESTART, |c, rt| {
        create_topic(rt, &c.bootstrap(), "2")?;
        wait_isr(c, &c.bootstrap(), 3)?;
        let (delivered, sent, seen) = produce_during(c, 2_000, None, |c| {
            for id in c.node_ids() {
                c.restart(id)?;
                let other = other_than(c, id)?;
                wait_isr(c, &c.bootstrap_of(other)?, 3)?;
            }
            Ok(())
        })?;
        check_run(&c.bootstrap(), &delivered, sent, &seen)
    })
}

/// kill -9 every node at once after acknowledged writes, start them all
/// again: every acknowledged record is there, at its offset.
#[test]
fn killing_every_node_at_once_loses_nothing_acknowledged() -> Result<()> {
    const N: usize = 10_000;
    with_cluster(BASE_KILL_ALL, |c, rt| {
        create_topic(rt, &c.bootstrap(), "2")?;
        wait_isr(c, &c.bootstrap(), 3)?;
        let p = producer(&c.bootstrap(), &[("enable.idempotence", "true")])?;
        let delivered = produce_all(&p, TOPIC, N, |i| (None, record(i)))?;
        drop(p);
        let ids = c.node_ids();
        for id in &ids {
            c.kill9(*id)?;
        }
        c.start_nodes(&ids)?;
        wait_isr(c, &c.bootstrap(), 3)?;
        check_acknowledged(&c.bootstrap(), &delivered, N)
    })
}

/// Leader, replicas and ISR of one partition.
type Placement = (i32, Vec<i32>, Vec<i32>);

/// (leader, replicas, ISR) of every partition of [`TOPIC`].
fn replicas(bootstrap: &str) -> Result<BTreeMap<i32, Placement>> {
    let c = consumer(bootstrap, &[])?;
    let md = c.fetch_metadata(Some(TOPIC), Duration::from_secs(10))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == TOPIC)
        .ok_or_else(|| anyhow!("{TOPIC} not in Metadata"))?;
    Ok(t.partitions()
        .iter()
        .map(|p| {
            let mut r = p.replicas().to_vec();
            r.sort_unstable();
            let mut isr = p.isr().to_vec();
            isr.sort_unstable();
            (p.id(), (p.leader(), r, isr))
        })
        .collect())
}

/// Last replica standing: the two followers of a partition die and its ISR
/// shrinks to the leader alone, which acknowledges writes (min ISR 1); then
/// the leader dies too. The partition stays offline (no unclean election)
/// until that leader returns, and nothing it acknowledged is lost.
///
/// Five nodes (three controller voters, two broker-only) so that the three
/// replicas can die while the controller quorum keeps its majority. The
/// topic is placed by hand (CreateTopics with a replica assignment, from
/// librdkafka's admin client): partition 0 on voter 1 and both broker-only
/// nodes.
#[test]
fn the_last_replica_standing_keeps_what_it_acknowledged() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut o = options(BASE_LAST_REPLICA);
    o.nodes = 5;
    o.broker_only = 2;
    let mut cluster = Cluster::start(o)?;
    let c = &mut cluster;
    let r = (|| {
        c.wait_active_controller("one agreed controller", WAIT, |_, e| e >= 1)?;
        for n in c.node_ids() {
            c.wait_broker_state(n, "unfenced", WAIT)?;
        }
        // A manual assignment naming an unknown broker is refused as Kafka does.
        let refused = create_topic_placed(
            &rt,
            &c.bootstrap(),
            1,
            TopicReplication::Variable(&[&[1, 9, 2]]),
            &[],
        )
        .expect_err("broker 9 does not exist");
        ensure!(
            refused.to_string().contains("InvalidReplicaAssignment"),
            "{refused:#}"
        );
        create_topic_placed(
            &rt,
            &c.bootstrap(),
            PARTITIONS,
            TopicReplication::Variable(&[&[1, 4, 5], &[2, 3, 4], &[3, 5, 1]]),
            &[("min.insync.replicas", "1")],
        )?;
        let mut layout = BTreeMap::new();
        wait_until("every partition fully in sync", WAIT, || {
            layout = replicas(&c.bootstrap())?;
            Ok(layout.len() == 3 && layout.values().all(|(l, _, isr)| *l >= 0 && isr.len() == 3))
        })?;
        let placed: Vec<&Vec<i32>> = layout.values().map(|(_, r, _)| r).collect();
        ensure!(
            placed == [&vec![1, 4, 5], &vec![2, 3, 4], &vec![1, 3, 5]],
            "the topic is not placed as assigned: {layout:?}"
        );
        let part = 0;
        let (leader, reps) = (layout[&0].0, layout[&0].1.clone());
        ensure!(
            leader == 1,
            "partition 0 is led by {leader}, not its preferred leader 1"
        );
        let followers: Vec<i32> = reps.iter().copied().filter(|r| *r != leader).collect();
        let observer = c
            .node_ids()
            .into_iter()
            .find(|n| !reps.contains(n))
            .ok_or_else(|| anyhow!("no observer"))?;
        let bootstrap = c.bootstrap_of(observer)?;
        for f in &followers {
            c.kill9(*f)?;
        }
        wait_until("the ISR shrinks to the leader alone", WAIT, || {
            Ok(replicas(&bootstrap)?
                .get(&part)
                .is_some_and(|(l, _, isr)| *l == leader && *isr == vec![leader]))
        })?;
        let p = producer(&bootstrap, &[("enable.idempotence", "true")])?;
        let delivered = produce_all(&p, TOPIC, 1_000, |i| (Some(part), record(i)))?;
        drop(p);
        c.kill9(leader)?;
        wait_until("the partition goes offline", WAIT, || {
            Ok(replicas(&bootstrap)?
                .get(&part)
                .is_some_and(|(l, _, _)| *l < 0))
        })?;
        c.restart(leader)?;
        wait_until("the last replica leads again", WAIT, || {
            Ok(replicas(&bootstrap)?
                .get(&part)
                .is_some_and(|(l, _, _)| *l == leader))
        })?;
        check_acknowledged(&bootstrap, &delivered, 1_000)?;
        // One at a time (a broker-only node that came back on a new learner
        // port could stall its re-registration; it now keeps its port).
        for f in &followers {
            c.restart(*f)?;
        }
        wait_until("the followers rejoin the ISR", WAIT, || {
            Ok(replicas(&bootstrap)?
                .get(&part)
                .is_some_and(|(_, _, isr)| isr.len() == 3))
        })?;
        Ok(())
    })();
    cluster.with_logs(r)
}

/// Run `tests/python/failover_producer.py <client>` against the cluster and
/// kill -9 the leader of partition 0 once it says a third of its records are
/// acknowledged; returns its deliveries.
fn python_producer_through_failover(
    c: &mut Cluster,
    client: &str,
    n: usize,
) -> Result<Option<Vec<Delivered>>> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let Some(python) = brook_tests::venv_python() else {
        ensure!(
            !brook_tests::require_clients(),
            "the test venv .venv-test/ is missing (BROOK_REQUIRE_CLIENTS=1)"
        );
        eprintln!("SKIPPED: .venv-test/ is missing; scripts/install-test-deps.sh creates it");
        return Ok(None);
    };
    let leader = layout(&c.bootstrap())?[&0].0;
    let script = brook_tests::workspace_root().join("tests/python/failover_producer.py");
    let mut child = Command::new("timeout")
        .arg("300")
        .arg(&python)
        .arg(&script)
        .arg(client)
        .env("BROOK_BOOTSTRAP", c.bootstrap())
        .env("BROOK_TOPIC", TOPIC)
        .env("BROOK_RECORDS", n.to_string())
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the Python producer")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut last = String::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if line == "HALF" && !killed {
            c.kill9(leader)?;
            killed = true;
        } else {
            last = line;
        }
    }
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success() && killed,
        "{client} producer failed ({}, leader killed: {killed}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&last)
        .with_context(|| format!("the producer's last line is not its report: {last}"))?;
    let failed = v["failed"].as_array().map_or(0, Vec::len);
    ensure!(
        failed == 0,
        "{client}: {failed} records failed delivery: {}",
        v["failed"]
    );
    let ok = v["ok"]
        .as_array()
        .ok_or_else(|| anyhow!("no ok list"))?
        .iter()
        .map(|d| {
            Ok(Delivered {
                index: usize::try_from(d[0].as_u64().ok_or_else(|| anyhow!("index"))?)?,
                partition: i32::try_from(d[1].as_i64().ok_or_else(|| anyhow!("partition"))?)?,
                offset: d[2].as_i64().ok_or_else(|| anyhow!("offset"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(ok))
}

fn python_failover(base: u16, client: &str) -> Result<()> {
    const N: usize = 6_000;
    with_cluster(base, |c, rt| {
        create_topic(rt, &c.bootstrap(), "2")?;
        wait_isr(c, &c.bootstrap(), 3)?;
        let Some(delivered) = python_producer_through_failover(c, client, N)? else {
            return Ok(());
        };
        let survivor = c
            .live()
            .first()
            .copied()
            .ok_or_else(|| anyhow!("no survivor"))?;
        check_acknowledged(&c.bootstrap_of(survivor)?, &delivered, N)
    })
}

/// kafka-python (idempotent, acks=all) rides through a leader kill -9.
#[test]
fn kafka_python_rides_through_a_leader_change() -> Result<()> {
    python_failover(BASE_KAFKA_PYTHON, "kafka-python")
}

/// confluent-kafka (idempotent, acks=all) rides through a leader kill -9.
#[test]
fn confluent_kafka_rides_through_a_leader_change() -> Result<()> {
    python_failover(BASE_CONFLUENT_KAFKA, "confluent-kafka")
}

/// Cut the leader of partition 0 off from the other nodes (network
/// namespaces; blackhole routes both ways) while clients still reach it,
/// under an idempotent acks=all producer: the leader can append but never
/// commit, so it acknowledges nothing; the others fence it and elect a new
/// leader; the producer moves there. After the network heals the old leader
/// truncates what it never committed and rejoins the ISR. Nothing
/// acknowledged is lost or duplicated.
#[test]
fn an_isolated_leader_acknowledges_nothing_and_rejoins() -> Result<()> {
    let mut o = options(BASE_ISOLATED_LEADER);
    o.netns = true;
    with_cluster_opts(o, |c, rt| {
        leader_fault(c, rt, |c, l| c.isolate(l), |c, l| c.heal(l))
    })
}

/// After a failover and the old leader's return, `brook cluster
/// elect-leaders` (ElectLeaders) gives leadership back to the preferred
/// replica; partitions already led by theirs report so.
#[test]
fn elect_leaders_restores_the_preferred_leader() -> Result<()> {
    with_cluster(BASE_ELECT_LEADERS, |c, rt| {
        create_topic(rt, &c.bootstrap(), "2")?;
        wait_isr(c, &c.bootstrap(), 3)?;
        let preferred = replicas(&c.bootstrap())?;
        let victim = preferred[&0].0;
        c.stop(victim)?;
        let observer = other_than(c, victim)?;
        let bootstrap = c.bootstrap_of(observer)?;
        wait_until("partition 0 moves away", WAIT, || {
            Ok(layout(&bootstrap)?
                .get(&0)
                .is_some_and(|(l, _)| *l >= 0 && *l != victim))
        })?;
        c.restart(victim)?;
        wait_isr(c, &bootstrap, 3)?;
        let out = std::process::Command::new(brook_tests::brook_binary()?)
            .args([
                "cluster",
                "elect-leaders",
                "--bootstrap",
                &bootstrap,
                "--topic",
                TOPIC,
            ])
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "elect-leaders failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            stdout.contains(&format!("{TOPIC}-0: elected")),
            "partition 0 not elected: {stdout}"
        );
        let after = replicas(&bootstrap)?;
        for (p, (leader, _, _)) in &after {
            // The replica list (sorted here) does not say which replica is
            // preferred; the leader before the failover was.
            ensure!(
                *leader == preferred[p].0,
                "partition {p} is led by {leader}, preferred {}",
                preferred[p].0
            );
        }
        Ok(())
    })
}

/// `records_out` of `topic` in a node's Prometheus metrics.
fn records_out(c: &Cluster, node: i32, topic: &str) -> Result<f64> {
    let text = brook_tests::http_get(c.admin_addr(node)?, "/metrics")?;
    let needle = format!("brook_topic_records_out_total{{topic=\"{topic}\"}}");
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}

/// `opts` with a rack per node and the rack-aware replica selector
/// (KIP-392): a consumer that sets `client.rack` reads from the replica in
/// its rack.
fn follower_fetching(mut opts: ClusterOptions) -> ClusterOptions {
    opts.racks = true;
    opts.extra.push((
        "replica.selector.class".into(),
        "\"org.apache.kafka.common.replica.RackAwareReplicaSelector\"".into(),
    ));
    opts
}

/// KIP-392: with the rack-aware replica selector, a consumer whose
/// `client.rack` is a follower's rack is sent to that follower and reads
/// every record there (the leader serves it none).
#[test]
fn a_consumer_reads_from_a_follower_in_its_rack() -> Result<()> {
    const N: usize = 2_000;
    with_cluster_opts(follower_fetching(options(BASE_FOLLOWER_FETCH)), |c, rt| {
        create_topic(rt, &c.bootstrap(), "2")?;
        let before = wait_isr(c, &c.bootstrap(), 3)?;
        let leader = before[&0].0;
        let follower = other_than(c, leader)?;
        let p = producer(&c.bootstrap(), &[("enable.idempotence", "true")])?;
        let delivered = produce_all(&p, TOPIC, N, |i| (Some(0), record(i)))?;
        let (f0, l0) = (
            records_out(c, follower, TOPIC)?,
            records_out(c, leader, TOPIC)?,
        );
        let rack = format!("rack-{follower}");
        let cons = consumer(&c.bootstrap(), &[("client.rack", rack.as_str())])?;
        let ends: HashMap<i32, i64> = HashMap::from([(0, i64::try_from(N)?)]);
        let got = consume_until(&cons, TOPIC, &ends)?;
        ensure!(got[&0].len() == N, "read {} of {N} records", got[&0].len());
        for (d, r) in delivered.iter().zip(&got[&0]) {
            ensure!(
                d.offset == r.offset && r.record.value == record(d.index).value,
                "record {} differs at offset {}",
                d.index,
                r.offset
            );
        }
        let (f1, l1) = (
            records_out(c, follower, TOPIC)?,
            records_out(c, leader, TOPIC)?,
        );
        ensure!(
            f1 - f0 >= N as f64,
            "the follower in the consumer's rack served {} records (leader: {})",
            f1 - f0,
            l1 - l0
        );
        Ok(())
    })
}

/// KIP-1166: a follower learns each HW move of its leader at once, not at
/// the next append or the end of its long-poll. With the followers
/// long-polling for 30 s, a consumer reading from a follower in its rack
/// (which serves up to its own HW) must see each acknowledged record, one
/// at a time, within 10 s.
#[test]
fn a_follower_learns_each_high_watermark_without_waiting_out_its_long_poll() -> Result<()> {
    const N: usize = 6;
    const SEE_WITHIN: Duration = Duration::from_secs(10);
    let o = follower_fetching(thirty_second_long_poll(BASE_HW_WAKE));
    with_cluster_opts(o, |c, rt| {
        create_topic(rt, &c.bootstrap(), "2")?;
        let before = wait_isr(c, &c.bootstrap(), 3)?;
        let leader = before[&0].0;
        let follower = other_than(c, leader)?;
        let p = producer(
            &c.bootstrap(),
            &[
                ("enable.idempotence", "true"),
                ("message.timeout.ms", "10000"),
            ],
        )?;
        let rack = format!("rack-{follower}");
        let cons = consumer(&c.bootstrap(), &[("client.rack", rack.as_str())])?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)?;
        cons.assign(&tpl)?;
        let served = records_out(c, follower, TOPIC)?;
        for i in 0..N {
            let delivered = produce_all(&p, TOPIC, 1, |_| (Some(0), record(i)))?;
            let offset = delivered[0].offset;
            let deadline = std::time::Instant::now() + SEE_WITHIN;
            loop {
                ensure!(
                    std::time::Instant::now() < deadline,
                    "record {i} (offset {offset}) acknowledged but not read from follower {follower} within {SEE_WITHIN:?}"
                );
                let Some(m) = cons.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let m = m.context("consuming from the follower")?;
                if m.offset() == offset {
                    ensure!(
                        m.payload() == record(i).value.as_deref(),
                        "record {i} differs"
                    );
                    break;
                }
            }
        }
        let by_follower = records_out(c, follower, TOPIC)? - served;
        ensure!(
            by_follower >= N as f64,
            "the follower in the consumer's rack served {by_follower} of {N} records"
        );
        Ok(())
    })
}

/// Replication throttles: a follower that was down catches up on the
/// throttled replicas (`*` on both sides) at about
/// `leader/follower.replication.throttled.rate`, not at disk speed, while
/// the in-sync replicas keep committing unthrottled.
#[test]
fn a_returning_follower_catches_up_at_the_throttled_rate() -> Result<()> {
    const RATE: u64 = 1_000_000;
    const N: usize = 5_000;
    const VALUE: usize = 1024;
    let mut o = options(BASE_THROTTLE);
    o.extra
        .push(("leader.replication.throttled.rate".into(), RATE.to_string()));
    o.extra.push((
        "follower.replication.throttled.rate".into(),
        RATE.to_string(),
    ));
    with_cluster_opts(o, |c, rt| {
        create_topic_configs(
            rt,
            &c.bootstrap(),
            1,
            &[
                ("min.insync.replicas", "2"),
                ("leader.replication.throttled.replicas", "*"),
                ("follower.replication.throttled.replicas", "*"),
            ],
        )?;
        let mut placed = BTreeMap::new();
        wait_until("partition 0 fully in sync", WAIT, || {
            placed = replicas(&c.bootstrap())?;
            Ok(placed
                .get(&0)
                .is_some_and(|(l, _, isr)| *l >= 0 && isr.len() == 3))
        })?;
        let leader = placed[&0].0;
        let follower = other_than(c, leader)?;
        let bootstrap = c.bootstrap_of(leader)?;
        c.kill9(follower)?;
        wait_until("the killed follower leaves the ISR", WAIT, || {
            Ok(replicas(&bootstrap)?
                .get(&0)
                .is_some_and(|(_, _, isr)| !isr.contains(&follower)))
        })?;
        let p = producer(&bootstrap, &[("enable.idempotence", "true")])?;
        // In-sync replicas are not throttled: this completes at full speed.
        let value = vec![b'v'; VALUE];
        produce_all(&p, TOPIC, N, |_| {
            (
                Some(0),
                TestRecord {
                    key: None,
                    value: Some(value.clone()),
                    headers: Vec::new(),
                },
            )
        })?;
        let started = std::time::Instant::now();
        c.restart(follower)?;
        wait_until(
            "the follower rejoins the ISR",
            Duration::from_secs(90),
            || {
                Ok(replicas(&bootstrap)?
                    .get(&0)
                    .is_some_and(|(_, _, isr)| isr.contains(&follower)))
            },
        )?;
        let took = started.elapsed().as_secs_f64();
        let bytes = (N * VALUE) as f64;
        let expected = bytes / RATE as f64;
        println!(
            "caught up {bytes} value bytes in {took:.1} s: {:.0} B/s against a {RATE} B/s throttle",
            bytes / took
        );
        // One sample's worth may pass at once (the window divides by at
        // least one sample); the rest waits on the rate.
        ensure!(
            took >= 0.6 * expected,
            "caught up in {took:.1} s: faster than the throttle allows ({expected:.1} s at {RATE} B/s)"
        );
        Ok(())
    })
}

/// `brook <args>` with `--bootstrap bootstrap`; its stdout, or an error with
/// both streams.
fn brook_cli(bootstrap: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(brook_tests::brook_binary()?)
        .args(args)
        .args(["--bootstrap", bootstrap])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "brook {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// Partition reassignment under acks=all load: `brook topic reassign` moves
/// partition 0 off its leader (leadership hands over once the remaining
/// replicas are in sync, and the old leader deletes its copy), then back
/// onto it (the new replica copies the whole partition from the leader and
/// joins the ISR before the move completes). The producer sees only
/// retriable errors; nothing acknowledged is lost or duplicated; the
/// re-added replica holds every record (it leads at the end).
#[test]
fn reassignment_moves_a_partition_under_load_and_loses_nothing() -> Result<()> {
    with_cluster(BASE_REASSIGN, |c, rt| {
        create_topic(rt, &c.bootstrap(), "2")?;
        let before = wait_isr(c, &c.bootstrap(), 3)?;
        let leader = before[&0].0;
        let observer = other_than(c, leader)?;
        let bootstrap = c.bootstrap_of(observer)?;
        let rest: Vec<i32> = c.node_ids().into_iter().filter(|n| *n != leader).collect();
        let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        let leader_dir = c.data_dir(leader)?.join(format!("{TOPIC}-0"));
        ensure!(leader_dir.exists(), "{} missing", leader_dir.display());
        // `brook topic reassign` partition 0 to `target`, waiting until done.
        let reassign_to = |target: &[i32]| -> Result<()> {
            let arg = format!("0={}", ids(target));
            let out = brook_cli(
                &bootstrap,
                &["topic", "reassign", TOPIC, "--partition", &arg, "--wait"],
            )?;
            ensure!(out.contains("reassignment complete"), "{out}");
            Ok(())
        };
        let (delivered, sent, seen) = produce_during(c, 2_000, Some(0), |_| {
            // Off the leader.
            reassign_to(&rest)?;
            let now = replicas(&bootstrap)?;
            ensure!(now[&0].1 == rest, "replicas after the move: {:?}", now[&0]);
            ensure!(
                now[&0].0 != leader,
                "the removed replica still leads: {:?}",
                now[&0]
            );
            wait_until("the removed replica deletes its copy", WAIT, || {
                Ok(!leader_dir.exists())
            })?;
            // Back onto it, as the preferred replica: it starts empty.
            let mut back = vec![leader];
            back.extend(&rest);
            reassign_to(&back)?;
            let listed = brook_cli(&bootstrap, &["topic", "reassignments"])?;
            ensure!(listed.contains("no reassignment in progress"), "{listed}");
            Ok(())
        })?;
        wait_isr(c, &bootstrap, 3)?;
        // The re-added replica leads: reading through it checks its copy.
        let out = brook_cli(&bootstrap, &["cluster", "elect-leaders", "--topic", TOPIC])?;
        ensure!(out.contains(&format!("{TOPIC}-0: elected")), "{out}");
        wait_until("the re-added replica leads partition 0", WAIT, || {
            Ok(layout(&bootstrap)?
                .get(&0)
                .is_some_and(|(l, _)| *l == leader))
        })?;
        check_run(&bootstrap, &delivered, sent, &seen)
    })
}

/// kafka-python's consumer group rides through a kill -9 of its coordinator
/// (the leader of the only `__consumer_offsets` partition): it commits
/// before, finds the new coordinator, consumes and commits after, and a
/// fresh client reads the second commit; nothing committed goes backwards.
#[test]
fn kafka_python_group_rides_through_a_coordinator_failover() -> Result<()> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    const N: usize = 3_000;
    const GROUP: &str = "python-failover-group";
    with_cluster(BASE_KAFKA_PYTHON_GROUP, |c, rt| {
        let Some(python) = brook_tests::venv_python() else {
            ensure!(
                !brook_tests::require_clients(),
                "the test venv .venv-test/ is missing (BROOK_REQUIRE_CLIENTS=1)"
            );
            eprintln!("SKIPPED: .venv-test/ is missing; scripts/install-test-deps.sh creates it");
            return Ok(());
        };
        create_topic(rt, &c.bootstrap(), "2")?;
        wait_isr(c, &c.bootstrap(), 3)?;
        let p = producer(&c.bootstrap(), &[("enable.idempotence", "true")])?;
        produce_all(&p, TOPIC, N, |i| (None, record(i)))?;
        let script = brook_tests::workspace_root().join("tests/python/failover_group.py");
        let mut child = Command::new("timeout")
            .arg("300")
            .arg(&python)
            .arg(&script)
            .env("BROOK_BOOTSTRAP", c.bootstrap())
            .env("BROOK_TOPIC", TOPIC)
            .env("BROOK_GROUP", GROUP)
            .env("BROOK_RECORDS", N.to_string())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the kafka-python group member")?;
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut commits: Vec<BTreeMap<i32, i64>> = Vec::new();
        let mut coordinator = None;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(json) = line.strip_prefix("COMMITTED ") {
                let v: BTreeMap<String, i64> = serde_json::from_str(json)?;
                commits.push(
                    v.into_iter()
                        .map(|(p, o)| Ok((p.parse()?, o)))
                        .collect::<Result<_>>()?,
                );
            } else if line == "HALF" {
                let md = consumer(&c.bootstrap(), &[])?
                    .fetch_metadata(Some("__consumer_offsets"), Duration::from_secs(10))?;
                let leader = md
                    .topics()
                    .first()
                    .and_then(|t| t.partitions().first())
                    .map(|p| p.leader())
                    .ok_or_else(|| anyhow!("no __consumer_offsets partition in Metadata"))?;
                c.kill9(leader)?;
                coordinator = Some(leader);
                writeln!(stdin, "go")?;
            }
        }
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success() && commits.len() == 2,
            "the kafka-python member failed ({}, commits {commits:?}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let coordinator = coordinator.ok_or_else(|| anyhow!("the member never reached HALF"))?;
        let read = committed(&c.bootstrap_of(other_than(c, coordinator)?)?, GROUP)?;
        for (p, o) in &commits[0] {
            ensure!(
                read.get(p).is_some_and(|r| r >= o),
                "partition {p}: committed {o} before the failover, reads {:?} after",
                read.get(p)
            );
        }
        for (p, o) in &commits[1] {
            ensure!(
                read.get(p) == Some(o),
                "partition {p}: committed {o} after the failover, reads {:?}",
                read.get(p)
            );
        }
        Ok(())
    })
}

/// A log directory fills up on the leader (ENOSPC on a 6 MiB tmpfs, node
/// 1's second log directory) while an idempotent acks=all producer writes
/// 12.8 MiB to the partition there. The broker stays up and reports the
/// directory's partitions offline with its heartbeat; the controller moves
/// that partition's leadership and ISR to the other replicas, so every
/// record is delivered and nothing acknowledged is lost, while node 1 keeps
/// leading its partition in the healthy directory. Needs root for the tmpfs.
#[test]
fn a_full_log_directory_on_the_leader_moves_its_partitions_and_loses_nothing() -> Result<()> {
    if !brook_tests::is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return Ok(());
    }
    let small = brook_tests::Tmpfs::mount("6m")?;
    let mut o = options(BASE_FULL_LOG_DIR);
    o.extra_log_dir = Some((1, small.0.clone()));
    with_cluster_opts(o, |c, rt| {
        create_topic_placed(
            rt,
            &c.bootstrap(),
            PARTITIONS,
            TopicReplication::Variable(&[&[1, 2, 3], &[1, 3, 2], &[2, 3, 1]]),
            &[("min.insync.replicas", "2")],
        )?;
        wait_until("every partition fully in sync", WAIT, || {
            let r = replicas(&c.bootstrap())?;
            Ok(r.len() == 3 && r.values().all(|(l, _, isr)| *l >= 0 && isr.len() == 3))
        })?;
        // Which of node 1's partitions landed in the small directory.
        let body = brook_tests::http_get(c.admin_addr(1)?, &format!("/v1/topics/{TOPIC}"))?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        let on_tmpfs = |p: &serde_json::Value| {
            p["log_dir"]
                .as_str()
                .is_some_and(|d| std::path::Path::new(d) == small.0)
        };
        let parts = v["partitions"]
            .as_array()
            .ok_or_else(|| anyhow!("no partitions in {body}"))?;
        let full = parts
            .iter()
            .filter(|p| on_tmpfs(p))
            .find_map(|p| p["partition"].as_i64())
            .ok_or_else(|| anyhow!("no partition of node 1 on the tmpfs: {body}"))?;
        let full = i32::try_from(full)?;
        let healthy = parts
            .iter()
            .filter(|p| !on_tmpfs(p))
            .filter_map(|p| p["partition"].as_i64())
            .map(i32::try_from)
            .find(|p| matches!(p, Ok(0 | 1)))
            .ok_or_else(|| anyhow!("no partition led by node 1 in its data dir: {body}"))??;
        ensure!(
            full < 2 && replicas(&c.bootstrap())?[&full].0 == 1,
            "partition {full} on the tmpfs is not led by node 1"
        );
        let p = producer(
            &c.bootstrap(),
            &[
                ("enable.idempotence", "true"),
                ("message.timeout.ms", "60000"),
            ],
        )?;
        let value = |i: usize| {
            let mut v = format!("value-{i:08}-").into_bytes();
            v.resize(64 * 1024, b'x');
            v
        };
        let n = 200;
        let delivered = produce_all(&p, TOPIC, n, |i| {
            (
                Some(full),
                TestRecord {
                    key: None,
                    value: Some(value(i)),
                    headers: Vec::new(),
                },
            )
        })?;
        let now = replicas(&c.bootstrap())?;
        let (leader, _, isr) = &now[&full];
        ensure!(
            *leader != 1 && !isr.contains(&1),
            "partition {full} still has node 1 as leader or in its ISR: {now:?}"
        );
        ensure!(
            now[&healthy].0 == 1,
            "node 1 lost the leadership of partition {healthy} in its healthy directory: {now:?}"
        );
        ensure!(
            c.broker_state(2, 1)?.as_deref() == Some("unfenced"),
            "node 1 was fenced; only its directory failed"
        );
        ensure!(
            brook_tests::metric_value(
                &brook_tests::http_get(c.admin_addr(1)?, "/metrics")?,
                "brook_log_dir_offline"
            )
            .is_some_and(|v| v >= 1.0),
            "node 1 does not report an offline log directory"
        );
        // Every acknowledged record is at its offset with its value.
        let acked: Vec<(i64, Vec<u8>)> = delivered
            .iter()
            .map(|d| (d.offset, value(d.index)))
            .collect();
        common::check_values_at(&c.bootstrap_of(2)?, TOPIC, full, &acked)?;
        Ok(())
    })
}
