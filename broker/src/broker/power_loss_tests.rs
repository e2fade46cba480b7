//! Power-loss campaign (issue 13): a seeded storage workload runs under the
//! `fsio` recorder, which rebuilds the data directory as a disk would have
//! kept it after a power cut at randomly chosen operations; each rebuilt
//! directory is opened the way `Broker::open` opens its partitions, and every
//! acknowledged acks=all record must be there exactly once, at its offset.
//!
//! The workload drives what the broker does on disk, through the broker's own
//! functions: `meta.properties`, topic create (`open_partition`: directory,
//! `partition.metadata`, log) and delete (close, `retire_partition_dir`,
//! delete), produce with acks=all (`Partition::append`, then the purgatory wait
//! on the HW, which follows the flusher's fsync), segment rolls and index trims
//! (small `segment.bytes`), retention and DeleteRecords, the data-dir
//! checkpoint files, the cleaner on a compacted topic (forced cleans, the
//! `.cleaned` → `.swap` swap, `cleaner-offset-checkpoint`), and clean shutdown
//! (close + clean-shutdown marker) followed by a restart. The controller's
//! metadata log is modelled, not run: a topic exists at a cut when its create
//! was committed before the cut. (The metadata log has its own campaign:
//! `brook-quorum`'s `log_store::power_loss_tests`.)
//!
//! After each cut: the broker's startup path opens every partition without
//! manual steps; every acknowledged record at or above the log start is there
//! once, at its offset, below the HW (on the compacted topic, unless a later
//! record of its key is there); nothing else is there but records appended
//! to that partition of that topic incarnation; the log start is not past
//! any trim the workload asked for; no `-delete` directory is left; and a
//! topic deleted before the cut, created again under its name, starts empty
//! and keeps its records across a restart. Failing images are kept on disk.
//!
//! Replay one cut: `BROOK_POWER_SEED=<seed> BROOK_POWER_CUT=<op>
//! [BROOK_POWER_TORN=<n>] cargo nextest run -p brook-broker power_loss_replay
//! --no-capture` prints the operation trace and keeps the image.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use brook_config::TopicConfig;
use brook_protocol::codec::Uuid;
use brook_protocol::records::{BatchBuilder, BatchIter, Compression, RecordBatch};

use super::{open_partition, retire_partition_dir, StartupCheckpoints};
use crate::fsio::sim::{check_cuts, Cut, Image, Recorder, SplitMix};
use crate::log::test_batches::region_bytes;
use crate::log::FsyncSyncer;
use crate::metadata::PartitionRecord;
use crate::partition::{Partition, ReplicaSetup};

const NODE: i32 = 1;
const CLUSTER: &str = "power-loss-cluster";
const NAMES: [&str; 4] = ["alpha", "beta", "gamma", COMPACTED];
/// The topic with `cleanup.policy=compact`: the cleaner runs on it.
const COMPACTED: &str = "delta";
/// Records are keyed `k0`..`k4` (by sequence number), so the cleaner has
/// superseded records to remove.
const KEYS: u64 = 5;
/// Bytes at the start of each batch's payload naming the record: topic id,
/// partition, sequence number.
const IDENT: usize = 16 + 4 + 8;

#[derive(Debug, Clone)]
enum Event {
    /// The controller committed the topic (before the broker touches disk).
    Created {
        name: String,
        id: Uuid,
        partitions: i32,
    },
    /// The controller committed the removal.
    Deleted { name: String },
    /// The log start may move up to `upto` from here on (retention, DeleteRecords).
    Trim { id: Uuid, partition: i32, upto: i64 },
    /// `append` returned `offset` for record `seq`.
    Appended {
        id: Uuid,
        partition: i32,
        seq: u64,
        offset: i64,
    },
    /// The acks=all wait returned: the record is acknowledged.
    Acked {
        id: Uuid,
        partition: i32,
        seq: u64,
        offset: i64,
    },
}

struct LiveTopic {
    id: Uuid,
    parts: Vec<Arc<Partition>>,
}

struct Workload<'a> {
    root: PathBuf,
    rec: &'a Recorder,
    rng: SplitMix,
    events: Vec<(u64, Event)>,
    topics: BTreeMap<String, LiveTopic>,
    seq: u64,
    /// Cleans that rewrote segments.
    cleans: u64,
    /// The next sequence of the idempotent producer of each partition of
    /// the `delete` topics.
    sequences: HashMap<(Uuid, i32), i32>,
}

/// The idempotent producer writing to the `delete` topics (its state is
/// loaded from producer snapshots plus the log after a cut).
const PRODUCER_ID: i64 = 4242;

fn topic_config(name: &str) -> TopicConfig {
    TopicConfig {
        segment_bytes: 1500,
        segment_index_bytes: 240,
        index_interval_bytes: 200,
        retention_bytes: 4000,
        cleanup_policy: if name == COMPACTED {
            brook_config::CleanupPolicy::COMPACT
        } else {
            brook_config::CleanupPolicy::DELETE
        },
        ..TopicConfig::default()
    }
}

fn partition_record(id: Uuid, partition: i32) -> PartitionRecord {
    PartitionRecord {
        topic_id: id,
        partition,
        replicas: vec![NODE],
        isr: vec![NODE],
        elr: Vec::new(),
        leader: NODE,
        leader_epoch: 0,
        partition_epoch: 0,
        ..PartitionRecord::default()
    }
}

fn setup(hw: i64) -> ReplicaSetup {
    ReplicaSetup {
        node: NODE,
        hw,
        lag_max_ms: 30_000,
        isr_wake: Arc::new(tokio::sync::Notify::new()),
        inline_flushes: Arc::default(),
        follower_wakes: Arc::default(),
    }
}

fn now_ms() -> i64 {
    crate::handlers::now_ms()
}

/// A batch of one record keyed by `seq` whose value starts with the record's
/// identity, `len` bytes in all.
fn ident_batch(id: Uuid, partition: i32, seq: u64, len: usize) -> Result<Vec<u8>> {
    ident_batch_of(id, partition, seq, len, None)
}

/// [`ident_batch`], idempotent when `producer` names (producer id, sequence).
fn ident_batch_of(
    id: Uuid,
    partition: i32,
    seq: u64,
    len: usize,
    producer: Option<(i64, i32)>,
) -> Result<Vec<u8>> {
    let mut value = Vec::with_capacity(len.max(IDENT));
    value.extend_from_slice(id.as_bytes());
    value.extend_from_slice(&partition.to_be_bytes());
    value.extend_from_slice(&seq.to_be_bytes());
    value.resize(len.max(IDENT), 0x5a);
    let key = format!("k{}", seq % KEYS);
    let mut b = BatchBuilder::new();
    if let Some((pid, sequence)) = producer {
        b.set_producer(pid, 0, sequence);
    }
    b.append(now_ms(), Some(key.as_bytes()), Some(&value), &[])?;
    Ok(b.build(Compression::None)?.to_vec())
}

/// Open every partition of `topics` in `dir` the way `Broker::open` does.
fn open_all(dir: &Path, topics: &BTreeMap<String, (Uuid, i32)>) -> Result<Vec<Arc<Partition>>> {
    super::identity::check_meta_properties(dir, NODE, CLUSTER)?;
    super::remove_deleted_partition_dirs(dir);
    let checkpoints = StartupCheckpoints::load(dir)?;
    let mut out = Vec::new();
    for (name, &(id, partitions)) in topics {
        for p in 0..partitions {
            let key = (name.clone(), p);
            let opts = checkpoints.open_options(&key, Arc::new(FsyncSyncer));
            let part = open_partition(
                dir,
                name,
                id,
                &partition_record(id, p),
                Arc::new(topic_config(name)),
                opts,
                setup(checkpoints.hw(&key)),
            )
            .with_context(|| format!("opening {name}-{p}"))?;
            out.push(Arc::new(part));
        }
    }
    super::rewrite_checkpoints_at_startup(dir, &out);
    Ok(out)
}

impl Workload<'_> {
    fn mark(&mut self, e: Event) {
        let op = self.rec.ops();
        self.events.push((op, e));
    }

    fn live_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .values()
            .flat_map(|t| t.parts.iter().cloned())
            .collect()
    }

    fn checkpoints(&self) {
        let parts = self.live_partitions();
        crate::maintenance::write_checkpoint_files(&self.root, parts.iter().map(|p| &**p));
    }

    fn create_topic(&mut self, name: &str) -> Result<()> {
        let id = Uuid::from_bytes(
            self.rng
                .next()
                .to_be_bytes()
                .repeat(2)
                .try_into()
                .unwrap_or([7; 16]),
        );
        let partitions = 1 + i32::from(self.rng.below(2) == 0);
        self.mark(Event::Created {
            name: name.into(),
            id,
            partitions,
        });
        let mut parts = Vec::new();
        for p in 0..partitions {
            let part = open_partition(
                &self.root,
                name,
                id,
                &partition_record(id, p),
                Arc::new(topic_config(name)),
                crate::log::OpenOptions::default(),
                setup(0),
            )?;
            parts.push(Arc::new(part));
        }
        self.topics.insert(name.into(), LiveTopic { id, parts });
        Ok(())
    }

    fn delete_topic(&mut self, name: &str) -> Result<()> {
        let Some(t) = self.topics.remove(name) else {
            return Ok(());
        };
        self.mark(Event::Deleted { name: name.into() });
        for p in &t.parts {
            p.close()?;
            if let Some(doomed) = retire_partition_dir(&self.root, name, p.index, t.id) {
                crate::fsio::remove_dir_all(&doomed)?;
            }
        }
        self.checkpoints();
        Ok(())
    }

    /// Produce to a partition of `name` (if it exists) or else of any topic.
    async fn produce_to(&mut self, name: &str) -> Result<()> {
        let parts = match self.topics.get(name) {
            Some(t) => t.parts.clone(),
            None => self.live_partitions(),
        };
        self.produce_among(parts).await
    }

    async fn produce(&mut self) -> Result<()> {
        let parts = self.live_partitions();
        self.produce_among(parts).await
    }

    async fn produce_among(&mut self, parts: Vec<Arc<Partition>>) -> Result<()> {
        if parts.is_empty() {
            return Ok(());
        }
        let part = &parts[usize::try_from(self.rng.below(parts.len() as u64))?];
        self.seq += 1;
        let seq = self.seq;
        let len = 40 + usize::try_from(self.rng.below(400))?;
        let (id, partition) = (part.topic_id, part.index);
        let producer = if part.config().cleanup_policy.compact {
            None
        } else {
            let next = self.sequences.entry((id, partition)).or_insert(0);
            *next += 1;
            Some((PRODUCER_ID, *next - 1))
        };
        let b = ident_batch_of(id, partition, seq, len, producer)?;
        let a = part.append(&b, now_ms()).await?;
        ensure!(!a.duplicate, "record {seq} taken as a duplicate");
        self.mark(Event::Appended {
            id,
            partition,
            seq,
            offset: a.base_offset,
        });
        part.request_flush();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        part.wait_committed(a.last_offset, a.leader_epoch, deadline)
            .await
            .map_err(|e| anyhow::anyhow!("acks=all wait failed: {e:?}"))?;
        self.mark(Event::Acked {
            id,
            partition,
            seq,
            offset: a.base_offset,
        });
        Ok(())
    }

    fn retention(&mut self) -> Result<()> {
        for p in self.live_partitions() {
            // As `maintenance::retention_pass`: time/size retention is for
            // `cleanup.policy=delete` only.
            if !p.config().cleanup_policy.delete {
                continue;
            }
            let hw = p.high_watermark();
            self.mark(Event::Trim {
                id: p.topic_id,
                partition: p.index,
                upto: hw,
            });
            p.log().delete_old_segments(now_ms(), hw)?;
        }
        Ok(())
    }

    fn delete_records(&mut self) -> Result<()> {
        let parts = self.live_partitions();
        if parts.is_empty() {
            return Ok(());
        }
        let p = &parts[usize::try_from(self.rng.below(parts.len() as u64))?];
        let (lso, hw) = (p.log_start_offset(), p.high_watermark());
        let upto = lso + i64::try_from(self.rng.below(u64::try_from(hw - lso)? + 1))?;
        self.mark(Event::Trim {
            id: p.topic_id,
            partition: p.index,
            upto,
        });
        p.log().delete_records_before(upto)?;
        // The DeleteRecords handler writes the checkpoints before answering.
        self.checkpoints();
        Ok(())
    }

    /// One forced clean of every compacted partition, as the cleaner manager
    /// runs it, then its checkpoint (as `cleaner::write_checkpoint`).
    fn clean(&mut self) -> Result<()> {
        let params = crate::log::cleaner::CleanParams {
            min_cleanable_ratio: 0.0,
            ..crate::log::cleaner::CleanParams::default()
        };
        let mut map = crate::log::cleaner::OffsetMap::with_memory(1 << 16);
        let throttle = crate::log::cleaner::Throttler::new(f64::MAX);
        let compacted: Vec<_> = self
            .live_partitions()
            .into_iter()
            .filter(|p| p.config().cleanup_policy.compact)
            .collect();
        for p in &compacted {
            match p
                .log()
                .clean(p.high_watermark(), &params, &mut map, &throttle, true)
            {
                Ok(Some(_)) => self.cleans += 1,
                Ok(None) | Err(crate::log::LogError::CleaningAborted { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let entries: Vec<_> = compacted
            .iter()
            .map(|p| crate::log::TopicPartitionOffset {
                topic: p.topic.to_string(),
                partition: p.index,
                offset: p.log().cleaned_offset(),
            })
            .collect();
        crate::log::write_offset_checkpoint(
            &self.root.join(crate::cleaner::CHECKPOINT_FILE),
            &entries,
        )?;
        Ok(())
    }

    /// Clean shutdown as `brook serve` does it, then a restart.
    async fn restart(&mut self) -> Result<()> {
        for p in self.live_partitions() {
            p.flush_all().await?;
            p.close()?;
        }
        self.checkpoints();
        let topics: BTreeMap<String, (Uuid, i32)> = self
            .topics
            .iter()
            .map(|(n, t)| (n.clone(), (t.id, t.parts.len() as i32)))
            .collect();
        let parts = open_all(&self.root, &topics)?;
        for t in self.topics.values_mut() {
            t.parts = parts
                .iter()
                .filter(|p| p.topic_id == t.id)
                .cloned()
                .collect();
        }
        Ok(())
    }

    /// The mix of steps; with `cleaner` the compacted topic takes most
    /// produces and a clean runs every few steps.
    async fn run(&mut self, steps: usize, cleaner: bool) -> Result<()> {
        super::identity::check_meta_properties(&self.root, NODE, CLUSTER)?;
        self.create_topic(NAMES[0])?;
        if cleaner {
            self.create_topic(COMPACTED)?;
        }
        for _ in 0..steps {
            let step = self.rng.below(100);
            if cleaner && step < 60 {
                if step < 45 {
                    self.produce_to(COMPACTED).await?;
                } else {
                    self.clean()?;
                }
                continue;
            }
            match step {
                0..=59 => self.produce().await?,
                60..=67 => self.checkpoints(),
                68..=74 => self.retention()?,
                75..=79 => self.delete_records()?,
                80..=86 => {
                    let name = NAMES[usize::try_from(self.rng.below(NAMES.len() as u64))?];
                    if !self.topics.contains_key(name) {
                        self.create_topic(name)?;
                    }
                }
                87..=91 => {
                    let name = NAMES[usize::try_from(self.rng.below(NAMES.len() as u64))?];
                    self.delete_topic(name)?;
                }
                92..=95 => self.clean()?,
                _ => self.restart().await?,
            }
        }
        Ok(())
    }
}

/// What must hold after power loss at `op`.
#[derive(Default)]
struct Expect {
    /// Topics the metadata log holds: name → (id, partitions).
    topics: BTreeMap<String, (Uuid, i32)>,
    /// Every topic name created so far.
    ever: std::collections::BTreeSet<String>,
    /// Per (topic id, partition): seq → offset of every acknowledged record.
    acked: HashMap<(Uuid, i32), BTreeMap<u64, i64>>,
    /// Per (topic id, partition): how far the log start may have moved.
    trim: HashMap<(Uuid, i32), i64>,
}

fn expect_at(events: &[(u64, Event)], op: u64) -> Expect {
    let mut x = Expect::default();
    for (at, e) in events.iter().filter(|(at, _)| *at <= op) {
        let _ = at;
        match e {
            Event::Created {
                name,
                id,
                partitions,
            } => {
                x.topics.insert(name.clone(), (*id, *partitions));
                x.ever.insert(name.clone());
            }
            Event::Deleted { name } => {
                x.topics.remove(name);
            }
            Event::Trim {
                id,
                partition,
                upto,
            } => {
                let t = x.trim.entry((*id, *partition)).or_insert(0);
                *t = (*t).max(*upto);
            }
            Event::Acked {
                id,
                partition,
                seq,
                offset,
            } => {
                x.acked
                    .entry((*id, *partition))
                    .or_default()
                    .insert(*seq, *offset);
            }
            Event::Appended { .. } => {}
        }
    }
    x
}

/// Every (topic id, partition, seq) ever appended, with its offset.
fn appended(events: &[(u64, Event)]) -> HashMap<(Uuid, i32, u64), i64> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Appended {
                id,
                partition,
                seq,
                offset,
            } => Some(((*id, *partition, *seq), *offset)),
            _ => None,
        })
        .collect()
}

/// The producer state a partition opened with (a snapshot plus the log
/// after it) describes only batches the log holds: none at or past the log
/// end (a retry would be answered as a duplicate of records that are gone),
/// and each at or above the log start is the batch at its offsets, same
/// producer, epoch and sequences.
async fn check_producer_state(p: &Partition, name: &str) -> Result<()> {
    let log = p.log();
    let (lso, leo) = (log.log_start_offset(), log.log_end_offset());
    for (pid, epoch, c) in p.producer_table().await.cached() {
        ensure!(
            c.last_offset < leo,
            "{name}: producer {pid} has a batch at {}..={} past the log end {leo}",
            c.first_offset,
            c.last_offset
        );
        if c.first_offset < lso {
            continue;
        }
        let r = log.read(c.first_offset, 1, i64::MAX, true)?;
        let bytes = region_bytes(&r.region.context("no batch at a cached offset")?)?;
        let (_, h) = BatchIter::new(&bytes)
            .next()
            .context("no batch at a cached offset")?;
        ensure!(
            (h.base_offset(), h.last_offset()) == (c.first_offset, c.last_offset)
                && (h.producer_id(), h.producer_epoch()) == (pid, epoch)
                && (h.base_sequence(), h.last_sequence()) == (c.first_sequence, c.last_sequence),
            "{name}: producer {pid} remembers a batch at {}..={} that the log holds otherwise",
            c.first_offset,
            c.last_offset
        );
    }
    Ok(())
}

/// Open the image as the broker would and check every acknowledged record;
/// then create again, under its name, each topic deleted before the cut: it
/// must start empty, also across a restart.
async fn verify(image: &Image, events: &[(u64, Event)]) -> Result<()> {
    let x = expect_at(events, image.op);
    let all = appended(events);
    let parts = open_all(&image.dir, &x.topics)?;
    for e in std::fs::read_dir(&image.dir)? {
        let name = e?.file_name();
        ensure!(
            !name.to_string_lossy().ends_with("-delete"),
            "{name:?}: a deleted partition's directory is left after the restart"
        );
    }
    for p in &parts {
        let key = (p.topic_id, p.index);
        let log = p.log();
        let (lso, leo, hw) = (
            log.log_start_offset(),
            log.log_end_offset(),
            p.high_watermark(),
        );
        let name = format!("{}-{}", p.topic, p.index);
        let trim = x.trim.get(&key).copied().unwrap_or(0);
        ensure!(
            lso <= trim,
            "{name}: log start {lso} is past every trim ({trim})"
        );
        ensure!(hw <= leo, "{name}: HW {hw} above the log end {leo}");
        let mut found: BTreeMap<u64, i64> = BTreeMap::new();
        let mut offset = lso;
        while offset < leo {
            let r = log.read(offset, 1 << 20, i64::MAX, true)?;
            let region = r.region.context("no data before the log end")?;
            let bytes = region_bytes(&region)?;
            for (pos, h) in BatchIter::new(&bytes) {
                let size = h.total_size().context("batch size")?;
                let batch = RecordBatch::decode(
                    &bytes::Bytes::copy_from_slice(&bytes[pos..pos + size]),
                    1 << 20,
                )?;
                let Some(rec) = batch.records().next() else {
                    // The cleaner may keep a batch with every record removed.
                    offset = h.last_offset() + 1;
                    continue;
                };
                let rec = rec?;
                let value = rec.value.context("record without a value")?;
                ensure!(value.len() >= IDENT, "short value");
                let body = &value[..IDENT];
                let id = Uuid::from_bytes(body[..16].try_into()?);
                let partition = i32::from_be_bytes(body[16..20].try_into()?);
                let seq = u64::from_be_bytes(body[20..28].try_into()?);
                ensure!(
                    (id, partition) == key,
                    "{name}: offset {} holds a record of another partition or topic \
                     incarnation ({id:?}-{partition}, seq {seq})",
                    h.base_offset()
                );
                match all.get(&(id, partition, seq)) {
                    Some(&o) if o == h.base_offset() => {}
                    Some(&o) => bail!(
                        "{name}: record {seq} at offset {} but it was appended at {o}",
                        h.base_offset()
                    ),
                    None => bail!(
                        "{name}: record {seq} at {} was never appended",
                        h.base_offset()
                    ),
                }
                if found.insert(seq, h.base_offset()).is_some() {
                    bail!("{name}: record {seq} appears twice");
                }
                offset = h.last_offset() + 1;
            }
        }
        check_producer_state(p, &name).await?;
        let compacted = p.config().cleanup_policy.compact;
        for (seq, off) in x.acked.get(&key).into_iter().flatten() {
            if *off < lso {
                continue;
            }
            // Compaction may remove a record once a later one of its key is in.
            let superseded =
                compacted && found.iter().any(|(s, o)| s % KEYS == seq % KEYS && o > off);
            ensure!(
                superseded || found.get(seq) == Some(off),
                "{name}: acknowledged record {seq} at offset {off} is missing \
                 (log {lso}..{leo})"
            );
            ensure!(
                *off < hw,
                "{name}: acknowledged record at {off} is above the HW {hw}"
            );
        }
    }
    for p in &parts {
        p.close()?;
    }
    let deleted: Vec<&str> = NAMES
        .into_iter()
        .filter(|n| !x.topics.contains_key(*n) && x.ever.contains(*n))
        .collect();
    recreate(&image.dir, &deleted).await
}

/// Create `names` as new topics (one partition, the publish path), produce
/// to them, restart (the startup path) and check they hold just that.
async fn recreate(dir: &Path, names: &[&str]) -> Result<()> {
    let id = Uuid::from_bytes([0xee; 16]);
    let mut topics = BTreeMap::new();
    for name in names {
        let part = open_partition(
            dir,
            name,
            id,
            &partition_record(id, 0),
            Arc::new(topic_config(name)),
            crate::log::OpenOptions::default(),
            setup(0),
        )?;
        let log = part.log();
        ensure!(
            log.log_start_offset() == 0 && log.log_end_offset() == 0,
            "{name}-0 created again holds offsets {}..{} of the deleted topic",
            log.log_start_offset(),
            log.log_end_offset()
        );
        let b = ident_batch(id, 0, 1, 50)?;
        let a = part.append(&b, now_ms()).await?;
        part.request_flush();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        part.wait_committed(a.last_offset, a.leader_epoch, deadline)
            .await
            .map_err(|e| anyhow::anyhow!("acks=all wait failed: {e:?}"))?;
        part.close()?;
        topics.insert((*name).to_string(), (id, 1));
    }
    for p in open_all(dir, &topics)? {
        let log = p.log();
        ensure!(
            log.log_start_offset() == 0 && log.log_end_offset() == 1 && p.high_watermark() == 1,
            "{}-0 created again and restarted: offsets {}..{}, HW {} (want 0..1, HW 1)",
            p.topic,
            log.log_start_offset(),
            log.log_end_offset(),
            p.high_watermark()
        );
        p.close()?;
    }
    Ok(())
}

fn seed_from_env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// How a campaign chooses its cuts.
enum Cuts {
    /// `k` uniformly among all operations of the run.
    Sample(usize),
    /// Exactly these (replaying one).
    Fixed(Vec<Cut>),
}

/// Run `seed`'s workload under the recorder and verify every image. Returns
/// the number of operations, of images checked and of cleans that rewrote
/// segments.
async fn campaign(seed: u64, steps: usize, cuts: Cuts) -> Result<(u64, usize, u64)> {
    let root = tempfile::tempdir()?;
    let out = tempfile::tempdir()?;
    let replay = matches!(cuts, Cuts::Fixed(_));
    let rec = match cuts {
        Cuts::Sample(k) => Recorder::start_sampled(root.path(), out.path(), k, seed ^ 0x5eed)?,
        Cuts::Fixed(cuts) => Recorder::start(root.path(), out.path(), cuts, true)?,
    };
    let mut w = Workload {
        root: rec.root().to_path_buf(),
        rec: &rec,
        rng: SplitMix(seed),
        events: Vec::new(),
        topics: BTreeMap::new(),
        seq: 0,
        cleans: 0,
        sequences: HashMap::new(),
    };
    w.run(steps, seed.is_multiple_of(4))
        .await
        .with_context(|| format!("workload of seed {seed} failed"))?;
    let events = std::mem::take(&mut w.events);
    let cleans = w.cleans;
    for t in w.topics.values() {
        for p in &t.parts {
            p.close()?;
        }
    }
    drop(w);
    let ops = rec.ops();
    let (mut images, err) = rec.images();
    let trace = rec.trace();
    drop(rec);
    if let Some(e) = err {
        bail!("recorder failed (seed {seed}): {e}");
    }
    for (op, what) in &trace {
        println!("op {op}: {what}");
    }
    let _sink = Recorder::sink(out.path())?;
    let events = &events;
    let checked = check_cuts(seed, &mut images, |image| async move {
        verify(&image, events).await
    })
    .await;
    if let Err(e) = checked {
        let kept = out.keep();
        bail!("{e}\nimages kept in {}", kept.display());
    }
    if replay {
        let kept = out.keep();
        println!("images kept in {}", kept.display());
    }
    Ok((ops, images.len(), cleans))
}

/// Cut `seed`'s workload at `n` operations chosen by the seed.
async fn run_seed(seed: u64, steps: usize, n: usize) -> Result<usize> {
    let started = std::time::Instant::now();
    let (ops, checked, cleans) = campaign(seed, steps, Cuts::Sample(n)).await?;
    println!(
        "seed {seed}: {ops} operations, {cleans} cleans, {checked} cuts verified in {:?}",
        started.elapsed()
    );
    Ok(checked)
}

const STEPS: usize = 120;
const CUTS_PER_SEED: usize = 95;

macro_rules! power_loss_seeds {
    ($($name:ident: $seed:expr,)*) => {$(
        #[tokio::test]
        async fn $name() -> Result<()> {
            let checked = run_seed($seed, STEPS, CUTS_PER_SEED).await?;
            ensure!(checked == CUTS_PER_SEED, "only {checked} cuts");
            Ok(())
        }
    )*};
}

power_loss_seeds! {
    power_loss_seed_1: 1,
    power_loss_seed_2: 2,
    power_loss_seed_3: 3,
    power_loss_seed_4: 4,
    power_loss_seed_5: 5,
    power_loss_seed_6: 6,
    power_loss_seed_7: 7,
    power_loss_seed_8: 8,
    power_loss_seed_9: 9,
    power_loss_seed_10: 10,
    power_loss_seed_12: 12,
}

/// Replays one cut from the environment (see the module docs); a no-op otherwise.
#[tokio::test]
async fn power_loss_replay() -> Result<()> {
    let (Some(seed), Some(op)) = (
        seed_from_env("BROOK_POWER_SEED"),
        seed_from_env("BROOK_POWER_CUT"),
    ) else {
        return Ok(());
    };
    let cut = Cut {
        op,
        torn_seed: seed_from_env("BROOK_POWER_TORN"),
    };
    campaign(seed, STEPS, Cuts::Fixed(vec![cut])).await?;
    Ok(())
}

/// Produce `n` single-record batches with acks=all.
async fn produce_acked(part: &Partition, n: u64) -> Result<()> {
    for seq in 1..=n {
        let b = ident_batch(part.topic_id, part.index, seq, 50)?;
        let a = part.append(&b, now_ms()).await?;
        part.request_flush();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        part.wait_committed(a.last_offset, a.leader_epoch, deadline)
            .await
            .map_err(|e| anyhow::anyhow!("acks=all wait failed: {e:?}"))?;
    }
    Ok(())
}

fn open_new(dir: &Path, name: &str, id: Uuid) -> Result<Partition> {
    open_partition(
        dir,
        name,
        id,
        &partition_record(id, 0),
        Arc::new(topic_config(name)),
        crate::log::OpenOptions::default(),
        setup(0),
    )
}

/// Found by the campaign: a topic deleted just before a power cut (the
/// removal committed, the directory rename not yet durable) and then created
/// again under its name reopened the old directory: the new topic served the
/// deleted topic's records and appended after them.
#[tokio::test]
async fn regression_recreated_topic_does_not_inherit_a_deleted_topics_directory() -> Result<()> {
    let root = tempfile::tempdir()?;
    let dir = root.path();
    let (old, new) = (Uuid::from_bytes([1; 16]), Uuid::from_bytes([2; 16]));
    let part = open_new(dir, "t", old)?;
    produce_acked(&part, 3).await?;
    part.close()?;
    // The rename to `t-0.<id>-delete` was lost: `t-0` is back after restart.
    let part = open_new(dir, "t", new)?;
    ensure!(
        part.log().log_end_offset() == 0,
        "the new topic holds the old topic's offsets 0..{}",
        part.log().log_end_offset()
    );
    let meta = std::fs::read_to_string(dir.join("t-0").join("partition.metadata"))?;
    ensure!(
        meta.contains(&new.to_string()),
        "partition.metadata: {meta}"
    );
    let left: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    ensure!(
        left == vec![std::ffi::OsString::from("t-0")],
        "old directory left behind: {left:?}"
    );
    Ok(())
}

/// Found by the campaign: a power cut between a topic delete's directory
/// rename and its checkpoint rewrite left the deleted topic's entries in the
/// data-dir checkpoints, keyed by name. A topic created again under that name
/// after the restart took the old log start offset at its next restart,
/// hiding acknowledged records below it.
#[tokio::test]
async fn regression_stale_checkpoint_entries_do_not_apply_to_a_recreated_topic() -> Result<()> {
    let root = tempfile::tempdir()?;
    let dir = root.path();
    let (old, new) = (Uuid::from_bytes([1; 16]), Uuid::from_bytes([2; 16]));
    let part = open_new(dir, "t", old)?;
    produce_acked(&part, 5).await?;
    part.log().delete_records_before(4)?;
    crate::maintenance::write_checkpoint_files(dir, std::iter::once(&part));
    part.close()?;
    // The delete renamed the directory; power failed before the checkpoints
    // were rewritten without the topic.
    retire_partition_dir(dir, "t", 0, old).context("rename")?;
    open_all(dir, &BTreeMap::new())?;
    let part = open_new(dir, "t", new)?;
    produce_acked(&part, 2).await?;
    part.close()?;
    let topics = BTreeMap::from([("t".to_string(), (new, 1))]);
    let parts = open_all(dir, &topics)?;
    let log = parts[0].log();
    ensure!(
        log.log_start_offset() == 0 && log.log_end_offset() == 2,
        "re-created topic restarted with offsets {}..{} (want 0..2)",
        log.log_start_offset(),
        log.log_end_offset()
    );
    Ok(())
}

/// Also a topic whose directory is created at startup (its create committed,
/// its directory not yet durable) ignores checkpoint entries of its name.
#[tokio::test]
async fn regression_a_partition_directory_created_at_startup_ignores_checkpoints() -> Result<()> {
    let root = tempfile::tempdir()?;
    let dir = root.path();
    crate::log::write_offset_checkpoint(
        &dir.join("log-start-offset-checkpoint"),
        &[crate::log::TopicPartitionOffset {
            topic: "t".into(),
            partition: 0,
            offset: 500,
        }],
    )?;
    let topics = BTreeMap::from([("t".to_string(), (Uuid::from_bytes([2; 16]), 1))]);
    let parts = open_all(dir, &topics)?;
    let log = parts[0].log();
    ensure!(
        log.log_start_offset() == 0 && log.log_end_offset() == 0,
        "new partition starts at {}..{}",
        log.log_start_offset(),
        log.log_end_offset()
    );
    Ok(())
}

/// Found by the campaign: a power cut during a topic delete's background
/// removal (or before its unlinks were durable) left
/// `<topic>-<partition>.<id>-delete` directories that nothing ever removed.
#[tokio::test]
async fn regression_leftover_deleted_partition_directories_are_removed_at_startup() -> Result<()> {
    let root = tempfile::tempdir()?;
    let dir = root.path();
    let id = Uuid::from_bytes([1; 16]);
    let part = open_new(dir, "t", id)?;
    produce_acked(&part, 2).await?;
    part.close()?;
    retire_partition_dir(dir, "t", 0, id).context("rename")?;
    open_all(dir, &BTreeMap::new())?;
    let left: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with("-delete"))
        .collect();
    ensure!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}
