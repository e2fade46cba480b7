use super::*;

const SETTINGS: Settings = Settings {
    min_isr: 2,
    lag_max_ms: 1_000,
    fsync: true,
};

fn assignment(leader: i32, epoch: i32, pepoch: i32, isr: &[i32]) -> Assignment {
    Assignment {
        leader,
        leader_epoch: epoch,
        partition_epoch: pepoch,
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
    }
}

/// A follower's fetch from `offset`, reported to leader `s` at `now`.
fn fetch(s: &mut PartitionState, replica: i32, offset: i64, now: Millis) -> Effects {
    s.step(Event::FollowerFetch { replica, offset }, now)
}

fn leader() -> PartitionState {
    let mut s = PartitionState::new(1, 0, 0, 0, SETTINGS);
    s.step(Event::Assigned(assignment(1, 0, 0, &[1, 2, 3])), 0);
    s
}

#[test]
fn hw_is_the_minimum_over_the_isr_and_waits_for_the_leaders_fsync() {
    let mut s = leader();
    s.step(Event::Appended { end: 10 }, 1);
    fetch(&mut s, 2, 10, 2);
    fetch(&mut s, 3, 7, 3);
    assert_eq!(s.hw(), 0, "the leader's own records are not durable yet");
    let fx = s.step(Event::Durable { offset: 10 }, 4);
    assert_eq!(fx.hw, Some(7));
    let fx = fetch(&mut s, 3, 10, 5);
    assert_eq!(fx.hw, Some(10));
}

#[test]
fn a_lagging_follower_is_proposed_out_and_the_hw_waits_for_the_commit() {
    let mut s = leader();
    s.step(Event::Appended { end: 5 }, 0);
    s.step(Event::Durable { offset: 5 }, 0);
    fetch(&mut s, 2, 5, 10);
    // Follower 3 never fetches: after the lag time it is proposed out.
    let fx = s.step(Event::Tick, 500);
    assert_eq!(fx.propose_isr, None);
    let fx = s.step(Event::Tick, 1_001);
    let p = fx.propose_isr.expect("shrink proposed");
    assert_eq!(p.isr, vec![1, 2]);
    // A shrink counts only once committed: the HW still waits for 3.
    assert_eq!(s.hw(), 0);
    let fx = s.step(Event::Assigned(assignment(1, 0, 1, &[1, 2])), 1_002);
    assert_eq!(fx.hw, Some(5));
    assert!(s.in_flight().is_none());
}

#[test]
fn a_caught_up_follower_is_proposed_in_and_counts_at_once() {
    let mut s = PartitionState::new(1, 0, 0, 0, SETTINGS);
    s.step(Event::Assigned(assignment(1, 0, 0, &[1, 2])), 0);
    s.step(Event::Appended { end: 4 }, 0);
    s.step(Event::Durable { offset: 4 }, 0);
    fetch(&mut s, 2, 4, 1);
    assert_eq!(s.hw(), 4);
    s.step(Event::Appended { end: 8 }, 2);
    s.step(Event::Durable { offset: 8 }, 2);
    let fx = fetch(&mut s, 3, 4, 3);
    let p = fx.propose_isr.expect("expansion proposed");
    assert_eq!(p.isr, vec![1, 2, 3]);
    // The maximal ISR includes 3 now: the HW waits for it too.
    let fx = fetch(&mut s, 2, 8, 4);
    assert_eq!(fx.hw, None);
    let fx = fetch(&mut s, 3, 8, 5);
    assert_eq!(fx.hw, Some(8));
}

#[test]
fn the_hw_does_not_advance_below_min_isr() {
    let mut s = PartitionState::new(1, 0, 0, 0, SETTINGS);
    s.step(Event::Assigned(assignment(1, 0, 0, &[1])), 0);
    s.step(Event::Appended { end: 3 }, 0);
    let fx = s.step(Event::Durable { offset: 3 }, 0);
    assert_eq!(fx.hw, None);
    assert!(!s.enough_replicas());
}

/// Found by the replication simulation (seed 47): with the committed ISR
/// below min ISR, an expansion in flight made the maximal ISR reach min ISR
/// and the HW advance, while the controller still held the departed member
/// as eligible (ELR) on the premise that the HW stood still. The leader
/// failed before the expansion committed, the ELR member lacking those
/// records was elected, and acknowledged records were lost.
#[test]
fn an_expansion_in_flight_does_not_lift_the_hw_while_the_committed_isr_is_below_min_isr() {
    let mut s = PartitionState::new(1, 0, 0, 0, SETTINGS);
    s.step(Event::Assigned(assignment(1, 0, 0, &[1])), 0);
    s.step(Event::Appended { end: 4 }, 0);
    s.step(Event::Durable { offset: 4 }, 0);
    let fx = fetch(&mut s, 2, 4, 1);
    let p = fx.propose_isr.expect("expansion proposed");
    assert_eq!(p.isr, vec![1, 2]);
    assert_eq!(s.maximal_isr().len(), 2);
    assert_eq!(fx.hw, None, "the committed ISR is below min ISR");
    assert_eq!(s.hw(), 0);
    let fx = s.step(Event::Assigned(assignment(1, 0, 1, &[1, 2])), 2);
    assert_eq!(fx.hw, Some(4), "committed: the HW moves");
}

#[test]
fn a_follower_takes_the_leaders_hw_up_to_its_own_log_end() {
    let mut s = PartitionState::new(2, 0, 0, 0, SETTINGS);
    s.step(Event::Assigned(assignment(1, 0, 0, &[1, 2, 3])), 0);
    assert_eq!(s.role(), Role::Follower { leader: 1 });
    s.step(Event::Appended { end: 5 }, 0);
    let fx = s.step(Event::LeaderHw { hw: 9 }, 0);
    assert_eq!(fx.hw, Some(5));
    let fx = s.step(Event::Appended { end: 12 }, 0);
    assert_eq!(fx.hw, Some(9));
}

#[test]
fn stale_assignments_are_ignored() {
    let mut s = leader();
    s.step(Event::Assigned(assignment(2, 3, 5, &[2, 3])), 0);
    assert_eq!(s.check(&assignment(1, 2, 9, &[1])), Err(Stale::LeaderEpoch));
    assert_eq!(
        s.check(&assignment(2, 3, 4, &[1])),
        Err(Stale::PartitionEpoch)
    );
    s.step(Event::Assigned(assignment(1, 2, 9, &[1])), 0);
    assert_eq!(s.role(), Role::Follower { leader: 2 });
    assert_eq!(s.leader_epoch(), 3);
}

#[test]
fn a_new_leader_does_not_count_unknown_followers() {
    let mut s = PartitionState::new(2, 10, 10, 6, SETTINGS);
    s.step(Event::Assigned(assignment(2, 1, 1, &[1, 2, 3])), 0);
    assert_eq!(s.hw(), 6, "the HW waits until the followers report");
    fetch(&mut s, 1, 10, 1);
    let fx = fetch(&mut s, 3, 8, 2);
    assert_eq!(fx.hw, Some(8));
}

/// Found by the 3-node latency bench (idempotent acks=all, p99 ~500 ms):
/// the log publishes an append before the shell reports it, so a follower
/// can fetch it first. Its fetch offset was clamped to the LEO known then
/// and never counted again until its next fetch, a whole long-poll later
/// when nothing more is appended.
#[test]
fn a_follower_that_fetched_an_append_before_it_was_reported_counts_with_it() {
    let mut s = leader();
    s.step(Event::Appended { end: 10 }, 1);
    s.step(Event::Durable { offset: 10 }, 1);
    for replica in [2, 3] {
        fetch(&mut s, replica, 10, 2);
    }
    assert_eq!(s.hw(), 10);
    // Batch 10..12 is in the log; follower 2 fetched it and reports 12
    // before the shell reports the append.
    fetch(&mut s, 2, 12, 3);
    s.step(Event::Appended { end: 12 }, 3);
    s.step(Event::Durable { offset: 12 }, 4);
    let fx = fetch(&mut s, 3, 12, 5);
    assert_eq!(fx.hw, Some(12), "HW {} with every replica at 12", s.hw());
    // A truncation takes back fetch offsets beyond the new end.
    s.step(Event::Truncated { end: 11 }, 6);
    assert!(s.progress(2).is_some_and(|p| p.leo <= 11));
}
