//! Loading a partition directory and recovering it after an unclean stop.
//!
//! - Clean-shutdown marker: `<partition dir>/.kafka_cleanshutdown`, written by
//!   `PartitionLog::close` after every file was synced, deleted (and the deletion
//!   synced) on open before any append. It lives in the partition directory rather
//!   than the data dir because each partition log is opened and closed on its own.
//! - Clean open: segments are loaded from their indexes; only the batches after the
//!   last offset-index entry are read to find the log end.
//! - Unclean open: every segment from the one holding the recovery point onward is
//!   scanned batch by batch: header sanity (magic, counts, offsets increasing, length
//!   within the file) and the CRC32C of every batch, streamed through a fixed 64 KiB
//!   buffer. The first torn or corrupt batch ends the log: its segment is truncated
//!   there and all later segments are deleted. The scanned segments' indexes are
//!   rebuilt. Any segment whose index files do not validate (see `offset_index`) is
//!   scanned the same way, clean marker or not.
//! - Concurrency: runs inside `PartitionLog::open`, before the log is shared.

use std::fs;
use std::path::Path;

use brook_protocol::records::header::CRC_START;
use brook_protocol::records::{BatchHeader, BATCH_HEADER_LEN};

use crate::log::checkpoint::sync_dir;
use crate::log::config::LogConfig;
use crate::log::error::{IoContext, LogError};
use crate::log::segment::{BatchMeta, Segment, ROOM_MIN_BYTES};
use crate::log::segments::Segments;

/// Name of the clean-shutdown marker file in the partition directory.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

const SCAN_CHUNK: usize = 64 * 1024;

pub(crate) struct Loaded {
    pub(crate) segments: Segments,
    pub(crate) clean: bool,
}

fn parse_base(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Load every segment of `dir`, recovering as described in the module docs.
pub(crate) fn load(
    dir: &Path,
    config: &LogConfig,
    recovery_point: i64,
    log_start_offset: i64,
    now_ms: i64,
) -> Result<Loaded, LogError> {
    crate::log::cleaner::swap::finish_swaps(dir)?;
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let clean = marker.exists();
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_base(name, ".log") {
            bases.push(base);
        } else if let Some(base) =
            parse_base(name, ".index").or_else(|| parse_base(name, ".timeindex"))
        {
            index_files.push((base, entry.path()));
        }
    }
    bases.sort_unstable();
    // Index files without their log are leftovers of an interrupted delete.
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            crate::fsio::remove_file(&path).at(&path)?;
        }
    }
    let scan_from = bases
        .iter()
        .rev()
        .find(|&&b| b <= recovery_point)
        .or(bases.first())
        .copied()
        .unwrap_or(0);

    let mut segments = Segments::new();
    let mut cut = false;
    for base in bases {
        let (mut seg, consistent) = Segment::open(dir, base, config, now_ms)?;
        if cut {
            tracing::warn!(dir = %dir.display(), base_offset = base, "deleting segment after a corrupt batch");
            seg.delete()?;
            continue;
        }
        if !consistent || (!clean && base >= scan_from) {
            let removed = recover_segment(&mut seg, config)?;
            if removed > 0 {
                tracing::warn!(
                    dir = %dir.display(), base_offset = base, removed_bytes = removed,
                    log_end_offset = seg.next_offset(), "truncated torn or corrupt log tail"
                );
                cut = true;
            }
        }
        segments.insert(seg);
    }
    let active_base = segments.active().map(Segment::base_offset);
    for base in segments.bases() {
        if Some(base) == active_base {
            continue;
        }
        if let Some(seg) = segments.floor_mut(base) {
            seg.seal()?;
        }
    }
    match segments.active_mut() {
        Some(active) => active.make_active(config)?,
        None => segments.insert(Segment::create(
            dir,
            log_start_offset.max(0),
            config,
            now_ms,
        )?),
    }
    if clean {
        crate::fsio::remove_file(&marker).at(&marker)?;
        sync_dir(dir)?;
    }
    Ok(Loaded { segments, clean })
}

/// Rebuild a segment's indexes by scanning every batch and checking its CRC; cut the
/// file at the first batch that is torn, corrupt or out of order. Returns the number
/// of bytes removed.
///
/// # Errors
/// I/O errors reading or truncating.
pub fn recover_segment(seg: &mut Segment, config: &LogConfig) -> Result<u64, LogError> {
    seg.reset_for_rebuild(config)?;
    let file_len = seg.size();
    let mut chunk = vec![0u8; SCAN_CHUNK];
    let mut pos = 0u64;
    let mut expected = seg.base_offset();
    while let Some(m) = seg.read_header(pos)? {
        let in_order = m.base_offset >= expected
            && m.last_offset >= m.base_offset
            && m.last_offset - seg.base_offset() <= i64::from(u32::MAX);
        if !in_order || !batch_is_intact(seg, &m, &mut chunk)? {
            break;
        }
        seg.index_batch(&m);
        expected = m.last_offset + 1;
        pos += m.size;
    }
    if pos < file_len {
        if file_len - pos >= ROOM_MIN_BYTES && tail_is_zeros(seg, pos, file_len, &mut chunk)? {
            // The room an active segment's file keeps ahead of its data
            // (`GROW_AHEAD_BYTES`): nothing was written there, nothing is
            // lost, and the segments after this one are sound. (A shorter
            // zero tail may be a torn batch's first bytes: cut as torn.)
            seg.truncate_bytes(pos)?;
            return Ok(0);
        }
        return seg.truncate_bytes(pos);
    }
    Ok(0)
}

/// Whether the file holds only zero bytes from `pos` to `end`.
fn tail_is_zeros(
    seg: &Segment,
    mut pos: u64,
    end: u64,
    chunk: &mut [u8],
) -> Result<bool, LogError> {
    while pos < end {
        let n = usize::try_from(end - pos).map_or(chunk.len(), |left| left.min(chunk.len()));
        seg.read_exact_at(&mut chunk[..n], pos)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// Full check of the stored batch `m`: header fields and CRC32C, without holding the
/// whole batch in memory.
fn batch_is_intact(seg: &Segment, m: &BatchMeta, chunk: &mut [u8]) -> Result<bool, LogError> {
    let mut head = [0u8; BATCH_HEADER_LEN];
    seg.read_exact_at(&mut head, m.position)?;
    let Ok(h) = BatchHeader::new(&head) else {
        return Ok(false);
    };
    let count = h.record_count();
    if h.magic() != 2
        || count < 0
        || (count > 0 && i64::from(h.last_offset_delta()) < i64::from(count) - 1)
        || h.compression().is_err()
    {
        return Ok(false);
    }
    let mut crc = crc32c::crc32c(&head[CRC_START..]);
    let mut at = m.position + BATCH_HEADER_LEN as u64;
    let end = m.position + m.size;
    while at < end {
        let n = usize::try_from(end - at)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        seg.read_exact_at(&mut chunk[..n], at)?;
        crc = crc32c::crc32c_append(crc, &chunk[..n]);
        at += n as u64;
    }
    Ok(crc == h.crc())
}
