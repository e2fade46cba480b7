//! Topic administration: create, delete, add partitions, alter configs, and
//! auto-creation. Each change is serialised by the broker's `admin` lock,
//! persisted to the metadata store first, and only then published in the
//! in-memory registry.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use brook_config::TopicConfig;
use brook_protocol::codec::Uuid;
use tracing::{info, warn};

use super::{log_config, open_partition, read, validate_topic_name, write, Broker, Topic};
use crate::error::BrokerError;
use crate::log::OpenOptions;
use crate::metadata_store::TopicRecord;

impl Broker {
    /// Look up a topic, creating it with broker defaults when
    /// `auto.create.topics.enable` allows and `allow_auto_create` is set.
    ///
    /// # Errors
    /// Invalid name or a storage failure while creating.
    pub async fn topic_or_create(
        &self,
        name: &str,
        allow_auto_create: bool,
    ) -> Result<Option<Arc<Topic>>, BrokerError> {
        if let Some(t) = self.topic(name) {
            return Ok(Some(t));
        }
        // Internal topics are created by their owners (the group coordinator
        // creates `__consumer_offsets` compacted, with its own partition count).
        if !(allow_auto_create && self.config.auto_create_topics_enable)
            || super::is_internal_topic(name)
        {
            return Ok(None);
        }
        validate_topic_name(name)?;
        match self
            .create_topic(name, -1, -1, BTreeMap::new(), false)
            .await
        {
            Ok(t) => Ok(Some(t)),
            Err(BrokerError::TopicAlreadyExists(_)) => Ok(self.topic(name)),
            Err(e) => Err(e),
        }
    }

    /// Create a topic. `partitions`/`replication_factor` of -1 mean the broker
    /// defaults. With `validate_only` nothing changes.
    ///
    /// # Errors
    /// Invalid name, counts or configs; an existing topic; storage failures.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, BrokerError> {
        validate_topic_name(name)?;
        let partitions = if partitions == -1 {
            self.config.num_partitions
        } else {
            partitions
        };
        let rf = if replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            replication_factor
        };
        if partitions <= 0 {
            return Err(BrokerError::InvalidPartitions(format!(
                "number of partitions must be at least 1, got {partitions}"
            )));
        }
        if partitions > 100_000 {
            return Err(BrokerError::InvalidPartitions(format!(
                "{partitions} partitions is more than brook allows per topic (100000)"
            )));
        }
        if rf != 1 {
            return Err(BrokerError::InvalidReplicationFactor(format!(
                "replication factor {rf} is larger than the number of brokers (1)"
            )));
        }
        for (k, v) in &configs {
            brook_config::validate_topic_override(k, v)?;
        }
        let tc = Arc::new(TopicConfig::resolve(&self.config, &configs)?);
        log_config(&tc)
            .validate()
            .map_err(|e| BrokerError::InvalidConfig(e.to_string()))?;
        let mut image = self.admin.lock().await;
        if image.topics.contains_key(name) || self.topic(name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(name.to_owned()));
        }
        if let Some(collides) = read(&self.topics)
            .keys()
            .find(|t| t.replace('.', "_") == name.replace('.', "_"))
        {
            return Err(BrokerError::InvalidTopic(format!(
                "topic {name} collides with existing topic {collides} ('.' and '_' are equivalent in metric names)"
            )));
        }
        let id = Uuid::from_bytes(rand::random());
        let topic = Arc::new(Topic {
            name: name.into(),
            id,
            probe: crate::metrics::TopicProbe::new(name),
            overrides: RwLock::new(configs.clone()),
            partitions: RwLock::new(Vec::new()),
        });
        if validate_only {
            return Ok(topic);
        }
        let mut parts = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            match open_partition(
                &self.data_dir,
                name,
                id,
                p,
                tc.clone(),
                OpenOptions {
                    syncer: self.syncer.clone(),
                    ..OpenOptions::default()
                },
            ) {
                Ok(part) => parts.push(Arc::new(part)),
                Err(e) => {
                    for q in 0..p {
                        let _ = std::fs::remove_dir_all(self.data_dir.join(format!("{name}-{q}")));
                    }
                    return Err(BrokerError::Storage(e.to_string()));
                }
            }
        }
        let mut next = image.clone();
        next.topics.insert(
            name.to_owned(),
            TopicRecord {
                id: id.to_string(),
                partitions,
                configs,
            },
        );
        *image = self.persist(next).await?;
        *write(&topic.partitions) = parts;
        write(&self.topics).insert(name.to_owned(), topic.clone());
        info!(topic = name, partitions, "topic created");
        Ok(topic)
    }

    /// Delete a topic and its data.
    ///
    /// # Errors
    /// Unknown topic, deletion disabled, storage failure.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, BrokerError> {
        if !self.config.delete_topic_enable {
            return Err(BrokerError::TopicDeletionDisabled);
        }
        let mut image = self.admin.lock().await;
        let topic = self
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if topic.is_internal() {
            return Err(BrokerError::InvalidTopic(format!(
                "{name} is an internal topic and cannot be deleted"
            )));
        }
        let mut next = image.clone();
        next.topics.remove(name);
        *image = self.persist(next).await?;
        write(&self.topics).remove(name);
        // Close first, so no append, roll or flush touches the directory after
        // it is renamed; then rename (atomic, so a crash cannot resurrect half a
        // partition) and delete in the background. Readers holding open files
        // are unaffected.
        for p in topic.partitions() {
            let part = p.clone();
            let _ = tokio::task::spawn_blocking(move || part.close()).await;
            let dir = self.data_dir.join(format!("{name}-{}", p.index));
            let doomed = self
                .data_dir
                .join(format!("{name}-{}.{}-delete", p.index, topic.id));
            if std::fs::rename(&dir, &doomed).is_ok() {
                tokio::task::spawn_blocking(move || std::fs::remove_dir_all(doomed));
            }
        }
        // Drop the topic's entries from the checkpoints now, so a topic
        // re-created under the same name never inherits its offsets.
        // (A few small file writes; topic deletion is rare.)
        crate::maintenance::write_checkpoints(self);
        info!(topic = name, "topic deleted");
        Ok(topic.id)
    }

    /// Grow a topic to `count` partitions.
    ///
    /// # Errors
    /// Unknown topic, a count not larger than today's, storage failure.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let mut image = self.admin.lock().await;
        let topic = self
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if topic.is_internal() {
            // The group coordinator maps groups to partitions by count.
            return Err(BrokerError::InvalidTopic(format!(
                "{name} is an internal topic; its partition count is fixed"
            )));
        }
        let current = topic.partition_count();
        if count <= current {
            return Err(BrokerError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; the new count {count} must be larger"
            )));
        }
        if count > 100_000 {
            return Err(BrokerError::InvalidPartitions(format!(
                "{count} partitions is more than brook allows per topic (100000)"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let tc = Arc::new(TopicConfig::resolve(&self.config, &topic.overrides())?);
        let mut added = Vec::new();
        for p in current..count {
            let part = open_partition(
                &self.data_dir,
                name,
                topic.id,
                p,
                tc.clone(),
                OpenOptions {
                    syncer: self.syncer.clone(),
                    ..OpenOptions::default()
                },
            )
            .map_err(|e| BrokerError::Storage(e.to_string()))?;
            added.push(Arc::new(part));
        }
        let mut next = image.clone();
        if let Some(rec) = next.topics.get_mut(name) {
            rec.partitions = count;
        }
        *image = self.persist(next).await?;
        write(&topic.partitions).extend(added);
        Ok(())
    }

    /// Replace (or patch) a topic's config overrides and apply them live.
    ///
    /// # Errors
    /// Unknown topic, invalid key or value.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), BrokerError>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let mut image = self.admin.lock().await;
        let topic = self
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        let mut overrides = topic.overrides();
        change(&mut overrides)?;
        for (k, v) in &overrides {
            brook_config::validate_topic_override(k, v)?;
        }
        let tc = Arc::new(TopicConfig::resolve(&self.config, &overrides)?);
        log_config(&tc)
            .validate()
            .map_err(|e| BrokerError::InvalidConfig(e.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let mut next = image.clone();
        if let Some(rec) = next.topics.get_mut(name) {
            rec.configs = overrides.clone();
        }
        *image = self.persist(next).await?;
        *write(&topic.overrides) = overrides;
        for p in topic.partitions() {
            p.set_config(tc.clone());
            if let Err(e) = p.log().set_config(log_config(&tc)) {
                warn!(topic = name, partition = p.index, error = %e, "applying new config to the log failed");
            }
        }
        Ok(())
    }
}

/// Materialized view definitions, persisted in the metadata image.
impl Broker {
    /// Every stored view definition.
    pub async fn view_defs(&self) -> BTreeMap<String, brook_views::ViewDef> {
        self.admin.lock().await.views.clone()
    }

    /// Store `def`. Returns false when an identical definition is already stored.
    ///
    /// # Errors
    /// A different definition under the same name (drop it first), storage failure.
    pub async fn put_view_def(&self, def: brook_views::ViewDef) -> Result<bool, BrokerError> {
        let mut image = self.admin.lock().await;
        match image.views.get(&def.name) {
            Some(old) if *old == def => return Ok(false),
            Some(_) => {
                return Err(BrokerError::InvalidRequest(format!(
                    "view {} already exists with another definition; drop it first",
                    def.name
                )))
            }
            None => {}
        }
        let mut next = image.clone();
        next.views.insert(def.name.clone(), def);
        *image = self.persist(next).await?;
        Ok(true)
    }

    /// Forget the definition of view `name`. Returns whether there was one.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn remove_view_def(&self, name: &str) -> Result<bool, BrokerError> {
        let mut image = self.admin.lock().await;
        if !image.views.contains_key(name) {
            return Ok(false);
        }
        let mut next = image.clone();
        next.views.remove(name);
        *image = self.persist(next).await?;
        Ok(true)
    }
}
