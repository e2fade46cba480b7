//! ListOffsets (key 2, v1–8): earliest (-2), latest (-1), max timestamp (-3),
//! earliest-local (-4, = earliest here), and by timestamp through the time index.
//! "Latest" is the high-water mark (what a consumer may read), as in Kafka.

use brook_protocol::error::ErrorCode;
use brook_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use brook_protocol::messages::ListOffsetsRequest;

use super::fetch::epoch_check;
use super::Ctx;
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::server::connection::Reply;
use brook_protocol::records::RecordBatch;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub(super) fn handle(ctx: &Ctx, req: ListOffsetsRequest) -> Reply {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.topic(&t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        timestamp: -1,
                        offset: -1,
                        leader_epoch: -1,
                        ..Default::default()
                    };
                    let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        r.error_code = topic
                            .as_ref()
                            .map_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(), |t| {
                                t.absent_code(p.partition_index)
                            });
                        return r;
                    };
                    if let Some(code) = epoch_check(&part, p.current_leader_epoch) {
                        r.error_code = code;
                        return r;
                    }
                    match lookup(&part, p.timestamp) {
                        Ok(Some((offset, ts))) => {
                            r.offset = offset;
                            r.timestamp = ts;
                            r.leader_epoch = part.leader_epoch();
                        }
                        Ok(None) => {}
                        Err(code) => r.error_code = code,
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse {
                name: t.name,
                partitions,
                ..Default::default()
            }
        })
        .collect();
    ctx.reply(&ListOffsetsResponse {
        topics,
        ..Default::default()
    })
}

/// Largest decompressed batch inspected by a timestamp lookup: batches are
/// stored compressed as produced, so a hostile one could claim far more.
const MAX_DECOMPRESSED: usize = 16 * 1024 * 1024;
/// Batches inspected past the one the time index points at before giving up.
const MAX_BATCHES_SCANNED: usize = 64;

/// The first record (not batch) with timestamp ≥ `ts` below the HW, as Kafka
/// answers: the time index finds the batch, its records give the exact offset.
fn record_for_timestamp(
    part: &Partition,
    ts: i64,
    hw: i64,
) -> Result<Option<(i64, i64)>, BrokerError> {
    use std::os::unix::fs::FileExt;

    let Some((mut offset, _)) = part.log().offset_for_timestamp(ts, hw)? else {
        return Ok(None);
    };
    let log_start = part.log_start_offset();
    for _ in 0..MAX_BATCHES_SCANNED {
        if offset >= hw {
            return Ok(None);
        }
        let read = part.log().read(offset, 1, hw, true)?;
        let Some(region) = read.region else {
            return Ok(None);
        };
        let len =
            usize::try_from(region.len).map_err(|_| BrokerError::Internal("batch too large"))?;
        let mut buf = vec![0u8; len];
        region
            .file
            .read_exact_at(&mut buf, region.position)
            .map_err(|e| BrokerError::Storage(e.to_string()))?;
        let bytes = bytes::Bytes::from(buf);
        let batch = RecordBatch::decode(&bytes, MAX_DECOMPRESSED)
            .map_err(|_| BrokerError::CorruptMessage("stored batch does not decode"))?;
        for record in batch.records() {
            let record =
                record.map_err(|_| BrokerError::CorruptMessage("stored record does not decode"))?;
            if record.timestamp >= ts && record.offset >= log_start && record.offset >= offset {
                return Ok(Some((record.offset, record.timestamp)));
            }
        }
        offset = batch.last_offset() + 1;
    }
    Ok(None)
}

/// (offset, timestamp) for a ListOffsets target; `None` when no record matches.
fn lookup(part: &Partition, target: i64) -> Result<Option<(i64, i64)>, i16> {
    let hw = part.high_watermark();
    match target {
        LATEST | LATEST_TIERED => Ok(Some((hw, -1))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((part.log_start_offset(), -1))),
        MAX_TIMESTAMP => match part.log().max_timestamp_offset(hw) {
            Ok(found) => Ok(found.map(|(ts, off)| (off, ts))),
            Err(e) => Err(crate::error::BrokerError::from(e).code()),
        },
        ts if ts >= 0 => {
            tokio::task::block_in_place(|| record_for_timestamp(part, ts, hw)).map_err(|e| e.code())
        }
        _ => Err(ErrorCode::INVALID_REQUEST.code()),
    }
}
