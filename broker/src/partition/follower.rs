//! The follower side of the partition shell: appending what the leader's
//! log holds, truncating to where it diverges, restarting at its log start,
//! and serving the reads other followers fetch.

use super::*;

impl Partition {
    /// Append batches fetched from the leader, unchanged (offsets, epochs,
    /// CRCs checked), and rebuild the idempotent-producer state from them, so
    /// a retry after failover is still recognised as a duplicate.
    ///
    /// `fetched_in` is the leader epoch the fetch was sent in. Checked under
    /// the append lock: an answer that arrives after this replica became
    /// leader, or moved to a newer epoch, is dropped (Kafka drops a fetch
    /// response whose partition's fetch state changed meanwhile). Appended
    /// anyway, it would land beside the new leader's own appends, with
    /// producer state the new leader never checked its retries against.
    ///
    /// # Errors
    /// [`BrokerError::FencedLeaderEpoch`] for a stale fetch; invalid
    /// batches, offsets going backwards, storage errors.
    pub async fn append_as_follower(
        &self,
        batches: &[u8],
        fetched_in: i32,
    ) -> Result<AppendInfo, BrokerError> {
        let mut producers = self.producers.lock().await;
        {
            let st = self.shared.lock();
            if !matches!(st.role(), Role::Follower { .. }) || st.leader_epoch() != fetched_in {
                return Err(BrokerError::FencedLeaderEpoch);
            }
        }
        let mut span: Option<(i64, i64)> = None;
        let (mut max_ts, mut max_epoch) = (-1i64, -1i32);
        for (_, h) in BatchIter::new(batches) {
            let first = span.map_or(h.base_offset(), |(f, _)| f);
            span = Some((first, h.last_offset()));
            max_ts = max_ts.max(h.max_timestamp());
            max_epoch = max_epoch.max(h.partition_leader_epoch());
        }
        // A roll first (with its producer snapshot), so the append below
        // never rolls by itself.
        if let Some((first, last)) = span {
            self.roll_off_runtime(&producers, first, last, batches.len(), max_ts)
                .await?;
        }
        let info = if max_epoch > self.log.latest_epoch().unwrap_or(-1) {
            // A new leader epoch is written to the leader-epoch checkpoint
            // (write, fsync, rename) by the append: on the blocking pool, with
            // the batches copied (once per epoch change).
            let (log, owned) = (self.log.clone(), batches.to_vec());
            tokio::task::spawn_blocking(move || log.append_as_follower(&owned))
                .await
                .map_err(|e| BrokerError::Storage(format!("follower append panicked: {e}")))??
        } else {
            self.log.append_as_follower(batches)?
        };
        for (_, h) in BatchIter::new(batches) {
            if h.producer_id() >= 0 && !h.is_control() {
                let id = BatchIdentity::of(&h);
                producers.record(&id, h.base_offset(), h.last_offset(), h.max_timestamp());
            }
        }
        drop(producers);
        self.appended(info.log_end_offset);
        Ok(info)
    }

    /// Truncate the log to `offset` (a follower reconciling with its leader)
    /// and rebuild the producer state from what remains. Returns the new log end.
    ///
    /// # Errors
    /// Storage errors (the log is then offline).
    pub async fn truncate_to(&self, offset: i64) -> Result<i64, BrokerError> {
        let mut producers = self.producers.lock().await;
        let log = self.log.clone();
        let (end, table) = tokio::task::spawn_blocking(move || {
            // Snapshots past the cut first: one left behind would describe
            // batches the log no longer holds once appends pass it again.
            crate::producer_state::snapshot::delete_above(log.dir(), Some(offset))?;
            let end = log.truncate_to(offset)?;
            let mut table = ProducerStateTable::default();
            crate::producer_state::snapshot::load(&log, &mut table)?;
            Ok::<_, crate::log::LogError>((end, table))
        })
        .await
        .map_err(|e| BrokerError::Storage(format!("truncation panicked: {e}")))??;
        *producers = table;
        // Still under the append lock: nothing is appended in between.
        self.after_truncation(end);
        Ok(end)
    }

    /// The log now ends at `end`: durability, the log-end watch and the
    /// state machine follow it down.
    fn after_truncation(&self, end: i64) {
        self.flusher.truncated(end);
        self.end.send_replace(end);
        self.shared.step(Event::Truncated { end });
    }

    /// Empty the log and restart it at `offset` (a follower behind the
    /// leader's log start). Returns the new log end.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn restart_at(&self, offset: i64) -> Result<i64, BrokerError> {
        let mut producers = self.producers.lock().await;
        let log = self.log.clone();
        let end = tokio::task::spawn_blocking(move || {
            crate::producer_state::snapshot::delete_above(log.dir(), None)?;
            log.truncate_fully_and_start_at(offset)
        })
        .await
        .map_err(|e| BrokerError::Storage(format!("truncation panicked: {e}")))??;
        *producers = ProducerStateTable::default();
        self.after_truncation(end);
        Ok(end)
    }

    /// Read records for a follower: up to the log end, whole batches.
    ///
    /// # Errors
    /// OFFSET_OUT_OF_RANGE and storage errors.
    pub fn read_for_follower(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult, BrokerError> {
        let end = self.log.log_end_offset();
        Ok(self.log.read(offset, max_bytes as u64, end, min_one)?)
    }
}
