//! Power-loss campaign for the metadata log (issue 13): a seeded workload
//! drives the [`LogStore`] through its openraft storage API under the
//! `brook_fsio` recorder, which rebuilds the directory as a disk would have
//! kept it after a power cut at randomly chosen operations (about half of
//! them with a torn last page); each rebuilt directory is reopened and checked
//! against what the store had reported durable before the cut.
//!
//! The workload: `open` of a fresh directory; appends of 1–4 entries (normal
//! and blank, with several appends in flight so the writer's group commit
//! fsyncs them together); truncates of a suffix (a follower's conflict); purges
//! of a prefix, each after the [`StateMachine`] beside the log built a snapshot
//! up to it, and purges past the last entry after it installed one, as openraft
//! orders them; saved votes; and small segments, so appends roll segments and
//! truncate and purge unlink them.
//!
//! After each cut the store opens without manual steps, and:
//! - every entry whose flush was reported before the cut is there with the
//!   same log id and payload, unless a truncate that returned before the cut
//!   removed it, a truncate in progress at the cut may have, or it is at or
//!   below the recovered purge point;
//! - every entry there was appended at that index and not removed by a
//!   truncate that returned before the cut;
//! - the entries run without a gap from just after the purge point (or from
//!   the first index ever appended) and the log state agrees with them;
//! - the purge point is one that was asked for, not older than the last purge
//!   that returned before the cut; the vote and the state machine's snapshot
//!   likewise; and the log is never purged past the snapshot;
//! - the store takes a new append, and a second reopen keeps everything.
//!
//! Replay one cut: `BROOK_POWER_SEED=<seed> BROOK_POWER_CUT=<op>
//! [BROOK_POWER_TORN=<n>] cargo nextest run -p brook-quorum
//! metadata_power_loss_replay --no-capture` prints the operation trace and
//! keeps the image. Which appends share an fsync depends on timing (the
//! writer takes what is queued), so a replay may number operations a little
//! differently; the failing image itself is kept on disk and named in the
//! error. The regression tests wait for every flush, so their operations are
//! the same on every run, and cut after each one. A longer run:
//! `BROOK_METADATA_POWER_SEEDS=<n>` runs `n` more seeds in
//! `metadata_power_loss_more_seeds`.
//!
//! The log directory is nested (`quorum/log`) and created by `open`, as the
//! controller's `<data>/__cluster_metadata-0/log` is.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};
use brook_fsio::sim::{check_cuts, Cut, Image, Recorder, SplitMix};
use std::io::Cursor;

use openraft::storage::{
    RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine,
};
use openraft::{CommittedLeaderId, EntryPayload};
use tokio::sync::oneshot;

use super::{LogOptions, LogStore};
use crate::app::{App, KvApp};
use crate::state_machine::StateMachine;
use crate::types::{AppRequest, Entry, LogId, SnapshotMeta, StoredMembership, TypeConfig, Vote};

const NODE: u64 = 1;
const SEGMENT_BYTES: u64 = 300;
const STEPS: usize = 70;
const CUTS_PER_SEED: usize = 80;

/// An entry as the model keeps it: log id and payload (`None`: blank).
type Model = (LogId, Option<Vec<u8>>);

#[derive(Debug, Clone)]
enum Event {
    /// Entries handed to `append` (written, not yet reported durable).
    Appended(Vec<Model>),
    /// The flush of the append at event position `.0` was reported.
    Flushed(usize),
    TruncateStarted(u64),
    Truncated(u64),
    PurgeStarted(LogId),
    Purged(LogId),
    VoteStarted(Vote),
    VoteSaved(Vote),
    /// The state machine is building or installing a snapshot up to this id.
    SnapshotStarted(LogId),
    SnapshotSaved(LogId),
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, NODE), index)
}

fn to_entry(m: &Model) -> Entry {
    Entry {
        log_id: m.0,
        payload: match &m.1 {
            Some(b) => EntryPayload::Normal(AppRequest(b.clone())),
            None => EntryPayload::Blank,
        },
    }
}

fn to_model(e: &Entry) -> Result<Model> {
    match &e.payload {
        EntryPayload::Normal(AppRequest(b)) => Ok((e.log_id, Some(b.clone()))),
        EntryPayload::Blank => Ok((e.log_id, None)),
        EntryPayload::Membership(_) => bail!("entry {} is a membership entry", e.log_id),
    }
}

fn options() -> LogOptions {
    LogOptions {
        segment_bytes: SEGMENT_BYTES,
        ..LogOptions::default()
    }
}

struct Workload<'a> {
    rec: &'a Recorder,
    rng: SplitMix,
    events: Vec<(u64, Event)>,
    /// The log as the workload built it (not purged away), by index.
    log: BTreeMap<u64, Model>,
    purged: Option<LogId>,
    term: u64,
    vote: Vote,
    /// Appends whose flush has not been reported: event position, receiver.
    inflight: Vec<(usize, oneshot::Receiver<std::io::Result<()>>)>,
    /// The state machine beside the log (`quorum/snapshot`), for the
    /// snapshots that purges follow.
    sm: StateMachine<KvApp>,
}

impl Workload<'_> {
    fn mark(&mut self, e: Event) -> usize {
        let op = self.rec.ops();
        self.events.push((op, e));
        self.events.len() - 1
    }

    fn next_index(&self) -> u64 {
        self.log
            .keys()
            .next_back()
            .map(|i| i + 1)
            .or(self.purged.map(|p| p.index + 1))
            .unwrap_or(0)
    }

    /// Record the flushes reported so far; with `all`, wait for every one.
    async fn collect_flushes(&mut self, all: bool) -> Result<()> {
        let mut still = Vec::new();
        for (pos, mut rx) in std::mem::take(&mut self.inflight) {
            let res = if all {
                Some(rx.await.context("flush callback dropped")?)
            } else {
                match rx.try_recv() {
                    Ok(r) => Some(r),
                    Err(oneshot::error::TryRecvError::Empty) => {
                        still.push((pos, rx));
                        None
                    }
                    Err(e) => bail!("flush callback dropped: {e}"),
                }
            };
            if let Some(r) = res {
                r.context("flush failed")?;
                self.mark(Event::Flushed(pos));
            }
        }
        self.inflight = still;
        Ok(())
    }

    async fn append(&mut self, store: &mut LogStore) -> Result<()> {
        let n = 1 + self.rng.below(4);
        let mut batch = Vec::new();
        let first = self.next_index();
        for index in first..first + n {
            let payload = (self.rng.below(6) != 0).then(|| {
                let len = 1 + self.rng.below(90) as usize;
                let tag = self.rng.next().to_le_bytes();
                (0..len).map(|i| tag[i % 8] ^ (i as u8)).collect()
            });
            batch.push((log_id(self.term, index), payload));
        }
        self.append_batch(store, batch).await
    }

    async fn append_batch(&mut self, store: &mut LogStore, batch: Vec<Model>) -> Result<()> {
        let entries = batch.iter().map(to_entry).collect();
        for m in &batch {
            self.log.insert(m.0.index, m.clone());
        }
        let pos = self.mark(Event::Appended(batch));
        let (tx, rx) = oneshot::channel();
        store.append_notify(entries, tx).await?;
        self.inflight.push((pos, rx));
        Ok(())
    }

    async fn truncate(&mut self, store: &mut LogStore) -> Result<()> {
        let Some((&first, _)) = self.log.first_key_value() else {
            return Ok(());
        };
        let last = self.next_index() - 1;
        let at = first + self.rng.below(last - first + 1);
        self.truncate_at(store, at).await
    }

    async fn truncate_at(&mut self, store: &mut LogStore, at: u64) -> Result<()> {
        let id = self.log[&at].0;
        self.mark(Event::TruncateStarted(at));
        store.truncate(id).await?;
        self.collect_flushes(false).await?;
        self.mark(Event::Truncated(at));
        self.log.split_off(&at);
        // The conflicting suffix came from an old leader; a new one writes on.
        self.term += 1;
        Ok(())
    }

    async fn purge(&mut self, store: &mut LogStore) -> Result<()> {
        let next = self.next_index();
        let from = self.purged.map_or(0, |p| p.index + 1);
        let id = if self.rng.below(5) == 0 {
            // A snapshot past the end of the log was installed.
            self.term += 1;
            log_id(self.term, next + self.rng.below(3))
        } else if next > from {
            let at = from + self.rng.below(next - from);
            self.log[&at].0
        } else {
            return Ok(());
        };
        // As openraft does: the state machine's snapshot covers `id` durably
        // before the log is purged up to it.
        self.mark(Event::SnapshotStarted(id));
        if id.index >= next {
            let meta = SnapshotMeta {
                last_log_id: Some(id),
                last_membership: StoredMembership::default(),
                snapshot_id: format!("installed-{}", id.index),
            };
            let data = KvApp::default().snapshot();
            self.sm
                .install_snapshot(&meta, Box::new(Cursor::new(data)))
                .await?;
        } else {
            self.sm
                .apply([Entry {
                    log_id: id,
                    payload: EntryPayload::Blank,
                }])
                .await?;
            self.sm
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await?;
        }
        self.mark(Event::SnapshotSaved(id));
        self.mark(Event::PurgeStarted(id));
        store.purge(id).await?;
        self.collect_flushes(false).await?;
        self.mark(Event::Purged(id));
        self.purged = Some(id);
        self.log = self.log.split_off(&(id.index + 1));
        Ok(())
    }

    async fn save_vote(&mut self, store: &mut LogStore) -> Result<()> {
        // Votes only grow: a new term, or the current vote committed.
        let vote = if self.rng.below(2) == 0 {
            self.term += 1;
            Vote::new(self.term, NODE + self.rng.below(3))
        } else {
            Vote {
                committed: true,
                ..self.vote
            }
        };
        self.vote = vote;
        self.mark(Event::VoteStarted(vote));
        store.save_vote(&vote).await?;
        self.collect_flushes(false).await?;
        self.mark(Event::VoteSaved(vote));
        Ok(())
    }

    async fn run(&mut self, store: &mut LogStore, steps: usize) -> Result<()> {
        for _ in 0..steps {
            match self.rng.below(10) {
                0..=5 => self.append(store).await?,
                6 => self.truncate(store).await?,
                7 => self.purge(store).await?,
                _ => self.save_vote(store).await?,
            }
            // Sometimes wait for the flushes; otherwise keep appending while
            // they are in flight.
            let wait = self.rng.below(3) == 0;
            self.collect_flushes(wait).await?;
        }
        Ok(())
    }
}

/// What the events say about a cut after operation `cut`.
#[derive(Debug, Default)]
struct Expect {
    /// Must be there (above the recovered purge point), by index.
    required: BTreeMap<u64, Model>,
    /// May be there, by index.
    allowed: BTreeMap<u64, Vec<Model>>,
    /// Purge points that may have been recorded, and the oldest acceptable.
    purges: Vec<LogId>,
    purged_floor: Option<LogId>,
    votes: Vec<Vote>,
    vote_floor: Option<Vote>,
    snapshots: Vec<LogId>,
    snapshot_floor: Option<LogId>,
    /// The first index ever appended.
    first_index: Option<u64>,
}

fn expect(events: &[(u64, Event)], cut: u64) -> Expect {
    let mut x = Expect::default();
    // A start counts if it may have happened before the cut (its operations
    // all come after the count read at the start); an end counts if it was
    // observed at or before the cut (its operations all came before).
    let started = |op: u64| op < cut;
    let ended = |op: u64| op <= cut;
    // Truncates that returned before the cut: (event position, index).
    let truncated: Vec<(usize, u64)> = events
        .iter()
        .enumerate()
        .filter_map(|(pos, (op, e))| match e {
            Event::Truncated(at) if ended(*op) => Some((pos, *at)),
            _ => None,
        })
        .collect();
    let removed = |pos: usize, index: u64| {
        truncated
            .iter()
            .any(|&(tpos, at)| tpos > pos && index >= at)
    };
    // Truncates possibly in progress at the cut: (start position, index).
    let mut in_progress: Vec<(usize, u64)> = Vec::new();
    for (pos, (op, e)) in events.iter().enumerate() {
        match e {
            Event::Appended(batch) if started(*op) => {
                for m in batch {
                    x.first_index.get_or_insert(m.0.index);
                    if !removed(pos, m.0.index) {
                        x.allowed.entry(m.0.index).or_default().push(m.clone());
                    }
                }
            }
            Event::Flushed(apos) if ended(*op) => {
                let Event::Appended(batch) = &events[*apos].1 else {
                    continue;
                };
                for m in batch {
                    let index = m.0.index;
                    let exempt = in_progress
                        .iter()
                        .any(|&(tpos, at)| tpos > *apos && index >= at);
                    if !removed(*apos, index) && !exempt {
                        x.required.insert(index, m.clone());
                    }
                }
            }
            Event::TruncateStarted(at) if started(*op) => {
                let done = events[pos..]
                    .iter()
                    .any(|(o, e)| matches!(e, Event::Truncated(t) if t == at) && ended(*o));
                if !done {
                    in_progress.push((pos, *at));
                    // Entries already required at or past it may go.
                    x.required.retain(|i, _| *i < *at);
                }
            }
            Event::Truncated(at) if ended(*op) => x.required.retain(|i, _| *i < *at),
            Event::PurgeStarted(id) if started(*op) => x.purges.push(*id),
            Event::Purged(id) if ended(*op) => x.purged_floor = Some(*id),
            Event::VoteStarted(v) if started(*op) => x.votes.push(*v),
            Event::VoteSaved(v) if ended(*op) => x.vote_floor = Some(*v),
            Event::SnapshotStarted(id) if started(*op) => x.snapshots.push(*id),
            Event::SnapshotSaved(id) if ended(*op) => x.snapshot_floor = Some(*id),
            _ => {}
        }
    }
    x
}

async fn read_all(store: &mut LogStore) -> Result<Vec<Model>> {
    store
        .try_get_log_entries(..)
        .await?
        .iter()
        .map(to_model)
        .collect()
}

/// Open the image's log and check it against the events.
async fn verify(image: &Image, events: &[(u64, Event)]) -> Result<()> {
    let x = expect(events, image.op);
    let dir = image.dir.join("quorum").join("log");
    let mut store = LogStore::open(&dir, options()).context("reopening the log")?;
    let exited = store.writer_exited();
    let state = store.get_log_state().await?;
    let vote = store.read_vote().await?;
    let entries = read_all(&mut store).await?;
    let purged = state.last_purged_log_id;
    let mut sm = StateMachine::open(&image.dir.join("quorum").join("snapshot"), KvApp::default())
        .context("reopening the state machine")?;
    let (applied, _) = sm.applied_state().await?;
    match applied {
        Some(a) => ensure!(
            x.snapshots.contains(&a) && x.snapshot_floor.is_none_or(|f| a.index >= f.index),
            "snapshot at {a} (built: {:?}; returned before the cut: {:?})",
            x.snapshots,
            x.snapshot_floor
        ),
        None => ensure!(
            x.snapshot_floor.is_none(),
            "snapshot lost (the one at {:?} had been saved)",
            x.snapshot_floor
        ),
    }
    ensure!(
        purged.is_none_or(|p| applied.is_some_and(|a| a.index >= p.index)),
        "log purged to {purged:?} but the state machine's snapshot is at {applied:?}"
    );

    match purged {
        Some(p) => ensure!(
            x.purges.contains(&p) && x.purged_floor.is_none_or(|f| p.index >= f.index),
            "purge point {p} (asked for: {:?}; returned before the cut: {:?})",
            x.purges,
            x.purged_floor
        ),
        None => ensure!(
            x.purged_floor.is_none(),
            "purge point lost (the purge to {:?} had returned)",
            x.purged_floor
        ),
    }
    match vote {
        Some(v) => ensure!(
            x.votes.contains(&v) && x.vote_floor.is_none_or(|f| v >= f),
            "vote {v} (saved: {:?}; returned before the cut: {:?})",
            x.votes,
            x.vote_floor
        ),
        None => ensure!(
            x.vote_floor.is_none(),
            "vote lost (saving {:?} had returned)",
            x.vote_floor
        ),
    }

    let mut want_index = purged.map(|p| p.index + 1).or(x.first_index);
    for m in &entries {
        let index = m.0.index;
        if let Some(w) = want_index {
            ensure!(index == w, "entry {} where index {w} was expected", m.0);
        }
        want_index = Some(index + 1);
        ensure!(
            x.allowed.get(&index).is_some_and(|a| a.contains(m)),
            "entry {} ({:?} payload bytes) was never appended there, or was truncated away",
            m.0,
            m.1.as_ref().map(Vec::len)
        );
    }
    let last = entries.last().map(|m| m.0).or(purged);
    ensure!(
        state.last_log_id == last,
        "log state says last {:?}, entries say {last:?}",
        state.last_log_id
    );
    let by_index: BTreeMap<u64, &Model> = entries.iter().map(|m| (m.0.index, m)).collect();
    for (index, m) in &x.required {
        if purged.is_some_and(|p| *index <= p.index) {
            continue;
        }
        ensure!(
            by_index.get(index) == Some(&m),
            "flushed entry {} lost or changed: found {:?}",
            m.0,
            by_index.get(index).map(|f| f.0)
        );
    }

    // It takes a new entry, and a second reopen keeps everything.
    let next = last.map_or(0, |l| l.index + 1);
    let term = last.map_or(1, |l| l.leader_id.term) + 1;
    let extra: Model = (log_id(term, next), Some(b"after the cut".to_vec()));
    RaftLogStorageExt::<TypeConfig>::blocking_append(&mut store, [to_entry(&extra)]).await?;
    drop(store);
    exited.await;
    let mut store = LogStore::open(&dir, options()).context("second reopen")?;
    let exited = store.writer_exited();
    let again = read_all(&mut store).await?;
    let mut want = entries;
    want.push(extra);
    ensure!(again == want, "second reopen differs");
    ensure!(
        store.read_vote().await? == vote,
        "second reopen: vote differs"
    );
    drop(store);
    exited.await;
    Ok(())
}

fn seed_from_env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

enum Cuts {
    Sample(usize),
    Fixed(Vec<Cut>),
}

/// Run `seed`'s workload under the recorder and verify every image; returns
/// the number of operations and of images checked.
async fn campaign(seed: u64, cuts: Cuts) -> Result<(u64, usize)> {
    recorded(seed, cuts, async |w, store| w.run(store, STEPS).await).await
}

/// Run `script` on a fresh log under the recorder and verify every image;
/// returns the number of operations and of images checked.
async fn recorded(
    seed: u64,
    cuts: Cuts,
    script: impl AsyncFnOnce(&mut Workload<'_>, &mut LogStore) -> Result<()>,
) -> Result<(u64, usize)> {
    let root = tempfile::tempdir()?;
    let out = tempfile::tempdir()?;
    let replay = matches!(cuts, Cuts::Fixed(_));
    let rec = match cuts {
        Cuts::Sample(k) => Recorder::start_sampled(root.path(), out.path(), k, seed ^ 0x5eed)?,
        Cuts::Fixed(cuts) => Recorder::start(root.path(), out.path(), cuts, true)?,
    };
    // Under a directory the store creates too, as `Quorum::start` does the
    // node's metadata directory; the state machine beside it, opened second.
    let dir = rec.root().join("quorum").join("log");
    let mut store = LogStore::open(&dir, options())?;
    let exited = store.writer_exited();
    let sm = StateMachine::open(
        &rec.root().join("quorum").join("snapshot"),
        KvApp::default(),
    )?;
    let mut w = Workload {
        rec: &rec,
        rng: SplitMix(seed),
        events: Vec::new(),
        log: BTreeMap::new(),
        purged: None,
        term: 1,
        vote: Vote::new(0, 0),
        inflight: Vec::new(),
        sm,
    };
    script(&mut w, &mut store)
        .await
        .with_context(|| format!("workload of seed {seed} failed"))?;
    w.collect_flushes(true).await?;
    drop(store);
    exited.await;
    let events = std::mem::take(&mut w.events);
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
    if replay {
        for (op, e) in &events {
            println!("at op {op}: {e:?}");
        }
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
    Ok((ops, images.len()))
}

async fn run_seed(seed: u64) -> Result<usize> {
    let started = std::time::Instant::now();
    let (ops, checked) = campaign(seed, Cuts::Sample(CUTS_PER_SEED)).await?;
    println!(
        "seed {seed}: {ops} operations, {checked} cuts verified in {:?}",
        started.elapsed()
    );
    Ok(checked)
}

macro_rules! metadata_power_loss_seeds {
    ($($name:ident: $seed:expr,)*) => {$(
        #[tokio::test]
        async fn $name() -> Result<()> {
            let checked = run_seed($seed).await?;
            ensure!(checked == CUTS_PER_SEED, "only {checked} cuts");
            Ok(())
        }
    )*};
}

metadata_power_loss_seeds! {
    metadata_power_loss_seed_1: 1,
    metadata_power_loss_seed_2: 2,
    metadata_power_loss_seed_3: 3,
    metadata_power_loss_seed_4: 4,
    metadata_power_loss_seed_5: 5,
    metadata_power_loss_seed_6: 6,
}

/// `BROOK_METADATA_POWER_SEEDS=<n>` runs seeds 100..100+n; a no-op otherwise.
#[tokio::test]
async fn metadata_power_loss_more_seeds() -> Result<()> {
    let Some(n) = seed_from_env("BROOK_METADATA_POWER_SEEDS") else {
        return Ok(());
    };
    let mut checked = 0;
    for seed in 100..100 + n {
        checked += run_seed(seed).await?;
    }
    println!("{n} seeds, {checked} cuts verified");
    Ok(())
}

/// Replays one cut from the environment (see the module docs); a no-op otherwise.
#[tokio::test]
async fn metadata_power_loss_replay() -> Result<()> {
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
    campaign(seed, Cuts::Fixed(vec![cut])).await?;
    Ok(())
}

/// A cut after every operation of `script` (whose operations must not depend
/// on timing: it waits for each flush).
async fn every_cut(
    script: impl AsyncFnOnce(&mut Workload<'_>, &mut LogStore) -> Result<()>,
) -> Result<usize> {
    let cuts = (1..=400)
        .map(|op| Cut {
            op,
            torn_seed: None,
        })
        .collect();
    let (ops, checked) = recorded(0, Cuts::Fixed(cuts), script).await?;
    ensure!(
        ops < 400 && checked as u64 == ops,
        "{checked} of {ops} cuts checked"
    );
    Ok(checked)
}

/// An entry of `len` payload bytes at `index` in term 1.
fn sized(index: u64, len: usize) -> Model {
    (log_id(1, index), Some(vec![index as u8; len]))
}

/// Found by the campaign (seed 1, cut 11, torn): an append that rolled the
/// segment wrote its first frames to the old segment, but the roll fsynced the
/// old segment only when an earlier append was waiting for a flush. The
/// append's callback then fired after an fsync of the new segment alone: after
/// a power cut the old segment lacked acknowledged entries (or had a torn
/// tail), and the log refused to open.
#[tokio::test]
async fn regression_an_append_that_rolls_the_segment_is_durable_in_both() -> Result<()> {
    every_cut(async |w, store| {
        // 0..=1 fill most of the first segment and are flushed; the batch
        // 2..=3 puts 2 in the first segment and rolls for 3.
        w.append_batch(store, vec![sized(0, 100), sized(1, 100)])
            .await?;
        w.collect_flushes(true).await?;
        w.append_batch(store, vec![sized(2, 40), sized(3, 100)])
            .await?;
        w.collect_flushes(true).await?;
        w.append_batch(store, vec![sized(4, 10)]).await?;
        w.collect_flushes(true).await
    })
    .await?;
    Ok(())
}

/// Found by the campaign (seed 3, cut 84): a truncate into an older segment
/// unlinked the newer segments but made the cut of the older one durable
/// before the unlinks; a power cut in between brought the newer segments back
/// behind a gap, and the log refused to open.
#[tokio::test]
async fn regression_a_truncate_across_segments_never_leaves_a_gap() -> Result<()> {
    every_cut(async |w, store| {
        for i in 0..8 {
            w.append_batch(store, vec![sized(i, 100)]).await?;
            w.collect_flushes(true).await?;
        }
        w.truncate_at(store, 2).await?;
        w.append_batch(store, vec![(log_id(2, 2), Some(b"new leader".to_vec()))])
            .await?;
        w.collect_flushes(true).await
    })
    .await?;
    Ok(())
}

/// Found by the campaign once its log directory was nested like the
/// controller's (`<data>/__cluster_metadata-0/log`): `open` created both
/// directories but fsynced only the log directory's parent, so the node's
/// metadata directory, with every vote and entry in it, could vanish in a
/// power cut until something else fsynced the data directory.
#[tokio::test]
async fn regression_a_new_metadata_directory_survives_a_power_cut() -> Result<()> {
    every_cut(async |w, store| {
        w.save_vote(store).await?;
        w.append_batch(store, vec![sized(0, 10)]).await?;
        w.collect_flushes(true).await
    })
    .await?;
    Ok(())
}
