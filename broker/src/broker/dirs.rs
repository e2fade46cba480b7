//! The broker's partition directories on disk: opening a partition's
//! directory, the data-dir checkpoint files read at startup, retiring the
//! directory of a removed partition, and setting aside directories the
//! metadata does not place on this node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brook_config::TopicConfig;
use brook_protocol::codec::Uuid;
use tracing::{info, warn};

use super::log_config;
use crate::log::{read_offset_checkpoint, OpenOptions, PartitionLog};
use crate::metadata::MetadataImage;
use crate::partition::Partition;
use crate::producer_state::ProducerStateTable;

/// The data dir's checkpoint files as read at startup, keyed by (topic, partition).
#[derive(Debug, Default)]
pub(crate) struct StartupCheckpoints {
    recovery: HashMap<(String, i32), i64>,
    starts: HashMap<(String, i32), i64>,
    cleaned: HashMap<(String, i32), i64>,
    hws: HashMap<(String, i32), i64>,
}

impl StartupCheckpoints {
    /// Read them (absent files are empty, as on a first start).
    ///
    /// # Errors
    /// An unreadable or corrupt checkpoint file.
    pub(crate) fn load(data_dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            recovery: checkpoint_map(data_dir, "recovery-point-offset-checkpoint")?,
            starts: checkpoint_map(data_dir, "log-start-offset-checkpoint")?,
            cleaned: checkpoint_map(data_dir, crate::cleaner::CHECKPOINT_FILE)?,
            hws: checkpoint_map(data_dir, "replication-offset-checkpoint")?,
        })
    }

    /// Where the partition's log was durable, starts and was cleaned up to.
    pub(crate) fn open_options(
        &self,
        key: &(String, i32),
        syncer: Arc<dyn crate::log::Syncer>,
    ) -> OpenOptions {
        OpenOptions {
            recovery_point: self.recovery.get(key).copied().unwrap_or(0),
            log_start_offset: self.starts.get(key).copied().unwrap_or(0),
            cleaner_offset: self.cleaned.get(key).copied().unwrap_or(0),
            syncer,
            ..OpenOptions::default()
        }
    }

    /// The partition's high-water mark when it last stopped.
    pub(crate) fn hw(&self, key: &(String, i32)) -> i64 {
        self.hws.get(key).copied().unwrap_or(0)
    }
}

/// Read one of Kafka's offset-checkpoint files into a map; empty when absent.
fn checkpoint_map(dir: &Path, name: &str) -> anyhow::Result<HashMap<(String, i32), i64>> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(HashMap::new());
    }
    Ok(read_offset_checkpoint(&path)?
        .into_iter()
        .map(|e| ((e.topic, e.partition), e.offset))
        .collect())
}

/// Set aside partition directories the image does not place on this node
/// (reassigned away or deleted while it was down, or of an older topic with
/// the same name): they are renamed to `<dir>.<topic id>-stray` and kept, as
/// Kafka does (KIP-858), never opened or deleted. Only run with an image
/// that is current (after the broker caught up with the metadata log: the
/// image a node starts with may be empty or old), and never on a directory
/// of a partition that is `open` here.
pub(super) fn sweep_partition_dirs(
    data_dir: &Path,
    image: &MetadataImage,
    node: i32,
    open: &std::collections::HashSet<(String, i32)>,
) -> anyhow::Result<()> {
    if !data_dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Only partition directories: they name their topic's id.
        let Some(id) = stored_topic_id(&path) else {
            continue;
        };
        let Some((topic, index)) = name
            .rsplit_once('-')
            .and_then(|(t, i)| Some((t, i.parse::<i32>().ok()?)))
        else {
            continue;
        };
        if open.contains(&(topic.to_owned(), index)) {
            continue;
        }
        let hosted = image.topic(topic).is_some_and(|t| {
            t.id.to_string() == id
                && t.partitions
                    .get(&index)
                    .is_some_and(|p| p.replicas.contains(&node))
        });
        if !hosted {
            let stray = data_dir.join(format!("{name}.{id}-stray"));
            warn!(dir = %path.display(), to = %stray.display(), "the metadata does not place this partition on this node; setting its directory aside");
            crate::fsio::rename(&path, &stray)?;
            crate::fsio::sync_dir(data_dir)?;
        }
    }
    Ok(())
}

/// Once every hosted partition is open at startup, rewrite the data-dir
/// checkpoints: entries of topics deleted before the stop (a power loss can
/// keep them; they are keyed by name) must be gone before a topic can be
/// created again under the same name and inherit them.
pub(crate) fn rewrite_checkpoints_at_startup(data_dir: &Path, hosted: &[Arc<Partition>]) {
    crate::maintenance::write_checkpoint_files(
        data_dir,
        hosted
            .iter()
            .filter(|p| p.log().dir().parent() == Some(data_dir))
            .map(|p| &**p),
    );
}

/// Delete what topic deletes left behind: `<topic>-<partition>.<id>-delete`
/// directories whose background delete had not finished when the broker
/// stopped, or whose unlinks a power loss undid. (Live partition directories
/// end in their partition number, so none matches.) Failures are logged: a
/// leftover costs disk space, not correctness, and is retried next start.
pub(crate) fn remove_deleted_partition_dirs(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.ends_with("-delete"))
            && path.is_dir()
        {
            match crate::fsio::remove_dir_all(&path) {
                Ok(()) => {
                    info!(dir = %path.display(), "removed the directory of a deleted partition")
                }
                Err(e) => {
                    warn!(dir = %path.display(), error = %e, "cannot remove the directory of a deleted partition")
                }
            }
        }
    }
}

/// Rename a removed topic's partition directory out of the way (atomic, so a
/// crash cannot resurrect half a partition). Returns the renamed directory,
/// for the caller to delete in the background, or `None` when there was
/// nothing to rename.
pub(crate) fn retire_partition_dir(
    data_dir: &Path,
    topic: &str,
    index: i32,
    id: Uuid,
) -> Option<PathBuf> {
    let dir = data_dir.join(format!("{topic}-{index}"));
    // Unique per removal: a reassigned partition may come back and leave
    // again before an earlier copy is gone.
    let doomed = data_dir.join(format!(
        "{topic}-{index}.{id}.{:08x}-delete",
        rand::random::<u32>()
    ));
    crate::fsio::rename(&dir, &doomed).ok()?;
    // Make the rename durable now: until it is, a power loss brings the
    // directory back under the name a new topic may take.
    if let Err(e) = crate::fsio::sync_dir(data_dir) {
        warn!(dir = %data_dir.display(), error = %e, "syncing the data dir after a topic delete failed");
    }
    Some(doomed)
}

/// The topic id in a partition directory's `partition.metadata`, if it has one.
fn stored_topic_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("partition.metadata")).ok()?;
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "topic_id")
        .map(|(_, v)| v.trim().to_owned())
}

pub(crate) fn open_partition(
    data_dir: &Path,
    topic: &str,
    id: Uuid,
    record: &crate::metadata::PartitionRecord,
    tc: Arc<TopicConfig>,
    mut opts: OpenOptions,
    mut setup: crate::partition::ReplicaSetup,
) -> anyhow::Result<Partition> {
    let index = record.partition;
    let dir = data_dir.join(format!("{topic}-{index}"));
    if let Some(old) = stored_topic_id(&dir).filter(|old| *old != id.to_string()) {
        // The directory of a deleted topic of the same name: its delete was
        // not durable when power failed, or the broker stopped between the
        // committed removal and the rename. None of it belongs to this topic.
        warn!(topic, partition = index, old_topic_id = %old, "removing the directory of a deleted topic of the same name");
        let doomed = data_dir.join(format!("{topic}-{index}.{old}-delete"));
        crate::fsio::rename(&dir, &doomed)?;
        crate::fsio::sync_dir(data_dir)?;
        crate::fsio::remove_dir_all(&doomed)?;
    }
    let created = !dir.exists();
    crate::fsio::create_dir_all(&dir)?;
    if created {
        // Checkpoint entries are keyed by name: for a new directory they can
        // only be left from a deleted topic of the same name.
        opts.recovery_point = 0;
        opts.log_start_offset = 0;
        opts.cleaner_offset = 0;
        setup.hw = 0;
        // The new directory's entry must survive a power loss with its files.
        crate::log::checkpoint::sync_dir(data_dir)?;
    }
    let meta = dir.join("partition.metadata");
    if !meta.exists() {
        crate::log::checkpoint::write_atomically(
            &meta,
            format!("version: 0\ntopic_id: {id}\n").as_bytes(),
        )?;
    }
    let log = PartitionLog::open_with(&dir, log_config(&tc), opts)?;
    // After an unclean stop the recovered tail may be in the page cache only:
    // make it durable before anything of it is served, so an offset a consumer
    // reads can never vanish in a later power loss. A no-op after a clean stop.
    log.flush()?;
    let mut producers = ProducerStateTable::default();
    let loaded = crate::producer_state::snapshot::load(&log, &mut producers)?;
    tracing::debug!(dir = %dir.display(), snapshot = ?loaded.snapshot,
        replayed = loaded.replayed, "producer state loaded");
    let part = Partition::new(topic.into(), id, index, log, tc, producers, setup);
    part.assign(record);
    Ok(part)
}

#[cfg(test)]
mod sweep_tests {
    use super::*;
    use crate::metadata::{MetadataDelta, MetadataRecord, PartitionRecord};

    fn partition_dir(root: &Path, name: &str, id: Uuid) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("partition.metadata"),
            format!("version: 0\ntopic_id: {id}\n"),
        )
        .unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"data").unwrap();
        dir
    }

    /// A directory the image does not place on this node (reassigned away,
    /// or of an older topic with the same name) is set aside, never opened
    /// or deleted; a hosted one stays, and so does one open here.
    #[test]
    fn partitions_not_placed_here_are_set_aside_and_kept() {
        let root = tempfile::tempdir().unwrap();
        let (id, old_id) = (Uuid([7; 16]), Uuid([8; 16]));
        let mut image = MetadataImage::default();
        let mut records = vec![MetadataRecord::Topic {
            name: "t".into(),
            id,
        }];
        for (p, replicas) in [(0, vec![1, 2]), (1, vec![2, 3]), (2, vec![1])] {
            records.push(MetadataRecord::Partition(PartitionRecord {
                topic_id: id,
                partition: p,
                leader: replicas[0],
                isr: replicas.clone(),
                replicas,
                ..PartitionRecord::default()
            }));
        }
        image
            .replay_all(&records, &mut MetadataDelta::default())
            .unwrap();
        let hosted = partition_dir(root.path(), "t-0", id);
        let moved_away = partition_dir(root.path(), "t-1", id);
        let older_topic = partition_dir(root.path(), "t-2", old_id);
        std::fs::create_dir_all(root.path().join("views")).unwrap();

        // t-3 is not in the image, but open here: it is never touched.
        let open_here = partition_dir(root.path(), "t-3", id);
        let open = std::collections::HashSet::from([("t".to_owned(), 3)]);
        sweep_partition_dirs(root.path(), &image, 1, &open).unwrap();

        assert!(hosted.join("00000000000000000000.log").exists());
        assert!(open_here.join("00000000000000000000.log").exists());
        assert!(!moved_away.exists() && !older_topic.exists());
        for (name, topic) in [("t-1", id), ("t-2", old_id)] {
            let kept = root.path().join(format!("{name}.{topic}-stray"));
            assert!(
                kept.join("00000000000000000000.log").exists(),
                "{name} not kept as {}",
                kept.display()
            );
        }
        assert!(
            root.path().join("views").exists(),
            "other directories are left alone"
        );
        // A second sweep leaves the set-aside copies as they are.
        sweep_partition_dirs(root.path(), &image, 1, &open).unwrap();
        assert!(root.path().join(format!("t-1.{id}-stray")).exists());
    }
}
