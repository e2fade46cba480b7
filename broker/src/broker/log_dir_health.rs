//! The broker's log directories: taking one offline after a storage failure
//! (and reporting its partitions to the controller), whether a partition can
//! serve, and where a new partition goes.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{log_dirs, Broker};
use crate::partition::Partition;

impl Broker {
    /// A storage failure on `part`'s log: take its log directory offline,
    /// and report every partition in it to the controller with the next
    /// heartbeat, which moves their leadership and ISR membership to healthy
    /// replicas on other brokers.
    pub fn set_offline(&self, part: &Partition, cause: &str) {
        self.log_dirs.fail(part.log().dir(), cause);
        let offline = self
            .topics()
            .iter()
            .flat_map(|t| {
                t.partitions()
                    .into_iter()
                    .filter(|p| self.partition_offline(p))
                    .map(|p| (t.id.to_string(), p.index))
            })
            .collect();
        self.membership.set_offline_partitions(offline);
    }

    /// Whether any log directory is offline.
    pub fn is_offline(&self) -> bool {
        !self.log_dirs.offline().is_empty()
    }

    /// Whether `part` cannot serve: its log or its log directory is offline.
    pub fn partition_offline(&self, part: &Partition) -> bool {
        part.log().is_offline() || self.log_dirs.is_offline(part.log().dir())
    }

    /// The log directories.
    pub fn log_dirs(&self) -> &log_dirs::LogDirs {
        &self.log_dirs
    }

    /// The log directory a new partition `index` of `topic` goes to (see
    /// [`log_dirs::LogDirs::place`]).
    pub(crate) fn place_partition(&self, topic: &str, index: i32) -> Option<PathBuf> {
        let mut load: HashMap<PathBuf, usize> = HashMap::new();
        for t in self.topics() {
            for p in t.partitions() {
                if let Some(dir) = p.log().dir().parent() {
                    *load.entry(dir.to_path_buf()).or_default() += 1;
                }
            }
        }
        self.log_dirs
            .place(topic, index, |d| load.get(d).copied().unwrap_or(0))
    }
}
