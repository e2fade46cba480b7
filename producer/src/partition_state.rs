//! Per-partition send state of the sender: the batches not yet acknowledged,
//! in sequence order, and the rules that keep retries ordered. No I/O.
//!
//! Rules: at most `max.in.flight` batches of a partition are in flight; the
//! next batch sent is always the first queued one. When a batch fails
//! retriably, the partition "rewinds": nothing more is sent until every
//! in-flight batch has answered, then sending resumes from the first queued
//! batch (after `retry.backoff.ms`). With idempotence the broker rejects later
//! batches of a failed one with OUT_OF_ORDER_SEQUENCE_NUMBER, and they are
//! queued again behind it, so the log never sees them out of order; a batch
//! that did get appended but whose response was lost is answered as a duplicate
//! with its original offset when resent.

use std::collections::VecDeque;
use tokio::time::Instant;

use bytes::Bytes;

use crate::accumulator::Batch;

/// Whether a batch is waiting or on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Queued,
    InFlight,
}

/// A batch owned by the sender.
#[derive(Debug)]
pub(crate) struct InBatch {
    pub id: u64,
    pub batch: Batch,
    pub base_seq: i32,
    pub count: i32,
    /// The encoded (compressed, sequenced) batch; rebuilt after renumbering.
    pub bytes: Option<Bytes>,
    pub state: State,
    pub attempts: u32,
    pub deadline: Instant,
    /// Sent at least once: its fate on the broker may be unknown.
    pub sent: bool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct PartState {
    pub next_seq: i32,
    pub queue: VecDeque<InBatch>,
    pub retry_at: Option<Instant>,
    pub rewinding: bool,
}

impl PartState {
    /// Queues a new batch and gives it the next sequence number.
    pub fn push(&mut self, id: u64, batch: Batch, deadline: Instant) {
        let count = batch.builder.record_count();
        self.queue.push_back(InBatch {
            id,
            batch,
            base_seq: self.next_seq,
            count,
            bytes: None,
            state: State::Queued,
            attempts: 0,
            deadline,
            sent: false,
        });
        self.next_seq = self.next_seq.wrapping_add(count);
    }

    pub fn in_flight(&self) -> usize {
        self.queue
            .iter()
            .filter(|b| b.state == State::InFlight)
            .count()
    }

    /// The batch to send next, if any may be sent now.
    pub fn next_sendable(&mut self, now: Instant, max_in_flight: usize) -> Option<&mut InBatch> {
        if self.retry_at.is_some_and(|t| t > now) {
            return None;
        }
        let in_flight = self.in_flight();
        if self.rewinding {
            if in_flight > 0 {
                return None;
            }
            self.rewinding = false;
        }
        if in_flight >= max_in_flight {
            return None;
        }
        self.queue.iter_mut().find(|b| b.state == State::Queued)
    }

    /// Removes a batch (acknowledged, or failed for good).
    pub fn remove(&mut self, id: u64) -> Option<InBatch> {
        let i = self.queue.iter().position(|b| b.id == id)?;
        self.queue.remove(i)
    }

    /// A batch failed retriably: queue it again and rewind the partition.
    pub fn retry(&mut self, id: u64, at: Instant) {
        if let Some(b) = self.queue.iter_mut().find(|b| b.id == id) {
            b.state = State::Queued;
            b.attempts += 1;
        }
        self.rewinding = true;
        self.retry_at = Some(self.retry_at.map_or(at, |t| t.max(at)));
    }

    /// Whether a batch before `id` is still unacknowledged (so an
    /// OUT_OF_ORDER_SEQUENCE_NUMBER for `id` is explained by it).
    pub fn has_earlier(&self, id: u64) -> bool {
        self.queue.front().is_some_and(|b| b.id != id)
    }

    /// Renumbers every batch from sequence 0 (after a new producer id/epoch).
    pub fn renumber(&mut self) {
        self.next_seq = 0;
        for b in &mut self.queue {
            b.base_seq = self.next_seq;
            b.bytes = None;
            self.next_seq = self.next_seq.wrapping_add(b.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use brook_protocol::records::BatchBuilder;

    use super::*;
    use crate::accumulator::{BatchShared, TopicPartition};

    fn batch(n: usize) -> Batch {
        let mut builder = BatchBuilder::new();
        for _ in 0..n {
            builder.append(0, None, Some(b"v"), &[]).unwrap();
        }
        Batch {
            id: 0,
            tp: TopicPartition {
                topic: Arc::from("t"),
                partition: 0,
            },
            builder,
            shared: Arc::new(BatchShared::default()),
            created: Instant::now(),
            reserved: 0,
        }
    }

    fn send_all(p: &mut PartState, now: Instant, max: usize) -> Vec<(u64, i32)> {
        let mut out = Vec::new();
        while let Some(b) = p.next_sendable(now, max) {
            b.state = State::InFlight;
            out.push((b.id, b.base_seq));
        }
        out
    }

    #[test]
    fn sequences_follow_record_counts_and_in_flight_is_capped() {
        let now = Instant::now();
        let mut p = PartState::default();
        for (id, n) in [(1, 3), (2, 2), (3, 4), (4, 1)] {
            p.push(id, batch(n), now);
        }
        assert_eq!(send_all(&mut p, now, 3), vec![(1, 0), (2, 3), (3, 5)]);
        assert!(p.remove(1).is_some());
        assert_eq!(send_all(&mut p, now, 3), vec![(4, 9)]);
    }

    #[test]
    fn a_failure_rewinds_and_resends_in_order_after_in_flight_drains() {
        let now = Instant::now();
        let later = now + Duration::from_millis(100);
        let mut p = PartState::default();
        for id in 1..=3 {
            p.push(id, batch(1), now);
        }
        assert_eq!(send_all(&mut p, now, 5).len(), 3);
        // Batch 1 lost; batches 2 and 3 still in flight.
        p.retry(1, later);
        assert!(
            send_all(&mut p, later, 5).is_empty(),
            "waits for in-flight batches"
        );
        // 2 and 3 are refused as out of order (1 is earlier): retried too.
        assert!(p.has_earlier(2));
        p.retry(2, later);
        p.retry(3, later);
        assert!(send_all(&mut p, now, 5).is_empty(), "waits for the backoff");
        assert_eq!(send_all(&mut p, later, 5), vec![(1, 0), (2, 1), (3, 2)]);
        assert!(!p.has_earlier(1));
    }

    #[test]
    fn renumber_restarts_at_zero() {
        let now = Instant::now();
        let mut p = PartState::default();
        for id in 1..=3 {
            p.push(id, batch(2), now);
        }
        p.remove(1);
        p.renumber();
        let seqs: Vec<_> = p.queue.iter().map(|b| b.base_seq).collect();
        assert_eq!(seqs, vec![0, 2]);
        assert_eq!(p.next_seq, 4);
    }
}
