//! Group subscription for [`Consumer`]: starting the membership task
//! (`crate::group::membership`) and applying its events inside `poll`.
//!
//! Events are applied only between two `poll` results, so "processed" means
//! "returned by an earlier poll": a revoked partition's position (the offset
//! after the last record returned) is committed, with the current generation
//! and member id, before the task is told it may rejoin. A lost partition is
//! dropped without a commit, since the member no longer has a generation.

use std::collections::BTreeSet;
use std::sync::Arc;

use brook_producer::TopicPartition;
use tokio::time::Instant;

use super::Consumer;
use crate::error::{Error, Result};
use crate::group::membership::{self, Command, Event, Settings, Topics};
use crate::group::{assignor_by_name, common_protocol, RebalanceListener};
use crate::offsets::CommitIdentity;

/// A subscribed consumer's group state.
pub(super) struct GroupState {
    handle: membership::Handle,
    /// `None` once the task ended.
    open: bool,
    listener: Option<Arc<dyn RebalanceListener>>,
    /// Generation and member id of the assignment the consumer holds.
    applied: Option<GroupMetadata>,
}

impl std::fmt::Debug for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupState")
            .field("applied", &self.applied)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

/// The group generation the consumer's current assignment belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    /// Generation id.
    pub generation: i32,
    /// Member id given by the coordinator.
    pub member_id: String,
}

impl Consumer {
    /// Subscribes to `topics` through the consumer group `group.id`: a
    /// background task joins the group and the assignment arrives through
    /// `poll`. Replaces a previous subscription or manual assignment.
    ///
    /// # Errors
    /// [`Error::NoGroupId`]; [`Error::InvalidStrategy`] for an unknown
    /// `partition.assignment.strategy` entry.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        let list = topics.iter().map(|t| (*t).to_owned()).collect();
        self.subscribe_to(Topics::List(list))
    }

    /// Subscribes to every topic whose whole name matches `pattern` (a
    /// `regex` crate regular expression), re-checked as topics come and go.
    ///
    /// # Errors
    /// [`Error::InvalidPattern`], or as [`Consumer::subscribe`].
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let re = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| Error::InvalidPattern(e.to_string()))?;
        self.subscribe_to(Topics::Pattern(re))
    }

    /// Sets the callbacks called around rebalances (keep it before
    /// `subscribe` so the first assignment is seen too).
    pub fn set_rebalance_listener(&mut self, listener: Arc<dyn RebalanceListener>) {
        self.listener = Some(super::Listener(listener.clone()));
        if let Some(g) = &mut self.group {
            g.listener = Some(listener);
        }
    }

    /// Leaves the group as [`Consumer::close`] does (commit with auto commit,
    /// `on_revoked`, LeaveGroup unless static) but keeps the consumer usable
    /// for `assign` or a new `subscribe`.
    ///
    /// # Errors
    /// The final commit's error.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        self.close_group().await
    }

    /// The generation and member id of the current assignment; `None` when
    /// not subscribed or not assigned yet.
    pub fn group_metadata(&self) -> Option<GroupMetadata> {
        self.group.as_ref().and_then(|g| g.applied.clone())
    }

    fn subscribe_to(&mut self, topics: Topics) -> Result<()> {
        let group = self.cfg.group().ok_or(Error::NoGroupId)?.to_owned();
        if let Some(g) = &self.group {
            if g.open {
                // Same membership, new topics: the task rejoins with them.
                let _ = g.handle.commands.send(Command::Subscribe(topics));
                return Ok(());
            }
        }
        let mut assignors = Vec::new();
        for name in &self.cfg.partition_assignment_strategy {
            assignors
                .push(assignor_by_name(name).ok_or_else(|| Error::InvalidStrategy(name.clone()))?);
        }
        let ms = |v: i32| super::ms(i64::from(v));
        let settings = Settings {
            group,
            instance: self.cfg.group_instance().map(str::to_owned),
            client_id: self.cfg.client_id.clone(),
            session_timeout_ms: self.cfg.session_timeout_ms,
            rebalance_timeout_ms: self.cfg.max_poll_interval_ms,
            heartbeat_interval: ms(self.cfg.heartbeat_interval_ms),
            retry_backoff: super::ms(self.cfg.retry_backoff_ms),
            request_timeout: ms(self.cfg.request_timeout_ms),
            metadata_max_age: super::ms(self.cfg.metadata_max_age_ms),
            protocol: common_protocol(&assignors),
            assignors,
        };
        // A manual assignment ends here; the group decides from now on.
        self.assign(Vec::new());
        let handle = membership::start(self.client.clone(), settings, topics);
        self.group = Some(GroupState {
            handle,
            open: true,
            listener: self.listener.as_ref().map(|l| l.0.clone()),
            applied: None,
        });
        Ok(())
    }

    /// Who commits: the live generation when subscribed.
    pub(super) fn commit_identity(&self) -> CommitIdentity {
        let Some(g) = &self.group else {
            return CommitIdentity::default();
        };
        let (generation, member_id) = g
            .handle
            .shared
            .lock()
            .map(|s| (s.generation, s.member_id.clone()))
            .unwrap_or((-1, String::new()));
        CommitIdentity {
            generation,
            member_id,
            instance_id: self.cfg.group_instance().map(str::to_owned),
        }
    }

    /// Notes a poll (for `max.poll.interval.ms`) and applies pending events.
    ///
    /// # Errors
    /// A fatal group error (e.g. [`Error::Fenced`]).
    pub(super) async fn group_poll(&mut self) -> Result<()> {
        let Some(g) = &mut self.group else {
            return Ok(());
        };
        if let Ok(mut s) = g.handle.shared.lock() {
            s.last_poll = Instant::now();
        }
        loop {
            let Some(g) = &mut self.group else {
                return Ok(());
            };
            let ev = match g.handle.events.try_recv() {
                Ok(ev) => ev,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return Ok(()),
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    g.open = false;
                    return Ok(());
                }
            };
            self.apply_event(ev).await?;
        }
    }

    /// The next event, or never when not subscribed (for `select!`).
    pub(super) async fn next_event(group: &mut Option<GroupState>) -> Option<Event> {
        match group {
            Some(g) if g.open => {
                let ev = g.handle.events.recv().await;
                if ev.is_none() {
                    g.open = false;
                }
                ev
            }
            _ => std::future::pending().await,
        }
    }

    /// Applies one event from the membership task.
    ///
    /// # Errors
    /// A fatal group error.
    pub(super) async fn apply_event(&mut self, ev: Event) -> Result<()> {
        match ev {
            Event::Revoke(parts, done) => {
                self.revoke(&parts, true).await;
                let _ = done.send(());
            }
            Event::Lost(parts, done) => {
                self.revoke(&parts, false).await;
                let _ = done.send(());
            }
            Event::Assigned {
                generation,
                member_id,
                partitions,
                done,
            } => {
                let before: BTreeSet<TopicPartition> = self.parts.keys().cloned().collect();
                let added: Vec<TopicPartition> = partitions
                    .iter()
                    .filter(|tp| !before.contains(*tp))
                    .cloned()
                    .collect();
                self.assign(partitions);
                tracing::info!(
                    "generation {generation}: member {member_id} assigned {} partitions ({} new)",
                    self.parts.len(),
                    added.len()
                );
                if let Some(g) = &mut self.group {
                    g.applied = Some(GroupMetadata {
                        generation,
                        member_id,
                    });
                    if let Some(l) = &g.listener {
                        l.on_assigned(&added);
                    }
                }
                let _ = done.send(());
            }
            Event::Fatal(e) => {
                if let Some(g) = &mut self.group {
                    g.open = false;
                }
                let all = self.assignment();
                self.revoke(&all, false).await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes `parts` from the assignment; with `commit`, their positions
    /// are committed (auto commit) and `on_revoked` is called, else `on_lost`.
    async fn revoke(&mut self, parts: &[TopicPartition], commit: bool) {
        if commit && self.cfg.enable_auto_commit {
            // An older background commit must not land after this one.
            if let Some(h) = self.auto_commit.take() {
                let _ = h.await;
            }
            let offsets: Vec<(TopicPartition, i64)> = self
                .positions()
                .into_iter()
                .filter(|(tp, _)| parts.contains(tp))
                .collect();
            if let Err(e) = self.commit_offsets(&offsets).await {
                tracing::warn!("commit of revoked partitions failed: {e}");
            }
        }
        if let Some(l) = self.group.as_ref().and_then(|g| g.listener.clone()) {
            if commit {
                l.on_revoked(parts);
            } else {
                l.on_lost(parts);
            }
        }
        let keep: Vec<TopicPartition> = self
            .parts
            .keys()
            .filter(|tp| !parts.contains(tp))
            .cloned()
            .collect();
        self.assign(keep);
    }

    /// Leaves the group: commit (auto commit), `on_revoked`, LeaveGroup
    /// (dynamic members only), and waits for the task to end.
    pub(super) async fn close_group(&mut self) -> Result<()> {
        let Some(g) = &self.group else {
            return Ok(());
        };
        let listener = g.listener.clone();
        let open = g.open;
        let r = if self.cfg.enable_auto_commit && open {
            if let Some(h) = self.auto_commit.take() {
                let _ = h.await;
            }
            self.commit_sync().await
        } else {
            Ok(())
        };
        if let Some(l) = listener {
            l.on_revoked(&self.assignment());
        }
        if let Some(g) = self.group.take() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if g.handle.commands.send(Command::Close(tx)).is_ok() {
                let wait = super::ms(i64::from(self.cfg.request_timeout_ms));
                let _ = tokio::time::timeout(wait, rx).await;
            }
            g.handle.task.abort();
        }
        self.assign(Vec::new());
        r
    }
}

impl Drop for GroupState {
    fn drop(&mut self) {
        // Without close(): stop without LeaveGroup, as a crashed member would.
        self.handle.task.abort();
    }
}
