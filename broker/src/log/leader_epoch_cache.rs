//! Leader epoch cache: which leader epoch started at which offset, persisted as
//! `<partition dir>/leader-epoch-checkpoint`.
//!
//! - Byte layout: a checkpoint file (see `checkpoint`) with entries
//!   `<epoch> <start offset>`, epochs and start offsets strictly increasing.
//! - Used by OffsetForLeaderEpoch: [`LeaderEpochCache::end_offset_for`] tells a
//!   follower where the leader's log diverges from its own.
//! - Concurrency: `&mut self` for changes; the owner (`PartitionLog`) serialises them
//!   under its state lock. Every change rewrites the file atomically.
//! - Crash: the file is always a complete old or new version. It may hold entries
//!   past the recovered log end; opening the log truncates them (`truncate_from_end`).

use std::path::{Path, PathBuf};

use crate::log::checkpoint::{read_lines, write_lines};
use crate::log::error::LogError;

/// File name inside the partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// `(epoch, first offset written in that epoch)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The cache of one partition.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Load `dir/leader-epoch-checkpoint` (missing file = empty cache).
    ///
    /// # Errors
    /// I/O errors or [`LogError::CorruptCheckpoint`].
    pub fn load(dir: &Path) -> Result<Self, LogError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let mut entries = Vec::new();
        for line in read_lines(&path)?.unwrap_or_default() {
            let mut parts = line.split_whitespace();
            let parsed = match (parts.next(), parts.next(), parts.next()) {
                (Some(e), Some(o), None) => e.parse().ok().zip(o.parse().ok()),
                _ => None,
            };
            let Some((epoch, start_offset)) = parsed else {
                return Err(LogError::CorruptCheckpoint {
                    path,
                    reason: format!("malformed line {line:?}"),
                });
            };
            entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        Ok(Self { path, entries })
    }

    fn persist(&self) -> Result<(), LogError> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        write_lines(&self.path, &lines)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Record that `epoch` starts at `start_offset`. A no-op for the current epoch;
    /// entries that conflict (epoch ≥ `epoch` or start ≥ `start_offset`) are replaced,
    /// as Kafka does. Returns whether the cache changed.
    ///
    /// # Errors
    /// I/O errors writing the checkpoint.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, LogError> {
        if epoch < 0 || self.latest_epoch() == Some(epoch) {
            return Ok(false);
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.epoch >= epoch || e.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.persist()?;
        Ok(true)
    }

    /// OffsetForLeaderEpoch: `(largest epoch ≤ requested, end offset of that epoch)`,
    /// where the end offset is the next epoch's start or `log_end_offset` for the
    /// latest epoch. `(-1, -1)` when the cache is empty or `requested` is newer than
    /// every epoch.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        let Some(latest) = self.entries.last() else {
            return UNDEFINED;
        };
        if requested < 0 {
            return UNDEFINED;
        }
        if requested == latest.epoch {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return UNDEFINED;
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            // Older than every known epoch: the log diverges where the first one starts.
            None => (requested, higher.start_offset),
        }
    }

    /// Drop entries starting at or after `end_offset` (log truncated there).
    ///
    /// # Errors
    /// I/O errors writing the checkpoint.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), LogError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// The log now starts at `start_offset`: drop entries wholly below it and move the
    /// start of the one covering it up to `start_offset`.
    ///
    /// # Errors
    /// I/O errors writing the checkpoint.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), LogError> {
        let covering = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset);
        let Some(i) = covering else {
            return Ok(());
        };
        if i == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..i);
        if let Some(first) = self.entries.first_mut() {
            first.start_offset = start_offset;
        }
        self.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_lookup_truncate_and_persist() -> Result<(), LogError> {
        let dir = tempfile::tempdir().map_err(|e| LogError::io(Path::new("tmp"), e))?;
        let mut c = LeaderEpochCache::load(dir.path())?;
        assert_eq!(c.end_offset_for(0, 0), (-1, -1));
        assert!(c.assign(1, 0)?);
        assert!(!c.assign(1, 5)?);
        assert!(c.assign(3, 10)?);
        assert!(c.assign(5, 20)?);
        assert_eq!(c.end_offset_for(5, 30), (5, 30));
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(c.end_offset_for(4, 30), (3, 20));
        assert_eq!(c.end_offset_for(2, 30), (1, 10));
        assert_eq!(c.end_offset_for(0, 30), (0, 0));
        assert_eq!(c.end_offset_for(6, 30), (-1, -1));

        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT))
            .map_err(|e| LogError::io(dir.path(), e))?;
        assert_eq!(text, "0\n3\n1 0\n3 10\n5 20\n");

        c.truncate_from_end(15)?;
        assert_eq!(c.latest_epoch(), Some(3));
        c.truncate_from_start(12)?;
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 12
            }]
        );
        let reloaded = LeaderEpochCache::load(dir.path())?;
        assert_eq!(reloaded.entries(), c.entries());
        Ok(())
    }

    #[test]
    fn conflicting_assign_replaces_newer_entries() -> Result<(), LogError> {
        let dir = tempfile::tempdir().map_err(|e| LogError::io(Path::new("tmp"), e))?;
        let mut c = LeaderEpochCache::load(dir.path())?;
        c.assign(2, 0)?;
        c.assign(4, 10)?;
        // A follower replaying a leader whose epoch 3 started at 8.
        c.assign(3, 8)?;
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 2,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 8
                }
            ]
        );
        Ok(())
    }
}
