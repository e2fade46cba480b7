//! [`MetadataDelta`]: what a run of replayed records changed, so the rest of
//! the broker acts on changes instead of diffing whole images.
//!
//! Replay fills the delta; [`MetadataDelta::local_changes`] then reads it
//! against the new image from one node's point of view: which partitions it
//! now leads, which it follows, which it no longer hosts.

use std::collections::{BTreeMap, BTreeSet};

use brook_protocol::codec::Uuid;

use super::image::{MetadataImage, TopicImage};
use super::records::{ConfigResource, PartitionRecord, QuotaEntity};

/// What changed between two images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    pub brokers: BTreeSet<i32>,
    pub topics_created: BTreeSet<Uuid>,
    /// Removed topics, as they were just before removal.
    pub topics_removed: BTreeMap<Uuid, TopicImage>,
    /// Partitions created or changed (of topics that still exist).
    pub partitions: BTreeSet<(Uuid, i32)>,
    pub configs: BTreeSet<ConfigResource>,
    pub producer_ids: bool,
    pub views: BTreeSet<String>,
    /// Client-quota entities whose settings changed.
    pub quotas: BTreeSet<QuotaEntity>,
}

/// What one node must do after a delta.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalChanges {
    /// Partitions this node now leads (new, or with a new epoch).
    pub leaders: Vec<(String, PartitionRecord)>,
    /// Partitions this node now follows.
    pub followers: Vec<(String, PartitionRecord)>,
    /// Partitions this node hosted and no longer does (topic removed or
    /// replica reassigned away): (topic name, topic id, partition).
    pub removed: Vec<(String, Uuid, i32)>,
}

impl MetadataDelta {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The net change from `old` to `new`, found by comparing them. A node
    /// that falls behind (or restores a snapshot) publishes the latest image
    /// at once with this delta instead of replaying every step.
    pub fn between(old: &MetadataImage, new: &MetadataImage) -> Self {
        let mut d = Self::default();
        for id in old.brokers.keys().chain(new.brokers.keys()) {
            if old.brokers.get(id) != new.brokers.get(id) {
                d.brokers.insert(*id);
            }
        }
        // A topic id under a new name, or with fewer partitions, was removed
        // and created again (partitions are never removed otherwise).
        let same = |a: &TopicImage, b: &TopicImage| {
            a.name == b.name && a.partitions.keys().all(|p| b.partitions.contains_key(p))
        };
        for (id, t) in &old.topics {
            if !new.topics.get(id).is_some_and(|n| same(t, n)) {
                d.topics_removed.insert(*id, t.clone());
            }
        }
        for (id, t) in &new.topics {
            let before = old.topics.get(id).filter(|b| same(b, t));
            if before.is_none() {
                d.topics_created.insert(*id);
            }
            for (p, rec) in &t.partitions {
                if before.and_then(|b| b.partitions.get(p)) != Some(rec) {
                    d.partitions.insert((*id, *p));
                }
            }
        }
        for r in old.configs.keys().chain(new.configs.keys()) {
            if old.configs.get(r) != new.configs.get(r) {
                d.configs.insert(r.clone());
            }
        }
        d.producer_ids = old.next_producer_id != new.next_producer_id;
        for v in old.views.keys().chain(new.views.keys()) {
            if old.views.get(v) != new.views.get(v) {
                d.views.insert(v.clone());
            }
        }
        for q in old.quotas.keys().chain(new.quotas.keys()) {
            if old.quotas.get(q) != new.quotas.get(q) {
                d.quotas.insert(q.clone());
            }
        }
        d
    }

    /// This delta from `node`'s point of view. `old` is the image before the
    /// delta, `new` after it.
    pub fn local_changes(
        &self,
        node: i32,
        old: &MetadataImage,
        new: &MetadataImage,
    ) -> LocalChanges {
        let mut out = LocalChanges::default();
        for topic in self.topics_removed.values() {
            // Hosted before the delta, or at removal (created within it).
            let before = old.topics.get(&topic.id);
            let hosts = |t: &TopicImage, p: i32| {
                t.partitions
                    .get(&p)
                    .is_some_and(|r| r.replicas.contains(&node))
            };
            let all: std::collections::BTreeSet<i32> = topic
                .partitions
                .keys()
                .chain(before.into_iter().flat_map(|t| t.partitions.keys()))
                .copied()
                .collect();
            for p in all {
                if hosts(topic, p) || before.is_some_and(|b| hosts(b, p)) {
                    out.removed.push((topic.name.clone(), topic.id, p));
                }
            }
        }
        for (topic_id, partition) in &self.partitions {
            let Some(topic) = new.topics.get(topic_id) else {
                continue;
            };
            let Some(p) = topic.partitions.get(partition) else {
                continue;
            };
            let before = old.partition(topic_id, *partition);
            if p.replicas.contains(&node) {
                if p.leader == node {
                    out.leaders.push((topic.name.clone(), p.clone()));
                } else {
                    out.followers.push((topic.name.clone(), p.clone()));
                }
            } else if before.is_some_and(|b| b.replicas.contains(&node)) {
                out.removed
                    .push((topic.name.clone(), *topic_id, *partition));
            }
        }
        out
    }
}
