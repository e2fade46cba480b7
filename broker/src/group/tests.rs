//! Unit tests of the pure group state machine: time is a plain number, so
//! timeouts are driven without sleeping.

use bytes::Bytes;

use super::machine::{Command, JoinRequest, Output, Pending, Reply, SyncRequest};
use super::*;

fn cfg() -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: 1000,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms: 0,
        max_size: 10,
        offset_metadata_max_bytes: 100,
        offsets_retention_ms: 100_000,
    }
}

fn join(member: &str, new_id: &str, instance: Option<&str>) -> Command {
    Command::Join(JoinRequest {
        member_id: member.into(),
        instance_id: instance.map(Into::into),
        client_id: "c".into(),
        client_host: "h".into(),
        session_timeout_ms: 6000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        require_known_member: false,
        new_member_id: new_id.into(),
    })
}

fn sync(member: &str, generation: i32, assignments: Vec<(&str, &'static [u8])>) -> Command {
    Command::Sync(SyncRequest {
        member_id: member.into(),
        instance_id: None,
        generation,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .into_iter()
            .map(|(m, a)| (m.to_owned(), Bytes::from_static(a)))
            .collect(),
    })
}

/// Step and replay the produced records, as the coordinator does.
fn run(g: &mut Group, cmd: Command, now: i64, records: &mut Vec<GroupRecord>) -> Output {
    let out = g.step(cmd, now, &cfg());
    for r in &out.records {
        g.replay(r, now);
    }
    records.extend(out.records.iter().cloned());
    out
}

fn joined(out: &Output, member: &str) -> Option<JoinResult> {
    if let Reply::Join(Pending::Now(r)) = &out.reply {
        if r.member_id == member {
            return Some(r.clone());
        }
    }
    out.effects.iter().find_map(|e| match e {
        Effect::Join { member_id, result } if member_id == member => Some(result.clone()),
        _ => None,
    })
}

/// Two members a and b, generation 1, Stable with assignments.
fn stable_pair(records: &mut Vec<GroupRecord>) -> Group {
    let mut g = Group::new("g", 0);
    let o = run(&mut g, join("", "a", None), 0, records);
    assert_eq!(
        joined(&o, "a").map(|r| r.generation),
        Some(1),
        "a single member completes at once"
    );
    run(&mut g, sync("a", 1, vec![("a", b"A")]), 0, records);
    assert_eq!(g.phase, Phase::Stable);
    // b joins: a must rejoin before the generation completes.
    let o = run(&mut g, join("", "b", None), 10, records);
    assert_eq!(o.reply, Reply::Join(Pending::Wait("b".into())));
    assert_eq!(g.phase, Phase::PreparingRebalance);
    assert_eq!(
        run(
            &mut g,
            Command::Heartbeat {
                member_id: "a".into(),
                instance_id: None,
                generation: 1
            },
            20,
            records
        )
        .reply,
        Reply::Heartbeat(Err(GroupError::RebalanceInProgress))
    );
    let o = run(&mut g, join("a", "unused", None), 30, records);
    let (ra, rb) = (
        joined(&o, "a").expect("a answered"),
        joined(&o, "b").expect("b answered"),
    );
    assert_eq!((ra.generation, rb.generation), (2, 2));
    assert_eq!(ra.leader, "a");
    assert_eq!(
        ra.members.len(),
        2,
        "the leader sees every member's metadata"
    );
    assert!(rb.members.is_empty());
    let o = run(&mut g, sync("b", 2, vec![]), 40, records);
    assert_eq!(o.reply, Reply::Sync(Pending::Wait("b".into())));
    let o = run(
        &mut g,
        sync("a", 2, vec![("a", b"A2"), ("b", b"B2")]),
        50,
        records,
    );
    assert!(o.effects.contains(&Effect::Sync {
        member_id: "b".into(),
        result: Ok(SyncResult {
            protocol_type: Some("consumer".into()),
            protocol: Some("range".into()),
            assignment: Bytes::from_static(b"B2")
        })
    }));
    assert_eq!(g.phase, Phase::Stable);
    g
}

#[test]
fn join_sync_flow_reaches_stable_with_assignments() {
    let mut recs = Vec::new();
    let g = stable_pair(&mut recs);
    assert_eq!(g.generation, 2);
    assert_eq!(g.members["b"].assignment, Bytes::from_static(b"B2"));
}

#[test]
fn generation_and_member_checks() {
    let mut recs = Vec::new();
    let mut g = stable_pair(&mut recs);
    let hb = |m: &str, gen| Command::Heartbeat {
        member_id: m.into(),
        instance_id: None,
        generation: gen,
    };
    assert_eq!(
        run(&mut g, hb("a", 1), 60, &mut recs).reply,
        Reply::Heartbeat(Err(GroupError::IllegalGeneration { got: 1, current: 2 }))
    );
    assert_eq!(
        run(&mut g, hb("zz", 2), 60, &mut recs).reply,
        Reply::Heartbeat(Err(GroupError::UnknownMemberId))
    );
    assert_eq!(
        run(&mut g, hb("a", 2), 60, &mut recs).reply,
        Reply::Heartbeat(Ok(()))
    );
    let o = run(&mut g, sync("a", 1, vec![]), 60, &mut recs);
    assert!(matches!(
        o.reply,
        Reply::Sync(Pending::Now(Err(GroupError::IllegalGeneration { .. })))
    ));
    let commit = |gen| {
        Command::Commit(CommitRequest {
            member_id: "a".into(),
            instance_id: None,
            generation: gen,
            retention_ms: -1,
            offsets: vec![CommitOffset {
                topic: "t".into(),
                partition: 0,
                offset: 5,
                leader_epoch: -1,
                metadata: None,
            }],
        })
    };
    assert!(matches!(
        run(&mut g, commit(7), 60, &mut recs).reply,
        Reply::Commit(Err(GroupError::IllegalGeneration { .. }))
    ));
    assert_eq!(
        run(&mut g, commit(2), 60, &mut recs).reply,
        Reply::Commit(Ok(vec![Ok(())]))
    );
    assert_eq!(g.offset("t", 0).map(|v| v.offset), Some(5));
}

#[test]
fn session_timeout_removes_silent_member_and_rebalances() {
    let mut recs = Vec::new();
    let mut g = stable_pair(&mut recs);
    // a heartbeats, b goes silent; b's session (6000 ms from its sync at 40) ends.
    run(
        &mut g,
        Command::Heartbeat {
            member_id: "a".into(),
            instance_id: None,
            generation: 2,
        },
        5000,
        &mut recs,
    );
    run(&mut g, Command::Tick, 6039, &mut recs);
    assert!(
        g.members.contains_key("b"),
        "not expired a millisecond early"
    );
    run(&mut g, Command::Tick, 6040, &mut recs);
    assert!(!g.members.contains_key("b"));
    assert_eq!(g.phase, Phase::PreparingRebalance);
    let o = run(&mut g, join("a", "x", None), 6100, &mut recs);
    assert_eq!(joined(&o, "a").map(|r| r.generation), Some(3));
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut recs = Vec::new();
    let mut g = stable_pair(&mut recs);
    // c joins; a and b keep heartbeating but never rejoin.
    let o = run(&mut g, join("", "c", None), 100, &mut recs);
    assert_eq!(o.reply, Reply::Join(Pending::Wait("c".into())));
    for t in [5000, 9000] {
        for m in ["a", "b"] {
            let hb = Command::Heartbeat {
                member_id: m.into(),
                instance_id: None,
                generation: 2,
            };
            assert_eq!(
                run(&mut g, hb, t, &mut recs).reply,
                Reply::Heartbeat(Err(GroupError::RebalanceInProgress))
            );
        }
    }
    run(&mut g, Command::Tick, 10_099, &mut recs);
    assert_eq!(g.phase, Phase::PreparingRebalance);
    let o = run(&mut g, Command::Tick, 10_100, &mut recs);
    assert_eq!(
        joined(&o, "c").map(|r| (r.generation, r.leader)),
        Some((3, "c".to_owned()))
    );
    assert_eq!(g.members.keys().collect::<Vec<_>>(), vec!["c"]);
}

#[test]
fn initial_delay_waits_for_more_members() {
    let mut recs = Vec::new();
    let mut g = Group::new("g", 0);
    let c = GroupConfig {
        initial_rebalance_delay_ms: 3000,
        ..cfg()
    };
    let o = g.step(join("", "a", None), 0, &c);
    assert_eq!(o.reply, Reply::Join(Pending::Wait("a".into())));
    assert!(g.step(Command::Tick, 2999, &c).effects.is_empty());
    g.step(join("", "b", None), 2000, &c);
    assert!(
        g.step(Command::Tick, 4999, &c).effects.is_empty(),
        "the delay restarts for a new member"
    );
    let o = g.step(Command::Tick, 5000, &c);
    assert_eq!(o.effects.len(), 2);
    assert_eq!(g.generation, 1);
    recs.extend(o.records);
}

#[test]
fn member_id_required_then_join() {
    let mut recs = Vec::new();
    let mut g = Group::new("g", 0);
    let Command::Join(mut r) = join("", "m-1", None) else {
        unreachable!()
    };
    r.require_known_member = true;
    let o = run(&mut g, Command::Join(r.clone()), 0, &mut recs);
    let Reply::Join(Pending::Now(res)) = o.reply else {
        panic!("immediate answer expected")
    };
    assert_eq!(
        (res.error, res.member_id.as_str()),
        (Some(GroupError::MemberIdRequired), "m-1")
    );
    assert!(g.members.is_empty() && !g.is_vacant());
    r.member_id = "m-1".into();
    r.new_member_id = "other".into();
    let o = run(&mut g, Command::Join(r), 1, &mut recs);
    assert_eq!(joined(&o, "m-1").map(|r| r.generation), Some(1));
}

#[test]
fn invalid_session_timeout_and_max_size() {
    let mut g = Group::new("g", 0);
    let Command::Join(mut r) = join("", "a", None) else {
        unreachable!()
    };
    r.session_timeout_ms = 10;
    let o = g.step(Command::Join(r), 0, &cfg());
    assert!(matches!(
        o.reply,
        Reply::Join(Pending::Now(JoinResult {
            error: Some(GroupError::InvalidSessionTimeout(10)),
            ..
        }))
    ));
    let c = GroupConfig {
        max_size: 1,
        ..cfg()
    };
    g.step(join("", "a", None), 0, &c);
    let o = g.step(join("", "b", None), 0, &c);
    assert!(matches!(
        o.reply,
        Reply::Join(Pending::Now(JoinResult {
            error: Some(GroupError::GroupMaxSizeReached),
            ..
        }))
    ));
}

#[test]
fn static_member_rejoin_keeps_generation_and_assignment_and_fences_old_id() {
    let mut recs = Vec::new();
    let mut g = Group::new("g", 0);
    run(&mut g, join("", "a", None), 0, &mut recs);
    run(&mut g, sync("a", 1, vec![("a", b"A")]), 0, &mut recs);
    run(&mut g, join("", "s1", Some("inst")), 1, &mut recs);
    run(&mut g, join("a", "-", None), 2, &mut recs);
    run(&mut g, sync("s1", 2, vec![]), 3, &mut recs);
    run(
        &mut g,
        sync("a", 2, vec![("a", b"A"), ("s1", b"S")]),
        3,
        &mut recs,
    );
    assert_eq!((g.phase, g.generation), (Phase::Stable, 2));
    // The static member restarts: new process, empty member id, same instance id.
    let o = run(&mut g, join("", "s2", Some("inst")), 100, &mut recs);
    let r = joined(&o, "s2").expect("answered at once");
    assert_eq!((r.error, r.generation), (None, 2), "no rebalance");
    assert_eq!(g.phase, Phase::Stable);
    let o = run(&mut g, sync("s2", 2, vec![]), 101, &mut recs);
    assert!(
        matches!(&o.reply, Reply::Sync(Pending::Now(Ok(SyncResult { assignment, .. }))) if assignment == &Bytes::from_static(b"S"))
    );
    let hb = Command::Heartbeat {
        member_id: "s1".into(),
        instance_id: Some("inst".into()),
        generation: 2,
    };
    assert_eq!(
        run(&mut g, hb, 102, &mut recs).reply,
        Reply::Heartbeat(Err(GroupError::FencedInstanceId))
    );
}

#[test]
fn protocol_vote_picks_common_majority() {
    let mut g = Group::new("g", 0);
    let c = GroupConfig {
        initial_rebalance_delay_ms: 10,
        ..cfg()
    };
    let mk = |id: &str, protos: &[&str]| {
        let Command::Join(mut r) = join("", id, None) else {
            unreachable!()
        };
        r.protocols = protos
            .iter()
            .map(|p| ((*p).to_owned(), Bytes::new()))
            .collect();
        Command::Join(r)
    };
    g.step(mk("a", &["range", "roundrobin"]), 0, &c);
    g.step(mk("b", &["roundrobin", "range"]), 0, &c);
    g.step(mk("c", &["roundrobin", "sticky", "range"]), 0, &c);
    let o = g.step(mk("d", &["cooperative"]), 0, &c);
    assert!(matches!(
        o.reply,
        Reply::Join(Pending::Now(JoinResult {
            error: Some(GroupError::InconsistentGroupProtocol),
            ..
        }))
    ));
    g.step(Command::Tick, 100, &c);
    assert_eq!(g.protocol.as_deref(), Some("roundrobin"));
}

#[test]
fn leave_and_delete_and_offset_retention() {
    let mut recs = Vec::new();
    let mut g = stable_pair(&mut recs);
    let o = run(
        &mut g,
        Command::Leave {
            members: vec![("a".into(), None), ("nope".into(), None)],
        },
        100,
        &mut recs,
    );
    assert_eq!(
        o.reply,
        Reply::Leave(vec![Ok(()), Err(GroupError::UnknownMemberId)])
    );
    assert_eq!(
        run(&mut g, Command::Delete, 100, &mut recs).reply,
        Reply::Delete(Err(GroupError::NonEmptyGroup))
    );
    run(
        &mut g,
        Command::Leave {
            members: vec![("b".into(), None)],
        },
        200,
        &mut recs,
    );
    assert_eq!(g.phase, Phase::Empty);
    let simple = Command::Commit(CommitRequest {
        member_id: String::new(),
        instance_id: None,
        generation: -1,
        retention_ms: -1,
        offsets: vec![
            CommitOffset {
                topic: "t".into(),
                partition: 1,
                offset: 9,
                leader_epoch: -1,
                metadata: Some("x".repeat(101)),
            },
            CommitOffset {
                topic: "t".into(),
                partition: 2,
                offset: 9,
                leader_epoch: -1,
                metadata: None,
            },
        ],
    });
    let o = run(&mut g, simple, 300, &mut recs);
    assert!(matches!(&o.reply, Reply::Commit(Ok(v)) if v[0].is_err() && v[1].is_ok()));
    run(&mut g, Command::Tick, 100_299, &mut recs);
    assert!(g.offset("t", 2).is_some());
    run(&mut g, Command::Tick, 100_300, &mut recs);
    assert!(g.offset("t", 2).is_none(), "expired");
    assert_eq!(
        g.phase,
        Phase::Dead,
        "an empty group without offsets is deleted"
    );
}

#[test]
fn replay_equivalence() {
    let mut recs = Vec::new();
    let mut g = stable_pair(&mut recs);
    let commit = Command::Commit(CommitRequest {
        member_id: "b".into(),
        instance_id: None,
        generation: 2,
        retention_ms: -1,
        offsets: vec![CommitOffset {
            topic: "t".into(),
            partition: 3,
            offset: 42,
            leader_epoch: 0,
            metadata: Some("m".into()),
        }],
    });
    run(&mut g, commit, 70, &mut recs);
    // Through the byte format, as a load from disk would.
    let mut loaded = Group::new("g", 70);
    for r in &recs {
        let (k, v) = r.encode();
        let decoded = GroupRecord::decode(Some(&k), v.as_ref()).expect("decodes");
        assert_eq!(&decoded, r);
        loaded.replay(&decoded, 70);
    }
    assert_eq!(loaded.view(), g.view());
}

#[test]
fn partition_placement_matches_java_hash() {
    // Values of Java's "…".hashCode().
    assert_eq!(java_hash(""), 0);
    assert_eq!(java_hash("abc"), 96_354);
    assert_eq!(java_hash("my-group"), -1_906_497_762);
    assert_eq!(partition_for("my-group", 50), 1_906_497_762 % 50);
    assert_eq!(partition_for("abc", 50), 96_354 % 50);
    assert_eq!(
        partition_for("polygenelubricants", 50),
        0,
        "hash is i32::MIN → abs is 0"
    );
}
