//! Choosing a record's partition and appending it to the accumulator.
//!
//! Sticky switching (KIP-480, as the Java client's `abortOnNewBatch`): a
//! record without an explicit partition is first offered to the partition the
//! partitioner picks without starting a new batch there. If it would start one
//! — the last batch was sealed because it was full, *or sent because
//! `linger.ms` expired* — the partitioner is told via
//! [`Partitioner::on_new_batch`] and asked again, and the record starts the
//! new batch wherever it now points. So at low rates, where batches leave on
//! linger rather than size, unkeyed records still rotate over partitions.
//!
//! Hot path: one accumulator lock per record, two only when a batch starts.

use std::sync::Arc;

use crate::accumulator::{Accumulator, Appended, TopicPartition};
use crate::error::{Error, Result};
use crate::partitioner::Partitioner;
use crate::record::ProducerRecord;

/// Appends `record` (its `size` bytes already reserved) and returns where it
/// went.
///
/// # Errors
/// Encoding errors from the accumulator; [`Error::Closed`] if it is poisoned.
pub(super) fn place(
    acc: &Accumulator,
    partitioner: &dyn Partitioner,
    record: &ProducerRecord,
    partitions: usize,
    timestamp: i64,
    size: usize,
) -> Result<(TopicPartition, Appended)> {
    let pick = || {
        let p = partitioner.partition(&record.topic, record.key.as_deref(), partitions);
        i32::try_from(p.min(partitions.saturating_sub(1))).unwrap_or(0)
    };
    let append = |tp: &TopicPartition, abort_on_new_batch: bool| {
        acc.append(
            tp,
            timestamp,
            record.key.as_ref(),
            record.value.as_ref(),
            &record.headers,
            size,
            abort_on_new_batch,
        )
    };
    let mut tp = TopicPartition {
        topic: Arc::from(record.topic.as_str()),
        partition: record.partition.unwrap_or_else(pick),
    };
    if record.partition.is_none() {
        if let Some(appended) = append(&tp, true)? {
            return Ok((tp, appended));
        }
        partitioner.on_new_batch(
            &record.topic,
            usize::try_from(tp.partition).unwrap_or(0),
            partitions,
        );
        tp.partition = pick();
    }
    let appended = append(&tp, false)?.ok_or(Error::Closed)?;
    Ok((tp, appended))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::partitioner::DefaultPartitioner;

    fn unkeyed(acc: &Accumulator, p: &DefaultPartitioner) -> i32 {
        let rec = ProducerRecord::new("t", "v");
        place(acc, p, &rec, 8, 0, rec.size_estimate())
            .map(|(tp, _)| tp.partition)
            .unwrap()
    }

    /// Regression: the sticky partition used to move only when a batch
    /// filled, so at low rates every record went to one partition forever.
    #[test]
    fn sticky_partition_moves_when_a_batch_leaves_on_linger() {
        let linger = Duration::from_millis(5);
        let acc = Accumulator::new(1 << 20, linger);
        let p = DefaultPartitioner::new(false);
        let first = unkeyed(&acc, &p);
        assert_eq!(unkeyed(&acc, &p), first, "sticks while the batch is open");
        let (sent, _) = acc.drain(Instant::now() + linger);
        assert_eq!(sent.len(), 1, "the lingering batch is sent");
        let next = unkeyed(&acc, &p);
        assert_ne!(next, first, "a new batch starts on another partition");
        assert_eq!(unkeyed(&acc, &p), next);
    }

    #[test]
    fn sticky_partition_moves_when_a_batch_fills() {
        let acc = Accumulator::new(200, Duration::from_secs(60));
        let p = DefaultPartitioner::new(false);
        let first = unkeyed(&acc, &p);
        let mut moved = None;
        for _ in 0..50 {
            let q = unkeyed(&acc, &p);
            if q != first {
                moved = Some(q);
                break;
            }
        }
        assert!(moved.is_some(), "never left partition {first}");
    }

    #[test]
    fn explicit_and_keyed_partitions_are_kept() {
        let acc = Accumulator::new(1 << 20, Duration::from_secs(60));
        let p = DefaultPartitioner::new(false);
        let rec = ProducerRecord::new("t", "v").with_partition(3);
        let (tp, _) = place(&acc, &p, &rec, 8, 0, 30).unwrap();
        assert_eq!(tp.partition, 3);
        let rec = ProducerRecord::new("t", "v").with_key("foobar");
        let want = i32::try_from(crate::partitioner::partition_for_key(b"foobar", 8)).unwrap();
        for _ in 0..3 {
            let (tp, _) = place(&acc, &p, &rec, 8, 0, 30).unwrap();
            assert_eq!(tp.partition, want);
        }
    }
}
