//! [`MetadataImage`]: cluster metadata as of one point of the metadata log,
//! changed only by [`MetadataImage::replay`] (DESIGN.md section 7).
//!
//! Pure: no I/O, no clock, no randomness. Every node that replays the same
//! records reaches an equal image, which is what lets a snapshot stand in for
//! the log prefix it covers: a snapshot is [`MetadataImage::to_records`], the
//! records that rebuild the image from empty.
//!
//! Replay is strict. A record that contradicts the image (a partition of an
//! unknown topic, a duplicate topic name) is refused with a [`ReplayError`]
//! and changes nothing: the controller validated it before writing it, so a
//! refusal means a bug, reported rather than papered over.

use std::collections::BTreeMap;

use brook_protocol::codec::Uuid;
use thiserror::Error;

use super::delta::MetadataDelta;
use super::records::{
    BrokerRegistration, ConfigResource, MetadataRecord, PartitionChange, PartitionRecord,
    QuotaEntity, QuotaValue,
};

/// A record that cannot be applied to the image.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplayError {
    #[error("topic id {0} is unknown")]
    UnknownTopic(Uuid),
    #[error("topic {0} already exists with another id")]
    DuplicateTopicName(String),
    #[error("topic id {0} already exists")]
    DuplicateTopicId(Uuid),
    #[error("partition {1} of topic id {0} is unknown")]
    UnknownPartition(Uuid, i32),
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    #[error("broker {id} epoch {epoch} is stale (registered with {current})")]
    StaleBrokerEpoch { id: i32, epoch: i64, current: i64 },
    #[error("producer id block {next} would move backwards from {current}")]
    ProducerIdsBackwards { next: i64, current: i64 },
}

/// A topic in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionRecord>,
}

/// Cluster metadata at one point of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<Uuid, TopicImage>,
    pub topic_ids: BTreeMap<String, Uuid>,
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// Producer ids below this are handed out.
    pub next_producer_id: i64,
    pub views: BTreeMap<String, brook_views::ViewDef>,
    /// Client quotas: entity → quota key (`producer_byte_rate`, …) → value.
    /// An entity with no keys left is removed.
    pub quotas: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn partition(&self, topic_id: &Uuid, partition: i32) -> Option<&PartitionRecord> {
        self.topics.get(topic_id)?.partitions.get(&partition)
    }

    /// A topic's config overrides (empty when none).
    pub fn topic_configs(&self, name: &str) -> BTreeMap<String, String> {
        self.configs
            .get(&ConfigResource::Topic(name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Apply one record, noting what changed in `delta`. On error nothing
    /// changes.
    ///
    /// # Errors
    /// A record that contradicts the image.
    pub fn replay(
        &mut self,
        record: &MetadataRecord,
        delta: &mut MetadataDelta,
    ) -> Result<(), ReplayError> {
        match record {
            MetadataRecord::RegisterBroker(b) => {
                self.brokers.insert(b.id, b.clone());
                delta.brokers.insert(b.id);
            }
            MetadataRecord::FenceBroker { id, epoch } => {
                self.broker_mut(*id, *epoch)?.fenced = true;
                delta.brokers.insert(*id);
            }
            MetadataRecord::UnfenceBroker { id, epoch } => {
                let b = self.broker_mut(*id, *epoch)?;
                b.fenced = false;
                b.shutting_down = false;
                delta.brokers.insert(*id);
            }
            MetadataRecord::BrokerShuttingDown { id, epoch } => {
                self.broker_mut(*id, *epoch)?.shutting_down = true;
                delta.brokers.insert(*id);
            }
            MetadataRecord::UnregisterBroker { id, epoch } => {
                self.broker_mut(*id, *epoch)?;
                self.brokers.remove(id);
                delta.brokers.insert(*id);
            }
            MetadataRecord::Topic { name, id } => {
                if self.topics.contains_key(id) {
                    return Err(ReplayError::DuplicateTopicId(*id));
                }
                if self.topic_ids.contains_key(name) {
                    return Err(ReplayError::DuplicateTopicName(name.clone()));
                }
                self.topic_ids.insert(name.clone(), *id);
                self.topics.insert(
                    *id,
                    TopicImage {
                        name: name.clone(),
                        id: *id,
                        partitions: BTreeMap::new(),
                    },
                );
                delta.topics_created.insert(*id);
            }
            MetadataRecord::Partition(p) => {
                let topic = self
                    .topics
                    .get_mut(&p.topic_id)
                    .ok_or(ReplayError::UnknownTopic(p.topic_id))?;
                topic.partitions.insert(p.partition, p.clone());
                delta.partitions.insert((p.topic_id, p.partition));
            }
            MetadataRecord::PartitionChange(c) => {
                let p = self
                    .topics
                    .get_mut(&c.topic_id)
                    .ok_or(ReplayError::UnknownTopic(c.topic_id))?
                    .partitions
                    .get_mut(&c.partition)
                    .ok_or(ReplayError::UnknownPartition(c.topic_id, c.partition))?;
                apply_change(p, c);
                delta.partitions.insert((c.topic_id, c.partition));
            }
            MetadataRecord::RemoveTopic { id } => {
                let topic = self
                    .topics
                    .remove(id)
                    .ok_or(ReplayError::UnknownTopic(*id))?;
                self.topic_ids.remove(&topic.name);
                self.configs
                    .remove(&ConfigResource::Topic(topic.name.clone()));
                delta.partitions.retain(|(t, _)| t != id);
                delta.topics_created.remove(id);
                // Removed twice in one delta (re-created between): the node
                // may host partitions of either incarnation.
                let removed = delta
                    .topics_removed
                    .entry(*id)
                    .or_insert_with(|| topic.clone());
                for (p, rec) in topic.partitions {
                    removed.partitions.entry(p).or_insert(rec);
                }
            }
            MetadataRecord::Config {
                resource,
                key,
                value,
            } => {
                let entry = self.configs.entry(resource.clone()).or_default();
                match value {
                    Some(v) => {
                        entry.insert(key.clone(), v.clone());
                    }
                    None => {
                        entry.remove(key);
                        if entry.is_empty() {
                            self.configs.remove(resource);
                        }
                    }
                }
                delta.configs.insert(resource.clone());
            }
            MetadataRecord::ProducerIds { next, .. } => {
                if *next < self.next_producer_id {
                    return Err(ReplayError::ProducerIdsBackwards {
                        next: *next,
                        current: self.next_producer_id,
                    });
                }
                self.next_producer_id = *next;
                delta.producer_ids = true;
            }
            MetadataRecord::View(def) => {
                self.views.insert(def.name.clone(), def.clone());
                delta.views.insert(def.name.clone());
            }
            MetadataRecord::RemoveView { name } => {
                self.views.remove(name);
                delta.views.insert(name.clone());
            }
            MetadataRecord::ClientQuota { entity, key, value } => {
                let entry = self.quotas.entry(entity.clone()).or_default();
                match value {
                    Some(v) => {
                        entry.insert(key.clone(), *v);
                    }
                    None => {
                        entry.remove(key);
                        if entry.is_empty() {
                            self.quotas.remove(entity);
                        }
                    }
                }
                delta.quotas.insert(entity.clone());
            }
        }
        Ok(())
    }

    /// Replay a batch, stopping at the first record that fails (the records
    /// before it stay applied, as they would on every other node).
    ///
    /// # Errors
    /// The failing record's index and error.
    pub fn replay_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
        delta: &mut MetadataDelta,
    ) -> Result<(), (usize, ReplayError)> {
        for (i, r) in records.into_iter().enumerate() {
            self.replay(r, delta).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    fn broker_mut(&mut self, id: i32, epoch: i64) -> Result<&mut BrokerRegistration, ReplayError> {
        let b = self
            .brokers
            .get_mut(&id)
            .ok_or(ReplayError::UnknownBroker(id))?;
        if b.epoch != epoch {
            return Err(ReplayError::StaleBrokerEpoch {
                id,
                epoch,
                current: b.epoch,
            });
        }
        Ok(b)
    }

    /// The records that rebuild this image from empty: the snapshot form.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(b.clone()));
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                id: t.id,
            });
            for p in t.partitions.values() {
                out.push(MetadataRecord::Partition(p.clone()));
            }
        }
        for (resource, entries) in &self.configs {
            for (k, v) in entries {
                out.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    key: k.clone(),
                    value: Some(v.clone()),
                });
            }
        }
        if self.next_producer_id != 0 {
            out.push(MetadataRecord::ProducerIds {
                broker_id: -1,
                broker_epoch: -1,
                next: self.next_producer_id,
            });
        }
        for def in self.views.values() {
            out.push(MetadataRecord::View(def.clone()));
        }
        for (entity, values) in &self.quotas {
            for (key, value) in values {
                out.push(MetadataRecord::ClientQuota {
                    entity: entity.clone(),
                    key: key.clone(),
                    value: Some(*value),
                });
            }
        }
        out
    }

    /// A stable digest of the image, to compare nodes' images cheaply.
    pub fn content_hash(&self) -> u32 {
        crc32c::crc32c(&super::records::encode_batch(&self.to_records()))
    }
}

fn apply_change(p: &mut PartitionRecord, c: &PartitionChange) {
    if let Some(leader) = c.leader {
        p.leader = leader;
        p.leader_epoch += 1;
    }
    if let Some(isr) = &c.isr {
        p.isr.clone_from(isr);
    }
    if let Some(elr) = &c.elr {
        p.elr.clone_from(elr);
    }
    if let Some(replicas) = &c.replicas {
        p.replicas.clone_from(replicas);
    }
    if let Some(adding) = &c.adding {
        p.adding.clone_from(adding);
    }
    if let Some(removing) = &c.removing {
        p.removing.clone_from(removing);
    }
    p.partition_epoch += 1;
}
