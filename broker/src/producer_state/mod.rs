//! Idempotent-producer state of one partition (DESIGN.md section 9).
//!
//! For every producer id the table keeps its epoch and the sequence and offset
//! ranges of its last [`MAX_CACHED_BATCHES`] appended batches. A batch is checked
//! *before* it is appended:
//! - a batch equal to a cached one is a retry: the caller answers with the cached
//!   offsets and does not append (DUPLICATE is success for the client);
//! - an older epoch is fenced (INVALID_PRODUCER_EPOCH);
//! - a new epoch must start at sequence 0; otherwise a batch must start right
//!   after the last sequence (OUT_OF_ORDER_SEQUENCE_NUMBER).
//!
//! The table does no I/O: it is rebuilt after a restart by replaying the batch
//! headers of the log ([`ProducerStateTable::replay`]), the same path appends use.
//! The partition serialises `check` + append + `record` under its append lock.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// Batches remembered per producer (the Java client's max in-flight is 5).
pub const MAX_CACHED_BATCHES: usize = 5;
/// Producer ids at or above this never expire while the table is bounded by
/// `max_producers`; see [`ProducerStateTable::evict_oldest`].
const NO_PRODUCER_ID: i64 = -1;

/// Identity and sequence range of an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub last_sequence: i32,
}

/// Where a cached batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<CachedBatch>,
    /// Log-append order stamp used to evict the least recently active producer.
    last_touch: u64,
}

/// Outcome of checking a batch against the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch, or the next expected one: append it.
    Append,
    /// A retry of a batch already in the log at these offsets.
    Duplicate(CachedBatch),
    /// Refused: the producer's epoch is older than the one we know.
    InvalidEpoch,
    /// Refused: the sequence does not follow the last one.
    OutOfOrder,
    /// Refused: we know nothing of this producer and the batch does not start a
    /// sequence (the producer's state expired or was truncated away).
    UnknownProducer,
}

/// The per-partition table.
#[derive(Debug, Clone)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// Producers by last activity, so eviction is O(log n), not a scan.
    by_touch: BTreeMap<u64, i64>,
    max_producers: usize,
    clock: u64,
}

impl Default for ProducerStateTable {
    fn default() -> Self {
        // Any client can send batches with made-up producer ids; this bounds
        // the table's memory per partition (about 3 MiB).
        Self::new(10_000)
    }
}

impl ProducerStateTable {
    /// A table bounded to `max_producers` ids; the least recently active one is
    /// forgotten beyond that (its next batch gets UNKNOWN_PRODUCER_ID, as after
    /// Kafka's `producer.id.expiration.ms`).
    pub fn new(max_producers: usize) -> Self {
        Self {
            producers: HashMap::new(),
            by_touch: BTreeMap::new(),
            max_producers: max_producers.max(1),
            clock: 0,
        }
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Check an incoming batch without changing anything.
    pub fn check(&self, b: &BatchIdentity) -> SequenceCheck {
        if b.producer_id == NO_PRODUCER_ID || b.base_sequence < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&b.producer_id) else {
            return if b.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::UnknownProducer
            };
        };
        if b.producer_epoch < entry.epoch {
            return SequenceCheck::InvalidEpoch;
        }
        if b.producer_epoch > entry.epoch {
            return if b.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|c| c.first_sequence == b.base_sequence && c.last_sequence == b.last_sequence)
        {
            return SequenceCheck::Duplicate(*dup);
        }
        match entry.batches.back() {
            Some(last) if next_sequence(last.last_sequence) == b.base_sequence => {
                SequenceCheck::Append
            }
            // A batch overlapping cached ones but not equal to any: a client bug or
            // a retry of something we no longer cache; either way out of order.
            Some(_) => SequenceCheck::OutOfOrder,
            None => {
                if b.base_sequence == 0 {
                    SequenceCheck::Append
                } else {
                    SequenceCheck::OutOfOrder
                }
            }
        }
    }

    /// Record a batch that was appended (or found in the log during replay).
    pub fn record(
        &mut self,
        b: &BatchIdentity,
        first_offset: i64,
        last_offset: i64,
        timestamp: i64,
    ) {
        if b.producer_id == NO_PRODUCER_ID || b.base_sequence < 0 {
            return;
        }
        self.clock += 1;
        let clock = self.clock;
        if !self.producers.contains_key(&b.producer_id)
            && self.producers.len() >= self.max_producers
        {
            self.evict_oldest();
        }
        let entry = self.producers.entry(b.producer_id).or_default();
        if b.producer_epoch != entry.epoch {
            entry.epoch = b.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(CachedBatch {
            first_sequence: b.base_sequence,
            last_sequence: b.last_sequence,
            first_offset,
            last_offset,
            timestamp,
        });
        let previous = std::mem::replace(&mut entry.last_touch, clock);
        self.by_touch.remove(&previous);
        self.by_touch.insert(clock, b.producer_id);
    }

    /// Replay a batch header read from the log (recovery path).
    pub fn replay(
        &mut self,
        b: &BatchIdentity,
        first_offset: i64,
        last_offset: i64,
        timestamp: i64,
    ) {
        self.record(b, first_offset, last_offset, timestamp);
    }

    /// Raise a producer's epoch without a batch (InitProducerId bumping an epoch
    /// fences older incarnations immediately).
    pub fn fence(&mut self, producer_id: i64, epoch: i16) {
        if let Some(e) = self.producers.get_mut(&producer_id) {
            if epoch > e.epoch {
                e.epoch = epoch;
                e.batches.clear();
            }
        }
    }

    /// Forget batches at or above `offset` (log truncation).
    pub fn truncate_from(&mut self, offset: i64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|c| c.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
        let producers = &self.producers;
        self.by_touch.retain(|_, pid| producers.contains_key(pid));
    }

    fn evict_oldest(&mut self) {
        if let Some((_, pid)) = self.by_touch.pop_first() {
            self.producers.remove(&pid);
        }
    }
}

fn next_sequence(s: i32) -> i32 {
    if s == i32::MAX {
        0
    } else {
        s + 1
    }
}

/// Rebuild a partition's producer table by replaying the batch headers of its
/// log (headers only: one 61-byte read per batch).
///
/// # Errors
/// I/O errors reading the log.
pub fn rebuild(
    log: &crate::log::PartitionLog,
    table: &mut ProducerStateTable,
) -> Result<(), crate::log::LogError> {
    use std::os::unix::fs::FileExt;

    use brook_protocol::records::{BatchHeader, BATCH_HEADER_LEN};

    const CHUNK: u64 = 8 * 1024 * 1024;
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut header = [0u8; BATCH_HEADER_LEN];
    while offset < end {
        let read = log.read(offset, CHUNK, end, true)?;
        let Some(region) = read.region else { break };
        let mut pos = region.position;
        let stop = region.position + region.len;
        let mut next = offset;
        while pos + BATCH_HEADER_LEN as u64 <= stop {
            region
                .file
                .read_exact_at(&mut header, pos)
                .map_err(|e| crate::log::LogError::io(log.dir(), e))?;
            let Ok(h) = BatchHeader::new(&header) else {
                break;
            };
            let Some(size) = h.total_size() else { break };
            if h.producer_id() >= 0 {
                let id = BatchIdentity {
                    producer_id: h.producer_id(),
                    producer_epoch: h.producer_epoch(),
                    base_sequence: h.base_sequence(),
                    last_sequence: h.last_sequence(),
                };
                table.replay(&id, h.base_offset(), h.last_offset(), h.max_timestamp());
            }
            next = h.next_offset();
            pos += size as u64;
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pid: i64, epoch: i16, base: i32, last: i32) -> BatchIdentity {
        BatchIdentity {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: base,
            last_sequence: last,
        }
    }

    #[test]
    fn accepts_in_order_and_detects_duplicates() {
        let mut t = ProducerStateTable::default();
        assert_eq!(t.check(&b(7, 0, 0, 4)), SequenceCheck::Append);
        t.record(&b(7, 0, 0, 4), 0, 4, 10);
        assert_eq!(t.check(&b(7, 0, 5, 9)), SequenceCheck::Append);
        t.record(&b(7, 0, 5, 9), 5, 9, 11);
        match t.check(&b(7, 0, 0, 4)) {
            SequenceCheck::Duplicate(c) => assert_eq!((c.first_offset, c.last_offset), (0, 4)),
            other => panic!("expected duplicate, got {other:?}"),
        }
        assert_eq!(t.check(&b(7, 0, 11, 12)), SequenceCheck::OutOfOrder);
        assert_eq!(t.check(&b(8, 0, 3, 4)), SequenceCheck::UnknownProducer);
    }

    #[test]
    fn fences_old_epochs_and_resets_on_new_epoch() {
        let mut t = ProducerStateTable::default();
        t.record(&b(1, 3, 0, 0), 0, 0, 0);
        assert_eq!(t.check(&b(1, 2, 1, 1)), SequenceCheck::InvalidEpoch);
        assert_eq!(t.check(&b(1, 4, 5, 5)), SequenceCheck::OutOfOrder);
        assert_eq!(t.check(&b(1, 4, 0, 0)), SequenceCheck::Append);
        t.fence(1, 9);
        assert_eq!(t.check(&b(1, 4, 0, 0)), SequenceCheck::InvalidEpoch);
    }

    #[test]
    fn keeps_only_five_batches_and_bounds_producers() {
        let mut t = ProducerStateTable::new(2);
        for i in 0..7 {
            t.record(&b(1, 0, i, i), i64::from(i), i64::from(i), 0);
        }
        assert_eq!(t.check(&b(1, 0, 0, 0)), SequenceCheck::OutOfOrder);
        assert!(matches!(
            t.check(&b(1, 0, 6, 6)),
            SequenceCheck::Duplicate(_)
        ));
        t.record(&b(2, 0, 0, 0), 10, 10, 0);
        t.record(&b(3, 0, 0, 0), 11, 11, 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t.check(&b(1, 0, 7, 7)), SequenceCheck::UnknownProducer);
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut t = ProducerStateTable::default();
        t.record(&b(1, 0, 0, 0), 0, 0, 0);
        t.record(&b(1, 0, 1, i32::MAX), 1, 1, 0);
        assert_eq!(t.check(&b(1, 0, 0, 3)), SequenceCheck::Append);
    }

    #[test]
    fn truncation_forgets_batches() {
        let mut t = ProducerStateTable::default();
        t.record(&b(1, 0, 0, 0), 0, 0, 0);
        t.record(&b(1, 0, 1, 1), 1, 1, 0);
        t.truncate_from(1);
        assert_eq!(t.check(&b(1, 0, 1, 1)), SequenceCheck::Append);
    }
}
