//! The Raft state machine: wraps an [`App`], tracks what has been applied and
//! keeps the current snapshot on disk.
//!
//! # Snapshot file (`<dir>/current.snap`)
//!
//! ```text
//! len: u32 LE | crc: u32 LE | payload: [u8; len]
//! payload = postcard(StoredSnapshot { meta: SnapshotMeta, data: Vec<u8> })
//! crc     = crc32c(payload)
//! ```
//!
//! `data` is [`App::snapshot`]'s output; `meta` carries the last applied log
//! id and membership. The file is replaced by temp file + fsync + rename +
//! directory fsync, so after a crash it is the old or the new snapshot. A
//! damaged file makes [`StateMachine::open`] fail rather than start from an
//! empty state whose log may already be purged.
//!
//! # Concurrency
//!
//! openraft drives the state machine from one task. The [`App`] sits behind a
//! lock that [`AppHandle`] readers share; apply takes the write half for one
//! batch at a time. A snapshot builder captures the app's bytes, last applied
//! id and membership when it is created, so building and writing the file can
//! run while later entries are applied.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, OptionalSend, StorageIOError};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::fsutil;
use crate::types::{
    AppResponse, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const SNAPSHOT_FILE: &str = "current.snap";

/// Errors opening a [`StateMachine`].
#[derive(Debug, thiserror::Error)]
pub enum StateMachineError {
    /// The snapshot directory or file could not be read or created.
    #[error("snapshot I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The snapshot file is damaged or the app could not restore it.
    #[error("snapshot {path} unusable: {reason}")]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// Shared read access to the replicated [`App`].
#[derive(Debug)]
pub struct AppHandle<A> {
    app: Arc<RwLock<A>>,
}

impl<A> Clone for AppHandle<A> {
    fn clone(&self) -> Self {
        AppHandle {
            app: self.app.clone(),
        }
    }
}

impl<A: App> AppHandle<A> {
    /// Run `f` on the current state. Holds a read lock for the call: keep it short.
    pub fn read<R>(&self, f: impl FnOnce(&A) -> R) -> R {
        f(&self.app.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// openraft `RaftStateMachine` over an [`App`].
pub struct StateMachine<A> {
    app: Arc<RwLock<A>>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    store: Arc<SnapshotStore>,
}

impl<A> std::fmt::Debug for StateMachine<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("last_applied", &self.last_applied)
            .field("last_membership", &self.last_membership)
            .finish_non_exhaustive()
    }
}

/// The snapshot directory and the current snapshot, kept in memory (metadata
/// snapshots are small).
#[derive(Debug)]
struct SnapshotStore {
    dir: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
}

impl SnapshotStore {
    fn path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    /// Persist `snap` durably, then make it current.
    async fn save(self: &Arc<Self>, snap: StoredSnapshot) -> Result<(), StorageError> {
        let sig = Some(snap.meta.signature());
        let this = self.clone();
        let write = move || -> io::Result<StoredSnapshot> {
            let payload = postcard::to_allocvec(&snap).map_err(io::Error::other)?;
            let len = u32::try_from(payload.len())
                .map_err(|_| io::Error::other("snapshot larger than 4 GiB"))?;
            let mut bytes = Vec::with_capacity(payload.len() + 8);
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
            bytes.extend_from_slice(&payload);
            fsutil::write_atomic(&this.path(), &bytes)?;
            Ok(snap)
        };
        let snap = tokio::task::spawn_blocking(write)
            .await
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(|e| {
                StorageError::from(StorageIOError::write_snapshot(sig, AnyError::new(&e)))
            })?;
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        // A concurrent build may have finished later with an older snapshot.
        if cur
            .as_ref()
            .is_none_or(|c| c.meta.last_log_id <= snap.meta.last_log_id)
        {
            *cur = Some(snap);
        }
        Ok(())
    }

    fn load(dir: &Path) -> Result<Option<StoredSnapshot>, StateMachineError> {
        let path = dir.join(SNAPSHOT_FILE);
        let corrupt = |reason: String| StateMachineError::Corrupt {
            path: path.clone(),
            reason,
        };
        let Some(bytes) = fsutil::read_optional(&path).map_err(|source| StateMachineError::Io {
            path: path.clone(),
            source,
        })?
        else {
            return Ok(None);
        };
        let header = bytes
            .get(..8)
            .ok_or_else(|| corrupt("shorter than its header".into()))?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let payload = bytes
            .get(8..)
            .filter(|p| p.len() == len)
            .ok_or_else(|| corrupt(format!("length {len} does not match the file")))?;
        if crc32c::crc32c(payload) != crc {
            return Err(corrupt("checksum mismatch".into()));
        }
        postcard::from_bytes(payload)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }
}

fn sm_err(e: impl ToString) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e)).into()
}

impl<A: App> StateMachine<A> {
    /// Open the snapshot directory `dir` (creating it if needed) and restore
    /// `app` from the snapshot stored there, if any. openraft re-applies the
    /// log after the snapshot's last log id.
    ///
    /// # Errors
    ///
    /// I/O failures, or a snapshot that is damaged or that `app` rejects.
    pub fn open(dir: &Path, mut app: A) -> Result<StateMachine<A>, StateMachineError> {
        brook_fsio::create_dir_all_synced(dir).map_err(|source| StateMachineError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let current = SnapshotStore::load(dir)?;
        let (last_applied, last_membership) = match &current {
            Some(snap) => {
                app.restore(&snap.data)
                    .map_err(|reason| StateMachineError::Corrupt {
                        path: dir.join(SNAPSHOT_FILE),
                        reason,
                    })?;
                (snap.meta.last_log_id, snap.meta.last_membership.clone())
            }
            None => (None, StoredMembership::default()),
        };
        Ok(StateMachine {
            app: Arc::new(RwLock::new(app)),
            last_applied,
            last_membership,
            store: Arc::new(SnapshotStore {
                dir: dir.to_path_buf(),
                current: Mutex::new(current),
            }),
        })
    }

    /// A handle for reading the app's state.
    pub fn app(&self) -> AppHandle<A> {
        AppHandle {
            app: self.app.clone(),
        }
    }
}

/// Builds a snapshot from state captured when openraft asked for a builder.
pub struct SnapshotBuilder {
    meta: SnapshotMeta,
    data: Vec<u8>,
    store: Arc<SnapshotStore>,
}

impl std::fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let snap = StoredSnapshot {
            meta: self.meta.clone(),
            data: std::mem::take(&mut self.data),
        };
        let out = Snapshot {
            meta: snap.meta.clone(),
            snapshot: Box::new(Cursor::new(snap.data.clone())),
        };
        self.store.save(snap).await?;
        Ok(out)
    }
}

fn snapshot_id(last: Option<LogId>) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    match last {
        Some(l) => format!(
            "{}-{}-{}-{nanos:x}",
            l.leader_id.term, l.leader_id.node_id, l.index
        ),
        None => format!("none-{nanos:x}"),
    }
}

impl<A: App> RaftStateMachine<TypeConfig> for StateMachine<A> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<AppResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut app = self.app.write().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            match entry.payload {
                EntryPayload::Normal(req) => out.push(AppResponse(app.apply(log_id, &req.0))),
                EntryPayload::Blank => {
                    app.observe(log_id);
                    out.push(AppResponse::default());
                }
                EntryPayload::Membership(m) => {
                    app.observe(log_id);
                    self.last_membership = StoredMembership::new(Some(log_id), m);
                    out.push(AppResponse::default());
                }
            }
            self.last_applied = Some(log_id);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        let data = self
            .app
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .snapshot();
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id: snapshot_id(self.last_applied),
        };
        SnapshotBuilder {
            meta,
            data,
            store: self.store.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        {
            let mut app = self.app.write().unwrap_or_else(PoisonError::into_inner);
            app.restore(&data)
                .map_err(|e| sm_err(format!("installing snapshot {}: {e}", meta.snapshot_id)))?;
        }
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.store
            .save(StoredSnapshot {
                meta: meta.clone(),
                data,
            })
            .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let cur = self
            .store
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(cur.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use anyhow::{ensure, Result};
    use brook_fsio::sim::{Cut, Recorder};
    use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::KvApp;

    /// Found while putting the metadata log on the power-loss recorder:
    /// `open` created the snapshot directory without fsyncing its parent,
    /// so a snapshot built (and the log purged behind it) before anything
    /// else synced the node's directory could vanish in a power cut.
    #[tokio::test]
    async fn regression_a_built_snapshot_survives_a_power_cut() -> Result<()> {
        let root = tempfile::tempdir()?;
        let out = tempfile::tempdir()?;
        let cuts = (1..=40).map(|op| Cut {
            op,
            torn_seed: None,
        });
        let rec = Recorder::start(root.path(), out.path(), cuts, false)?;
        let dir = rec.root().join("quorum").join("snapshot");
        let mut sm = StateMachine::open(&dir, KvApp::default())?;
        let log_id = LogId::new(CommittedLeaderId::new(1, 1), 7);
        sm.apply([Entry {
            log_id,
            payload: EntryPayload::Blank,
        }])
        .await?;
        sm.get_snapshot_builder().await.build_snapshot().await?;
        let built = rec.ops();
        let (images, err) = rec.images();
        drop(rec);
        ensure!(err.is_none(), "{err:?}");
        ensure!(images.len() as u64 == built, "{} images", images.len());
        let _sink = Recorder::sink(out.path())?;
        let last = images.last().map(|i| i.op);
        for image in &images {
            image.materialize()?;
            let mut sm =
                StateMachine::open(&image.dir.join("quorum").join("snapshot"), KvApp::default())?;
            let (applied, _) = sm.applied_state().await?;
            if Some(image.op) == last {
                ensure!(
                    applied == Some(log_id),
                    "power cut after the snapshot was built (op {}): applied {applied:?}",
                    image.op
                );
            }
        }
        Ok(())
    }
}
