//! The active controller's side: deciding requests against the applied
//! image and committing the records, adding metadata learners, and the
//! fencing timer. Only the Raft leader decides; every decision is made under
//! `Core::decide`, so each sees the records of the one before.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use brook_protocol::codec::Uuid;
use brook_quorum::AppRequest;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use tracing::warn;

use super::app::apply_result;
use super::rpc::{ControllerReply, ControllerRequest, ReplyBody, WireError};
use super::{decisions, Core, FENCE_CHECK, PRODUCER_ID_BLOCK};
use crate::error::BrokerError;
use crate::metadata::{encode_batch, BrokerRegistration, Endpoint, MetadataImage, MetadataRecord};

/// The active controller's in-memory state (rebuilt when leadership changes).
#[derive(Debug, Default)]
pub(super) struct DecideState {
    /// The term this state belongs to.
    term: u64,
    /// Last heartbeat per broker, ms since `started`.
    heartbeats: BTreeMap<i32, u64>,
    /// Metadata offset a fenced broker must reach before it is unfenced.
    catch_up_to: BTreeMap<i32, u64>,
}

impl Core {
    pub(super) fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id as u64)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.app.read(|a| a.current().image.clone())
    }

    fn current(&self) -> (u64, u64) {
        self.app.read(|a| (a.current().offset, a.current().epoch))
    }

    /// Commit `records` (caller holds `decide`): returns (offset, epoch).
    pub(super) async fn write(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<(u64, u64), BrokerError> {
        let batch = encode_batch(&records).to_vec();
        match self.raft.client_write(AppRequest(batch)).await {
            Ok(resp) => {
                apply_result(&resp.data.0).map_err(BrokerError::Metadata)?;
                Ok((resp.log_id.index, resp.log_id.leader_id.term))
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(BrokerError::NotController)
            }
            Err(e) => {
                warn!(error = %e, "metadata write failed");
                Err(BrokerError::NotController)
            }
        }
    }

    /// Reset per-term state when this node's leadership term changes: every
    /// registered broker gets a full session from now (Kafka does the same
    /// on controller failover).
    fn refresh(&self, st: &mut DecideState, image: &MetadataImage) {
        let term = self.raft.metrics().borrow().vote.leader_id().term;
        if st.term != term {
            let now = self.now_ms();
            *st = DecideState {
                term,
                heartbeats: image.brokers.keys().map(|id| (*id, now)).collect(),
                catch_up_to: BTreeMap::new(),
            };
        }
    }

    /// Decide and commit one request.
    pub(super) async fn handle(&self, req: ControllerRequest) -> ControllerReply {
        let (offset, _) = self.current();
        // This node's current term: the epoch it answers in.
        let epoch = self.raft.metrics().borrow().vote.leader_id().term;
        if !self.is_leader() {
            return ControllerReply {
                epoch,
                offset: 0,
                result: Err(WireError::from(&BrokerError::NotController)),
            };
        }
        let mut st = self.decide.lock().await;
        if let ControllerRequest::Register {
            id,
            learner_addr: Some(addr),
            ..
        } = &req
        {
            if let Err(e) = self.add_learner(*id, addr).await {
                return ControllerReply {
                    epoch,
                    offset: 0,
                    result: Err(WireError::from(&e)),
                };
            }
        }
        let image = self.image();
        self.refresh(&mut st, &image);
        let decided = self.decide(&mut st, &image, offset, req);
        let (records, body) = match decided {
            Ok(d) => d,
            Err(e) => {
                return ControllerReply {
                    epoch,
                    offset: 0,
                    result: Err(WireError::from(&e)),
                }
            }
        };
        if records.is_empty() {
            return ControllerReply {
                epoch,
                offset,
                result: Ok(body),
            };
        }
        match self.write(records).await {
            Ok((offset, epoch)) => ControllerReply {
                epoch,
                offset,
                result: Ok(body),
            },
            Err(e) => ControllerReply {
                epoch,
                offset: 0,
                result: Err(WireError::from(&e)),
            },
        }
    }

    /// The records for `req` and the reply body, against `image`.
    fn decide(
        &self,
        st: &mut DecideState,
        image: &MetadataImage,
        offset: u64,
        req: ControllerRequest,
    ) -> Result<(Vec<MetadataRecord>, ReplyBody), BrokerError> {
        let config = &self.config;
        let start = rand::random::<u32>() as usize;
        Ok(match req {
            ControllerRequest::Register {
                id,
                incarnation,
                endpoints,
                rack,
                ..
            } => {
                let incarnation: Uuid = incarnation
                    .parse()
                    .map_err(|_| BrokerError::InvalidRequest("bad incarnation id".into()))?;
                if let Some(b) = image.brokers.get(&id) {
                    if b.incarnation == incarnation {
                        return Ok((Vec::new(), ReplyBody::Registered { epoch: b.epoch }));
                    }
                }
                // The broker epoch is the offset its registration is written
                // at (or after): it grows with every registration.
                let epoch = i64::try_from(offset + 1).unwrap_or(i64::MAX);
                let reg = BrokerRegistration {
                    id,
                    incarnation,
                    epoch,
                    endpoints: endpoints
                        .into_iter()
                        .map(|e| Endpoint {
                            name: e.name,
                            host: e.host,
                            port: e.port,
                        })
                        .collect(),
                    rack,
                    fenced: true,
                    shutting_down: false,
                };
                st.heartbeats.insert(id, self.now_ms());
                st.catch_up_to.insert(id, offset + 1);
                (
                    decisions::register(image, config, reg),
                    ReplyBody::Registered { epoch },
                )
            }
            ControllerRequest::Heartbeat {
                id,
                epoch,
                applied,
                shutting_down,
                offline,
            } => {
                let b = image
                    .brokers
                    .get(&id)
                    .filter(|b| b.epoch == epoch)
                    .ok_or(BrokerError::StaleBrokerEpoch)?;
                st.heartbeats.insert(id, self.now_ms());
                let target = *st.catch_up_to.entry(id).or_insert(offset);
                if shutting_down {
                    let records = if b.shutting_down {
                        Vec::new()
                    } else {
                        decisions::begin_shutdown(image, config, id, epoch)
                    };
                    let ready = b.shutting_down && !decisions::leads_anything(image, id);
                    (
                        records,
                        ReplyBody::Heartbeat {
                            fenced: b.fenced,
                            shutdown_ready: ready,
                        },
                    )
                } else if b.fenced && applied >= target {
                    (
                        decisions::unfence(image, config, id, epoch),
                        ReplyBody::Heartbeat {
                            fenced: false,
                            shutdown_ready: false,
                        },
                    )
                } else {
                    let records = if b.fenced {
                        Vec::new()
                    } else {
                        let offline = offline
                            .iter()
                            .filter_map(|(t, p)| Some((t.parse().ok()?, *p)))
                            .collect();
                        decisions::replicas_offline(image, config, id, &offline)
                    };
                    (
                        records,
                        ReplyBody::Heartbeat {
                            fenced: b.fenced,
                            shutdown_ready: false,
                        },
                    )
                }
            }
            ControllerRequest::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
                validate_only,
                assignments,
            } => {
                let id = Uuid::from_bytes(rand::random());
                let records = decisions::create_topic(
                    image,
                    config,
                    &decisions::CreateTopic {
                        name: &name,
                        partitions,
                        replication_factor,
                        configs: &configs,
                        assignments: assignments.as_deref(),
                    },
                    id,
                    start,
                )?;
                (
                    if validate_only { Vec::new() } else { records },
                    ReplyBody::TopicCreated { id: id.to_string() },
                )
            }
            ControllerRequest::DeleteTopic { name } => (
                decisions::delete_topic(image, config, &name)?,
                ReplyBody::Done,
            ),
            ControllerRequest::CreatePartitions {
                name,
                count,
                validate_only,
                assignments,
            } => {
                let records = decisions::create_partitions(
                    image,
                    &name,
                    count,
                    assignments.as_deref(),
                    start,
                )?;
                (
                    if validate_only { Vec::new() } else { records },
                    ReplyBody::Done,
                )
            }
            ControllerRequest::AlterTopicConfigs {
                name,
                change,
                validate_only,
            } => {
                let records = decisions::alter_topic_configs(image, config, &name, &change)?;
                (
                    if validate_only { Vec::new() } else { records },
                    ReplyBody::Done,
                )
            }
            ControllerRequest::AllocateProducerIds { id, epoch } => {
                let start = image.next_producer_id;
                (
                    vec![MetadataRecord::ProducerIds {
                        broker_id: id,
                        broker_epoch: epoch,
                        next: start + PRODUCER_ID_BLOCK,
                    }],
                    ReplyBody::ProducerIds {
                        start,
                        len: PRODUCER_ID_BLOCK,
                    },
                )
            }
            ControllerRequest::AlterPartition { id, epoch, changes } => {
                let (records, results) =
                    decisions::alter_partition(image, config, id, epoch, &changes)?;
                (
                    records,
                    ReplyBody::IsrResults(
                        results
                            .into_iter()
                            .map(|r| r.err().map(|e| WireError::from(&e)))
                            .collect(),
                    ),
                )
            }
            ControllerRequest::ElectLeaders {
                unclean,
                partitions,
            } => {
                let (records, results) =
                    decisions::elect_leaders(image, unclean, partitions.as_deref());
                (records, ReplyBody::Elections(wire_results(results)))
            }
            ControllerRequest::AlterReassignments { partitions } => {
                let (records, results) =
                    super::reassign::alter_reassignments(image, config, &partitions);
                (records, ReplyBody::Reassignments(wire_results(results)))
            }
            ControllerRequest::PutView(def) => match image.views.get(&def.name) {
                Some(old) if *old == def => (Vec::new(), ReplyBody::Changed(false)),
                Some(_) => {
                    return Err(BrokerError::InvalidRequest(format!(
                        "view {} already exists with another definition; drop it first",
                        def.name
                    )))
                }
                None => (vec![MetadataRecord::View(def)], ReplyBody::Changed(true)),
            },
            ControllerRequest::AlterClientQuota {
                entity,
                ops,
                validate_only,
            } => {
                let records = crate::quota::entity::alter(&image.quotas, &entity, &ops)?;
                (
                    if validate_only { Vec::new() } else { records },
                    ReplyBody::Done,
                )
            }
            ControllerRequest::RemoveView { name } => {
                if image.views.contains_key(&name) {
                    (
                        vec![MetadataRecord::RemoveView { name }],
                        ReplyBody::Changed(true),
                    )
                } else {
                    (Vec::new(), ReplyBody::Changed(false))
                }
            }
        })
    }

    /// Make broker `id` a learner at `addr` (or move it there), so the
    /// metadata log is replicated to it. Voters stay voters.
    async fn add_learner(&self, id: i32, addr: &str) -> Result<(), BrokerError> {
        let id = u64::try_from(id)
            .map_err(|_| BrokerError::InvalidRequest("negative node id".into()))?;
        if self.voters.contains_key(&id) {
            return Err(BrokerError::InvalidRequest(format!(
                "node {id} is a controller voter; it cannot also register as a learner"
            )));
        }
        let node = openraft::BasicNode {
            addr: addr.to_owned(),
        };
        let known = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned();
        let result = match known {
            Some(n) if n == node => return Ok(()),
            // A restarted learner on a new port: update its address.
            Some(_) => {
                self.raft
                    .change_membership(
                        openraft::ChangeMembers::SetNodes(BTreeMap::from([(id, node)])),
                        true,
                    )
                    .await
            }
            None => self.raft.add_learner(id, node, false).await,
        };
        result.map(|_| ()).map_err(|e| {
            warn!(node = id, error = %e, "adding a metadata learner failed");
            BrokerError::NotController
        })
    }

    /// One round of the fencing timer: fence every broker whose session expired.
    async fn fence_expired(&self) {
        if !self.is_leader() {
            return;
        }
        let mut st = self.decide.lock().await;
        let image = self.image();
        self.refresh(&mut st, &image);
        let session = u64::try_from(self.config.broker_session_timeout_ms).unwrap_or(9000);
        for id in decisions::expired(&image, &st.heartbeats, self.now_ms(), session) {
            let Some(b) = image.brokers.get(&id) else {
                continue;
            };
            warn!(broker = id, "broker session expired: fencing it");
            let records = decisions::fence(&image, &self.config, id, b.epoch);
            if let Err(e) = self.write(records).await {
                // Most often: this node was deposed while it was paused, and
                // its stale session clocks must not (and cannot) fence anyone.
                warn!(broker = id, error = %e, "fencing not committed (no longer the active controller?)");
                return;
            }
            // The next broker is decided against the new image.
            return;
        }
    }
}

pub(super) async fn fence_timer(core: Weak<Core>) {
    let mut tick = tokio::time::interval(FENCE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else {
            return;
        };
        core.fence_expired().await;
    }
}

/// Per-partition outcomes as (topic, partition, error code, message).
fn wire_results(
    results: Vec<(String, i32, Result<(), BrokerError>)>,
) -> Vec<(String, i32, i16, Option<String>)> {
    results
        .into_iter()
        .map(|(t, p, r)| match r {
            Ok(()) => (t, p, 0, None),
            Err(e) => (t, p, e.code(), e.message()),
        })
        .collect()
}
