//! Loading a shard: an `__consumer_offsets` partition is read from its log
//! start up to a given end (committed records only) and each record is
//! [`Group::replay`]ed, the same code path live operation uses after an append. Records that do not
//! decode (a newer Kafka format, damage the log's CRCs did not catch) are
//! logged and skipped: one bad record must not make every group unavailable.
//!
//! Requests for the shard's groups get COORDINATOR_LOAD_IN_PROGRESS until
//! the load is done, so no request sees a half-loaded group.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use brook_protocol::records::decode_batches;
use bytes::Bytes;
use tracing::warn;

use super::records::GroupRecord;
use super::state::{Group, Phase};
use crate::partition::Partition;

/// Read size per step; a batch larger than this is still read whole (min_one).
const READ_CHUNK: u64 = 1 << 20;
/// Decompression cap per batch while loading.
const MAX_DECOMPRESSED: usize = 64 << 20;

/// Replay every record of `partitions` below `end` into groups.
///
/// # Errors
/// Storage errors reading the log.
pub fn load_groups(
    partitions: &[std::sync::Arc<Partition>],
    end: i64,
    now: i64,
) -> anyhow::Result<HashMap<String, Group>> {
    let mut groups: HashMap<String, Group> = HashMap::new();
    for p in partitions {
        let log = p.log();
        let end = end.min(log.log_end_offset());
        let mut offset = log.log_start_offset();
        while offset < end {
            let read = log.read(offset, READ_CHUNK, end, true)?;
            let Some(region) = read.region else { break };
            let len = usize::try_from(region.len)?;
            let mut buf = vec![0u8; len];
            region.file.read_exact_at(&mut buf, region.position)?;
            let bytes = Bytes::from(buf);
            let mut next = offset;
            for batch in decode_batches(&bytes, MAX_DECOMPRESSED) {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        warn!(partition = p.index, offset, error = %e, "skipping undecodable __consumer_offsets batch");
                        break;
                    }
                };
                next = next.max(batch.last_offset() + 1);
                if batch.is_control() {
                    continue;
                }
                let records = match batch.records().collect_all() {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(partition = p.index, offset = batch.base_offset(), error = %e, "skipping undecodable records");
                        continue;
                    }
                };
                for r in records {
                    if r.offset < offset {
                        continue;
                    }
                    match GroupRecord::decode(r.key.as_ref(), r.value.as_ref()) {
                        Ok(rec) => {
                            let g = groups
                                .entry(rec.group().to_owned())
                                .or_insert_with(|| Group::new(rec.group(), now));
                            g.replay(&rec, now);
                        }
                        Err(e) => {
                            warn!(partition = p.index, offset = r.offset, error = %e, "skipping __consumer_offsets record")
                        }
                    }
                }
            }
            if next <= offset {
                // Nothing decodable advanced us: step past this region's first batch.
                next = read.first_offset.map_or(offset + 1, |f| f.max(offset) + 1);
            }
            offset = next;
        }
    }
    // A tombstoned group is gone, not a zombie.
    groups.retain(|_, g| g.phase != Phase::Dead);
    Ok(groups)
}
