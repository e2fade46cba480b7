//! Deterministic tests of the controller's decisions: election from the
//! ISR, fencing, controlled shutdown, stale epochs, session expiry
//! on a simulated clock, and a seeded simulation that checks the partition
//! invariants after every step.

use std::collections::{BTreeMap, BTreeSet};

use brook_config::BrokerConfig;
use brook_protocol::codec::Uuid;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::decisions;
use crate::error::BrokerError;
use crate::metadata::{
    BrokerRegistration, MetadataDelta, MetadataImage, MetadataRecord, PartitionRecord, ReplayError,
};

pub(super) fn reg(id: i32, rack: Option<&str>, epoch: i64) -> BrokerRegistration {
    BrokerRegistration {
        id,
        incarnation: Uuid::from_bytes([id as u8; 16]),
        epoch,
        endpoints: Vec::new(),
        rack: rack.map(str::to_owned),
        fenced: false,
        shutting_down: false,
    }
}

pub(super) fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
    image
        .replay_all(records, &mut MetadataDelta::default())
        .expect("the controller's records replay");
}

pub(super) fn cluster(racks: &[Option<&str>]) -> MetadataImage {
    let mut image = MetadataImage::default();
    let records: Vec<_> = racks
        .iter()
        .enumerate()
        .map(|(i, r)| MetadataRecord::RegisterBroker(reg(i as i32 + 1, *r, 1)))
        .collect();
    apply(&mut image, &records);
    image
}

/// A topic with `rf` replicas per partition, placed by the controller's own
/// placement (bypassing the replication-factor-1 gate of CreateTopics).
pub(super) fn add_topic(
    image: &mut MetadataImage,
    name: &str,
    id: u8,
    partitions: i32,
    rf: i32,
) -> Uuid {
    let id = Uuid::from_bytes([id; 16]);
    let placement = decisions::place(image, 0, partitions, rf, 0).expect("placement");
    let mut records = vec![MetadataRecord::Topic {
        name: name.into(),
        id,
    }];
    for (p, replicas) in placement.into_iter().enumerate() {
        records.push(decisions::new_partition(id, p as i32, replicas));
    }
    apply(image, &records);
    id
}

pub(super) fn partitions(image: &MetadataImage) -> Vec<PartitionRecord> {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.values().cloned())
        .collect()
}

#[test]
fn fencing_the_leader_elects_from_the_isr_with_a_new_epoch() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None, None, None]);
    let t = add_topic(&mut image, "t", 1, 3, 3);
    let before = image.partition(&t, 0).unwrap().clone();
    let gone = before.leader;
    let records = decisions::fence(&image, &config, gone, 1);
    apply(&mut image, &records);
    assert!(image.brokers[&gone].fenced);
    for p in partitions(&image) {
        assert_ne!(p.leader, gone);
        assert!(p.isr.contains(&p.leader));
        assert!(!p.isr.contains(&gone), "a fenced broker leaves the ISR");
    }
    let after = image.partition(&t, 0).unwrap();
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert!(after.partition_epoch > before.partition_epoch);
}

/// Two brokers, topic "t" with one partition on both; the follower dropped
/// out of the ISR, then the leader was fenced. Returns the topic and the
/// partition as it was before.
fn fenced_last_isr_member(
    image: &mut MetadataImage,
    config: &BrokerConfig,
) -> (Uuid, PartitionRecord) {
    let t = add_topic(image, "t", 1, 1, 2);
    let p = image.partition(&t, 0).unwrap().clone();
    apply(
        image,
        &[MetadataRecord::PartitionChange(
            crate::metadata::PartitionChange {
                topic_id: t,
                partition: 0,
                isr: Some(vec![p.leader]),
                ..Default::default()
            },
        )],
    );
    let records = decisions::fence(image, config, p.leader, 1);
    apply(image, &records);
    (t, p)
}

#[test]
fn the_last_isr_member_stays_and_the_partition_waits_for_it() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None, None]);
    let (t, p) = fenced_last_isr_member(&mut image, &config);
    let now = image.partition(&t, 0).unwrap().clone();
    assert_eq!(now.leader, -1, "no clean leader: offline, not unclean");
    assert_eq!(now.isr, vec![p.leader], "the last ISR member stays");
    // It comes back: it leads again, one epoch later.
    apply(
        &mut image,
        &[MetadataRecord::RegisterBroker(reg(p.leader, None, 5))],
    );
    let records = decisions::unfence(&image, &config, p.leader, 5);
    apply(&mut image, &records);
    let back = image.partition(&t, 0).unwrap();
    assert_eq!(back.leader, p.leader);
    assert_eq!(back.leader_epoch, now.leader_epoch + 1);
}

#[test]
fn unclean_election_is_opt_in_per_topic() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None, None]);
    let t = add_topic(&mut image, "t", 1, 1, 2);
    let p = image.partition(&t, 0).unwrap().clone();
    let follower = p.replicas[1];
    apply(
        &mut image,
        &[
            MetadataRecord::PartitionChange(crate::metadata::PartitionChange {
                topic_id: t,
                partition: 0,
                isr: Some(vec![p.leader]),
                ..Default::default()
            }),
            MetadataRecord::Config {
                resource: crate::metadata::ConfigResource::Topic("t".into()),
                key: "unclean.leader.election.enable".into(),
                value: Some("true".into()),
            },
        ],
    );
    let records = decisions::fence(&image, &config, p.leader, 1);
    apply(&mut image, &records);
    let now = image.partition(&t, 0).unwrap();
    assert_eq!(now.leader, follower);
    assert_eq!(now.isr, vec![follower]);
}

#[test]
fn controlled_shutdown_moves_leadership_and_reports_when_done() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None, None, None]);
    add_topic(&mut image, "t", 1, 6, 2);
    assert!(decisions::leads_anything(&image, 1));
    let records = decisions::begin_shutdown(&image, &config, 1, 1);
    apply(&mut image, &records);
    assert!(image.brokers[&1].shutting_down);
    assert!(!decisions::leads_anything(&image, 1));
    // No new replicas go to a broker that is shutting down.
    assert!(decisions::place(&image, 0, 4, 2, 0)
        .unwrap()
        .iter()
        .flatten()
        .all(|b| *b != 1));
}

#[test]
fn records_with_a_stale_broker_epoch_are_refused() {
    let mut image = cluster(&[None]);
    apply(
        &mut image,
        &[MetadataRecord::RegisterBroker(reg(1, None, 9))],
    );
    let err = image
        .replay(
            &MetadataRecord::FenceBroker { id: 1, epoch: 1 },
            &mut MetadataDelta::default(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        ReplayError::StaleBrokerEpoch {
            id: 1,
            epoch: 1,
            current: 9
        }
    );
    assert!(!image.brokers[&1].fenced);
}

#[test]
fn re_registering_replaces_the_old_incarnation_and_is_idempotent() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None, None]);
    let t = add_topic(&mut image, "t", 1, 2, 2);
    let led: Vec<i32> = partitions(&image)
        .iter()
        .filter(|p| p.leader == 1)
        .map(|p| p.partition)
        .collect();
    let mut again = reg(1, None, 7);
    again.incarnation = Uuid::from_bytes([42; 16]);
    let records = decisions::register(&image, &config, again.clone());
    apply(&mut image, &records);
    assert!(image.brokers[&1].fenced, "a new incarnation starts fenced");
    for p in led {
        assert_ne!(image.partition(&t, p).unwrap().leader, 1);
    }
    assert!(decisions::register(&image, &config, again).is_empty());
}

#[test]
fn sessions_expire_on_the_simulated_clock_and_not_before() {
    let image = cluster(&[None, None, None]);
    let session = 9000;
    let mut heard: BTreeMap<i32, u64> = (1..=3).map(|b| (b, 0)).collect();
    for now in (0..=session).step_by(500) {
        heard.insert(1, now);
        heard.insert(2, now);
        assert!(
            decisions::expired(&image, &heard, now, session).is_empty(),
            "at {now}"
        );
    }
    assert_eq!(
        decisions::expired(&image, &heard, session + 1, session),
        BTreeSet::from([3])
    );
}

/// The invariants every image the controller produces must keep (no topic
/// in the simulation allows unclean election).
fn check(image: &MetadataImage, last: &mut BTreeMap<(Uuid, i32), PartitionRecord>) {
    for p in partitions(image) {
        assert!(!p.isr.is_empty(), "{p:?}: empty ISR");
        assert!(
            p.isr.iter().all(|r| p.replicas.contains(r)),
            "{p:?}: ISR outside replicas"
        );
        if p.leader >= 0 {
            assert!(p.isr.contains(&p.leader), "{p:?}: leader outside the ISR");
            let b = &image.brokers[&p.leader];
            assert!(
                !b.fenced && !b.shutting_down,
                "{p:?}: leader {} is not usable",
                p.leader
            );
        }
        let key = (p.topic_id, p.partition);
        if let Some(prev) = last.get(&key) {
            assert!(
                p.leader_epoch >= prev.leader_epoch,
                "{p:?}: leader epoch went back"
            );
            if p.leader_epoch == prev.leader_epoch {
                assert_eq!(p.leader, prev.leader, "{p:?}: two leaders in one epoch");
            }
            if p.leader >= 0 && p.leader != prev.leader {
                assert!(
                    prev.isr.contains(&p.leader) || prev.elr.contains(&p.leader),
                    "{p:?}: new leader was not in the ISR {:?} (unclean election)",
                    prev.isr
                );
            }
        }
        last.insert(key, p);
    }
}

/// Seeded random fence/unfence/shutdown/re-register/create sequences; the
/// invariants hold after every step. A failing seed is printed and becomes a
/// regression test.
#[test]
fn seeded_controller_simulation_keeps_partition_invariants() {
    let config = BrokerConfig::default();
    for seed in 0..200u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut image = cluster(&[Some("a"), Some("b"), Some("a"), Some("b"), None]);
        let mut last = BTreeMap::new();
        let mut next_topic = 1u8;
        for step in 0..60 {
            let id = rng.random_range(1..=5);
            let epoch = image.brokers.get(&id).map_or(1, |b| b.epoch);
            let records = match rng.random_range(0..6) {
                0 => decisions::fence(&image, &config, id, epoch),
                1 if image.brokers[&id].fenced => decisions::unfence(&image, &config, id, epoch),
                2 => decisions::begin_shutdown(&image, &config, id, epoch),
                3 => {
                    let mut r = reg(id, None, epoch + 1);
                    r.incarnation = Uuid::from_bytes(rng.random());
                    decisions::register(&image, &config, r)
                }
                4 if next_topic < 20 => {
                    let rf = rng.random_range(1..=3);
                    match decisions::place(&image, 0, 4, rf, rng.random_range(0..5)) {
                        Ok(_) => {
                            add_topic(&mut image, &format!("t{next_topic}"), next_topic, 4, rf);
                            next_topic += 1;
                        }
                        Err(BrokerError::InvalidReplicationFactor(_)) => {}
                        Err(e) => panic!("seed {seed} step {step}: {e}"),
                    }
                    Vec::new()
                }
                _ => Vec::new(),
            };
            if let Err((i, e)) = image.replay_all(&records, &mut MetadataDelta::default()) {
                panic!("seed {seed} step {step}: record {i} refused: {e}");
            }
            check(&image, &mut last);
        }
    }
}

/// The leader of `t`-0 proposes `isr` (AlterPartition), as its ISR task would.
fn propose_isr(image: &mut MetadataImage, config: &BrokerConfig, t: Uuid, isr: Vec<i32>) {
    let p = image.partition(&t, 0).unwrap().clone();
    let change = super::rpc::IsrChange {
        topic_id: t.to_string(),
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        isr,
    };
    let (records, results) = decisions::alter_partition(image, config, p.leader, 1, &[change])
        .expect("current broker epoch");
    assert!(results[0].is_ok(), "{results:?}");
    apply(image, &records);
}

fn reassign(
    image: &MetadataImage,
    target: Option<Vec<i32>>,
) -> (Vec<MetadataRecord>, Result<(), BrokerError>) {
    let config = BrokerConfig::default();
    let (records, mut results) =
        super::reassign::alter_reassignments(image, &config, &[("t".into(), 0, target)]);
    (records, results.remove(0).2)
}

#[test]
fn a_reassignment_grows_the_replicas_then_completes_once_the_target_is_in_sync() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None, None, None, None]);
    let t = add_topic(&mut image, "t", 1, 1, 2);
    let before = image.partition(&t, 0).unwrap().clone();
    let target: Vec<i32> = (1..=4).filter(|b| !before.replicas.contains(b)).collect();
    let (records, r) = reassign(&image, Some(target.clone()));
    r.unwrap();
    apply(&mut image, &records);
    let grown = image.partition(&t, 0).unwrap().clone();
    let mut expected = target.clone();
    expected.extend(&before.replicas);
    assert_eq!(
        grown.replicas, expected,
        "target first, then the old replicas"
    );
    assert_eq!(grown.adding, target);
    assert_eq!(grown.removing, before.replicas);
    assert_eq!(
        grown.isr, before.isr,
        "the ISR does not change until replicas catch up"
    );
    assert_eq!(grown.leader, before.leader);
    assert_eq!(grown.leader_epoch, before.leader_epoch);

    // One new replica in sync: not done yet.
    let mut isr = before.isr.clone();
    isr.push(target[0]);
    propose_isr(&mut image, &config, t, isr.clone());
    let half = image.partition(&t, 0).unwrap().clone();
    assert!(half.reassigning());
    assert_eq!(half.isr, isr);

    // Both in sync: completed in the same change, leadership handed over.
    isr.push(target[1]);
    propose_isr(&mut image, &config, t, isr);
    let done = image.partition(&t, 0).unwrap().clone();
    assert!(!done.reassigning());
    assert_eq!(done.replicas, target);
    assert_eq!(done.isr, target);
    assert_eq!(
        done.leader, target[0],
        "the first in-sync target replica leads"
    );
    assert_eq!(done.leader_epoch, before.leader_epoch + 1);
    // Nothing left to list.
    assert!(super::reassign::ongoing(&image, None).is_empty());
}

#[test]
fn a_target_already_in_sync_completes_at_once_and_keeps_its_leader() {
    let mut image = cluster(&[None, None, None]);
    let t = add_topic(&mut image, "t", 1, 1, 3);
    let before = image.partition(&t, 0).unwrap().clone();
    let target = vec![before.leader, before.replicas[1]];
    let (records, r) = reassign(&image, Some(target.clone()));
    r.unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    apply(&mut image, &records);
    let after = image.partition(&t, 0).unwrap();
    assert_eq!(after.replicas, target);
    assert_eq!(after.isr, target);
    assert_eq!(after.leader, before.leader);
    assert_eq!(
        after.leader_epoch, before.leader_epoch,
        "no new leader, no new epoch"
    );
    assert!(!after.reassigning());
    // The same target again is nothing to do.
    let (records, r) = reassign(&image, Some(target));
    r.unwrap();
    assert!(records.is_empty());
}

/// A reassignment whose target is in sync but whose only in-sync target
/// replica is fenced cannot complete (nobody usable to lead). When that
/// broker is unfenced the ISR does not change, so no AlterPartition comes:
/// the unfencing itself completes it.
#[test]
fn a_reassignment_waiting_for_a_fenced_target_completes_when_it_is_unfenced() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None, None]);
    // The leader is the last ISR member, fenced: the partition has no leader.
    let (t, p) = fenced_last_isr_member(&mut image, &config);
    let (keep, drop) = (
        p.leader,
        p.replicas.iter().copied().find(|r| *r != p.leader).unwrap(),
    );
    assert_eq!(image.partition(&t, 0).unwrap().leader, -1);
    // Move the partition to `keep` alone: its target is in sync, but fenced.
    let (records, r) = reassign(&image, Some(vec![keep]));
    r.unwrap();
    apply(&mut image, &records);
    let waiting = image.partition(&t, 0).unwrap().clone();
    assert!(
        waiting.reassigning(),
        "nobody usable can lead the target yet"
    );
    assert_eq!(waiting.removing, vec![drop]);
    // `keep` comes back: it leads again and the reassignment completes.
    apply(
        &mut image,
        &[MetadataRecord::RegisterBroker(reg(keep, None, 5))],
    );
    let records = decisions::unfence(&image, &config, keep, 5);
    apply(&mut image, &records);
    let done = image.partition(&t, 0).unwrap();
    assert!(!done.reassigning(), "still waiting: {done:?}");
    assert_eq!(done.replicas, vec![keep]);
    assert_eq!(done.isr, vec![keep]);
    assert_eq!(done.leader, keep);
    assert!(super::reassign::ongoing(&image, None).is_empty());
}

#[test]
fn cancelling_reverts_to_the_original_replicas() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None, None, None, None]);
    let t = add_topic(&mut image, "t", 1, 1, 2);
    let before = image.partition(&t, 0).unwrap().clone();
    let (_, r) = reassign(&image, None);
    assert!(
        matches!(r, Err(BrokerError::NoReassignmentInProgress)),
        "{r:?}"
    );
    let target: Vec<i32> = (1..=4).filter(|b| !before.replicas.contains(b)).collect();
    let (records, r) = reassign(&image, Some(target.clone()));
    r.unwrap();
    apply(&mut image, &records);
    // One added replica caught up before the cancel.
    let mut isr = before.isr.clone();
    isr.push(target[0]);
    propose_isr(&mut image, &config, t, isr);
    let (records, r) = reassign(&image, None);
    r.unwrap();
    apply(&mut image, &records);
    let after = image.partition(&t, 0).unwrap();
    assert!(!after.reassigning());
    assert_eq!(after.replicas, before.replicas);
    assert_eq!(after.isr, before.isr, "added replicas leave the ISR");
    assert_eq!(after.leader, before.leader);
}

#[test]
fn bad_targets_are_refused_per_partition() {
    let mut image = cluster(&[None, None, None]);
    add_topic(&mut image, "t", 1, 1, 2);
    for (target, what) in [
        (vec![], "empty"),
        (vec![1, 1], "twice"),
        (vec![1, 9], "not registered"),
    ] {
        let (records, r) = reassign(&image, Some(target));
        assert!(records.is_empty());
        match r {
            Err(BrokerError::InvalidReplicaAssignment(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    let config = BrokerConfig::default();
    let (_, results) = super::reassign::alter_reassignments(
        &image,
        &config,
        &[
            ("t".into(), 5, Some(vec![1])),
            ("nope".into(), 0, Some(vec![1])),
        ],
    );
    assert!(results
        .iter()
        .all(|r| matches!(r.2, Err(BrokerError::UnknownTopicOrPartition))));
}

/// Seeded: random reassignments, cancels and ISR changes never leave a
/// partition with an ISR outside its replicas, a leader outside its ISR, or
/// a completed reassignment with replicas other than its target.
#[test]
fn seeded_reassignments_keep_the_partition_consistent() {
    let config = BrokerConfig::default();
    for seed in 0..200u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut image = cluster(&[None, None, None, None, None]);
        let t = add_topic(&mut image, "t", 1, 1, 3);
        for _ in 0..30 {
            let p = image.partition(&t, 0).unwrap().clone();
            match rng.random_range(0..3) {
                0 => {
                    let mut all: Vec<i32> = (1..=5).collect();
                    let n = rng.random_range(1..=4);
                    let mut target = Vec::new();
                    for _ in 0..n {
                        target.push(all.remove(rng.random_range(0..all.len())));
                    }
                    let (records, r) = reassign(&image, Some(target.clone()));
                    r.unwrap();
                    apply(&mut image, &records);
                    let now = image.partition(&t, 0).unwrap();
                    assert_eq!(now.target_replicas(), target, "seed {seed}");
                }
                1 => {
                    let (records, r) = reassign(&image, None);
                    assert_eq!(r.is_ok(), p.reassigning(), "seed {seed}");
                    apply(&mut image, &records);
                }
                _ => {
                    // A replica catches up (or the leader proposes what it has).
                    let mut isr = p.isr.clone();
                    if let Some(r) = p.replicas.iter().find(|r| !isr.contains(r)) {
                        isr.push(*r);
                    }
                    if p.leader >= 0 {
                        propose_isr(&mut image, &config, t, isr);
                    }
                }
            }
            let now = image.partition(&t, 0).unwrap();
            assert!(
                now.isr.iter().all(|r| now.replicas.contains(r)),
                "seed {seed}: {now:?}"
            );
            assert!(now.isr.contains(&now.leader), "seed {seed}: {now:?}");
            assert!(
                now.adding.iter().all(|r| now.replicas.contains(r)),
                "seed {seed}: {now:?}"
            );
            assert!(
                now.removing.iter().all(|r| now.replicas.contains(r)),
                "seed {seed}: {now:?}"
            );
            assert!(!now.isr.is_empty(), "seed {seed}");
        }
    }
}
