//! Partition reassignment (Kafka's KIP-455), as pure decisions.
//!
//! A reassignment to `target` first *grows* the replica set to
//! `target ++ (current - target)`, recording which replicas are being added
//! and removed. New replicas start as followers, catch up, and join the ISR
//! through the leader's ordinary AlterPartition. Once every target replica
//! is in the ISR, the controller *completes* it in one change: the replicas
//! become `target`, the ISR keeps only target members, and a leader that is
//! being removed hands over to the first usable in-sync target replica. The
//! removed brokers then see that they no longer host the partition and drop
//! it. At no point does the ISR hold fewer members than before the
//! reassignment started, so acks=all writes stay as safe as they were.
//!
//! Cancelling reverts to the replicas the partition had before (those not
//! being added), dropping the added ones from the ISR.

use std::collections::BTreeSet;

use brook_config::BrokerConfig;

use super::decisions::{eligible_after, is_usable};
use crate::error::BrokerError;
use crate::metadata::{MetadataImage, MetadataRecord, PartitionChange, PartitionRecord};

/// Per partition of an AlterPartitionReassignments: (topic, partition, outcome).
pub type ReassignmentResults = Vec<(String, i32, Result<(), BrokerError>)>;

/// One partition of an AlterPartitionReassignments request: `Some(target)`
/// moves it to `target`, `None` cancels its ongoing reassignment.
pub type Reassignment = (String, i32, Option<Vec<i32>>);

/// AlterPartitionReassignments: the records that start, replace, complete at
/// once (when the target is already in sync) or cancel each reassignment.
/// Each partition is checked on its own.
pub fn alter_reassignments(
    image: &MetadataImage,
    config: &BrokerConfig,
    wanted: &[Reassignment],
) -> (Vec<MetadataRecord>, ReassignmentResults) {
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(wanted.len());
    let mut seen = BTreeSet::new();
    for (topic, index, target) in wanted {
        let r = (|| {
            if !seen.insert((topic.as_str(), *index)) {
                return Err(BrokerError::InvalidRequest(format!(
                    "{topic}-{index} is named twice in one request"
                )));
            }
            let t = image
                .topic(topic)
                .ok_or(BrokerError::UnknownTopicOrPartition)?;
            let p = t
                .partitions
                .get(index)
                .ok_or(BrokerError::UnknownTopicOrPartition)?;
            match target {
                Some(target) => reassign(image, config, topic, p, target),
                None => cancel(image, p),
            }
        })();
        match r {
            Ok(change) => {
                records.extend(change.map(MetadataRecord::PartitionChange));
                results.push((topic.clone(), *index, Ok(())));
            }
            Err(e) => results.push((topic.clone(), *index, Err(e))),
        }
    }
    (records, results)
}

fn reassign(
    image: &MetadataImage,
    config: &BrokerConfig,
    topic: &str,
    p: &PartitionRecord,
    target: &[i32],
) -> Result<Option<PartitionChange>, BrokerError> {
    if target.is_empty() {
        return Err(BrokerError::InvalidReplicaAssignment(
            "the target replica list is empty".into(),
        ));
    }
    let distinct: BTreeSet<i32> = target.iter().copied().collect();
    if distinct.len() != target.len() {
        return Err(BrokerError::InvalidReplicaAssignment(format!(
            "the target replica list {target:?} names a broker twice"
        )));
    }
    if let Some(b) = target.iter().find(|b| !image.brokers.contains_key(b)) {
        return Err(BrokerError::InvalidReplicaAssignment(format!(
            "the target replica list {target:?} names broker {b}, which is not registered"
        )));
    }
    if !p.reassigning() && p.replicas == target {
        return Ok(None);
    }
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !p.replicas.contains(r))
        .collect();
    let removing: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let replicas: Vec<i32> = target.iter().chain(&removing).copied().collect();
    let grown = PartitionRecord {
        replicas: replicas.clone(),
        adding: adding.clone(),
        removing: removing.clone(),
        ..p.clone()
    };
    if let Some(done) = completion(image, config, topic, &grown, &p.isr) {
        return Ok(Some(PartitionChange {
            topic_id: p.topic_id,
            partition: p.partition,
            ..done
        }));
    }
    Ok(Some(PartitionChange {
        topic_id: p.topic_id,
        partition: p.partition,
        replicas: Some(replicas),
        adding: Some(adding),
        removing: Some(removing),
        ..PartitionChange::default()
    }))
}

fn cancel(
    image: &MetadataImage,
    p: &PartitionRecord,
) -> Result<Option<PartitionChange>, BrokerError> {
    if !p.reassigning() {
        return Err(BrokerError::NoReassignmentInProgress);
    }
    let replicas: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.adding.contains(r))
        .collect();
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    if isr.is_empty() {
        return Err(BrokerError::InvalidReplicaAssignment(format!(
            "cannot cancel: none of the original replicas {replicas:?} is in sync"
        )));
    }
    let mut change = PartitionChange {
        topic_id: p.topic_id,
        partition: p.partition,
        isr: (isr != p.isr).then(|| isr.clone()),
        elr: Some(
            p.elr
                .iter()
                .copied()
                .filter(|r| replicas.contains(r))
                .collect(),
        ),
        replicas: Some(replicas),
        adding: Some(Vec::new()),
        removing: Some(Vec::new()),
        ..PartitionChange::default()
    };
    if !isr.contains(&p.leader) {
        change.leader = Some(
            isr.iter()
                .copied()
                .find(|r| is_usable(image, *r))
                .unwrap_or(-1),
        );
    }
    Ok(Some(change))
}

/// The change that completes `p`'s reassignment once its ISR is `isr`:
/// `None` while a target replica is still out of sync, or while the leader
/// must move and no in-sync target replica can take over. The change sets
/// replicas, ISR, ELR and the reassignment fields (ids are the caller's).
pub(super) fn completion(
    image: &MetadataImage,
    config: &BrokerConfig,
    topic: &str,
    p: &PartitionRecord,
    isr: &[i32],
) -> Option<PartitionChange> {
    if !p.reassigning() {
        return None;
    }
    let target = p.target_replicas();
    if !target.iter().all(|r| isr.contains(r)) {
        return None;
    }
    // Target order, so the preferred replica comes first.
    let new_isr: Vec<i32> = target.iter().copied().filter(|r| isr.contains(r)).collect();
    let leader = if target.contains(&p.leader) {
        None
    } else {
        Some(new_isr.iter().copied().find(|r| is_usable(image, *r))?)
    };
    let done = PartitionRecord {
        replicas: target.clone(),
        isr: new_isr.clone(),
        adding: Vec::new(),
        removing: Vec::new(),
        elr: p
            .elr
            .iter()
            .copied()
            .filter(|r| target.contains(r))
            .collect(),
        ..p.clone()
    };
    let elr = eligible_after(image, config, topic, &done, &new_isr);
    Some(PartitionChange {
        leader,
        isr: Some(new_isr),
        elr: Some(elr),
        replicas: Some(target),
        adding: Some(Vec::new()),
        removing: Some(Vec::new()),
        ..PartitionChange::default()
    })
}

/// The changes that complete reassignments whose target replicas were all in
/// sync but could not finish because no in-sync target replica was usable to
/// lead, now that broker `id` is (it was unfenced). The ISR of such a
/// partition does not change, so no AlterPartition would complete it.
pub(super) fn completions_waiting_for(
    image: &MetadataImage,
    config: &BrokerConfig,
    id: i32,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for topic in image.topics.values() {
        for (index, p) in &topic.partitions {
            if !p.reassigning() || !p.target_replicas().contains(&id) {
                continue;
            }
            if let Some(done) = completion(image, config, &topic.name, p, &p.isr) {
                out.push(MetadataRecord::PartitionChange(PartitionChange {
                    topic_id: topic.id,
                    partition: *index,
                    ..done
                }));
            }
        }
    }
    out
}

/// Every ongoing reassignment, or those of `wanted` partitions: (topic,
/// partition record) in topic-name order.
pub fn ongoing<'a>(
    image: &'a MetadataImage,
    wanted: Option<&[(String, Vec<i32>)]>,
) -> Vec<(&'a str, &'a PartitionRecord)> {
    let mut out = Vec::new();
    let mut topics: Vec<_> = image.topics.values().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    for t in topics {
        let filter = wanted.map(|w| {
            w.iter()
                .filter(|(name, _)| *name == t.name)
                .flat_map(|(_, ps)| ps.iter().copied())
                .collect::<BTreeSet<i32>>()
        });
        if filter.as_ref().is_some_and(BTreeSet::is_empty) {
            continue;
        }
        for p in t.partitions.values() {
            if p.reassigning() && filter.as_ref().is_none_or(|f| f.contains(&p.partition)) {
                out.push((t.name.as_str(), p));
            }
        }
    }
    out
}
