//! Committed offsets and group deletion, as steps of the group state machine:
//! OffsetCommit validation, OffsetDelete, DeleteGroups and offset retention.
//! Each returns tombstone or offset records only; the offsets themselves
//! change when those records are replayed (`state.rs`).

use super::error::GroupError;
use super::machine::{CommitRequest, Output};
use super::records::{GroupRecord, OffsetKey, OffsetValue};
use super::state::{Group, GroupConfig, Phase};

impl Group {
    pub(super) fn commit(
        &mut self,
        r: CommitRequest,
        now: i64,
        cfg: &GroupConfig,
        out: &mut Output,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if self.phase == Phase::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let simple = r.generation < 0 && self.phase == Phase::Empty;
        if !simple {
            self.check_member(&r.member_id, r.instance_id.as_deref(), r.generation)?;
            if self.phase == Phase::CompletingRebalance {
                return Err(GroupError::RebalanceInProgress);
            }
            if let Some(m) = self.members.get_mut(&r.member_id) {
                m.session_deadline = now.saturating_add(i64::from(m.session_timeout_ms));
            }
        }
        let expire = (r.retention_ms > 0).then(|| now.saturating_add(r.retention_ms));
        Ok(r.offsets
            .into_iter()
            .map(|o| {
                let metadata = o.metadata.unwrap_or_default();
                if metadata.len() > cfg.offset_metadata_max_bytes {
                    return Err(GroupError::OffsetMetadataTooLarge {
                        len: metadata.len(),
                        max: cfg.offset_metadata_max_bytes,
                    });
                }
                out.records.push(GroupRecord::Offset {
                    key: OffsetKey {
                        group: self.id.clone(),
                        topic: o.topic,
                        partition: o.partition,
                    },
                    value: Some(OffsetValue {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata,
                        commit_timestamp: now,
                        expire_timestamp: expire,
                    }),
                });
                Ok(())
            })
            .collect())
    }

    pub(super) fn delete_offsets(
        &mut self,
        partitions: &[(String, i32)],
        out: &mut Output,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if self.is_vacant() {
            return Err(GroupError::GroupIdNotFound);
        }
        let subscribed: Option<Vec<String>> = if self.members.is_empty() {
            Some(Vec::new())
        } else if self.protocol_type.as_deref() == Some("consumer") {
            let protocol = self.protocol.clone().unwrap_or_default();
            let mut topics = Vec::new();
            for m in self.members.values() {
                topics.extend(
                    m.metadata(&protocol)
                        .and_then(|b| super::consumer_protocol::subscription_topics(b))
                        .unwrap_or_default(),
                );
            }
            Some(topics)
        } else {
            None
        };
        let Some(subscribed) = subscribed else {
            return Err(GroupError::NonEmptyGroup);
        };
        Ok(partitions
            .iter()
            .map(|(topic, partition)| {
                if subscribed.contains(topic) {
                    return Err(GroupError::GroupSubscribedToTopic);
                }
                if self.offset(topic, *partition).is_some() {
                    out.records.push(GroupRecord::Offset {
                        key: OffsetKey {
                            group: self.id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        value: None,
                    });
                }
                Ok(())
            })
            .collect())
    }

    pub(super) fn delete(&mut self, out: &mut Output) -> Result<(), GroupError> {
        if self.is_vacant() {
            return Err(GroupError::GroupIdNotFound);
        }
        if !self.members.is_empty() || self.phase != Phase::Empty {
            return Err(GroupError::NonEmptyGroup);
        }
        self.tombstone_all(out);
        Ok(())
    }

    pub(super) fn tombstone_all(&self, out: &mut Output) {
        for (topic, partition) in self.offsets.keys() {
            out.records.push(GroupRecord::Offset {
                key: OffsetKey {
                    group: self.id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                },
                value: None,
            });
        }
        out.records.push(GroupRecord::Group {
            group: self.id.clone(),
            value: None,
        });
    }

    /// Offset retention for a group without members: offsets expire
    /// `offsets.retention.minutes` after the group emptied (or after their own
    /// commit, if later, or at an explicit v1 expiry); a group left with neither
    /// members nor offsets is deleted.
    pub(super) fn expire_offsets(&self, now: i64, cfg: &GroupConfig, out: &mut Output) {
        let mut remaining = 0usize;
        for ((topic, partition), v) in &self.offsets {
            let due = v.expire_timestamp.unwrap_or_else(|| {
                self.state_timestamp
                    .max(v.commit_timestamp)
                    .saturating_add(cfg.offsets_retention_ms)
            });
            if now >= due {
                out.records.push(GroupRecord::Offset {
                    key: OffsetKey {
                        group: self.id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    value: None,
                });
            } else {
                remaining += 1;
            }
        }
        let group_due = self
            .state_timestamp
            .saturating_add(cfg.offsets_retention_ms);
        if remaining == 0 && now >= group_due && !self.is_vacant() {
            out.records.push(GroupRecord::Group {
                group: self.id.clone(),
                value: None,
            });
        }
    }
}
