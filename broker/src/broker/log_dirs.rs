//! The broker's log directories (`log.dirs`, Kafka's JBOD): where each
//! partition lives, and which directories a storage failure took offline.
//!
//! - Placement: a partition stays in the directory that already holds it; a
//!   new one goes to the online directory hosting the fewest partitions (as
//!   Kafka does). The first directory also holds the metadata log, the
//!   views and `meta.properties` (every directory has its own copy).
//! - Failure: an I/O error on a partition's log (a failed write, fsync or
//!   ENOSPC) takes that partition's directory offline, with one error line
//!   naming it and the `brook_log_dir_offline` gauge. Every partition in it
//!   then refuses produce and fetch with KAFKA_STORAGE_ERROR; partitions in
//!   other directories keep serving. A directory stays offline until the
//!   broker restarts (Kafka's rule: the disk's state is unknown).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::error;

/// One directory of `log.dirs`.
#[derive(Debug)]
struct LogDir {
    path: PathBuf,
    offline: AtomicBool,
}

/// Every directory of `log.dirs`, in configuration order.
#[derive(Debug)]
pub struct LogDirs {
    dirs: Vec<LogDir>,
    /// Some directory is offline: until then the per-partition checks on
    /// every produce and fetch are one atomic load.
    any_offline: AtomicBool,
}

impl LogDirs {
    /// The directories of `log.dirs` (at least one; the config checks it).
    pub fn new(paths: &[PathBuf]) -> Self {
        Self {
            dirs: paths
                .iter()
                .map(|p| LogDir {
                    path: p.clone(),
                    offline: AtomicBool::new(false),
                })
                .collect(),
            any_offline: AtomicBool::new(false),
        }
    }

    /// Every directory, in configuration order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.path.as_path())
    }

    /// The directory holding partition directory `partition_dir`, if it is
    /// one of ours.
    fn of(&self, partition_dir: &Path) -> Option<&LogDir> {
        let parent = partition_dir.parent()?;
        self.dirs.iter().find(|d| d.path == parent)
    }

    /// Whether the directory holding `partition_dir` is offline.
    pub fn is_offline(&self, partition_dir: &Path) -> bool {
        self.any_offline.load(Ordering::Acquire)
            && self
                .of(partition_dir)
                .is_some_and(|d| d.offline.load(Ordering::Acquire))
    }

    /// Whether log directory `dir` itself is offline.
    pub fn dir_offline(&self, dir: &Path) -> bool {
        self.dirs
            .iter()
            .any(|d| d.path == dir && d.offline.load(Ordering::Acquire))
    }

    /// Take the directory holding `partition_dir` offline after `cause`.
    /// Returns whether it was online until now.
    pub fn fail(&self, partition_dir: &Path, cause: &str) -> bool {
        let Some(d) = self.of(partition_dir) else {
            return false;
        };
        let newly = !d.offline.swap(true, Ordering::AcqRel);
        self.any_offline.store(true, Ordering::Release);
        if newly {
            error!(
                log_dir = %d.path.display(),
                partition = %partition_dir.display(),
                cause,
                "log directory offline: its partitions refuse produce and fetch (KAFKA_STORAGE_ERROR) until the broker restarts; other log directories keep serving"
            );
        }
        newly
    }

    /// The offline directories.
    pub fn offline(&self) -> Vec<&Path> {
        self.dirs
            .iter()
            .filter(|d| d.offline.load(Ordering::Acquire))
            .map(|d| d.path.as_path())
            .collect()
    }

    /// Where partition `index` of `topic` lives: the directory that already
    /// has it, else the online directory with the fewest partitions by
    /// `load`. `None` when every directory is offline.
    pub fn place(&self, topic: &str, index: i32, load: impl Fn(&Path) -> usize) -> Option<PathBuf> {
        let name = format!("{topic}-{index}");
        if let Some(d) = self.dirs.iter().find(|d| d.path.join(&name).is_dir()) {
            return Some(d.path.clone());
        }
        self.dirs
            .iter()
            .filter(|d| !d.offline.load(Ordering::Acquire))
            .min_by_key(|d| load(&d.path))
            .map(|d| d.path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_keeps_existing_partitions_and_fills_the_emptiest_online_dir() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = LogDirs::new(&[a.path().to_path_buf(), b.path().to_path_buf()]);
        std::fs::create_dir_all(b.path().join("t-0")).unwrap();
        let load = |p: &Path| usize::from(p == a.path()) * 5;
        assert_eq!(dirs.place("t", 0, load).unwrap(), b.path(), "where it is");
        assert_eq!(
            dirs.place("t", 1, load).unwrap(),
            b.path(),
            "the emptier one"
        );
        let load = |p: &Path| usize::from(p == b.path()) * 5;
        assert_eq!(dirs.place("t", 1, load).unwrap(), a.path());
        // a goes offline: new partitions go to b, and a's partitions are
        // reported offline, b's are not.
        assert!(dirs.fail(&a.path().join("t-1"), "test"));
        assert!(!dirs.fail(&a.path().join("t-2"), "test"), "once");
        assert_eq!(dirs.place("t", 1, load).unwrap(), b.path());
        assert!(dirs.is_offline(&a.path().join("t-1")));
        assert!(!dirs.is_offline(&b.path().join("t-0")));
        assert_eq!(dirs.offline(), vec![a.path()]);
        assert!(dirs.fail(&b.path().join("t-0"), "test"));
        assert_eq!(dirs.place("t", 3, load), None, "nowhere online");
    }
}
