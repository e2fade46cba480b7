//! Kafka's checkpoint text files, written atomically.
//!
//! - Byte layout (UTF-8, `\n` line ends), as Kafka writes them:
//!   ```text
//!   <version>            always 0
//!   <count>
//!   <entry>              count lines
//!   ```
//!   For offset checkpoints (`recovery-point-offset-checkpoint`,
//!   `replication-offset-checkpoint`, `log-start-offset-checkpoint` in the data dir) an
//!   entry is `<topic> <partition> <offset>`; for `leader-epoch-checkpoint` it is
//!   `<epoch> <start offset>`.
//! - Atomicity: write `<name>.tmp`, fsync it, rename over `<name>`, fsync the directory.
//!   A crash leaves either the old or the new file, never a mix; a stale `.tmp` is
//!   simply overwritten next time.
//! - Concurrency: callers serialise writes to one file (the owner holds a lock); reads
//!   of a file being replaced see the old or the new version.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::log::error::{IoContext, LogError};

const VERSION: u32 = 0;

/// One line of an offset checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> LogError {
    LogError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Write `lines` under the version/count header, atomically.
///
/// # Errors
/// I/O errors; on error the previous file is left in place.
pub(crate) fn write_lines(path: &Path, lines: &[String]) -> Result<(), LogError> {
    let mut text = format!("{VERSION}\n{}\n", lines.len());
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    write_atomically(path, text.as_bytes())
}

/// Replace `path` with `bytes` so that a crash leaves the old or the new file:
/// write `<path>.tmp`, fsync it, rename it over `path`, fsync the directory.
///
/// # Errors
/// I/O errors; on error the previous file is left in place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    {
        let mut f = crate::fsio::open(
            OpenOptions::new().write(true).create(true).truncate(true),
            &tmp,
        )
        .at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        crate::fsio::sync_all(&f).at(&tmp)?;
    }
    crate::fsio::rename(&tmp, path).at(path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsync a directory so a rename or create in it is durable.
///
/// # Errors
/// I/O errors opening or syncing the directory.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    crate::fsio::sync_dir(dir).at(dir)
}

/// Read the entry lines; `None` when the file does not exist.
///
/// # Errors
/// I/O errors, or [`LogError::CorruptCheckpoint`] for a bad version/count.
pub(crate) fn read_lines(path: &Path) -> Result<Option<Vec<String>>, LogError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io(path, e)),
    };
    let mut lines = text.lines();
    let version = lines.next().ok_or_else(|| corrupt(path, "empty file"))?;
    if version.trim() != VERSION.to_string() {
        return Err(corrupt(path, format!("unsupported version {version:?}")));
    }
    let count: usize = lines
        .next()
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| corrupt(path, "missing or invalid entry count"))?;
    let entries: Vec<String> = lines
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if entries.len() != count {
        return Err(corrupt(
            path,
            format!("expected {count} entries, found {}", entries.len()),
        ));
    }
    Ok(Some(entries))
}

/// Write an offset checkpoint atomically.
///
/// # Errors
/// I/O errors; on error the previous file is left in place.
pub fn write_offset_checkpoint(
    path: &Path,
    entries: &[TopicPartitionOffset],
) -> Result<(), LogError> {
    let lines: Vec<String> = entries
        .iter()
        .map(|e| format!("{} {} {}", e.topic, e.partition, e.offset))
        .collect();
    write_lines(path, &lines)
}

/// Read an offset checkpoint; a missing file is an empty checkpoint.
///
/// # Errors
/// I/O errors or [`LogError::CorruptCheckpoint`].
pub fn read_offset_checkpoint(path: &Path) -> Result<Vec<TopicPartitionOffset>, LogError> {
    let Some(lines) = read_lines(path)? else {
        return Ok(Vec::new());
    };
    lines
        .iter()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let (Some(topic), Some(p), Some(o), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt(path, format!("malformed line {l:?}")));
            };
            Ok(TopicPartitionOffset {
                topic: topic.to_owned(),
                partition: p
                    .parse()
                    .map_err(|_| corrupt(path, format!("bad partition in {l:?}")))?,
                offset: o
                    .parse()
                    .map_err(|_| corrupt(path, format!("bad offset in {l:?}")))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomically_replaces_the_whole_file_and_leaves_no_temp() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("meta.properties");
        write_atomically(&path, b"version=1\nnode.id=1\n")?;
        write_atomically(&path, b"v2\n")?;
        anyhow::ensure!(fs::read(&path)? == b"v2\n");
        let names: Vec<_> = fs::read_dir(dir.path())?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        anyhow::ensure!(names.len() == 1, "left behind: {names:?}");
        Ok(())
    }

    fn tmp() -> Result<tempfile::TempDir, LogError> {
        tempfile::tempdir().map_err(|e| LogError::io(Path::new("tmp"), e))
    }

    #[test]
    fn round_trip_and_kafka_layout() -> Result<(), LogError> {
        let dir = tmp()?;
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert!(read_offset_checkpoint(&path)?.is_empty());
        let entries = vec![
            TopicPartitionOffset {
                topic: "orders.v1".into(),
                partition: 0,
                offset: 42,
            },
            TopicPartitionOffset {
                topic: "__consumer_offsets".into(),
                partition: 17,
                offset: 0,
            },
        ];
        write_offset_checkpoint(&path, &entries)?;
        let text = fs::read_to_string(&path).map_err(|e| LogError::io(&path, e))?;
        assert_eq!(text, "0\n2\norders.v1 0 42\n__consumer_offsets 17 0\n");
        assert_eq!(read_offset_checkpoint(&path)?, entries);
        write_offset_checkpoint(&path, &entries[..1])?;
        assert_eq!(read_offset_checkpoint(&path)?, entries[..1].to_vec());
        Ok(())
    }

    #[test]
    fn torn_tmp_file_does_not_affect_checkpoint() -> Result<(), LogError> {
        let dir = tmp()?;
        let path = dir.path().join("replication-offset-checkpoint");
        let e = vec![TopicPartitionOffset {
            topic: "t".into(),
            partition: 1,
            offset: 9,
        }];
        write_offset_checkpoint(&path, &e)?;
        // A crash mid-write leaves only a partial .tmp next to the intact file.
        let tmp_path = dir.path().join("replication-offset-checkpoint.tmp");
        fs::write(&tmp_path, "0\n5\nt 1").map_err(|err| LogError::io(&tmp_path, err))?;
        assert_eq!(read_offset_checkpoint(&path)?, e);
        write_offset_checkpoint(&path, &[])?;
        assert!(read_offset_checkpoint(&path)?.is_empty());
        Ok(())
    }

    #[test]
    fn corrupt_files_are_errors() -> Result<(), LogError> {
        let dir = tmp()?;
        let path = dir.path().join("cp");
        for bad in [
            "1\n0\n",
            "0\n2\nt 0 1\n",
            "0\n1\nt x 1\n",
            "0\n1\nt 0\n",
            "",
        ] {
            fs::write(&path, bad).map_err(|e| LogError::io(&path, e))?;
            assert!(
                matches!(
                    read_offset_checkpoint(&path),
                    Err(LogError::CorruptCheckpoint { .. })
                ),
                "{bad:?} should be rejected"
            );
        }
        Ok(())
    }
}
