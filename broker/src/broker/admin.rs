//! Topic administration: create, delete, add partitions, alter configs, and
//! auto-creation. Each request is validated against the current image and
//! becomes metadata records, committed under the broker's `admin` lock; the
//! registry changes only when they are published.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use brook_config::TopicConfig;
use brook_protocol::codec::Uuid;
use tracing::info;

use super::{log_config, read, validate_topic_name, Broker, Topic};
use crate::error::BrokerError;
use crate::metadata::{ConfigResource, MetadataRecord, PartitionRecord};

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
        let admin = self.admin.lock().await;
        if self.image().topic(name).is_some() {
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
        if validate_only {
            return Ok(Arc::new(Topic {
                name: name.into(),
                id,
                probe: crate::metrics::TopicProbe::new(name),
                overrides: RwLock::new(configs),
                partitions: RwLock::new(Vec::new()),
            }));
        }
        let node = self.node_id();
        let mut records = vec![MetadataRecord::Topic {
            name: name.to_owned(),
            id,
        }];
        records.extend((0..partitions).map(|p| new_partition(id, p, node)));
        records.extend(
            configs
                .into_iter()
                .map(|(key, value)| MetadataRecord::Config {
                    resource: ConfigResource::Topic(name.to_owned()),
                    key,
                    value: Some(value),
                }),
        );
        if let Err(e) = self.commit(&admin, records).await {
            if self.image().topic(name).is_some() {
                // Committed, but a partition could not be opened: take the
                // topic back out so that a retry starts clean.
                let _ = self
                    .commit(&admin, vec![MetadataRecord::RemoveTopic { id }])
                    .await;
            }
            return Err(e);
        }
        info!(topic = name, partitions, "topic created");
        self.topic(name)
            .ok_or(BrokerError::Internal("created topic is not registered"))
    }

    /// Delete a topic and its data.
    ///
    /// # Errors
    /// Unknown topic, deletion disabled, storage failure.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, BrokerError> {
        if !self.config.delete_topic_enable {
            return Err(BrokerError::TopicDeletionDisabled);
        }
        let admin = self.admin.lock().await;
        let topic = self
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if topic.is_internal() {
            return Err(BrokerError::InvalidTopic(format!(
                "{name} is an internal topic and cannot be deleted"
            )));
        }
        self.commit(&admin, vec![MetadataRecord::RemoveTopic { id: topic.id }])
            .await?;
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
        let admin = self.admin.lock().await;
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
        let node = self.node_id();
        let records = (current..count)
            .map(|p| new_partition(topic.id, p, node))
            .collect();
        self.commit(&admin, records).await
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
        let admin = self.admin.lock().await;
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
        let old = topic.overrides();
        let resource = ConfigResource::Topic(name.to_owned());
        let mut records: Vec<MetadataRecord> = old
            .keys()
            .filter(|k| !overrides.contains_key(*k))
            .map(|k| MetadataRecord::Config {
                resource: resource.clone(),
                key: k.clone(),
                value: None,
            })
            .collect();
        records.extend(
            overrides
                .into_iter()
                .filter(|(k, v)| old.get(k) != Some(v))
                .map(|(key, value)| MetadataRecord::Config {
                    resource: resource.clone(),
                    key,
                    value: Some(value),
                }),
        );
        if records.is_empty() {
            return Ok(());
        }
        self.commit(&admin, records).await
    }
}

/// A new partition hosted and led by `node` alone (one broker).
fn new_partition(topic_id: Uuid, partition: i32, node: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        replicas: vec![node],
        isr: vec![node],
        elr: Vec::new(),
        leader: node,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

/// Materialized view definitions, kept in the metadata image.
impl Broker {
    /// Every stored view definition.
    pub async fn view_defs(&self) -> BTreeMap<String, brook_views::ViewDef> {
        self.image().views.clone()
    }

    /// Store `def`. Returns false when an identical definition is already stored.
    ///
    /// # Errors
    /// A different definition under the same name (drop it first), storage failure.
    pub async fn put_view_def(&self, def: brook_views::ViewDef) -> Result<bool, BrokerError> {
        let admin = self.admin.lock().await;
        match self.image().views.get(&def.name) {
            Some(old) if *old == def => return Ok(false),
            Some(_) => {
                return Err(BrokerError::InvalidRequest(format!(
                    "view {} already exists with another definition; drop it first",
                    def.name
                )))
            }
            None => {}
        }
        self.commit(&admin, vec![MetadataRecord::View(def)]).await?;
        Ok(true)
    }

    /// Forget the definition of view `name`. Returns whether there was one.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn remove_view_def(&self, name: &str) -> Result<bool, BrokerError> {
        let admin = self.admin.lock().await;
        if !self.image().views.contains_key(name) {
            return Ok(false);
        }
        self.commit(
            &admin,
            vec![MetadataRecord::RemoveView {
                name: name.to_owned(),
            }],
        )
        .await?;
        Ok(true)
    }
}
