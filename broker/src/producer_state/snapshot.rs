//! Producer-state snapshots: the table as of an offset, so a restart or a
//! follower's truncation replays the batch headers after the snapshot
//! instead of the whole log (Kafka keeps `<offset>.snapshot` files for the
//! same reason).
//!
//! ```text
//! <partition dir>/<offset, 20 digits>.producers
//!     "BRPS" | version u16 (1) | offset i64 | count u32
//!     count × (producer id i64 | epoch i16 | n u8 | n × (first sequence i32,
//!              last sequence i32, first offset i64, last offset i64,
//!              timestamp i64))
//!     crc32c u32 of everything before it           (all big-endian)
//! ```
//!
//! A snapshot at offset `S` holds the state of the batches below `S`, the
//! producers in the order they were last active (eviction order). Its own
//! extension, not Kafka's `.snapshot`: the format differs (brook keeps five
//! batches per producer), and Kafka's tools would misread it.
//!
//! When one is written and dropped:
//! - when a segment rolls (at the new segment's base offset) and at a clean
//!   close (at the log end); the two newest are kept;
//! - a snapshot past the log end is deleted (the directory synced) before the
//!   partition takes appends: after a power loss cut the log below it, and
//!   after a truncation below it. Left in place, it would describe batches
//!   the log no longer holds once new appends pass its offset again, and a
//!   retry would be answered as a duplicate of records that are gone;
//! - all of them when the log restarts at a new offset.
//!
//! A snapshot that does not decode (torn by a crash, corrupt) is skipped for
//! the next older one, and with none left the whole log is replayed. A
//! temporary file of a write a crash cut short is deleted on load.

use std::fs;
use std::path::{Path, PathBuf};

use super::{CachedBatch, ProducerStateTable, MAX_CACHED_BATCHES};
use crate::log::error::IoContext;
use crate::log::{LogError, PartitionLog};

const MAGIC: &[u8; 4] = b"BRPS";
const VERSION: u16 = 1;
const SUFFIX: &str = ".producers";
/// Snapshots kept per partition.
const KEEP: usize = 2;
const HEADER_LEN: usize = 4 + 2 + 8 + 4;
const BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;

/// Why a snapshot file was not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("producer snapshot is {0} bytes, shorter than its header and checksum")]
    TooShort(usize),
    #[error("producer snapshot checksum mismatch (torn or corrupt)")]
    Checksum,
    #[error("producer snapshot has magic {0:?}, not BRPS")]
    Magic([u8; 4]),
    #[error("producer snapshot version {0} is not 1")]
    Version(u16),
    #[error("producer snapshot entries do not match their count: {0}")]
    Layout(&'static str),
}

/// The snapshot bytes of `table` as of `offset`.
pub fn encode(table: &ProducerStateTable, offset: i64) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(HEADER_LEN + table.producers.len() * (8 + 2 + 1 + 2 * BATCH_LEN) + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    let count = u32::try_from(table.producers.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    // Least recently active first: decoding in this order restores it.
    for pid in table.by_touch.values().take(count as usize) {
        let Some(e) = table.producers.get(pid) else {
            continue;
        };
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&e.epoch.to_be_bytes());
        out.push(e.batches.len().min(MAX_CACHED_BATCHES) as u8);
        for b in e.batches.iter().take(MAX_CACHED_BATCHES) {
            out.extend_from_slice(&b.first_sequence.to_be_bytes());
            out.extend_from_slice(&b.last_sequence.to_be_bytes());
            out.extend_from_slice(&b.first_offset.to_be_bytes());
            out.extend_from_slice(&b.last_offset.to_be_bytes());
            out.extend_from_slice(&b.timestamp.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Big-endian reads that fail instead of panicking past the end.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(SnapshotError::Layout("an entry runs past the end"))?;
        self.0 = rest;
        Ok(*head)
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        self.take().map(i64::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        self.take().map(i32::from_be_bytes)
    }
}

/// The offset and table a snapshot holds, bounded to `max_producers` (the
/// most recently active kept).
///
/// # Errors
/// A short, torn, corrupt or unknown snapshot.
pub fn decode(
    bytes: &[u8],
    max_producers: usize,
) -> Result<(i64, ProducerStateTable), SnapshotError> {
    if bytes.len() < HEADER_LEN + 4 {
        return Err(SnapshotError::TooShort(bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body).to_be_bytes() != crc {
        return Err(SnapshotError::Checksum);
    }
    let mut c = Cursor(body);
    let magic = c.take::<4>()?;
    if &magic != MAGIC {
        return Err(SnapshotError::Magic(magic));
    }
    let version = u16::from_be_bytes(c.take()?);
    if version != VERSION {
        return Err(SnapshotError::Version(version));
    }
    let offset = c.i64()?;
    let count = u32::from_be_bytes(c.take()?);
    let mut table = ProducerStateTable::new(max_producers);
    for _ in 0..count {
        let pid = c.i64()?;
        let epoch = i16::from_be_bytes(c.take()?);
        let n = c.take::<1>()?[0] as usize;
        if n > MAX_CACHED_BATCHES {
            return Err(SnapshotError::Layout("more batches than a producer keeps"));
        }
        let mut batches = std::collections::VecDeque::with_capacity(n);
        for _ in 0..n {
            batches.push_back(CachedBatch {
                first_sequence: c.i32()?,
                last_sequence: c.i32()?,
                first_offset: c.i64()?,
                last_offset: c.i64()?,
                timestamp: c.i64()?,
            });
        }
        table.restore(pid, epoch, batches);
    }
    if !c.0.is_empty() {
        return Err(SnapshotError::Layout("bytes after the last entry"));
    }
    Ok((offset, table))
}

fn file_name(offset: i64) -> String {
    format!("{offset:020}{SUFFIX}")
}

fn path_of(dir: &Path, offset: i64) -> PathBuf {
    dir.join(file_name(offset))
}

/// The offsets of the snapshots in `dir`, ascending.
///
/// # Errors
/// I/O errors listing the directory.
pub fn list(dir: &Path) -> Result<Vec<i64>, LogError> {
    scan(dir).map(|(offsets, _)| offsets)
}

/// One pass over `dir`: the snapshots' offsets, ascending, and the
/// temporary files of writes a crash cut short.
fn scan(dir: &Path) -> Result<(Vec<i64>, Vec<PathBuf>), LogError> {
    let mut offsets = Vec::new();
    let mut temporary = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".producers.tmp") {
            temporary.push(entry.path());
            continue;
        }
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(o) = stem.parse::<i64>() {
                offsets.push(o);
            }
        }
    }
    offsets.sort_unstable();
    Ok((offsets, temporary))
}

/// Delete the snapshots at `offsets`, syncing the directory if any were.
fn remove_durably(dir: &Path, offsets: &[i64]) -> Result<(), LogError> {
    for o in offsets {
        let p = path_of(dir, *o);
        crate::fsio::remove_file(&p).at(&p)?;
    }
    if !offsets.is_empty() {
        crate::log::checkpoint::sync_dir(dir)?;
    }
    Ok(())
}

/// Write the snapshot `bytes` (from [`encode`]) taken at `offset` and keep
/// only the newest ones.
///
/// Nothing is synced: a snapshot is a shortcut, and its checksum and offset
/// decide whether it is used. One a power loss tore or emptied is skipped;
/// one whose batches a power loss took from the log is past the log end and
/// deleted. (Deletions are what must be durable; see [`delete_above`].)
///
/// # Errors
/// I/O errors.
pub fn write(dir: &Path, offset: i64, bytes: &[u8]) -> Result<(), LogError> {
    use std::io::Write as _;
    let path = path_of(dir, offset);
    let mut tmp = path.clone();
    tmp.as_mut_os_string().push(".tmp");
    crate::fsio::open(
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        &tmp,
    )
    .and_then(|mut f| f.write_all(bytes))
    .at(&tmp)?;
    crate::fsio::rename(&tmp, &path).at(&path)?;
    let offsets = list(dir)?;
    let stale = offsets.len().saturating_sub(KEEP);
    for o in &offsets[..stale] {
        let p = path_of(dir, *o);
        crate::fsio::remove_file(&p).at(&p)?;
    }
    Ok(())
}

/// Delete the snapshots above `offset` (`None`: all of them), durably: the
/// directory is synced before this returns, so they cannot come back after
/// a power loss once appends pass their offsets again.
///
/// # Errors
/// I/O errors.
pub fn delete_above(dir: &Path, offset: Option<i64>) -> Result<usize, LogError> {
    let doomed: Vec<i64> = list(dir)?
        .into_iter()
        .filter(|o| offset.is_none_or(|end| *o > end))
        .collect();
    remove_durably(dir, &doomed)?;
    Ok(doomed.len())
}

/// How a partition's producer state was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// The snapshot used (its offset), if any.
    pub snapshot: Option<i64>,
    /// Batch headers replayed after it.
    pub replayed: u64,
}

/// The producer state of `log`: the newest usable snapshot at or below the
/// log end, then the batch headers after it; with none, the whole log.
/// Snapshots above the log end are deleted first (see the module docs).
///
/// # Errors
/// I/O errors.
pub fn load(log: &PartitionLog, table: &mut ProducerStateTable) -> Result<Loaded, LogError> {
    let dir = log.dir();
    let end = log.log_end_offset();
    let (offsets, temporary) = scan(dir)?;
    for p in &temporary {
        crate::fsio::remove_file(p).at(p)?;
    }
    let usable = offsets.partition_point(|o| *o <= end);
    remove_durably(dir, &offsets[usable..])?;
    let max = table.max_producers;
    for &offset in offsets[..usable].iter().rev() {
        let path = path_of(dir, offset);
        let bytes = fs::read(&path).at(&path)?;
        match decode(&bytes, max) {
            Ok((at, loaded)) if at == offset => {
                *table = loaded;
                let from = offset.max(log.log_start_offset());
                let replayed = super::replay_from(log, table, from)?;
                return Ok(Loaded {
                    snapshot: Some(offset),
                    replayed,
                });
            }
            Ok((at, _)) => {
                tracing::warn!(path = %path.display(), holds = at,
                    "producer snapshot names another offset than its file; skipped");
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "producer snapshot skipped");
            }
        }
    }
    *table = ProducerStateTable::new(max);
    let replayed = super::replay_from(log, table, log.log_start_offset())?;
    Ok(Loaded {
        snapshot: None,
        replayed,
    })
}

#[cfg(test)]
mod tests {
    use super::super::BatchIdentity;
    use super::*;

    fn id(pid: i64, epoch: i16, base: i32, last: i32) -> BatchIdentity {
        BatchIdentity {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: base,
            last_sequence: last,
        }
    }

    fn sample() -> ProducerStateTable {
        let mut t = ProducerStateTable::new(100);
        let mut offset = 0;
        for round in 0..8 {
            for pid in [7, 3, 11] {
                let base = round * 2;
                t.record(
                    &id(pid, 1, base, base + 1),
                    offset,
                    offset + 1,
                    1000 + offset,
                );
                offset += 2;
            }
        }
        t.record(&id(3, 2, 0, 0), offset, offset, 5);
        t
    }

    #[test]
    fn a_snapshot_round_trips_with_its_eviction_order() -> Result<(), SnapshotError> {
        let t = sample();
        let (offset, back) = decode(&encode(&t, 49), 100)?;
        assert_eq!(offset, 49);
        assert!(back.same_state(&t));
        // Producer 7 was the least recently active: bounded to two, it goes.
        let (_, two) = decode(&encode(&t, 49), 2)?;
        assert_eq!(two.len(), 2);
        assert!(two.producers.contains_key(&3) && two.producers.contains_key(&11));
        Ok(())
    }

    #[test]
    fn a_damaged_snapshot_is_refused_never_misread() {
        let bytes = encode(&sample(), 49);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], 100).is_err(), "cut at {cut} decoded");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode(&b, 100).is_err(), "flip at byte {i} decoded");
        }
    }

    proptest::proptest! {
        /// Arbitrary bytes (with a valid checksum, so the parser itself is
        /// exercised) never panic the decoder.
        #[test]
        fn arbitrary_bytes_never_panic(mut body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if body.len() >= 6 {
                body[..4].copy_from_slice(MAGIC);
                body[4..6].copy_from_slice(&VERSION.to_be_bytes());
            }
            let crc = crc32c::crc32c(&body);
            body.extend_from_slice(&crc.to_be_bytes());
            let _ = decode(&body, 100);
        }
    }
}
