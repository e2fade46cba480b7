//! Topic administration: create, delete, add partitions, alter configs,
//! auto-creation and view definitions. Each request goes to the active
//! controller, which validates it against its image and commits records;
//! the answer comes once this broker has published them.

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_protocol::codec::Uuid;
use tracing::info;

use super::{validate_topic_name, Broker, Topic};
use crate::controller::rpc::{ConfigChange, ControllerRequest, ReplyBody};
use crate::error::BrokerError;

/// How a new topic's partitions are placed on brokers.
#[derive(Debug, Clone)]
pub enum Placement {
    /// The controller spreads `partitions` × `replication_factor` replicas
    /// over the usable brokers (-1: the broker defaults).
    Counts {
        partitions: i32,
        replication_factor: i32,
    },
    /// Partition `i`'s replicas at index `i`, preferred leader first.
    Manual(Vec<Vec<i32>>),
}

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

    /// Create a topic. `partitions`/`replication_factor` of -1 mean the
    /// defaults. With `validate_only` nothing changes, and the returned topic
    /// is not registered.
    ///
    /// # Errors
    /// Invalid name, counts, configs or replication factor; an existing
    /// topic; no controller.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, BrokerError> {
        self.create_topic_as(
            name,
            Placement::Counts {
                partitions,
                replication_factor,
            },
            configs,
            validate_only,
        )
        .await
    }

    /// Create a topic placed by counts (the controller spreads replicas)
    /// or by hand.
    ///
    /// # Errors
    /// As [`Broker::create_topic`]; a manual placement naming unknown,
    /// repeated or only unusable brokers, or lists of unequal length.
    pub async fn create_topic_as(
        &self,
        name: &str,
        placement: Placement,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, BrokerError> {
        validate_topic_name(name)?;
        let (partitions, replication_factor, assignments) = match placement {
            Placement::Counts {
                partitions,
                replication_factor,
            } => (partitions, replication_factor, None),
            Placement::Manual(lists) => (-1, -1, Some(lists)),
        };
        let reply = self
            .submit(ControllerRequest::CreateTopic {
                name: name.to_owned(),
                partitions,
                replication_factor,
                configs: configs.clone(),
                validate_only,
                assignments,
            })
            .await?;
        if validate_only {
            let id = match reply {
                ReplyBody::TopicCreated { id } => id.parse().unwrap_or(Uuid::ZERO),
                _ => Uuid::ZERO,
            };
            return Ok(Arc::new(Topic::new(name, id, configs)));
        }
        info!(topic = name, "topic created");
        self.topic(name)
            .ok_or(BrokerError::Internal("created topic is not registered"))
    }

    /// Send `req` to the active controller and publish what it committed.
    ///
    /// # Errors
    /// The controller's refusal; no controller; a partition that could not
    /// be opened here.
    pub(crate) async fn submit(&self, req: ControllerRequest) -> Result<ReplyBody, BrokerError> {
        let reply = self.controller.submit(req).await?;
        self.catch_up().await?;
        Ok(reply)
    }

    /// Delete a topic and its data.
    ///
    /// # Errors
    /// Unknown or internal topic, deletion disabled, no controller.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, BrokerError> {
        let id = self
            .image()
            .topic(name)
            .map(|t| t.id)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        self.submit(ControllerRequest::DeleteTopic {
            name: name.to_owned(),
        })
        .await?;
        Ok(id)
    }

    /// Grow a topic to `count` partitions, placing the new ones by hand
    /// when `assignments` (one replica list per new partition) is given.
    ///
    /// # Errors
    /// Unknown topic, a count not larger than today's, a bad manual
    /// placement, no controller.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.submit(ControllerRequest::CreatePartitions {
            name: name.to_owned(),
            count,
            validate_only,
            assignments,
        })
        .await
        .map(|_| ())
    }

    /// ElectLeaders: per partition, the error code (0: elected) and message.
    ///
    /// # Errors
    /// No controller.
    pub async fn elect_leaders(
        &self,
        unclean: bool,
        partitions: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<(String, i32, i16, Option<String>)>, BrokerError> {
        match self
            .submit(ControllerRequest::ElectLeaders {
                unclean,
                partitions,
            })
            .await?
        {
            crate::controller::rpc::ReplyBody::Elections(r) => Ok(r),
            other => Err(BrokerError::Metadata(format!(
                "unexpected reply to ElectLeaders: {other:?}"
            ))),
        }
    }

    /// AlterPartitionReassignments: per partition, the error code (0:
    /// started, completed or cancelled) and message.
    ///
    /// # Errors
    /// No controller.
    pub async fn alter_reassignments(
        &self,
        partitions: Vec<(String, i32, Option<Vec<i32>>)>,
    ) -> Result<Vec<(String, i32, i16, Option<String>)>, BrokerError> {
        match self
            .submit(ControllerRequest::AlterReassignments { partitions })
            .await?
        {
            crate::controller::rpc::ReplyBody::Reassignments(r) => Ok(r),
            other => Err(BrokerError::Metadata(format!(
                "unexpected reply to AlterPartitionReassignments: {other:?}"
            ))),
        }
    }

    /// Replace or patch a topic's config overrides; brokers apply them live.
    ///
    /// # Errors
    /// Unknown topic, invalid key, value or operation.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.submit(ControllerRequest::AlterTopicConfigs {
            name: name.to_owned(),
            change,
            validate_only,
        })
        .await
        .map(|_| ())
    }
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
    /// A different definition under the same name (drop it first), no controller.
    pub async fn put_view_def(&self, def: brook_views::ViewDef) -> Result<bool, BrokerError> {
        match self.submit(ControllerRequest::PutView(def)).await? {
            ReplyBody::Changed(c) => Ok(c),
            _ => Err(BrokerError::Internal("unexpected view reply")),
        }
    }

    /// Forget the definition of view `name`. Returns whether there was one.
    ///
    /// # Errors
    /// No controller.
    pub async fn remove_view_def(&self, name: &str) -> Result<bool, BrokerError> {
        match self
            .submit(ControllerRequest::RemoveView {
                name: name.to_owned(),
            })
            .await?
        {
            ReplyBody::Changed(c) => Ok(c),
            _ => Err(BrokerError::Internal("unexpected view reply")),
        }
    }
}

/// Client quotas, kept in the metadata image.
impl Broker {
    /// Apply one AlterClientQuotas entry: `ops` are (key, value), `None`
    /// removing the key. Every broker applies it when it publishes the image.
    ///
    /// # Errors
    /// An invalid entity, key or value; no controller.
    pub async fn alter_client_quota(
        &self,
        entity: Vec<(String, Option<String>)>,
        ops: Vec<(String, Option<crate::metadata::QuotaValue>)>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.submit(ControllerRequest::AlterClientQuota {
            entity,
            ops,
            validate_only,
        })
        .await
        .map(|_| ())
    }
}
