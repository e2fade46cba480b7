use super::*;

fn key(topic: &str, partition: i32) -> PartKey {
    PartKey {
        topic: TopicKey::Name(topic.into()),
        partition,
    }
}

fn params(offset: i64) -> FetchParams {
    FetchParams {
        fetch_offset: offset,
        max_bytes: 1024,
        current_leader_epoch: 0,
        last_fetched_epoch: -1,
        log_start_offset: -1,
    }
}

fn quiet(hw: i64) -> Answer {
    Answer {
        error_code: 0,
        has_records: false,
        high_watermark: hw,
        last_stable_offset: hw,
        log_start_offset: 0,
        preferred_read_replica: -1,
    }
}

/// A session on `n` partitions of topic "t", each answered with HW 10.
fn session(cache: &mut FetchSessionCache, now: u64, privileged: bool, n: i32) -> i32 {
    let parts = (0..n)
        .map(|p| (key("t", p), params(10), quiet(10)))
        .collect();
    cache.create(now, privileged, false, parts)
}

fn incremental(
    cache: &mut FetchSessionCache,
    id: i32,
    epoch: i32,
    updates: Vec<(PartKey, FetchParams)>,
    forgotten: Vec<PartKey>,
) -> Vec<(PartKey, FetchParams)> {
    match cache.plan(0, 12, id, epoch, updates, forgotten) {
        Plan::Incremental { partitions, .. } => {
            partitions.into_iter().map(|(k, p, _)| (k, p)).collect()
        }
        other => panic!("expected an incremental plan, got {other:?}"),
    }
}

#[test]
fn full_fetch_with_epoch_zero_asks_for_a_session() {
    let mut c = FetchSessionCache::new(10, MIN_EVICTION_MS);
    assert_eq!(c.plan(0, 12, 0, INITIAL_EPOCH, [], []), Plan::Full);
    assert_eq!(c.plan(0, 12, 0, FINAL_EPOCH, [], []), Plan::Sessionless);
    assert_eq!(c.plan(0, 6, 0, INITIAL_EPOCH, [], []), Plan::Sessionless);
    let id = session(&mut c, 0, false, 3);
    assert!(id > 0);
    assert_eq!(c.stats().sessions, 1);
    assert_eq!(c.stats().partitions, 3);
    // Sessions disabled: full fetches stay sessionless.
    let mut off = FetchSessionCache::new(0, MIN_EVICTION_MS);
    assert_eq!(off.plan(0, 12, 0, INITIAL_EPOCH, [], []), Plan::Sessionless);
    assert_eq!(session(&mut off, 0, false, 3), INVALID_SESSION_ID);
}

#[test]
fn incremental_fetch_adds_updates_and_forgets() {
    let mut c = FetchSessionCache::new(10, MIN_EVICTION_MS);
    let id = session(&mut c, 0, false, 3);
    // Nothing named: the whole session, as cached.
    let parts = incremental(&mut c, id, 1, vec![], vec![]);
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|(_, p)| p.fetch_offset == 10));
    // Update p1, add u0, forget p2.
    let parts = incremental(
        &mut c,
        id,
        2,
        vec![(key("t", 1), params(15)), (key("u", 0), params(0))],
        vec![key("t", 2)],
    );
    let got: Vec<_> = parts
        .iter()
        .map(|(k, p)| (k.clone(), p.fetch_offset))
        .collect();
    assert_eq!(
        got,
        vec![(key("t", 0), 10), (key("t", 1), 15), (key("u", 0), 0)]
    );
    assert_eq!(c.stats().partitions, 3);
}

#[test]
fn epoch_mismatch_and_unknown_session_are_refused() {
    let mut c = FetchSessionCache::new(10, MIN_EVICTION_MS);
    let id = session(&mut c, 0, false, 1);
    assert_eq!(
        c.plan(0, 12, id, 2, [], []),
        Plan::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH)
    );
    assert_eq!(
        c.plan(0, 12, id + 1, 1, [], []),
        Plan::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
    );
    // A refused request does not move the epoch.
    incremental(&mut c, id, 1, vec![], vec![]);
    // Replaying epoch 1 (a duplicate) is refused.
    assert_eq!(
        c.plan(0, 12, id, 1, [], []),
        Plan::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH)
    );
    incremental(&mut c, id, 2, vec![], vec![]);
}

#[test]
fn topic_ids_must_match_how_the_session_was_created() {
    let mut c = FetchSessionCache::new(10, MIN_EVICTION_MS);
    let names = session(&mut c, 0, false, 1);
    assert_eq!(
        c.plan(0, 13, names, 1, [], []),
        Plan::Error(ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR)
    );
    let id_key = PartKey {
        topic: TopicKey::Id(Uuid::from_bytes([7; 16])),
        partition: 0,
    };
    let ids = c.create(0, false, true, vec![(id_key, params(0), quiet(0))]);
    assert_eq!(
        c.plan(0, 12, ids, 1, [], []),
        Plan::Error(ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR)
    );
    assert!(matches!(
        c.plan(0, 13, ids, 1, [], []),
        Plan::Incremental { .. }
    ));
}

#[test]
fn full_fetches_and_emptied_sessions_close_the_session() {
    let mut c = FetchSessionCache::new(10, MIN_EVICTION_MS);
    let id = session(&mut c, 0, false, 2);
    assert_eq!(c.plan(0, 12, id, FINAL_EPOCH, [], []), Plan::Sessionless);
    assert_eq!(c.stats().sessions, 0);
    assert_eq!(c.stats().partitions, 0);
    let id = session(&mut c, 0, false, 2);
    // Epoch 0 with an id: close that session, offer a new one.
    assert_eq!(c.plan(0, 12, id, INITIAL_EPOCH, [], []), Plan::Full);
    assert_eq!(c.stats().sessions, 0);
    let id = session(&mut c, 0, false, 2);
    assert_eq!(
        c.plan(0, 12, id, 1, [], [key("t", 0), key("t", 1)]),
        Plan::Sessionless
    );
    assert_eq!(c.stats().sessions, 0);
    assert_eq!(c.stats().partitions, 0);
}

#[test]
fn incremental_answer_carries_only_changes() {
    let mut c = FetchSessionCache::new(10, MIN_EVICTION_MS);
    let id = session(&mut c, 0, false, 4);
    let parts = incremental(&mut c, id, 1, vec![], vec![]);
    let keys: Vec<_> = parts.iter().map(|(k, _)| k.clone()).collect();
    let answers = [
        quiet(10),
        Answer {
            has_records: true,
            ..quiet(10)
        },
        quiet(11),
        Answer {
            error_code: ErrorCode::NOT_LEADER_OR_FOLLOWER.code(),
            ..quiet(10)
        },
    ];
    let filter = c.answer(id, 1, keys.iter().zip(answers));
    assert_eq!(filter, Filter::Keep(vec![false, true, true, true]));
    // Partitions sent go to the end: 0 first, then 1, 2, 3.
    let parts = incremental(&mut c, id, 2, vec![], vec![]);
    let order: Vec<_> = parts.iter().map(|(k, _)| k.partition).collect();
    assert_eq!(order, vec![0, 1, 2, 3]);
    // Same state again: only the partition whose error cleared (its
    // cached HW was reset) and none of the quiet ones.
    let keys: Vec<_> = parts.iter().map(|(k, _)| k.clone()).collect();
    let filter = c.answer(
        id,
        2,
        keys.iter()
            .zip([quiet(10), quiet(10), quiet(11), quiet(10)]),
    );
    assert_eq!(filter, Filter::Keep(vec![false, false, false, true]));
    // Log start and LSO changes count too.
    let parts = incremental(&mut c, id, 3, vec![], vec![]);
    let keys: Vec<_> = parts.iter().map(|(k, _)| k.clone()).collect();
    let moved = Answer {
        log_start_offset: 5,
        ..quiet(10)
    };
    let lso = Answer {
        last_stable_offset: 9,
        ..quiet(10)
    };
    let filter = c.answer(id, 3, keys.iter().zip([moved, lso, quiet(11), quiet(10)]));
    assert_eq!(filter, Filter::Keep(vec![true, true, false, false]));
}

#[test]
fn a_plan_carries_what_each_partition_was_last_answered() {
    let mut c = FetchSessionCache::new(10, MIN_EVICTION_MS);
    let id = session(&mut c, 0, false, 2);
    let priors = |c: &mut FetchSessionCache, epoch| match c.plan(0, 12, id, epoch, [], []) {
        Plan::Incremental { partitions, .. } => partitions,
        other => panic!("expected an incremental plan, got {other:?}"),
    };
    let parts = priors(&mut c, 1);
    let was = Prior {
        high_watermark: 10,
        last_stable_offset: 10,
        log_start_offset: 0,
    };
    assert!(parts.iter().all(|(_, _, p)| *p == was));
    // What `unchanged` lets the handler leave out is what `answer` drops.
    let answers = [
        quiet(10),
        quiet(12),
        Answer {
            has_records: true,
            ..quiet(10)
        },
        Answer {
            error_code: 6,
            ..quiet(10)
        },
        Answer {
            preferred_read_replica: 2,
            ..quiet(10)
        },
        Answer {
            log_start_offset: 4,
            ..quiet(10)
        },
    ];
    for a in answers {
        let keep = c.answer(id, 1, [(&parts[0].0, a)]);
        assert_eq!(keep, Filter::Keep(vec![!was.unchanged(&a)]), "{a:?}");
        // Put the partition back as it was for the next answer.
        c.answer(id, 1, [(&parts[0].0, quiet(10))]);
    }
    // After an answer the next plan carries it; after an error, HW -1
    // (the partition goes out again once the error clears).
    c.answer(id, 1, [(&parts[0].0, quiet(12))]);
    c.answer(
        id,
        1,
        [(
            &parts[1].0,
            Answer {
                error_code: 6,
                ..quiet(10)
            },
        )],
    );
    let parts = priors(&mut c, 2);
    assert_eq!(parts[0].2.high_watermark, 12);
    assert_eq!(parts[1].2.high_watermark, -1);
    assert!(!parts[1].2.unchanged(&quiet(10)));
}

/// A journal for tests: fixed entries from sequence 0, the first
/// `dropped` of them no longer kept.
struct TestJournal {
    entries: Vec<(Uuid, i32)>,
    dropped: u64,
}

impl ChangeJournal for TestJournal {
    fn head(&self) -> u64 {
        self.entries.len() as u64
    }

    fn since(&self, from: u64) -> (u64, Option<Vec<(Uuid, i32)>>) {
        let head = self.head();
        let kept =
            (from >= self.dropped && from <= head).then(|| self.entries[from as usize..].to_vec());
        (head, kept)
    }
}

fn id_key(n: u8, partition: i32) -> PartKey {
    PartKey {
        topic: TopicKey::Id(Uuid::from_bytes([n; 16])),
        partition,
    }
}

#[test]
fn a_journaled_session_reads_what_changed_and_everything_now_and_then() {
    let mut c = FetchSessionCache::new(10, MIN_EVICTION_MS).with_rescan_ms(1000);
    let parts = (0..4)
        .map(|p| (id_key(1, p), params(10), quiet(10)))
        .collect();
    let id = c.create_at(0, true, true, parts, 2, false);
    let mut journal = TestJournal {
        entries: vec![(Uuid::from_bytes([1; 16]), 0); 2],
        dropped: 0,
    };
    // Partition 3 appended to, partition 1 named by the request, an
    // unknown partition journaled: read 1 and 3, in session order.
    journal.entries.push((Uuid::from_bytes([1; 16]), 3));
    journal.entries.push((Uuid::from_bytes([9; 16]), 0));
    let plan = c.plan_with(
        10,
        15,
        id,
        1,
        [(id_key(1, 1), params(11))],
        [],
        Some(&journal),
    );
    let Plan::Incremental {
        partitions,
        journal_upto,
        ..
    } = plan
    else {
        panic!("expected an incremental plan, got {plan:?}");
    };
    let read: Vec<_> = partitions.iter().map(|(k, _, _)| k.partition).collect();
    assert_eq!(read, vec![1, 3]);
    assert_eq!(journal_upto, Some(4));
    // Answered: the next round starts where this one's read ended.
    let kept = c.answer_round(id, 1, [(&id_key(1, 3), quiet(11))], journal_upto, false);
    assert_eq!(kept, Filter::Keep(vec![true]));
    let plan = c.plan_with(20, 15, id, 2, [], [], Some(&journal));
    assert!(matches!(&plan, Plan::Incremental { partitions, .. } if partitions.is_empty()));
    // Records left unread: the next round reads everything.
    c.answer_round(id, 2, [], Some(4), true);
    let plan = c.plan_with(30, 15, id, 3, [], [], Some(&journal));
    assert!(
        matches!(&plan, Plan::Incremental { partitions, journal_upto: Some(4), .. } if partitions.len() == 4)
    );
    c.answer_round(id, 3, [], Some(4), false);
    let plan = c.plan_with(40, 15, id, 4, [], [], Some(&journal));
    assert!(matches!(&plan, Plan::Incremental { partitions, .. } if partitions.is_empty()));
    c.answer_round(id, 4, [], Some(4), false);
    // The rescan interval passed: everything again.
    let plan = c.plan_with(1031, 15, id, 5, [], [], Some(&journal));
    assert!(matches!(&plan, Plan::Incremental { partitions, .. } if partitions.len() == 4));
    c.answer_round(id, 5, [], Some(4), false);
    // The journal dropped what the session had not read: everything.
    journal.dropped = 5;
    journal.entries.push((Uuid::from_bytes([1; 16]), 2));
    journal.entries.push((Uuid::from_bytes([1; 16]), 2));
    let plan = c.plan_with(1040, 15, id, 6, [], [], Some(&journal));
    assert!(
        matches!(&plan, Plan::Incremental { partitions, journal_upto: Some(6), .. } if partitions.len() == 4)
    );
    // A full fetch that left records unread: its session's first round
    // reads everything.
    let parts = (0..3)
        .map(|p| (id_key(2, p), params(10), quiet(10)))
        .collect();
    let starved = c.create_at(1040, true, true, parts, 6, true);
    let plan = c.plan_with(1041, 15, starved, 1, [], [], Some(&journal));
    assert!(matches!(&plan, Plan::Incremental { partitions, .. } if partitions.len() == 3));
    c.answer_round(starved, 1, [], Some(6), false);
    let plan = c.plan_with(1042, 15, starved, 2, [], [], Some(&journal));
    assert!(matches!(&plan, Plan::Incremental { partitions, .. } if partitions.is_empty()));
    // A session that names topics by name is never narrowed.
    let by_name = session(&mut c, 0, true, 3);
    let plan = c.plan_with(10, 12, by_name, 1, [], [], Some(&journal));
    assert!(
        matches!(&plan, Plan::Incremental { partitions, journal_upto: None, .. } if partitions.len() == 3)
    );
    // A long-poll's extra partitions: the session's, once, in its order.
    let more = c.select(id, [id_key(1, 2), id_key(9, 0), id_key(1, 0), id_key(1, 2)]);
    let read: Vec<_> = more.iter().map(|(k, _, _)| k.partition).collect();
    assert_eq!(read, vec![0, 2]);
}

#[test]
fn answer_after_the_session_moved_on_is_an_epoch_error() {
    let mut c = FetchSessionCache::new(10, MIN_EVICTION_MS);
    let id = session(&mut c, 0, false, 1);
    let parts = incremental(&mut c, id, 1, vec![], vec![]);
    // A second request planned before the first answered.
    incremental(&mut c, id, 2, vec![], vec![]);
    let keys: Vec<_> = parts.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        c.answer(id, 1, keys.iter().zip([quiet(10)])),
        Filter::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH)
    );
    c.remove(id);
    assert_eq!(
        c.answer(id, 2, keys.iter().zip([quiet(10)])),
        Filter::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
    );
}

#[test]
fn full_cache_evicts_by_kafkas_rule() {
    let ev = 1000;
    let mut c = FetchSessionCache::new(2, ev);
    let small = session(&mut c, 0, false, 2);
    let big = session(&mut c, 0, false, 5);
    // Both young: a consumer session cannot evict either, however big.
    assert_eq!(session(&mut c, 10, false, 100), INVALID_SESSION_ID);
    // A follower's session evicts the smallest consumer session.
    let follower = session(&mut c, 20, true, 1);
    assert!(follower > 0);
    assert_eq!(c.stats().evictions, 1);
    assert_eq!(
        c.plan(30, 12, small, 1, [], []),
        Plan::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
    );
    // Another follower session: only the consumer session is evictable.
    let f2 = session(&mut c, 40, true, 1);
    assert!(f2 > 0);
    assert!(matches!(
        c.plan(50, 12, follower, 1, [], []),
        Plan::Incremental { .. }
    ));
    assert_eq!(
        c.plan(50, 12, big, 1, [], []),
        Plan::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
    );
    // Two young followers: nobody gets in.
    assert_eq!(session(&mut c, 60, true, 50), INVALID_SESSION_ID);
    assert_eq!(c.stats().sessions, 2);
    assert_eq!(c.stats().evictions, 2);
}

#[test]
fn old_sessions_yield_to_bigger_ones_and_stale_ones_to_anyone() {
    let ev = 1000;
    let mut c = FetchSessionCache::new(2, ev);
    let a = session(&mut c, 0, false, 3);
    let b = session(&mut c, 0, false, 4);
    // Keep both in use past the eviction age.
    incremental(&mut c, a, 1, vec![], vec![]);
    let _ = c.plan(900, 12, b, 1, [], []);
    let _ = c.plan(1500, 12, a, 2, [], []);
    // Old enough but used recently: only a strictly bigger newcomer wins.
    assert_eq!(session(&mut c, 1600, false, 3), INVALID_SESSION_ID);
    let d = session(&mut c, 1600, false, 4);
    assert!(d > 0);
    assert_eq!(
        c.plan(1600, 12, a, 3, [], []),
        Plan::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
    );
    // b idle for more than the eviction time: any newcomer takes its place.
    let e = session(&mut c, 1901 + ev, false, 1);
    assert!(e > 0);
    assert_eq!(
        c.plan(1901 + ev, 12, b, 2, [], []),
        Plan::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
    );
    assert_eq!(c.stats().evictions, 2);
    assert_eq!(c.stats().partitions, 5);
}

#[test]
fn sessions_stay_bounded() {
    let mut c = FetchSessionCache::new(3, MIN_EVICTION_MS);
    for _ in 0..10 {
        session(&mut c, 0, false, 2);
    }
    assert_eq!(c.stats().sessions, 3);
    assert_eq!(c.stats().partitions, 6);
    assert_eq!(c.stats().created, 3);
    // A session that would grow past the cap is closed.
    let id = session(&mut c, 0, true, 1);
    assert!(id > 0);
    let huge = (0..=MAX_SESSION_PARTITIONS as i32).map(|p| (key("x", p), params(0)));
    assert_eq!(
        c.plan(0, 12, id, 1, huge, []),
        Plan::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
    );
    assert_eq!(c.stats().sessions, 2);
    assert_eq!(c.stats().partitions, 4);
}

#[test]
fn epochs_wrap_to_one() {
    assert_eq!(next_epoch(0), 1);
    assert_eq!(next_epoch(i32::MAX), 1);
    assert_eq!(next_epoch(-1), -1);
}
