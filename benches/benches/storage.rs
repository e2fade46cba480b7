//! Storage and wake-up micro-benchmarks, the guards of issue 14's hot paths:
//! - `segment_append`: a leader append of a 10-record batch (100 B values)
//!   to a partition log in a temp dir (page cache; no fsync);
//! - `index_lookup`: reading one batch at a random offset of a 100,000-batch
//!   log (sparse offset index lookup + the scan to the batch);
//! - `flusher`: an acks=all-style append + wait for durability, with 1 and 8
//!   producers at once (real `fdatasync`s on this disk, group-committed);
//! - `fetch_wakeup`: from an append to a long-polling reader woken by the HW
//!   (periodic durability, so no fsync in the way) and answering back.
//!
//! Run: `cargo bench -p brook-benches --bench storage`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_broker::log::{LogConfig, PartitionLog};
use brook_broker::metadata::PartitionRecord;
use brook_broker::partition::{Partition, ReplicaSetup};
use brook_broker::producer_state::ProducerStateTable;
use brook_config::{BrokerConfig, Durability, TopicConfig};
use brook_protocol::codec::Uuid;
use brook_protocol::records::{BatchBuilder, Compression};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A batch of 10 records with 100-byte values.
fn batch() -> Vec<u8> {
    let mut b = BatchBuilder::new();
    let value = [7u8; 100];
    for i in 0..10i64 {
        if b.append(now_ms() + i, None, Some(&value), &[]).is_err() {
            panic!("building the bench batch failed");
        }
    }
    match b.build(Compression::None) {
        Ok(bytes) => bytes.to_vec(),
        Err(e) => panic!("building the bench batch failed: {e}"),
    }
}

fn open_log(dir: &std::path::Path) -> PartitionLog {
    let config = LogConfig {
        segment_bytes: 64 << 20,
        ..LogConfig::default()
    };
    match PartitionLog::open(dir, config) {
        Ok(log) => log,
        Err(e) => panic!("opening the bench log failed: {e}"),
    }
}

/// The wall clock in ms (appends check record timestamps against it).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("no temp dir: {e}"),
    }
}

fn segment_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("segment_append");
    let records = batch();
    g.throughput(Throughput::Bytes(records.len() as u64));
    g.bench_function("10x100B", |b| {
        // A fresh log per sample, so the bench does not fill the disk.
        b.iter_custom(|iters| {
            let dir = tempdir();
            let log = open_log(dir.path());
            let start = Instant::now();
            for _ in 0..iters {
                if log.append_as_leader(black_box(&records), 0).is_err() {
                    panic!("append failed");
                }
            }
            start.elapsed()
        });
    });
    g.finish();
}

fn index_lookup(c: &mut Criterion) {
    const BATCHES: i64 = 100_000;
    let dir = tempdir();
    let log = open_log(dir.path());
    let records = batch();
    for _ in 0..BATCHES {
        if log.append_as_leader(&records, 0).is_err() {
            panic!("append failed");
        }
    }
    let end = log.log_end_offset();
    let mut g = c.benchmark_group("index_lookup");
    g.bench_function("read one batch at a random offset of 1M records", |b| {
        // A fixed-seed LCG: the same offsets every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        b.iter(|| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let offset = i64::try_from(x >> 33).unwrap_or(0) % end;
            match log.read(black_box(offset), 1, end, true) {
                Ok(r) => black_box(r),
                Err(e) => panic!("read failed: {e}"),
            }
        });
    });
    g.finish();
}

/// Loading a partition's producer state at startup (or after a follower's
/// truncation): replaying every batch header of a 100,000-batch log, against
/// a snapshot at the log end (a clean shutdown) and one 10,000 batches back
/// (a crash soon after a segment roll).
fn producer_state_load(c: &mut Criterion) {
    use brook_broker::producer_state::{snapshot, ProducerStateTable};
    const BATCHES: i64 = 100_000;
    let dir = tempdir();
    let log = open_log(dir.path());
    let records = batch();
    let mut at_roll = None;
    for i in 0..BATCHES {
        if i == BATCHES - 10_000 {
            at_roll = Some(log.log_end_offset());
        }
        if log.append_as_leader(&records, 0).is_err() {
            panic!("append failed");
        }
    }
    let load = |expect: Option<i64>| {
        let mut table = ProducerStateTable::default();
        match snapshot::load(&log, &mut table) {
            Ok(how) if how.snapshot == expect => black_box(how),
            Ok(how) => panic!("loaded {how:?}, expected a snapshot at {expect:?}"),
            Err(e) => panic!("loading failed: {e}"),
        }
    };
    let write = |offset: i64| {
        let bytes = snapshot::encode(&ProducerStateTable::default(), offset);
        if let Err(e) = snapshot::write(dir.path(), offset, &bytes) {
            panic!("writing the snapshot failed: {e}");
        }
    };
    let mut g = c.benchmark_group("producer_state_load");
    g.sample_size(10);
    g.bench_function("full replay of 100k batches", |b| b.iter(|| load(None)));
    let Some(at_roll) = at_roll else {
        panic!("no offset for the older snapshot");
    };
    write(at_roll);
    g.bench_function("snapshot 10k batches back", |b| {
        b.iter(|| load(Some(at_roll)))
    });
    let end = log.log_end_offset();
    write(end);
    g.bench_function("snapshot at the log end", |b| b.iter(|| load(Some(end))));
    g.finish();
}

/// A single-replica partition led by this node, with `durability`.
fn partition(dir: &std::path::Path, durability: Durability) -> Arc<Partition> {
    let mut config = match TopicConfig::resolve(&BrokerConfig::default(), &BTreeMap::new()) {
        Ok(c) => c,
        Err(e) => panic!("topic config: {e}"),
    };
    config.durability = durability;
    let p = Partition::new(
        "bench".into(),
        Uuid([1; 16]),
        0,
        open_log(dir),
        Arc::new(config),
        ProducerStateTable::default(),
        ReplicaSetup {
            node: 1,
            hw: 0,
            lag_max_ms: 10_000,
            isr_wake: Arc::new(tokio::sync::Notify::new()),
            inline_flushes: Arc::default(),
            follower_wakes: Arc::default(),
        },
    );
    p.assign(&PartitionRecord {
        topic_id: Uuid([1; 16]),
        partition: 0,
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch: 1,
        partition_epoch: 1,
        ..PartitionRecord::default()
    });
    Arc::new(p)
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("no runtime: {e}"),
    }
}

fn flusher(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("flusher");
    g.measurement_time(Duration::from_secs(5));
    for producers in [1usize, 8] {
        g.throughput(Throughput::Elements(producers as u64));
        g.bench_function(format!("append + wait durable, {producers} at once"), |b| {
            b.iter_custom(|iters| {
                let dir = tempdir();
                let part = partition(dir.path(), Durability::FsyncBeforeAck);
                rt.block_on(async {
                    let start = Instant::now();
                    let proto = batch();
                    for _ in 0..iters {
                        let waits: Vec<_> = (0..producers)
                            .map(|_| {
                                let part = part.clone();
                                let records = proto.clone();
                                tokio::spawn(async move {
                                    let a = part.append(&records, now_ms()).await?;
                                    part.request_flush();
                                    part.wait_durable(a.last_offset).await
                                })
                            })
                            .collect();
                        for w in waits {
                            match w.await {
                                Ok(Ok(())) => {}
                                other => panic!("append or flush failed: {other:?}"),
                            }
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    g.finish();
}

fn fetch_wakeup(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempdir();
    let part = partition(dir.path(), Durability::Periodic);
    let mut g = c.benchmark_group("fetch_wakeup");
    g.bench_function("append to a long-polling reader woken", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<i64>(1);
                let mut hw = part.subscribe_hw();
                let reader = tokio::spawn(async move {
                    while hw.changed().await.is_ok() {
                        let seen = *hw.borrow_and_update();
                        if tx.send(seen).await.is_err() {
                            break;
                        }
                    }
                });
                let proto = batch();
                let start = Instant::now();
                for _ in 0..iters {
                    let records = proto.clone();
                    let a = match part.append(&records, now_ms()).await {
                        Ok(a) => a,
                        Err(e) => panic!("append failed: {e}"),
                    };
                    // Woken for this append (or a later HW).
                    while rx.recv().await.is_some_and(|hw| hw <= a.last_offset) {}
                }
                let took = start.elapsed();
                reader.abort();
                took
            })
        });
    });
    g.finish();
}

criterion_group!(
    benches,
    segment_append,
    index_lookup,
    producer_state_load,
    flusher,
    fetch_wakeup
);
criterion_main!(benches);
