//! Deterministic tests of placement: round-robin over racks, usable
//! brokers only, CreateTopics validation, manual replica assignments, and
//! moving the partitions of a failed log directory.

use std::collections::{BTreeMap, BTreeSet};

use brook_config::BrokerConfig;
use brook_protocol::codec::Uuid;

use super::decisions::{self, CreateTopic};
use super::tests::{add_topic, apply, cluster};
use crate::error::BrokerError;
use crate::metadata::{MetadataImage, MetadataRecord};

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
