//! Replay, snapshot and encoding properties of the metadata image.

use std::collections::BTreeMap;

use brook_protocol::codec::Uuid;
use proptest::prelude::*;

use super::*;

fn uuid(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn ids() -> impl Strategy<Value = Vec<i32>> {
    proptest::collection::vec(0..4i32, 0..4)
}

/// Records over a small domain, so that many of them touch the same topics,
/// partitions and brokers (and some contradict the image and are refused).
fn record() -> impl Strategy<Value = MetadataRecord> {
    let name = prop_oneof![Just("a"), Just("b"), Just("c.d")].prop_map(String::from);
    prop_oneof![
        (
            0..4i32,
            0..3i64,
            any::<bool>(),
            proptest::option::of("[a-z]{1,3}")
        )
            .prop_map(|(id, epoch, fenced, rack)| MetadataRecord::RegisterBroker(
                BrokerRegistration {
                    id,
                    incarnation: uuid(id as u8),
                    epoch,
                    endpoints: vec![Endpoint {
                        name: "PLAINTEXT".into(),
                        host: "127.0.0.1".into(),
                        port: 9000 + id as u16,
                    }],
                    rack,
                    fenced,
                    shutting_down: false,
                }
            )),
        (0..4i32, 0..3i64).prop_map(|(id, epoch)| MetadataRecord::FenceBroker { id, epoch }),
        (0..4i32, 0..3i64).prop_map(|(id, epoch)| MetadataRecord::UnfenceBroker { id, epoch }),
        (0..4i32, 0..3i64).prop_map(|(id, epoch)| MetadataRecord::UnregisterBroker { id, epoch }),
        (name.clone(), 1..4u8).prop_map(|(name, id)| MetadataRecord::Topic { name, id: uuid(id) }),
        (
            (1..4u8, 0..3i32, ids(), ids(), -1..4i32, 0..5i32),
            (ids(), ids())
        )
            .prop_map(
                |((t, partition, replicas, isr, leader, epoch), (adding, removing))| {
                    MetadataRecord::Partition(PartitionRecord {
                        topic_id: uuid(t),
                        partition,
                        replicas,
                        isr,
                        elr: Vec::new(),
                        leader,
                        leader_epoch: epoch,
                        partition_epoch: epoch,
                        adding,
                        removing,
                    })
                }
            ),
        (
            1..4u8,
            0..3i32,
            proptest::option::of(-1..4i32),
            proptest::option::of(ids()),
            proptest::option::of(ids()),
            (
                proptest::option::of(ids()),
                proptest::option::of(ids()),
                proptest::option::of(ids())
            )
        )
            .prop_map(
                |(t, partition, leader, isr, elr, (replicas, adding, removing))| {
                    MetadataRecord::PartitionChange(PartitionChange {
                        topic_id: uuid(t),
                        partition,
                        leader,
                        isr,
                        elr,
                        replicas,
                        adding,
                        removing,
                    })
                }
            ),
        (1..4u8).prop_map(|t| MetadataRecord::RemoveTopic { id: uuid(t) }),
        (
            name,
            prop_oneof![Just("retention.ms"), Just("cleanup.policy")],
            proptest::option::of("[0-9]{1,4}")
        )
            .prop_map(|(name, key, value)| MetadataRecord::Config {
                resource: ConfigResource::Topic(name),
                key: key.into(),
                value,
            }),
        (0..5000i64).prop_map(|next| MetadataRecord::ProducerIds {
            broker_id: 1,
            broker_epoch: 0,
            next
        }),
        "[a-z]{1,2}".prop_map(|name| MetadataRecord::RemoveView { name }),
        (
            quota_entity(),
            prop_oneof![
                Just("producer_byte_rate"),
                Just("consumer_byte_rate"),
                Just("request_percentage")
            ],
            proptest::option::of(0.0..1e9f64)
        )
            .prop_map(|(entity, key, value)| MetadataRecord::ClientQuota {
                entity,
                key: key.into(),
                value: value.map(QuotaValue),
            }),
    ]
}

/// Client-quota entities over a small domain: a client id and/or a user, each
/// named or the default.
fn quota_entity() -> impl Strategy<Value = QuotaEntity> {
    let name = proptest::option::of(prop_oneof![Just("a"), Just("b")].prop_map(String::from));
    (
        proptest::option::of(name.clone()),
        proptest::option::of(name),
    )
        .prop_filter("an entity has at least one part", |(c, u)| {
            c.is_some() || u.is_some()
        })
        .prop_map(|(client, user)| {
            let mut parts = Vec::new();
            if let Some(c) = client {
                parts.push(("client-id".to_owned(), c));
            }
            if let Some(u) = user {
                parts.push(("user".to_owned(), u));
            }
            QuotaEntity::new(parts)
        })
}

/// Replay every record into `image`, keeping only those it accepts.
fn replay_accepted(image: &mut MetadataImage, records: &[MetadataRecord]) -> Vec<MetadataRecord> {
    let mut delta = MetadataDelta::default();
    records
        .iter()
        .filter(|r| image.replay(r, &mut delta).is_ok())
        .cloned()
        .collect()
}

fn restore(snapshot: bytes::Bytes) -> MetadataImage {
    let mut image = MetadataImage::default();
    let records = decode_batch(snapshot).expect("snapshot decodes");
    image
        .replay_all(&records, &mut MetadataDelta::default())
        .expect("a snapshot replays");
    image
}

proptest! {
    /// Any log replayed directly equals a snapshot of a prefix plus the tail.
    #[test]
    fn replay_equals_snapshot_plus_tail(records in proptest::collection::vec(record(), 0..60), cut in 0usize..60) {
        let mut direct = MetadataImage::default();
        let log = replay_accepted(&mut direct, &records);
        let cut = cut.min(log.len());
        let mut prefix = MetadataImage::default();
        prefix.replay_all(&log[..cut], &mut MetadataDelta::default()).expect("accepted records replay");
        let mut from_snapshot = restore(encode_batch(&prefix.to_records()));
        prop_assert_eq!(&from_snapshot, &prefix);
        from_snapshot.replay_all(&log[cut..], &mut MetadataDelta::default()).expect("the tail replays");
        prop_assert_eq!(&from_snapshot, &direct);
        prop_assert_eq!(from_snapshot.content_hash(), direct.content_hash());
    }

    /// The delta found by comparing two images says what changed as the
    /// replayed delta does, for every node, whenever something net changed.
    #[test]
    fn compared_delta_matches_replayed_delta(records in proptest::collection::vec(record(), 0..40), more in proptest::collection::vec(record(), 0..20)) {
        let mut old = MetadataImage::default();
        replay_accepted(&mut old, &records);
        let mut new = old.clone();
        let mut replayed = MetadataDelta::default();
        for r in &more {
            let _ = new.replay(r, &mut replayed);
        }
        let compared = MetadataDelta::between(&old, &new);
        prop_assert!(compared.topics_removed.keys().all(|t| replayed.topics_removed.contains_key(t)));
        prop_assert!(compared.partitions.is_subset(&replayed.partitions) || !replayed.topics_removed.is_empty());
        for node in 0..4 {
            let a = compared.local_changes(node, &old, &new);
            let b = replayed.local_changes(node, &old, &new);
            prop_assert!(a.removed.iter().all(|r| b.removed.contains(r)));
            prop_assert!(a.leaders.iter().all(|l| b.leaders.contains(l)));
        }
        prop_assert_eq!(compared.is_empty(), old == new);
    }

    /// Every record survives encode + decode, alone and in a batch.
    #[test]
    fn records_round_trip(records in proptest::collection::vec(record(), 0..20)) {
        let decoded = decode_batch(encode_batch(&records)).expect("decodes");
        prop_assert_eq!(decoded, records);
    }

    /// Truncated or corrupted batches are refused, never a panic.
    #[test]
    fn damaged_batches_are_errors(records in proptest::collection::vec(record(), 1..10), cut in 0usize..400, flip in any::<(usize, u8)>()) {
        let bytes = encode_batch(&records);
        let cut = cut % bytes.len();
        prop_assert!(decode_batch(bytes.slice(..cut)).is_err());
        let mut damaged = bytes.to_vec();
        let i = flip.0 % damaged.len();
        damaged[i] ^= flip.1;
        let _ = decode_batch(damaged.into());
    }
}

#[test]
fn unknown_kind_and_version_are_refused_by_name() {
    let err = decode_batch(vec![2, 99, 0].into()).unwrap_err();
    assert_eq!(err, RecordDecodeError::UnknownKind(99));
    let err = decode_batch(vec![2, 6, 7].into()).unwrap_err();
    assert!(err.to_string().contains("version 7"), "{err}");
}

#[test]
fn removing_a_topic_drops_its_configs_and_reports_its_partitions() {
    let mut image = MetadataImage::default();
    let id = uuid(1);
    let mut delta = MetadataDelta::default();
    image
        .replay_all(
            &[
                MetadataRecord::Topic {
                    name: "t".into(),
                    id,
                },
                MetadataRecord::Partition(PartitionRecord {
                    topic_id: id,
                    partition: 0,
                    replicas: vec![1],
                    isr: vec![1],
                    elr: vec![],
                    leader: 1,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    ..PartitionRecord::default()
                }),
                MetadataRecord::Config {
                    resource: ConfigResource::Topic("t".into()),
                    key: "retention.ms".into(),
                    value: Some("5".into()),
                },
            ],
            &mut delta,
        )
        .unwrap();
    let before = image.clone();
    let local = delta.local_changes(1, &MetadataImage::default(), &image);
    assert_eq!(local.leaders.len(), 1);
    let mut delta = MetadataDelta::default();
    image
        .replay(&MetadataRecord::RemoveTopic { id }, &mut delta)
        .unwrap();
    assert!(image.configs.is_empty());
    assert!(image.topic("t").is_none());
    let local = delta.local_changes(1, &before, &image);
    assert_eq!(local.removed, vec![("t".to_owned(), id, 0)]);
}

#[test]
fn a_leader_change_bumps_both_epochs_and_an_isr_change_only_the_partition_epoch() {
    let mut image = MetadataImage::default();
    let id = uuid(1);
    let mut d = MetadataDelta::default();
    image
        .replay(
            &MetadataRecord::Topic {
                name: "t".into(),
                id,
            },
            &mut d,
        )
        .unwrap();
    image
        .replay(
            &MetadataRecord::Partition(PartitionRecord {
                topic_id: id,
                partition: 0,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                elr: vec![],
                leader: 1,
                leader_epoch: 3,
                partition_epoch: 7,
                ..PartitionRecord::default()
            }),
            &mut d,
        )
        .unwrap();
    let change = |leader, isr| {
        MetadataRecord::PartitionChange(PartitionChange {
            topic_id: id,
            partition: 0,
            leader,
            isr,
            ..PartitionChange::default()
        })
    };
    image.replay(&change(None, Some(vec![1])), &mut d).unwrap();
    let p = image.partition(&id, 0).unwrap();
    assert_eq!((p.leader_epoch, p.partition_epoch), (3, 8));
    image.replay(&change(Some(2), None), &mut d).unwrap();
    let p = image.partition(&id, 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 4, 9));
}

#[test]
fn legacy_files_import_with_every_topic_config_and_producer_block() {
    let legacy = legacy::LegacyImage {
        cluster_id: "c".into(),
        topics: BTreeMap::from([(
            "t".into(),
            legacy::LegacyTopic {
                id: uuid(9).to_string(),
                partitions: 3,
                configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
            },
        )]),
        next_producer_id_block: 2000,
        views: BTreeMap::new(),
    };
    let mut image = MetadataImage::default();
    image
        .replay_all(
            &legacy.to_records(4).unwrap(),
            &mut MetadataDelta::default(),
        )
        .unwrap();
    let t = image.topic("t").unwrap();
    assert_eq!(t.id, uuid(9));
    assert_eq!(t.partitions.len(), 3);
    assert!(t
        .partitions
        .values()
        .all(|p| p.leader == 4 && p.replicas == vec![4]));
    assert_eq!(image.topic_configs("t")["cleanup.policy"], "compact");
    assert_eq!(image.next_producer_id, 2000);
    assert_eq!(legacy::LegacyImage::from_image("c", &image), legacy);
}

#[test]
fn quota_records_set_replace_and_remove_keys_and_survive_a_snapshot() {
    let entity = QuotaEntity::new(vec![("client-id".into(), Some("batch".into()))]);
    let set = |key: &str, value: Option<f64>| MetadataRecord::ClientQuota {
        entity: entity.clone(),
        key: key.into(),
        value: value.map(QuotaValue),
    };
    let mut image = MetadataImage::default();
    let mut delta = MetadataDelta::default();
    image
        .replay_all(
            &[
                set("producer_byte_rate", Some(1e6)),
                set("consumer_byte_rate", Some(2e6)),
                set("producer_byte_rate", Some(3e6)),
                set("consumer_byte_rate", None),
            ],
            &mut delta,
        )
        .unwrap();
    assert!(delta.quotas.contains(&entity));
    assert_eq!(
        image.quotas[&entity],
        BTreeMap::from([("producer_byte_rate".to_owned(), QuotaValue(3e6))])
    );
    assert_eq!(restore(encode_batch(&image.to_records())), image);
    image
        .replay(&set("producer_byte_rate", None), &mut delta)
        .unwrap();
    assert!(image.quotas.is_empty(), "an entity without keys is dropped");
}

#[test]
fn an_unsorted_quota_entity_is_refused() {
    let record = MetadataRecord::ClientQuota {
        entity: QuotaEntity(vec![
            ("user".into(), None),
            ("client-id".into(), Some("x".into())),
        ]),
        key: "producer_byte_rate".into(),
        value: Some(QuotaValue(1.0)),
    };
    assert!(decode_batch(encode_batch(&[record])).is_err());
}

/// Partition records carry the reassignment fields only in version 1, and
/// only when a reassignment is under way, so a cluster that never reassigns
/// writes nothing an older brook cannot read.
#[test]
fn reassignment_fields_need_version_1_only_when_set() {
    let plain = PartitionRecord {
        topic_id: uuid(1),
        replicas: vec![1, 2],
        isr: vec![1, 2],
        leader: 1,
        ..PartitionRecord::default()
    };
    let moving = PartitionRecord {
        replicas: vec![3, 1, 2],
        adding: vec![3],
        removing: vec![2],
        ..plain.clone()
    };
    for (rec, version) in [
        (MetadataRecord::Partition(plain), 0u8),
        (MetadataRecord::Partition(moving), 1),
        (
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id: uuid(1),
                isr: Some(vec![1]),
                ..PartitionChange::default()
            }),
            0,
        ),
        (
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id: uuid(1),
                adding: Some(Vec::new()),
                ..PartitionChange::default()
            }),
            1,
        ),
    ] {
        let mut out = bytes::BytesMut::new();
        rec.encode(&mut out);
        assert_eq!(out[1], version, "{rec:?}");
        let mut bytes = out.freeze();
        assert_eq!(MetadataRecord::decode(&mut bytes).unwrap(), rec);
    }
}
