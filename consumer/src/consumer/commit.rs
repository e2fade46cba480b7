//! Committed offsets and auto commit for [`Consumer`], through the group
//! coordinator (see `crate::offsets`).

use std::collections::HashMap;

use brook_producer::TopicPartition;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{ms, Consumer};
use crate::error::{Error, Result};
use crate::offsets;

impl Consumer {
    pub(super) fn positions(&self) -> Vec<(TopicPartition, i64)> {
        self.parts
            .iter()
            .filter_map(|(tp, p)| p.position.map(|o| (tp.clone(), o)))
            .collect()
    }

    pub(super) fn maybe_auto_commit(&mut self) {
        if !self.cfg.enable_auto_commit || self.cfg.group().is_none() {
            return;
        }
        if self.last_commit.elapsed() < ms(i64::from(self.cfg.auto_commit_interval_ms)) {
            return;
        }
        self.last_commit = Instant::now();
        self.auto_commit = Some(self.commit_async());
    }

    /// Commits the current positions and waits for the broker's answer.
    ///
    /// # Errors
    /// [`Error::NoGroupId`], connection errors or the broker's error code.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.positions();
        self.commit_offsets(&offsets).await
    }

    /// Commits explicit offsets (the offset of the next record to read).
    ///
    /// # Errors
    /// As [`Consumer::commit_sync`].
    pub async fn commit_offsets(&self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let group = self.cfg.group().ok_or(Error::NoGroupId)?;
        offsets::commit(&self.client, group, &self.commit_identity(), offsets).await
    }

    /// Commits the current positions in the background.
    pub fn commit_async(&self) -> JoinHandle<Result<()>> {
        let client = self.client.clone();
        let group = self.cfg.group().map(str::to_owned);
        let offsets = self.positions();
        let who = self.commit_identity();
        tokio::spawn(async move {
            let group = group.ok_or(Error::NoGroupId)?;
            let r = offsets::commit(&client, &group, &who, &offsets).await;
            if let Err(e) = &r {
                tracing::warn!("offset commit failed: {e}");
            }
            r
        })
    }

    /// Committed offsets of `tps` (`None` where nothing is committed).
    ///
    /// # Errors
    /// [`Error::NoGroupId`], connection errors or the broker's error code.
    pub async fn committed(
        &self,
        tps: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, Option<i64>>> {
        let group = self.cfg.group().ok_or(Error::NoGroupId)?;
        offsets::committed(&self.client, group, tps).await
    }

    /// Commits positions if auto commit is on, leaves the group when
    /// subscribed (LeaveGroup, except for static members, whose place is kept
    /// for `session.timeout.ms`), then closes connections.
    ///
    /// # Errors
    /// The final commit's error.
    pub async fn close(mut self) -> Result<()> {
        let r = if self.group.is_some() {
            self.close_group().await
        } else if self.cfg.enable_auto_commit && self.cfg.group().is_some() {
            self.commit_sync().await
        } else {
            Ok(())
        };
        self.client.close();
        r
    }
}
