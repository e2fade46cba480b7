//! The active controller's decisions, as pure functions from the current
//! image and a request to the records that carry out the request.
//!
//! No I/O, clock or randomness: ids, epochs and the placement start are
//! passed in, so tests drive every decision directly. The caller (the active
//! controller) serialises decisions and commits each one's records before the
//! next is made.
//!
//! Leader election follows Kafka: a new leader comes from the ISR and must be
//! an unfenced broker that is not shutting down; when none is, the partition
//! has no leader (-1) until one returns, unless the topic allows unclean
//! election. A fenced broker leaves the ISR of every partition, except the
//! last ISR member, which stays so that its return ends the outage without
//! losing what it had acknowledged.

use std::collections::{BTreeMap, BTreeSet};

use brook_config::{BrokerConfig, TopicConfig};
use brook_protocol::codec::Uuid;

pub use super::departure::{move_away, replicas_offline};
pub(super) use super::placement::is_usable;
use super::placement::{check_manual, manual_partition};
pub use super::placement::{new_partition, place};
use super::rpc::{ConfigChange, IsrChange};
use crate::broker::{is_internal_topic, log_config, validate_topic_name};
use crate::error::BrokerError;
use crate::metadata::{
    BrokerRegistration, ConfigResource, MetadataImage, MetadataRecord, PartitionChange,
    PartitionRecord,
};

/// Most partitions one topic may have.
pub const MAX_PARTITIONS: i32 = 100_000;

/// A CreateTopics request as the controller sees it.
#[derive(Debug, Clone)]
pub struct CreateTopic<'a> {
    pub name: &'a str,
    /// -1: `num.partitions`.
    pub partitions: i32,
    /// -1: `default.replication.factor` (`offsets.topic.replication.factor`
    /// for `__consumer_offsets`).
    pub replication_factor: i32,
    pub configs: &'a BTreeMap<String, String>,
    /// A manual placement (`kafka-topics --replica-assignment`): partition
    /// `i`'s replicas at index `i`, preferred leader first. `partitions` and
    /// `replication_factor` are then -1.
    pub assignments: Option<&'a [Vec<i32>]>,
}

/// Check a topic's overrides the way the broker will resolve them.
fn check_configs(
    config: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<(), BrokerError> {
    for (k, v) in overrides {
        brook_config::validate_topic_override(k, v)?;
    }
    let tc = TopicConfig::resolve(config, overrides)?;
    log_config(&tc)
        .validate()
        .map_err(|e| BrokerError::InvalidConfig(e.to_string()))
}

/// The records that create a topic (with `validate_only` the caller drops them).
///
/// # Errors
/// Invalid name, counts, configs or replication factor; an existing topic.
pub fn create_topic(
    image: &MetadataImage,
    config: &BrokerConfig,
    req: &CreateTopic<'_>,
    id: Uuid,
    start: usize,
) -> Result<Vec<MetadataRecord>, BrokerError> {
    let name = req.name;
    validate_topic_name(name)?;
    if let Some(manual) = req.assignments {
        if req.partitions != -1 || req.replication_factor != -1 {
            return Err(BrokerError::InvalidRequest(
                "give either replica assignments or num_partitions/replication_factor, not both"
                    .into(),
            ));
        }
        if manual.is_empty() {
            return Err(BrokerError::InvalidReplicaAssignment(
                "the replica assignment names no partitions".into(),
            ));
        }
    }
    let partitions = if let Some(manual) = req.assignments {
        manual.len() as i32
    } else if req.partitions == -1 {
        config.num_partitions
    } else {
        req.partitions
    };
    let rf = match req.replication_factor {
        -1 if name == crate::group::OFFSETS_TOPIC => {
            i32::from(config.offsets_topic_replication_factor)
        }
        -1 => config.default_replication_factor,
        rf => rf,
    };
    if partitions <= 0 {
        return Err(BrokerError::InvalidPartitions(format!(
            "number of partitions must be at least 1, got {partitions}"
        )));
    }
    if partitions > MAX_PARTITIONS {
        return Err(BrokerError::InvalidPartitions(format!(
            "{partitions} partitions is more than brook allows per topic ({MAX_PARTITIONS})"
        )));
    }
    check_configs(config, req.configs)?;
    if image.topic(name).is_some() {
        return Err(BrokerError::TopicAlreadyExists(name.to_owned()));
    }
    if let Some(collides) = image
        .topic_ids
        .keys()
        .find(|t| t.replace('.', "_") == name.replace('.', "_"))
    {
        return Err(BrokerError::InvalidTopic(format!(
            "topic {name} collides with existing topic {collides} ('.' and '_' are equivalent in metric names)"
        )));
    }
    let mut records = vec![MetadataRecord::Topic {
        name: name.to_owned(),
        id,
    }];
    if let Some(manual) = req.assignments {
        let rf = manual[0].len();
        for (p, replicas) in manual.iter().enumerate() {
            check_manual(image, p as i32, replicas, Some(rf))?;
            records.push(manual_partition(image, id, p as i32, replicas));
        }
    } else {
        let placement = place(image, 0, partitions, rf, start)?;
        records.extend(
            placement
                .into_iter()
                .enumerate()
                .map(|(p, replicas)| new_partition(id, p as i32, replicas)),
        );
    }
    records.extend(req.configs.iter().map(|(k, v)| MetadataRecord::Config {
        resource: ConfigResource::Topic(name.to_owned()),
        key: k.clone(),
        value: Some(v.clone()),
    }));
    Ok(records)
}

/// The records that delete a topic.
///
/// # Errors
/// Unknown or internal topic, deletion disabled.
pub fn delete_topic(
    image: &MetadataImage,
    config: &BrokerConfig,
    name: &str,
) -> Result<Vec<MetadataRecord>, BrokerError> {
    if !config.delete_topic_enable {
        return Err(BrokerError::TopicDeletionDisabled);
    }
    let topic = image
        .topic(name)
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    if is_internal_topic(name) {
        return Err(BrokerError::InvalidTopic(format!(
            "{name} is an internal topic and cannot be deleted"
        )));
    }
    Ok(vec![MetadataRecord::RemoveTopic { id: topic.id }])
}

/// The records that grow a topic to `count` partitions.
///
/// # Errors
/// Unknown or internal topic, a count not larger than today's.
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    start: usize,
) -> Result<Vec<MetadataRecord>, BrokerError> {
    let topic = image
        .topic(name)
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    if is_internal_topic(name) {
        // The group coordinator maps groups to partitions by count.
        return Err(BrokerError::InvalidTopic(format!(
            "{name} is an internal topic; its partition count is fixed"
        )));
    }
    let current = topic.partitions.len() as i32;
    if count <= current {
        return Err(BrokerError::InvalidPartitions(format!(
            "topic {name} has {current} partitions; the new count {count} must be larger"
        )));
    }
    if count > MAX_PARTITIONS {
        return Err(BrokerError::InvalidPartitions(format!(
            "{count} partitions is more than brook allows per topic ({MAX_PARTITIONS})"
        )));
    }
    let rf = topic
        .partitions
        .values()
        .next()
        .map_or(1, |p| p.replicas.len() as i32);
    if let Some(manual) = assignments {
        if manual.len() as i32 != count - current {
            return Err(BrokerError::InvalidReplicaAssignment(format!(
                "growing topic {name} from {current} to {count} partitions needs {} assignment(s), got {}",
                count - current,
                manual.len()
            )));
        }
        let mut records = Vec::with_capacity(manual.len());
        for (replicas, p) in manual.iter().zip(current..) {
            check_manual(image, p, replicas, Some(rf as usize))?;
            records.push(manual_partition(image, topic.id, p, replicas));
        }
        return Ok(records);
    }
    let placement = place(image, current, count - current, rf, start)?;
    Ok(placement
        .into_iter()
        .zip(current..)
        .map(|(replicas, p)| new_partition(topic.id, p, replicas))
        .collect())
}

/// The records that change a topic's config overrides.
///
/// # Errors
/// Unknown topic, invalid key, value or operation.
pub fn alter_topic_configs(
    image: &MetadataImage,
    config: &BrokerConfig,
    name: &str,
    change: &ConfigChange,
) -> Result<Vec<MetadataRecord>, BrokerError> {
    if image.topic(name).is_none() {
        return Err(BrokerError::UnknownTopicOrPartition);
    }
    let old = image.topic_configs(name);
    let mut new = old.clone();
    match change {
        ConfigChange::Replace(map) => new.clone_from(map),
        ConfigChange::Incremental(ops) => {
            crate::handlers::configs::apply_ops(&mut new, ops, config)?;
        }
    }
    check_configs(config, &new)?;
    let resource = ConfigResource::Topic(name.to_owned());
    let mut records: Vec<MetadataRecord> = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| MetadataRecord::Config {
            resource: resource.clone(),
            key: k.clone(),
            value: None,
        })
        .collect();
    records.extend(
        new.into_iter()
            .filter(|(k, v)| old.get(k) != Some(v))
            .map(|(key, value)| MetadataRecord::Config {
                resource: resource.clone(),
                key,
                value: Some(value),
            }),
    );
    Ok(records)
}

/// Whether a topic allows electing an out-of-sync replica.
pub(super) fn unclean_allowed(image: &MetadataImage, config: &BrokerConfig, topic: &str) -> bool {
    image
        .topic_configs(topic)
        .get("unclean.leader.election.enable")
        .map_or(config.unclean_leader_election_enable, |v| v == "true")
}

/// `min.insync.replicas` of a topic.
fn min_isr(image: &MetadataImage, config: &BrokerConfig, topic: &str) -> usize {
    let v = image
        .topic_configs(topic)
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(config.min_insync_replicas);
    usize::try_from(v.max(1)).unwrap_or(1)
}

/// The eligible leader replicas (KIP-966) once `p`'s ISR becomes `isr`:
/// while the ISR is below min ISR, members that leave it stay eligible (the
/// HW did not advance without them); once the ISR is back at min ISR, the
/// ELR is empty.
pub(super) fn eligible_after(
    image: &MetadataImage,
    config: &BrokerConfig,
    topic: &str,
    p: &PartitionRecord,
    isr: &[i32],
) -> Vec<i32> {
    if isr.len() >= min_isr(image, config, topic) {
        return Vec::new();
    }
    let mut elr: Vec<i32> = p
        .elr
        .iter()
        .chain(p.isr.iter())
        .copied()
        .filter(|r| !isr.contains(r))
        .collect();
    elr.sort_unstable();
    elr.dedup();
    elr
}

/// Per AlterPartition change: committed (`Ok`) or why it was refused.
pub type IsrResults = Vec<Result<(), BrokerError>>;

/// A leader's ISR changes (AlterPartition). The request as a whole fails
/// only for a stale broker epoch; each change is checked on its own: the
/// sender must lead the partition in the named leader epoch, the partition
/// epoch must be current (else INVALID_UPDATE_VERSION), the ISR must be a
/// subset of the replicas that contains the leader, and every member it
/// adds must be an unfenced broker that is not shutting down (KIP-841).
///
/// # Errors
/// [`BrokerError::StaleBrokerEpoch`].
pub fn alter_partition(
    image: &MetadataImage,
    config: &BrokerConfig,
    id: i32,
    epoch: i64,
    changes: &[IsrChange],
) -> Result<(Vec<MetadataRecord>, IsrResults), BrokerError> {
    if image.brokers.get(&id).is_none_or(|b| b.epoch != epoch) {
        return Err(BrokerError::StaleBrokerEpoch);
    }
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(changes.len());
    let mut seen = BTreeSet::new();
    for c in changes {
        let r = (|| {
            let topic_id: Uuid = c
                .topic_id
                .parse()
                .map_err(|_| BrokerError::InvalidRequest("bad topic id".into()))?;
            if !seen.insert((topic_id, c.partition)) {
                return Err(BrokerError::InvalidRequest(
                    "the partition is named twice in one request".into(),
                ));
            }
            let topic = image
                .topics
                .get(&topic_id)
                .ok_or(BrokerError::UnknownTopicOrPartition)?;
            let p = topic
                .partitions
                .get(&c.partition)
                .ok_or(BrokerError::UnknownTopicOrPartition)?;
            if p.leader != id {
                return Err(BrokerError::NotLeader);
            }
            if c.leader_epoch < p.leader_epoch {
                return Err(BrokerError::FencedLeaderEpoch);
            }
            if c.leader_epoch > p.leader_epoch {
                return Err(BrokerError::UnknownLeaderEpoch);
            }
            if c.partition_epoch != p.partition_epoch {
                return Err(BrokerError::InvalidUpdateVersion);
            }
            let mut sorted = c.isr.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != c.isr.len()
                || !c.isr.contains(&id)
                || c.isr.iter().any(|r| !p.replicas.contains(r))
            {
                return Err(BrokerError::InvalidRequest(format!(
                    "ISR {:?} must be distinct replicas of {:?} including the leader {id}",
                    c.isr, p.replicas
                )));
            }
            if let Some(r) = c
                .isr
                .iter()
                .find(|r| !p.isr.contains(r) && !is_usable(image, **r))
            {
                return Err(BrokerError::IneligibleReplica(*r));
            }
            if let Some(done) = super::reassign::completion(image, config, &topic.name, p, &c.isr) {
                return Ok(Some(MetadataRecord::PartitionChange(PartitionChange {
                    topic_id,
                    partition: c.partition,
                    ..done
                })));
            }
            if c.isr == p.isr {
                return Ok(None);
            }
            let elr = eligible_after(image, config, &topic.name, p, &c.isr);
            Ok(Some(MetadataRecord::PartitionChange(PartitionChange {
                topic_id,
                partition: c.partition,
                isr: Some(c.isr.clone()),
                elr: (elr != p.elr).then_some(elr),
                ..PartitionChange::default()
            })))
        })();
        match r {
            Ok(rec) => {
                records.extend(rec);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    Ok((records, results))
}

/// Per partition of an ElectLeaders request: (topic, partition, outcome).
pub type ElectionResults = Vec<(String, i32, Result<(), BrokerError>)>;

/// ElectLeaders. Preferred: the first replica leads again where it is in
/// sync and usable (ELECTION_NOT_NEEDED where it already leads,
/// PREFERRED_LEADER_NOT_AVAILABLE where it cannot). Unclean: a partition
/// without a leader gets one from its ISR, then its eligible replicas
/// (KIP-966), then, losing what the others had committed, any usable
/// replica. `wanted: None` is every partition.
pub fn elect_leaders(
    image: &MetadataImage,
    unclean: bool,
    wanted: Option<&[(String, Vec<i32>)]>,
) -> (Vec<MetadataRecord>, ElectionResults) {
    let all: Vec<(String, Vec<i32>)>;
    let wanted = match wanted {
        Some(w) => w,
        None => {
            all = image
                .topics
                .values()
                .map(|t| (t.name.clone(), t.partitions.keys().copied().collect()))
                .collect();
            &all
        }
    };
    let mut records = Vec::new();
    let mut results = Vec::new();
    for (name, parts) in wanted {
        for &index in parts {
            let r = (|| {
                let p = image
                    .topic(name)
                    .and_then(|t| t.partitions.get(&index))
                    .ok_or(BrokerError::UnknownTopicOrPartition)?;
                let usable = |r: &i32| is_usable(image, *r);
                let change = |leader: i32, isr: Option<Vec<i32>>| {
                    MetadataRecord::PartitionChange(PartitionChange {
                        topic_id: p.topic_id,
                        partition: p.partition,
                        leader: Some(leader),
                        elr: isr.as_ref().map(|_| Vec::new()),
                        isr,
                        ..PartitionChange::default()
                    })
                };
                if unclean {
                    if p.leader >= 0 {
                        return Err(BrokerError::ElectionNotNeeded);
                    }
                    if let Some(l) = p.isr.iter().copied().find(usable) {
                        return Ok(change(l, None));
                    }
                    if let Some(l) = p.elr.iter().copied().find(usable) {
                        return Ok(change(l, Some(vec![l])));
                    }
                    let l = p
                        .replicas
                        .iter()
                        .copied()
                        .find(usable)
                        .ok_or(BrokerError::EligibleLeadersNotAvailable)?;
                    return Ok(change(l, Some(vec![l])));
                }
                let preferred = *p
                    .replicas
                    .first()
                    .ok_or(BrokerError::EligibleLeadersNotAvailable)?;
                if p.leader == preferred {
                    return Err(BrokerError::ElectionNotNeeded);
                }
                if !p.isr.contains(&preferred) || !usable(&preferred) {
                    return Err(BrokerError::PreferredLeaderNotAvailable(preferred));
                }
                Ok(change(preferred, None))
            })();
            match r {
                Ok(rec) => {
                    records.push(rec);
                    results.push((name.clone(), index, Ok(())));
                }
                Err(e) => results.push((name.clone(), index, Err(e))),
            }
        }
    }
    (records, results)
}

/// Partition changes that give leaderless partitions a leader now that
/// `back` is usable again: it leads those whose ISR (or ELR) names it.
pub fn elect_returning(image: &MetadataImage, back: i32) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for topic in image.topics.values() {
        for p in topic.partitions.values() {
            if p.leader == -1 && (p.isr.contains(&back) || p.elr.contains(&back)) {
                out.push(MetadataRecord::PartitionChange(PartitionChange {
                    topic_id: p.topic_id,
                    partition: p.partition,
                    leader: Some(back),
                    isr: (!p.isr.contains(&back)).then(|| vec![back]),
                    ..PartitionChange::default()
                }));
            }
        }
    }
    out
}

/// A broker (re)registers: a new incarnation replaces the old one, whose
/// leadership moves away first. Returns no records when this incarnation is
/// already registered (a retried request).
pub fn register(
    image: &MetadataImage,
    config: &BrokerConfig,
    reg: BrokerRegistration,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    if let Some(old) = image.brokers.get(&reg.id) {
        if old.incarnation == reg.incarnation {
            return out;
        }
        // Treat the old incarnation as fenced: it is gone.
        let mut without = image.clone();
        if let Some(b) = without.brokers.get_mut(&reg.id) {
            b.fenced = true;
        }
        out.extend(move_away(&without, config, reg.id));
    }
    out.push(MetadataRecord::RegisterBroker(BrokerRegistration {
        fenced: true,
        shutting_down: false,
        ..reg
    }));
    out
}

/// `first`, followed by what `then` decides against the image as `first`
/// leaves it. (Should the image refuse `first`, so will the commit.)
fn followed_by(
    image: &MetadataImage,
    first: MetadataRecord,
    then: impl FnOnce(&MetadataImage) -> Vec<MetadataRecord>,
) -> Vec<MetadataRecord> {
    let mut after = image.clone();
    let _ = after.replay(&first, &mut crate::metadata::MetadataDelta::default());
    let mut out = vec![first];
    out.extend(then(&after));
    out
}

/// A fenced broker has caught up: unfence it, let it lead what waits for it,
/// and complete the reassignments that waited for it to be usable.
pub fn unfence(
    image: &MetadataImage,
    config: &BrokerConfig,
    id: i32,
    epoch: i64,
) -> Vec<MetadataRecord> {
    followed_by(
        image,
        MetadataRecord::UnfenceBroker { id, epoch },
        |after| {
            let elected = elect_returning(after, id);
            let mut later = after.clone();
            for r in &elected {
                let _ = later.replay(r, &mut crate::metadata::MetadataDelta::default());
            }
            let mut out = elected;
            out.extend(super::reassign::completions_waiting_for(&later, config, id));
            out
        },
    )
}

/// Fence a broker (session expired, or done with controlled shutdown).
pub fn fence(
    image: &MetadataImage,
    config: &BrokerConfig,
    id: i32,
    epoch: i64,
) -> Vec<MetadataRecord> {
    followed_by(image, MetadataRecord::FenceBroker { id, epoch }, |after| {
        move_away(after, config, id)
    })
}

/// A broker asks for controlled shutdown: mark it and move leadership away.
pub fn begin_shutdown(
    image: &MetadataImage,
    config: &BrokerConfig,
    id: i32,
    epoch: i64,
) -> Vec<MetadataRecord> {
    followed_by(
        image,
        MetadataRecord::BrokerShuttingDown { id, epoch },
        |after| move_away(after, config, id),
    )
}

/// Whether `id` still leads any partition.
pub fn leads_anything(image: &MetadataImage, id: i32) -> bool {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .any(|p| p.leader == id)
}

/// Unfenced brokers whose last heartbeat is older than the session timeout.
pub fn expired(
    image: &MetadataImage,
    last_heartbeat_ms: &BTreeMap<i32, u64>,
    now_ms: u64,
    session_timeout_ms: u64,
) -> BTreeSet<i32> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter(|b| {
            last_heartbeat_ms
                .get(&b.id)
                .is_none_or(|t| now_ms.saturating_sub(*t) > session_timeout_ms)
        })
        .map(|b| b.id)
        .collect()
}
