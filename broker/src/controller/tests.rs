//! Deterministic tests of the controller's decisions: placement, election
//! from the ISR, fencing, controlled shutdown, stale epochs, session expiry
//! on a simulated clock, and a seeded simulation that checks the partition
//! invariants after every step.

use std::collections::{BTreeMap, BTreeSet};

use brook_config::BrokerConfig;
use brook_protocol::codec::Uuid;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::decisions::{self, CreateTopic};
use crate::error::BrokerError;
use crate::metadata::{
    BrokerRegistration, MetadataDelta, MetadataImage, MetadataRecord, PartitionRecord, ReplayError,
};

fn reg(id: i32, rack: Option<&str>, epoch: i64) -> BrokerRegistration {
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

fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
    image
        .replay_all(records, &mut MetadataDelta::default())
        .expect("the controller's records replay");
}

fn cluster(racks: &[Option<&str>]) -> MetadataImage {
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
fn add_topic(image: &mut MetadataImage, name: &str, id: u8, partitions: i32, rf: i32) -> Uuid {
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

fn partitions(image: &MetadataImage) -> Vec<PartitionRecord> {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.values().cloned())
        .collect()
}

#[test]
fn placement_spreads_leaders_and_keeps_replicas_on_distinct_brokers_and_racks() {
    let image = cluster(&[Some("a"), Some("a"), Some("b"), Some("b")]);
    let placed = decisions::place(&image, 0, 8, 2, 0).unwrap();
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for replicas in &placed {
        assert_eq!(replicas.len(), 2);
        assert_ne!(replicas[0], replicas[1]);
        let rack = |id: i32| image.brokers[&id].rack.clone();
        assert_ne!(
            rack(replicas[0]),
            rack(replicas[1]),
            "{replicas:?} share a rack"
        );
        *leaders.entry(replicas[0]).or_default() += 1;
    }
    assert_eq!(
        leaders.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2, 2]
    );
}

#[test]
fn placement_uses_only_unfenced_brokers_and_refuses_too_large_a_factor() {
    let mut image = cluster(&[None, None, None]);
    apply(
        &mut image,
        &[MetadataRecord::FenceBroker { id: 2, epoch: 1 }],
    );
    let placed = decisions::place(&image, 0, 6, 2, 0).unwrap();
    assert!(placed.iter().flatten().all(|b| *b != 2));
    let err = decisions::place(&image, 0, 1, 3, 0).unwrap_err();
    assert!(
        matches!(&err, BrokerError::InvalidReplicationFactor(m) if m.contains("(2)")),
        "{err:?}"
    );
}

#[test]
fn create_topic_validates_against_the_image() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None]);
    let configs = BTreeMap::new();
    let req = |name: &'static str, partitions| CreateTopic {
        name,
        partitions,
        replication_factor: -1,
        configs: &configs,
        assignments: None,
    };
    let id = Uuid::from_bytes([7; 16]);
    let records = decisions::create_topic(&image, &config, &req("t.x", 3), id, 0).unwrap();
    apply(&mut image, &records);
    assert_eq!(image.topic("t.x").unwrap().partitions.len(), 3);
    assert!(matches!(
        decisions::create_topic(&image, &config, &req("t.x", 3), id, 0),
        Err(BrokerError::TopicAlreadyExists(_))
    ));
    assert!(matches!(
        decisions::create_topic(&image, &config, &req("t_x", 3), Uuid::from_bytes([8; 16]), 0),
        Err(BrokerError::InvalidTopic(m)) if m.contains("collides")
    ));
    assert!(matches!(
        decisions::create_topic(&image, &config, &req("u", 0), id, 0),
        Err(BrokerError::InvalidPartitions(_))
    ));
    let bad = BTreeMap::from([("retention.ms".to_owned(), "soon".to_owned())]);
    let err = decisions::create_topic(
        &image,
        &config,
        &CreateTopic {
            name: "v",
            partitions: 1,
            replication_factor: 1,
            configs: &bad,
            assignments: None,
        },
        id,
        0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("retention.ms"), "{err}");
}

#[test]
fn a_manual_assignment_places_replicas_as_given_and_is_checked_like_kafka() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None, None, None, None]);
    let configs = BTreeMap::new();
    let create = |image: &MetadataImage, name: &'static str, lists: &[Vec<i32>]| {
        decisions::create_topic(
            image,
            &config,
            &CreateTopic {
                name,
                partitions: -1,
                replication_factor: -1,
                configs: &configs,
                assignments: Some(lists),
            },
            Uuid::from_bytes([name.as_bytes()[0]; 16]),
            0,
        )
    };
    let records = create(&image, "m", &[vec![4, 2], vec![3, 4]]).unwrap();
    apply(&mut image, &records);
    let t = image.topic("m").unwrap().id;
    let p0 = image.partition(&t, 0).unwrap();
    assert_eq!(
        (p0.replicas.clone(), p0.leader, p0.isr.clone()),
        (vec![4, 2], 4, vec![4, 2])
    );
    assert_eq!(image.partition(&t, 1).unwrap().leader, 3);

    let refused = |image: &MetadataImage, lists: &[Vec<i32>], needle: &str| {
        let err = create(image, "refused", lists).unwrap_err();
        assert!(
            matches!(&err, BrokerError::InvalidReplicaAssignment(m) if m.contains(needle)),
            "{lists:?}: {err:?}"
        );
    };
    refused(&image, &[vec![]], "empty");
    refused(&image, &[vec![1, 1]], "more than once");
    refused(&image, &[vec![1, 9]], "no such broker");
    refused(&image, &[vec![1, 2], vec![3]], "other partitions have 2");

    // A fenced replica is placed but starts outside the ISR; the leader is
    // the first usable one. With every replica fenced the request fails.
    let fenced = decisions::fence(&image, &config, 1, 1);
    apply(&mut image, &fenced);
    let records = create(&image, "f", &[vec![1, 2]]).unwrap();
    apply(&mut image, &records);
    let f = image.topic("f").unwrap().id;
    let p = image.partition(&f, 0).unwrap();
    assert_eq!(
        (p.replicas.clone(), p.leader, p.isr.clone()),
        (vec![1, 2], 2, vec![2])
    );
    refused(&image, &[vec![1]], "fenced or shutting down");

    // Growing a topic by hand: one list per new partition, of the topic's length.
    let grow = decisions::create_partitions(&image, "m", 3, Some(&[vec![1, 3]]), 0);
    assert!(matches!(grow, Ok(ref r) if r.len() == 1), "{grow:?}");
    apply(&mut image, &grow.unwrap());
    assert_eq!(image.partition(&t, 2).unwrap().replicas, vec![1, 3]);
    for (lists, needle) in [
        (vec![vec![1, 2], vec![2, 3]], "needs 1 assignment"),
        (vec![vec![2]], "other partitions have 2"),
    ] {
        let err = decisions::create_partitions(&image, "m", 4, Some(&lists), 0).unwrap_err();
        assert!(
            matches!(&err, BrokerError::InvalidReplicaAssignment(m) if m.contains(needle)),
            "{lists:?}: {err:?}"
        );
    }
}

#[test]
fn a_failed_log_directory_moves_only_its_partitions_off_the_broker() {
    let config = BrokerConfig {
        min_insync_replicas: 2,
        ..BrokerConfig::default()
    };
    let mut image = cluster(&[None, None, None]);
    let t = add_topic(&mut image, "t", 1, 3, 3);
    let p0 = image.partition(&t, 0).unwrap().clone();
    let sick = p0.leader;
    let offline = BTreeSet::from([(t, 0)]);
    let records = decisions::replicas_offline(&image, &config, sick, &offline);
    apply(&mut image, &records);
    let after = image.partition(&t, 0).unwrap();
    assert_ne!(after.leader, sick);
    assert!(after.isr.contains(&after.leader));
    assert!(!after.isr.contains(&sick) && !after.elr.contains(&sick));
    assert_eq!(after.leader_epoch, p0.leader_epoch + 1);
    assert!(!image.brokers[&sick].fenced, "the broker itself stays up");
    // Its other replicas are untouched; a repeated report commits nothing.
    for p in [1, 2] {
        assert!(image.partition(&t, p).unwrap().isr.contains(&sick));
    }
    assert!(decisions::replicas_offline(&image, &config, sick, &offline).is_empty());

    // The last in-sync replica fails: the partition has no leader until it
    // returns (it stays the ISR), and it is not made eligible either.
    let p1 = image.partition(&t, 1).unwrap().clone();
    let others: Vec<i32> = p1.replicas.iter().copied().filter(|r| *r != sick).collect();
    for o in &others {
        let out = decisions::replicas_offline(&image, &config, *o, &BTreeSet::from([(t, 1)]));
        apply(&mut image, &out);
    }
    let p1 = image.partition(&t, 1).unwrap().clone();
    assert_eq!(p1.isr, vec![sick], "{p1:?}");
    assert!(p1.elr.iter().all(|r| !others.contains(r)), "{p1:?}");
    let out = decisions::replicas_offline(&image, &config, sick, &BTreeSet::from([(t, 1)]));
    apply(&mut image, &out);
    let p1 = image.partition(&t, 1).unwrap();
    assert_eq!((p1.leader, p1.isr.clone()), (-1, vec![sick]), "{p1:?}");
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

#[test]
fn the_last_isr_member_stays_and_the_partition_waits_for_it() {
    let config = BrokerConfig::default();
    let mut image = cluster(&[None, None]);
    let t = add_topic(&mut image, "t", 1, 1, 2);
    let p = image.partition(&t, 0).unwrap().clone();
    // The follower dropped out of the ISR earlier.
    apply(
        &mut image,
        &[MetadataRecord::PartitionChange(
            crate::metadata::PartitionChange {
                topic_id: t,
                partition: 0,
                isr: Some(vec![p.leader]),
                ..Default::default()
            },
        )],
    );
    let records = decisions::fence(&image, &config, p.leader, 1);
    apply(&mut image, &records);
    let now = image.partition(&t, 0).unwrap().clone();
    assert_eq!(now.leader, -1, "no clean leader: offline, not unclean");
    assert_eq!(now.isr, vec![p.leader], "the last ISR member stays");
    // It comes back: it leads again, one epoch later.
    apply(
        &mut image,
        &[MetadataRecord::RegisterBroker(reg(p.leader, None, 5))],
    );
    let records = decisions::unfence(&image, p.leader, 5);
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
                1 if image.brokers[&id].fenced => decisions::unfence(&image, id, epoch),
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
