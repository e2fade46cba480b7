//! One materialized view: an lsm-tree fed by [`View::apply`], read by
//! [`View::get`] / [`View::scan`], maintained by [`View::maybe_flush`] and
//! [`View::maybe_compact`].
//!
//! # Layout
//! - this file: opening, the apply path, the published snapshot.
//! - `read`: point reads and snapshot-pinned scans.
//! - `maintain`: rotate/flush, compaction, stats.
//! - `markers`: dropping expired deleted-key markers.
//!
//! # On disk
//! `<dir>/view.json` holds the definition (written once, checked on reopen so a
//! changed definition is never applied on top of old state); `<dir>/tree/` is
//! the lsm-tree with the key layout of [`crate::keys`]. The tree has no WAL:
//! unflushed batches are lost in a crash and replayed from the changelog,
//! starting at the META offsets persisted with the flushed data.
//!
//! # Concurrency
//! `View` is `Send + Sync` and shared as `Arc<View>`. One writer at a time
//! (apply and memtable rotation share the writer lock, so a batch never spans
//! two memtables); any number of readers, each reading one snapshot seqno.
//! Every method does blocking I/O except [`View::wait_for`] and
//! [`View::subscribe`]: call them from a blocking thread.

mod maintain;
mod markers;
mod read;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brook_protocol::records::Record;
use lsm_tree::compaction::{CompactionStrategy, Leveled};
use lsm_tree::{AbstractTree, AnyTree, Config, Guard as _, SequenceNumberCounter};
use tokio::sync::watch;

use crate::def::ViewDef;
use crate::error::{Result, ViewError};
use crate::fold::{Compiled, Outcome, SkipReason};
use crate::keys::{self, AppliedOffsets};
use crate::options::{SharedResources, ViewOptions};
use crate::probe::Probe;
use crate::snapshot::Snapshots;

pub use maintain::ViewStats;
pub use read::{Entry, Lookup, ScanPage, ScanRequest};

/// The newest applied state readers may see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Reads at this seqno see every applied batch and nothing partial.
    pub snapshot: u64,
    /// Next offset to apply per source partition, as of `snapshot`.
    pub offsets: AppliedOffsets,
}

/// What one [`View::apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Records folded into the view.
    pub applied: u64,
    /// Records skipped (bad key/value/field).
    pub skipped: u64,
    /// Records below the partition's next offset (already applied).
    pub duplicates: u64,
    /// The partition's next offset afterwards.
    pub next_offset: i64,
}

#[derive(Debug)]
struct Writer {
    offsets: AppliedOffsets,
    since_flush: u64,
    last_flush: Instant,
    /// Whether MARKER rows may exist; while false, writing a key needs no
    /// marker lookup (insert-only views pay nothing for markers).
    markers: bool,
    /// When [`View::maybe_compact`] last dropped expired markers.
    last_sweep: Option<Instant>,
}

/// The final outcome of one apply for one key.
#[derive(Debug)]
enum Pending {
    /// Store this value (and drop the key's marker, if any).
    Put(Vec<u8>),
    /// Remove the key; the tombstone at this offset deleted it.
    Delete(i64),
}

/// Wall clock in Unix milliseconds (0 before the epoch).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A materialized view store.
pub struct View {
    def: ViewDef,
    compiled: Compiled,
    dir: PathBuf,
    tree: AnyTree,
    seqno: SequenceNumberCounter,
    writer: Mutex<Writer>,
    published: watch::Sender<Arc<Published>>,
    snapshots: Snapshots,
    options: ViewOptions,
    strategy: Arc<dyn CompactionStrategy + Send + Sync>,
    incarnation: u64,
    probe: Probe,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("name", &self.def.name)
            .field("dir", &self.dir)
            .field("published", &self.published.borrow())
            .finish_non_exhaustive()
    }
}

const DEF_FILE: &str = "view.json";
const TREE_DIR: &str = "tree";

impl View {
    /// Open (or create) the view stored in `dir`, resuming from the offsets
    /// persisted in its tables.
    ///
    /// # Errors
    /// [`ViewError::Def`] for an invalid definition or one that differs from
    /// the definition the directory was created with; storage and I/O errors.
    pub fn open(
        dir: &Path,
        def: ViewDef,
        options: ViewOptions,
        shared: &SharedResources,
    ) -> Result<View> {
        let compiled = Compiled::new(&def)?;
        std::fs::create_dir_all(dir)?;
        check_or_write_def(dir, &def)?;

        let seqno = SequenceNumberCounter::default();
        // lsm-tree's defaults keep a bloom filter (10 bits per key) on every table,
        // so point reads of absent keys skip the tables that cannot hold them.
        let tree = Config::new(
            dir.join(TREE_DIR),
            seqno.clone(),
            SequenceNumberCounter::default(),
        )
        .use_cache(shared.cache.clone())
        .use_descriptor_table(Some(shared.descriptors.clone()))
        .open()?;
        // Nothing is in a memtable after open, so the highest persisted seqno is
        // the last durable batch; seqno 0 may hold compacted (zeroed) rows, so
        // reads start at 1 at least.
        let visible = tree.get_highest_persisted_seqno().map_or(1, |s| s + 1);
        seqno.set(visible);

        let mut offsets = BTreeMap::new();
        for item in tree.prefix([keys::META_TAG], visible, None) {
            let (k, v) = item.into_inner()?;
            let (p, o) = keys::decode_meta(&k, &v)?;
            offsets.insert(p, o);
        }
        let markers = tree
            .prefix([keys::MARKER_TAG], visible, None)
            .next()
            .is_some();
        tracing::info!(view = %def.name, ?offsets, seqno = visible, markers, "opened view");

        let strategy = Arc::new(
            Leveled::default()
                .with_table_target_size(options.table_target_size)
                .with_l0_threshold(options.l0_threshold),
        );
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let (published, _) = watch::channel(Arc::new(Published {
            snapshot: visible,
            offsets: offsets.clone(),
        }));
        Ok(View {
            probe: Probe::new(&def.name),
            def,
            compiled,
            dir: dir.to_path_buf(),
            tree,
            seqno,
            writer: Mutex::new(Writer {
                offsets,
                since_flush: 0,
                last_flush: Instant::now(),
                markers,
                last_sweep: None,
            }),
            published,
            snapshots: Snapshots::default(),
            options,
            strategy,
            incarnation,
        })
    }

    /// The definition.
    pub fn def(&self) -> &ViewDef {
        &self.def
    }

    /// The options.
    pub fn options(&self) -> &ViewOptions {
        &self.options
    }

    /// The newest published state (snapshot seqno and applied offsets).
    pub fn published(&self) -> Arc<Published> {
        self.published.borrow().clone()
    }

    /// Next offset to apply for `partition` (0 if never applied).
    pub fn next_offset(&self, partition: i32) -> i64 {
        self.published
            .borrow()
            .offsets
            .get(&partition)
            .copied()
            .unwrap_or(0)
    }

    /// A receiver that sees every published state, for read-your-writes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.published.subscribe()
    }

    /// Wait until the view has applied `offset` of `partition` (its next offset
    /// is above it). `Ok(false)` on timeout. Async and cheap: no I/O.
    ///
    /// # Errors
    /// None today; kept fallible for a closed view.
    pub async fn wait_for(&self, partition: i32, offset: i64, timeout: Duration) -> Result<bool> {
        let mut rx = self.published.subscribe();
        let done = |p: &Arc<Published>| p.offsets.get(&partition).is_some_and(|&n| n > offset);
        let reached =
            tokio::time::timeout(timeout, async move { rx.wait_for(done).await.is_ok() }).await;
        Ok(reached.unwrap_or(false))
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // Writer state is only changed after the tree writes succeed, so a
        // panic elsewhere cannot leave it half-updated.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Apply records of one source partition as ONE seqno: their user rows,
    /// the MARKER rows of keys they delete or write again (see [`crate::keys`]),
    /// and the partition's META row (`next_offset`, or past the last record if
    /// higher). Records below the stored next offset are ignored, so replaying
    /// the same data is a no-op and aggregates never count twice.
    ///
    /// # Errors
    /// [`ViewError::Corrupt`] if an aggregate's stored state is unreadable and
    /// storage errors reading it; nothing is written then.
    pub fn apply(
        &self,
        partition: i32,
        records: &[Record],
        next_offset: i64,
    ) -> Result<ApplyStats> {
        let mut w = self.writer();
        let start = w.offsets.get(&partition).copied().unwrap_or(0);
        let read_at = self.published.borrow().snapshot;
        let mut stats = ApplyStats::default();
        // Final outcome per key: one write per key per seqno (two writes of a
        // key under one seqno would be ambiguous in the memtable).
        let mut pending: BTreeMap<Vec<u8>, Pending> = BTreeMap::new();
        let mut end = start.max(next_offset);
        for r in records {
            if r.offset < start {
                stats.duplicates += 1;
                continue;
            }
            end = end.max(r.offset.saturating_add(1));
            let key = match r.key.as_deref().map(|k| self.compiled.key(k)) {
                Some(Ok(k)) => k,
                Some(Err(reason)) => {
                    self.skip(&mut stats, reason);
                    continue;
                }
                None => {
                    self.skip(&mut stats, SkipReason::NullKey);
                    continue;
                }
            };
            let outcome = if self.compiled.reads_state() {
                let current = match pending.get(&key) {
                    Some(Pending::Put(v)) => Some(v.clone()),
                    Some(Pending::Delete(_)) => None,
                    None => self
                        .tree
                        .get(keys::user_key(&key), read_at)?
                        .map(|s| s.to_vec()),
                };
                self.compiled.fold(current.as_deref(), r.value.as_deref())?
            } else {
                self.compiled.fold(None, r.value.as_deref())?
            };
            match outcome {
                Outcome::Put(v) => {
                    pending.insert(key, Pending::Put(v));
                }
                Outcome::Delete => {
                    pending.insert(key, Pending::Delete(r.offset));
                }
                Outcome::Skip(reason) => {
                    self.skip(&mut stats, reason);
                    continue;
                }
            }
            stats.applied += 1;
        }
        stats.next_offset = end;
        if pending.is_empty() && end == start && w.offsets.contains_key(&partition) {
            return Ok(stats);
        }

        // Reads before the first write: the memtable must only ever hold whole
        // batches, so a storage error here leaves nothing half-written.
        let mut stale_markers = Vec::new();
        if w.markers {
            for (key, p) in &pending {
                if matches!(p, Pending::Put(_)) {
                    let marker = keys::marker_key(key);
                    if self.tree.contains_key(&marker, read_at)? {
                        stale_markers.push(marker);
                    }
                }
            }
        }
        let written_ms = now_ms();
        let seq = self.seqno.next();
        for (key, p) in pending {
            let tree_key = keys::user_key(&key);
            let _ = match p {
                Pending::Put(v) => self.tree.insert(tree_key, v, seq),
                Pending::Delete(offset) => {
                    w.markers = true;
                    let marker = keys::Marker { offset, written_ms };
                    let _ = self
                        .tree
                        .insert(keys::marker_key(&key), marker.encode(), seq);
                    self.tree.remove(tree_key, seq)
                }
            };
        }
        for marker in stale_markers {
            let _ = self.tree.remove(marker, seq);
        }
        let _ = self
            .tree
            .insert(keys::meta_key(partition), end.to_be_bytes(), seq);

        w.offsets.insert(partition, end);
        w.since_flush = w
            .since_flush
            .saturating_add(u64::try_from(end - start).unwrap_or(0));
        self.published.send_replace(Arc::new(Published {
            snapshot: seq + 1,
            offsets: w.offsets.clone(),
        }));
        self.probe.applied.increment(stats.applied);
        Ok(stats)
    }

    fn skip(&self, stats: &mut ApplyStats, reason: SkipReason) {
        stats.skipped += 1;
        self.probe.skipped(reason);
    }
}

/// The definition a directory was created with must match what is opened:
/// applying new semantics on top of old state would silently corrupt it.
fn check_or_write_def(dir: &Path, def: &ViewDef) -> Result<()> {
    let path = dir.join(DEF_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let stored: ViewDef = serde_json::from_slice(&bytes)
                .map_err(|e| ViewError::Corrupt(format!("{}: {e}", path.display())))?;
            if stored != *def {
                return Err(crate::def::DefError::Inconsistent(format!(
                    "view `{}` was created with a different definition ({}); drop its directory to rebuild it",
                    def.name,
                    String::from_utf8_lossy(&bytes)
                ))
                .into());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let json = serde_json::to_vec(def)
                .map_err(|e| ViewError::Corrupt(format!("serializing definition: {e}")))?;
            let tmp = dir.join(format!("{DEF_FILE}.tmp"));
            std::fs::write(&tmp, json)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
