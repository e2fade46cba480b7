//! Replacing cleaned segments crash-safely (Kafka's swap scheme), and finishing a
//! half-done swap when a log is opened.
//!
//! Files of a cleaned group whose first segment has base `B`:
//!
//! ```text
//! B.log.cleaned  B.index.cleaned  B.timeindex.cleaned   being written; a crash: deleted
//! B.log.swap     B.index.swap     B.timeindex.swap      committed: a crash is finished
//! B.log          B.index          B.timeindex           in place
//! ```
//!
//! Steps, under the log's write lock (the cleaned files were written and fsynced
//! before it was taken):
//! 1. check the source segments are still the ones that were read (else abort);
//! 2. rename the three `.cleaned` files to `.swap`, fsync the directory: the swap is
//!    now committed;
//! 3. delete the other source segments of the group;
//! 4. rename the index `.swap` files, then `B.log.swap`, over their final names
//!    (replacing the old `B.*`), fsync the directory;
//! 5. open the new segment and put it in the segment set.
//!
//! On open ([`finish_swaps`]), before segments are loaded: `.cleaned` files are
//! deleted; for each `B.log.swap`, every segment whose base lies in the swap's offset
//! range `[B, end)` is deleted (the cleaner keeps the group's last batch, at least as a
//! header, so `end` is the group's end) and the swap files are renamed into place.
//!
//! Readers are unaffected: a fetch that found a region of an old segment holds its
//! file descriptor, so it finishes reading the old inode after the rename or unlink.

use std::fs;
use std::path::{Path, PathBuf};

use brook_protocol::records::{BatchHeader, BATCH_HEADER_LEN};

use crate::log::checkpoint::sync_dir;
use crate::log::cleaner::select::SegmentFile;
use crate::log::config::LogConfig;
use crate::log::error::{IoContext, LogError};
use crate::log::partition_log::LogState;
use crate::log::segment::{file_name, Segment};

/// Suffix of a cleaned segment being written.
pub const CLEANED: &str = ".cleaned";
/// Suffix of a cleaned segment whose swap is committed.
pub const SWAP: &str = ".swap";

const EXTS: [&str; 3] = ["index", "timeindex", "log"];

/// Where a crash may be injected in tests: after step `n` of the swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapStep {
    Committed,
    OldDeleted,
    Renamed,
}

fn path_of(dir: &Path, base: i64, ext: &str, suffix: &str) -> PathBuf {
    dir.join(file_name(base, ext) + suffix)
}

fn rename_all(dir: &Path, base: i64, from: &str, to: &str) -> Result<(), LogError> {
    for ext in EXTS {
        let src = path_of(dir, base, ext, from);
        if src.exists() {
            crate::fsio::rename(&src, &path_of(dir, base, ext, to)).at(&src)?;
        }
    }
    Ok(())
}

/// Remove the `.cleaned` files of `base` (an aborted or failed clean).
pub(crate) fn discard_cleaned(dir: &Path, base: i64) {
    for ext in EXTS {
        let _ = crate::fsio::remove_file(&path_of(dir, base, ext, CLEANED));
    }
}

/// Swap `cleaned` in for `group` in `st` (steps 1–5 above). `crash_after` stops
/// early, as a crash would, for tests.
///
/// # Errors
/// [`LogError::CleaningAborted`] when a source segment changed (nothing swapped);
/// I/O errors after the commit point, which the caller must treat as fatal for the log.
pub(crate) fn swap_in(
    dir: &Path,
    st: &mut LogState,
    cleaned: Segment,
    group: &[SegmentFile],
    config: &LogConfig,
    now_ms: i64,
    crash_after: Option<SwapStep>,
) -> Result<(), LogError> {
    let base = cleaned.base_offset();
    let unchanged = group.iter().all(|src| {
        st.segments
            .floor(src.base_offset)
            .is_some_and(|seg| src.is(seg))
    });
    let active = st.segments.active().map(Segment::base_offset);
    if !unchanged || group.iter().any(|s| Some(s.base_offset) == active) {
        drop(cleaned);
        discard_cleaned(dir, base);
        return Err(LogError::CleaningAborted {
            dir: dir.to_path_buf(),
        });
    }
    drop(cleaned);
    rename_all(dir, base, CLEANED, SWAP)?;
    sync_dir(dir)?;
    if crash_after == Some(SwapStep::Committed) {
        return Ok(());
    }
    let mut old = Vec::with_capacity(group.len());
    for src in group {
        if let Some(seg) = st.segments.remove(src.base_offset) {
            if src.base_offset == base {
                old.push(seg);
            } else {
                seg.delete()?;
            }
        }
    }
    if crash_after == Some(SwapStep::OldDeleted) {
        return Ok(());
    }
    rename_all(dir, base, SWAP, "")?;
    sync_dir(dir)?;
    if crash_after == Some(SwapStep::Renamed) {
        return Ok(());
    }
    // The old segment's files are already replaced; dropping it closes its handles
    // (readers holding a region keep their own).
    drop(old);
    let (seg, consistent) = Segment::open(dir, base, config, now_ms)?;
    let mut seg = seg;
    if !consistent {
        crate::log::recovery::recover_segment(&mut seg, config)?;
        seg.seal()?;
    }
    st.segments.insert(seg);
    Ok(())
}

/// Finish or roll back half-done swaps in `dir` (see the module docs). Runs before
/// the segments are loaded.
///
/// # Errors
/// I/O errors.
pub(crate) fn finish_swaps(dir: &Path) -> Result<(), LogError> {
    let mut swaps = Vec::new();
    let mut logs = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED) || name.ends_with(".deleted") {
            let p = entry.path();
            crate::fsio::remove_file(&p).at(&p)?;
        } else if let Some(stem) = name.strip_suffix(".log.swap") {
            if let Ok(base) = stem.parse::<i64>() {
                swaps.push(base);
            }
        } else if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(base) = stem.parse::<i64>() {
                logs.push(base);
            }
        }
    }
    let mut changed = false;
    for base in swaps {
        let swap_log = path_of(dir, base, "log", SWAP);
        let end = end_offset(&swap_log, base)?;
        for &b in logs.iter().filter(|&&b| b > base && b < end) {
            for ext in EXTS {
                let p = path_of(dir, b, ext, "");
                match crate::fsio::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogError::io(&p, e)),
                }
            }
        }
        rename_all(dir, base, SWAP, "")?;
        tracing::warn!(dir = %dir.display(), base_offset = base, end_offset = end, "finished an interrupted cleaner swap");
        changed = true;
    }
    // Index swap files without their log: the log was renamed last, so these are
    // leftovers only if someone deleted files by hand; drop them.
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(SWAP))
        {
            let p = entry.path();
            crate::fsio::remove_file(&p).at(&p)?;
            changed = true;
        }
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Offset after the last whole batch of the segment file at `path`.
fn end_offset(path: &Path, base: i64) -> Result<i64, LogError> {
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(path).at(path)?;
    let size = f.metadata().at(path)?.len();
    let (mut pos, mut end) = (0u64, base);
    let mut buf = [0u8; BATCH_HEADER_LEN];
    while pos + BATCH_HEADER_LEN as u64 <= size {
        f.read_exact_at(&mut buf, pos).at(path)?;
        let Ok(h) = BatchHeader::new(&buf) else { break };
        let Some(total) = h.total_size() else { break };
        if pos + total as u64 > size {
            break;
        }
        end = h.last_offset() + 1;
        pos += total as u64;
    }
    Ok(end)
}
