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
//! The table does no I/O: it is rebuilt after a restart (and a follower's
//! truncation) from the newest [`snapshot`] at or below the log end plus the
//! batch headers after it ([`ProducerStateTable::replay`], the same path
//! appends use).
//! The partition serialises `check` + append + `record` under its append lock.
//!
//! # Gaps this partition caused itself
//!
//! A client pipelines up to five batches per partition. When this replica
//! refuses one *before appending it*, for a reason that passes (not the
//! leader yet, too few in-sync replicas, its directory offline), the batches
//! behind it arrive with a sequence gap. Kafka answers those
//! OUT_OF_ORDER_SEQUENCE_NUMBER; librdkafka (up to 2.12 at least,
//! confluentinc/librdkafka#4953) then bumps the producer epoch and renumbers
//! every unacknowledged message of *every* partition, so a batch another
//! partition had written but not yet acknowledged is written again under the
//! new epoch: a duplicate. This showed in brook's rolling-restart test. So the
//! table remembers such refusals ([`ProducerStateTable::refused`]), and a
//! gap right behind one is answered with the refusal's own retriable error
//! ([`SequenceCheck::Refused`]): the client retries both batches in order,
//! with the same epoch and sequences, and nothing is renumbered. The memory is
//! bounded, forgotten once the refused batch (or a later one) is appended,
//! and expires after [`REFUSAL_MEMORY_MS`], so a real gap is still reported
//! as one.

use std::collections::{BTreeMap, HashMap, VecDeque};

pub mod snapshot;

/// Batches remembered per producer (the Java client's max in-flight is 5).
pub const MAX_CACHED_BATCHES: usize = 5;
/// How long a retriable refusal explains a sequence gap behind it.
pub const REFUSAL_MEMORY_MS: u64 = 10_000;
/// Producers whose last refusal is remembered, per partition.
const MAX_REFUSALS: usize = 1_024;
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

impl BatchIdentity {
    /// The producer identity and sequence range a batch header carries.
    pub fn of(h: &brook_protocol::records::BatchHeader<'_>) -> Self {
        Self {
            producer_id: h.producer_id(),
            producer_epoch: h.producer_epoch(),
            base_sequence: h.base_sequence(),
            last_sequence: h.last_sequence(),
        }
    }
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
    /// Refused: out of order, but right behind a batch this replica refused
    /// for this retriable reason; answer with it (see the module docs).
    Refused(Refusal),
}

/// Why a batch was refused before it was appended, for reasons that pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This replica did not lead the partition.
    NotLeader,
    /// The ISR was smaller than `min.insync.replicas`.
    NotEnoughReplicas { isr: usize, min: usize },
    /// The partition's log directory was offline.
    Storage,
}

/// The last refused batch of one producer.
#[derive(Debug, Clone, Copy)]
struct Refused {
    epoch: i16,
    base_sequence: i32,
    why: Refusal,
    at_ms: u64,
}

/// The per-partition table.
#[derive(Debug, Clone)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// Producers by last activity, so eviction is O(log n), not a scan.
    by_touch: BTreeMap<u64, i64>,
    max_producers: usize,
    clock: u64,
    /// Recent retriable refusals by producer id (see the module docs).
    refusals: HashMap<i64, Refused>,
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
            refusals: HashMap::new(),
        }
    }

    /// Remember that `b` was refused, before any append, for `why` (a reason
    /// that passes) at `now_ms` (monotonic).
    pub fn refused(&mut self, b: &BatchIdentity, why: Refusal, now_ms: u64) {
        if b.producer_id == NO_PRODUCER_ID || b.base_sequence < 0 {
            return;
        }
        if self.refusals.len() >= MAX_REFUSALS && !self.refusals.contains_key(&b.producer_id) {
            // Bounded: the stalest ones go (a client sends any producer id).
            self.refusals
                .retain(|_, r| now_ms.saturating_sub(r.at_ms) < REFUSAL_MEMORY_MS);
            if self.refusals.len() >= MAX_REFUSALS {
                return;
            }
        }
        self.refusals.insert(
            b.producer_id,
            Refused {
                epoch: b.producer_epoch,
                base_sequence: b.base_sequence,
                why,
                at_ms: now_ms,
            },
        );
    }

    /// [`ProducerStateTable::check`], explaining a sequence gap right behind a
    /// batch this replica refused (at most [`REFUSAL_MEMORY_MS`] before
    /// `now_ms`, with no append of the producer since) by that refusal.
    pub fn check_at(&self, b: &BatchIdentity, now_ms: u64) -> SequenceCheck {
        let verdict = self.check(b);
        if verdict != SequenceCheck::OutOfOrder {
            return verdict;
        }
        match self.refusals.get(&b.producer_id) {
            Some(r)
                if r.epoch == b.producer_epoch
                    && r.base_sequence <= b.base_sequence
                    && now_ms.saturating_sub(r.at_ms) < REFUSAL_MEMORY_MS =>
            {
                SequenceCheck::Refused(r.why)
            }
            _ => verdict,
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
        // The refused batch (or one past it) is in the log now: the refusal
        // explains nothing any more. Older batches a follower is still
        // catching up on leave it.
        if self
            .refusals
            .get(&b.producer_id)
            .is_some_and(|r| b.producer_epoch != r.epoch || b.last_sequence >= r.base_sequence)
        {
            self.refusals.remove(&b.producer_id);
        }
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
        self.retain_producers(|e| !e.batches.is_empty());
    }

    /// Forget the producers whose newest batch is older than `cutoff_ms`
    /// (its max timestamp, as Kafka's `producer.id.expiration.ms` goes by);
    /// a later batch of theirs that does not start a sequence is answered
    /// UNKNOWN_PRODUCER_ID. An entry that holds only a fence (no batch) has
    /// no timestamp and stays. Returns how many were forgotten.
    pub fn expire(&mut self, cutoff_ms: i64) -> usize {
        self.retain_producers(|e| e.batches.back().is_none_or(|b| b.timestamp >= cutoff_ms))
    }

    /// Keep the producers `keep` accepts, and the eviction order in step
    /// with them. Returns how many were dropped.
    fn retain_producers(&mut self, mut keep: impl FnMut(&ProducerEntry) -> bool) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| keep(e));
        let producers = &self.producers;
        self.by_touch.retain(|_, pid| producers.contains_key(pid));
        before - self.producers.len()
    }

    /// Put back a producer read from a snapshot, as the most recently active
    /// one (a snapshot lists them least recent first).
    fn restore(&mut self, producer_id: i64, epoch: i16, batches: VecDeque<CachedBatch>) {
        if let Some(old) = self.producers.remove(&producer_id) {
            self.by_touch.remove(&old.last_touch);
        }
        if self.producers.len() >= self.max_producers {
            self.evict_oldest();
        }
        self.clock += 1;
        self.by_touch.insert(self.clock, producer_id);
        self.producers.insert(
            producer_id,
            ProducerEntry {
                epoch,
                batches,
                last_touch: self.clock,
            },
        );
    }

    /// Every cached batch, with its producer id and epoch.
    #[cfg(test)]
    pub(crate) fn cached(&self) -> Vec<(i64, i16, CachedBatch)> {
        self.producers
            .iter()
            .flat_map(|(pid, e)| e.batches.iter().map(move |c| (*pid, e.epoch, *c)))
            .collect()
    }

    /// The same producers, epochs, cached batches and eviction order (the
    /// touch stamps themselves may differ).
    #[cfg(test)]
    pub(crate) fn same_state(&self, other: &Self) -> bool {
        let order = |t: &Self| t.by_touch.values().copied().collect::<Vec<_>>();
        order(self) == order(other)
            && self.producers.len() == other.producers.len()
            && self.producers.iter().all(|(pid, e)| {
                other
                    .producers
                    .get(pid)
                    .is_some_and(|o| o.epoch == e.epoch && o.batches == e.batches)
            })
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
/// whole log (headers only: one 61-byte read per batch).
///
/// # Errors
/// I/O errors reading the log.
pub fn rebuild(
    log: &crate::log::PartitionLog,
    table: &mut ProducerStateTable,
) -> Result<(), crate::log::LogError> {
    replay_from(log, table, log.log_start_offset()).map(drop)
}

/// Replay the batch headers of `log` from offset `from` to its end into
/// `table` (batches ending below `from` are skipped). Returns how many
/// headers were read.
///
/// # Errors
/// I/O errors reading the log.
pub fn replay_from(
    log: &crate::log::PartitionLog,
    table: &mut ProducerStateTable,
    from: i64,
) -> Result<u64, crate::log::LogError> {
    use std::os::unix::fs::FileExt;

    use brook_protocol::records::{BatchHeader, BATCH_HEADER_LEN};

    const CHUNK: u64 = 8 * 1024 * 1024;
    let end = log.log_end_offset();
    let mut offset = from.max(log.log_start_offset());
    let mut header = [0u8; BATCH_HEADER_LEN];
    let mut read_headers = 0u64;
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
            read_headers += 1;
            let Ok(h) = BatchHeader::new(&header) else {
                break;
            };
            let Some(size) = h.total_size() else { break };
            if h.producer_id() >= 0 && h.last_offset() >= from {
                let id = BatchIdentity::of(&h);
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
    Ok(read_headers)
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
    fn producers_idle_past_the_cutoff_are_forgotten() {
        let mut t = ProducerStateTable::default();
        t.record(&b(7, 0, 0, 4), 0, 4, 1_000);
        t.record(&b(8, 0, 0, 0), 5, 5, 5_000);
        t.record(&b(7, 0, 5, 5), 6, 6, 2_000);
        t.fence(9, 1);
        assert_eq!(t.expire(2_001), 1);
        assert_eq!(t.len(), 1);
        // Producer 7 is gone: its next batch is unknown, a new sequence is not.
        assert_eq!(t.check(&b(7, 0, 6, 6)), SequenceCheck::UnknownProducer);
        assert_eq!(t.check(&b(7, 0, 0, 0)), SequenceCheck::Append);
        assert_eq!(t.check(&b(8, 0, 1, 1)), SequenceCheck::Append);
        // Eviction order stays consistent with what is left.
        t.record(&b(10, 0, 0, 0), 7, 7, 6_000);
        assert_eq!(t.by_touch.len(), t.len());
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
    fn a_gap_behind_a_retriable_refusal_is_answered_with_the_refusal() {
        let mut t = ProducerStateTable::default();
        t.record(&b(7, 0, 0, 4), 0, 4, 0);
        // R1 (5..9) refused while not leader; R2 (10..14) arrives with a gap.
        t.refused(&b(7, 0, 5, 9), Refusal::NotLeader, 1_000);
        assert_eq!(
            t.check_at(&b(7, 0, 10, 14), 1_500),
            SequenceCheck::Refused(Refusal::NotLeader)
        );
        // R1 itself is next in line, and appends normally.
        assert_eq!(t.check_at(&b(7, 0, 5, 9), 1_500), SequenceCheck::Append);
        // Too late: a gap is a gap again.
        assert_eq!(
            t.check_at(&b(7, 0, 10, 14), 1_000 + REFUSAL_MEMORY_MS),
            SequenceCheck::OutOfOrder
        );
        // Another epoch, or a batch before the refused one: not explained.
        assert_eq!(t.check_at(&b(7, 1, 3, 3), 1_500), SequenceCheck::OutOfOrder);
        // A follower catching up on older batches keeps the refusal.
        let mut f = ProducerStateTable::default();
        f.refused(&b(7, 0, 5, 9), Refusal::NotLeader, 1_000);
        f.record(&b(7, 0, 0, 4), 0, 4, 0);
        assert_eq!(
            f.check_at(&b(7, 0, 10, 14), 1_500),
            SequenceCheck::Refused(Refusal::NotLeader)
        );
        t.record(&b(7, 0, 5, 9), 5, 9, 0);
        // The refused batch is in the log: the refusal is forgotten.
        assert_eq!(
            t.check_at(&b(7, 0, 15, 19), 1_600),
            SequenceCheck::OutOfOrder
        );
    }

    #[test]
    fn refusals_are_bounded() {
        let mut t = ProducerStateTable::default();
        for pid in 0..(MAX_REFUSALS as i64 + 10) {
            t.refused(&b(pid, 0, 1, 1), Refusal::Storage, 0);
        }
        assert_eq!(t.refusals.len(), MAX_REFUSALS);
        // Once the old ones expire, new ones are remembered again.
        t.refused(
            &b(-5 + 10_000, 0, 1, 1),
            Refusal::Storage,
            REFUSAL_MEMORY_MS,
        );
        assert_eq!(t.refusals.len(), 1);
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
