//! Where replicas go: the controller's round-robin, rack-alternating
//! placement, and the checks a manual placement (CreateTopics or
//! CreatePartitions with replica assignments) must pass. Pure functions of
//! the image, like the rest of the controller's decisions.

use std::collections::{BTreeMap, BTreeSet};

use brook_protocol::codec::Uuid;

use crate::error::BrokerError;
use crate::metadata::{BrokerRegistration, MetadataImage, MetadataRecord, PartitionRecord};

/// Brokers that may take new replicas and leadership.
fn usable(image: &MetadataImage) -> Vec<&BrokerRegistration> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced && !b.shutting_down)
        .collect()
}

pub(super) fn is_usable(image: &MetadataImage, id: i32) -> bool {
    image
        .brokers
        .get(&id)
        .is_some_and(|b| !b.fenced && !b.shutting_down)
}

/// Order brokers so that consecutive ones alternate racks (Kafka's
/// rack-alternating list): rack A's first, rack B's first, …, rack A's second.
fn rack_alternating(brokers: &[&BrokerRegistration]) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref()).or_default().push(b.id);
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                out.push(*id);
            }
        }
        round += 1;
    }
    out
}

/// Replica lists for partitions `first..first + count`: round-robin over the
/// rack-alternating broker list from `start`, so leaders spread evenly and
/// each partition's replicas sit on distinct brokers (and racks, when there
/// are as many racks as replicas).
///
/// # Errors
/// [`BrokerError::InvalidReplicationFactor`] when `rf` exceeds the usable brokers.
pub fn place(
    image: &MetadataImage,
    first: i32,
    count: i32,
    rf: i32,
    start: usize,
) -> Result<Vec<Vec<i32>>, BrokerError> {
    let brokers = usable(image);
    if rf < 1 || rf as usize > brokers.len() {
        return Err(BrokerError::InvalidReplicationFactor(format!(
            "replication factor {rf} is larger than the number of available (unfenced) brokers ({})",
            brokers.len()
        )));
    }
    let order = rack_alternating(&brokers);
    let n = order.len();
    Ok((first..first + count)
        .map(|p| {
            let base = start.wrapping_add(p as usize);
            (0..rf as usize).map(|j| order[(base + j) % n]).collect()
        })
        .collect())
}

/// Check one partition's manual replica list the way Kafka's controller
/// does: not empty, no broker twice, every broker registered, the same
/// length as the topic's other partitions (`rf`, when known), and at least
/// one replica on a usable broker.
pub(super) fn check_manual(
    image: &MetadataImage,
    partition: i32,
    replicas: &[i32],
    rf: Option<usize>,
) -> Result<(), BrokerError> {
    let bad = |m: String| Err(BrokerError::InvalidReplicaAssignment(m));
    if replicas.is_empty() {
        return bad(format!(
            "partition {partition} is assigned an empty replica list"
        ));
    }
    if let Some(rf) = rf.filter(|rf| *rf != replicas.len()) {
        return bad(format!(
            "partition {partition} is assigned {} replica(s), but the topic's other partitions have {rf}",
            replicas.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for id in replicas {
        if !seen.insert(id) {
            return bad(format!(
                "partition {partition} is assigned broker {id} more than once"
            ));
        }
        if !image.brokers.contains_key(id) {
            return bad(format!(
                "partition {partition} is assigned broker {id}, but no such broker is registered"
            ));
        }
    }
    if !replicas.iter().any(|id| is_usable(image, *id)) {
        return bad(format!(
            "every broker assigned to partition {partition} ({replicas:?}) is fenced or shutting down"
        ));
    }
    Ok(())
}

/// A manually placed partition: its ISR is the usable replicas, led by the
/// first of them (the caller has run [`check_manual`]).
pub(super) fn manual_partition(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    replicas: &[i32],
) -> MetadataRecord {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|id| is_usable(image, *id))
        .collect();
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        leader: isr[0],
        isr,
        replicas: replicas.to_vec(),
        elr: Vec::new(),
        leader_epoch: 0,
        partition_epoch: 0,
        ..PartitionRecord::default()
    })
}

/// A new partition led by the first of `replicas`, all of them in sync.
pub fn new_partition(topic_id: Uuid, partition: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        leader: replicas[0],
        isr: replicas.clone(),
        replicas,
        elr: Vec::new(),
        leader_epoch: 0,
        partition_epoch: 0,
        ..PartitionRecord::default()
    })
}
