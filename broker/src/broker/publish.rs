//! Acting on a committed metadata delta: the registry of topics and the
//! partitions this node hosts follow the image, never the other way round.
//!
//! Runs after the new image is durable and published, under the admin lock.
//! What it does is idempotent per delta: open partitions this node now hosts,
//! move epochs of those it already has, apply changed topic configs, and
//! close and delete the partitions of removed topics.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use brook_config::TopicConfig;
use tracing::{info, warn};

use super::{log_config, open_partition, write, Broker, Topic};
use crate::error::BrokerError;
use crate::log::OpenOptions;
use crate::metadata::{ConfigResource, MetadataDelta, MetadataImage};

impl Broker {
    /// Make the registry match `new`, given the `delta` from `old`.
    ///
    /// # Errors
    /// [`BrokerError::Storage`] when a partition this node now hosts could not
    /// be opened (the image keeps it; it is retried at the next start).
    pub(super) async fn publish(
        &self,
        old: &MetadataImage,
        new: &MetadataImage,
        delta: &MetadataDelta,
    ) -> Result<(), BrokerError> {
        // Removals first: a topic may be removed and created again under the
        // same name in one delta.
        for topic in delta.topics_removed.values() {
            self.remove_local_topic(&topic.name, topic.id).await;
        }
        for id in &delta.topics_created {
            let Some(t) = new.topics.get(id) else {
                continue;
            };
            write(&self.topics).insert(Arc::new(Topic::new(
                &t.name,
                t.id,
                new.topic_configs(&t.name),
            )));
        }
        for t in new.topics.values() {
            if let Some(topic) = self.topic(&t.name) {
                topic
                    .count
                    .store(t.partitions.len() as i32, Ordering::Release);
            }
        }
        if !delta.quotas.is_empty() {
            self.quotas.set_table(new.quotas.clone());
        }
        for resource in &delta.configs {
            if let ConfigResource::Topic(name) = resource {
                self.apply_topic_configs(name, new);
            }
        }
        let node = self.node_id();
        let local = delta.local_changes(node, old, new);
        // Offsets partitions this node now leads but has yet to open: their
        // groups are "loading" (not "not here") while the replicas open.
        let mut opening = Vec::new();
        if let Some(offsets) = self.topic(crate::group::OFFSETS_TOPIC) {
            for (_, p) in local
                .leaders
                .iter()
                .filter(|(name, _)| name == crate::group::OFFSETS_TOPIC)
            {
                if offsets.partition(p.partition).is_none() {
                    self.groups
                        .expect_shard(p.partition, offsets.partition_count());
                    opening.push(p.partition);
                }
            }
        }
        let mut first_error = None;
        for (name, p) in local.leaders.iter().chain(&local.followers) {
            let Some(topic) = self.topic(name) else {
                continue;
            };
            if let Some(part) = topic.partition(p.partition) {
                let epoch = part.leader_epoch();
                // A new leader epoch writes and fsyncs the leader-epoch
                // checkpoint under the log's lock: on the blocking pool, never
                // on a runtime thread.
                let (before, after) = {
                    let (part, p) = (part.clone(), p.clone());
                    match tokio::task::spawn_blocking(move || part.assign(&p)).await {
                        Ok(roles) => roles,
                        Err(e) => std::panic::resume_unwind(e.into_panic()),
                    }
                };
                if before != after || epoch != part.leader_epoch() {
                    info!(topic = %name, partition = p.partition, leader = p.leader, epoch = p.leader_epoch, "partition leadership changed");
                }
                if name == crate::group::OFFSETS_TOPIC {
                    self.coordinate(&part, topic.partition_count(), epoch, before);
                }
                self.replicas.follow(name, &part, after, p.leader_epoch);
                continue;
            }
            let tc = match TopicConfig::resolve(&self.config, &topic.overrides()) {
                Ok(tc) => Arc::new(tc),
                Err(e) => {
                    first_error.get_or_insert(BrokerError::InvalidConfig(e.to_string()));
                    continue;
                }
            };
            let opts = OpenOptions {
                syncer: self.syncer.clone(),
                ..OpenOptions::default()
            };
            let Some(dir) = self.place_partition(name, p.partition) else {
                first_error.get_or_insert(BrokerError::Storage(
                    "every log directory is offline".into(),
                ));
                continue;
            };
            // Creating the directory and files fsyncs: on the blocking pool,
            // never on a runtime thread (auto-creation on Produce lands here).
            let (topic_name, topic_id, record) = (name.clone(), topic.id, p.clone());
            let setup = self.replica_setup(0);
            let opened = tokio::task::spawn_blocking(move || {
                open_partition(&dir, &topic_name, topic_id, &record, tc, opts, setup)
            })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("opening the partition panicked: {e}")));
            match opened {
                Ok(part) => {
                    let part = Arc::new(part);
                    self.replicas
                        .follow(name, &part, part.role(), p.leader_epoch);
                    if name == crate::group::OFFSETS_TOPIC && part.is_leader() {
                        self.groups.take_shard(&part, topic.partition_count());
                    }
                    write(&topic.partitions).insert(p.partition, part);
                }
                Err(e) => {
                    warn!(topic = %name, partition = p.partition, error = %e, "cannot open partition");
                    first_error.get_or_insert(BrokerError::Storage(e.to_string()));
                }
            }
        }
        // A replica that did not open (or opened not leading) coordinates
        // nothing: its groups are "not here" again.
        self.groups.forget_opening(&opening);
        // Partitions reassigned away from this node (those of removed topics
        // went with their topic above).
        for (name, id, index) in &local.removed {
            let Some(topic) = self.topic(name).filter(|t| t.id == *id) else {
                continue;
            };
            let part = write(&topic.partitions).remove(index);
            if let Some(part) = part {
                if name == crate::group::OFFSETS_TOPIC {
                    self.groups.drop_shard(*index);
                }
                self.drop_local_partition(name, *id, part).await;
                info!(topic = %name, partition = index, "replica reassigned away; local copy deleted");
            }
        }
        if !local.removed.is_empty() {
            let job = crate::maintenance::checkpoint_job(self);
            let _ = tokio::task::spawn_blocking(job).await;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stop serving one local replica and delete its data: close it first, so
    /// no append, roll or flush touches the directory after it is renamed;
    /// then rename (atomic, so a crash cannot resurrect half a partition) and
    /// delete in the background. Readers holding open files are unaffected.
    async fn drop_local_partition(
        &self,
        name: &str,
        id: brook_protocol::codec::Uuid,
        p: Arc<crate::partition::Partition>,
    ) {
        self.replicas.unfollow(&p);
        let index = p.index;
        let log_dir = p
            .log()
            .dir()
            .parent()
            .map_or_else(|| self.data_dir.clone(), Path::to_path_buf);
        // Closing, the rename and its directory fsync: on the blocking pool.
        let name = name.to_owned();
        let doomed = tokio::task::spawn_blocking(move || {
            let _ = p.close();
            super::retire_partition_dir(&log_dir, &name, index, id)
        })
        .await;
        if let Ok(Some(doomed)) = doomed {
            tokio::task::spawn_blocking(move || crate::fsio::remove_dir_all(&doomed));
        }
    }

    /// Follow a leadership change of an `__consumer_offsets` partition with
    /// the group coordinator: load the shard of a partition this broker now
    /// leads (in a new epoch), unload one it stopped leading.
    pub(super) fn coordinate(
        &self,
        part: &Arc<crate::partition::Partition>,
        count: i32,
        epoch_before: i32,
        before: crate::partition::state::Role,
    ) {
        use crate::partition::state::Role;
        let leads = part.is_leader();
        if leads && (before != Role::Leader || epoch_before != part.leader_epoch()) {
            self.groups.take_shard(part, count);
        } else if !leads && before == Role::Leader {
            self.groups.drop_shard(part.index);
        }
    }

    /// Apply `name`'s config overrides from `image` to the topic's partitions.
    fn apply_topic_configs(&self, name: &str, image: &MetadataImage) {
        let Some(topic) = self.topic(name) else {
            return;
        };
        let overrides = image.topic_configs(name);
        let tc = match TopicConfig::resolve(&self.config, &overrides) {
            Ok(tc) => Arc::new(tc),
            Err(e) => {
                warn!(topic = name, error = %e, "committed topic config does not resolve; keeping the old one");
                return;
            }
        };
        *write(&topic.overrides) = overrides;
        for p in topic.partitions() {
            p.set_config(tc.clone());
            if let Err(e) = p.log().set_config(log_config(&tc)) {
                warn!(topic = name, partition = p.index, error = %e, "applying new config to the log failed");
            }
        }
    }

    /// Stop serving a removed topic and delete its data.
    async fn remove_local_topic(&self, name: &str, id: brook_protocol::codec::Uuid) {
        let topic = write(&self.topics).remove(name, id);
        let Some(topic) = topic else {
            return;
        };
        for p in topic.partitions() {
            self.drop_local_partition(name, id, p).await;
        }
        // Drop the topic's entries from the checkpoints now, so a topic
        // re-created under the same name never inherits its offsets.
        let job = crate::maintenance::checkpoint_job(self);
        let _ = tokio::task::spawn_blocking(job).await;
        info!(topic = name, "topic deleted");
    }
}
