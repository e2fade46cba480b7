//! [`CooperativeStickyAssignor`]: balanced, sticky and incremental (KIP-429).
//!
//! The leader keeps every partition with the member that owns it (as reported
//! in the subscription's owned partitions; on a conflict the higher generation
//! wins), gives unowned partitions to the least loaded eligible member, then
//! moves partitions from the most to the least loaded member until no two
//! members that could share a partition differ by more than one. Finally, as
//! the cooperative protocol requires, a partition that moves away from its
//! current owner is left out of this round's assignment: the owner revokes it
//! and rejoins, and the next round (where it is unowned) hands it over. So no
//! partition is ever owned by two members at once, and members keep consuming
//! every partition that does not move.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use brook_producer::TopicPartition;

use super::assignors::empty;
use super::{Assignor, Member, RebalanceProtocol};

/// Java's `CooperativeStickyAssignor` (protocol name `cooperative-sticky`).
#[derive(Debug, Default, Clone, Copy)]
pub struct CooperativeStickyAssignor;

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    fn assign(
        &self,
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut out = empty(members);
        let mut order: Vec<&Member> = members.iter().collect();
        order.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let subscribes = |m: usize, topic: &str| order[m].topics.iter().any(|t| t == topic);
        let exists = |tp: &TopicPartition| {
            partitions
                .get(&*tp.topic)
                .is_some_and(|&n| tp.partition >= 0 && tp.partition < n)
        };

        // Valid ownership claims; the highest generation wins a conflict, the
        // first member in order wins a tie.
        let mut owner: BTreeMap<TopicPartition, (i32, usize)> = BTreeMap::new();
        for (i, m) in order.iter().enumerate() {
            for tp in &m.owned {
                if !exists(tp) || !subscribes(i, &tp.topic) {
                    continue;
                }
                match owner.get(tp) {
                    Some(&(g, _)) if g >= m.generation => {}
                    _ => {
                        owner.insert(tp.clone(), (m.generation, i));
                    }
                }
            }
        }
        let mut current: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); order.len()];
        for (tp, &(_, i)) in &owner {
            current[i].insert(tp.clone());
        }

        // Unowned partitions to the least loaded eligible member.
        for (topic, &count) in partitions {
            let name: Arc<str> = Arc::from(topic.as_str());
            for partition in 0..count {
                let tp = TopicPartition {
                    topic: name.clone(),
                    partition,
                };
                if owner.contains_key(&tp) {
                    continue;
                }
                let target = (0..order.len())
                    .filter(|&i| subscribes(i, topic))
                    .min_by_key(|&i| (current[i].len(), i));
                if let Some(i) = target {
                    current[i].insert(tp);
                }
            }
        }

        // Balance: each move strictly lowers the sum of squared loads, so this
        // terminates; the bound is a belt on top of that.
        let total: usize = current.iter().map(BTreeSet::len).sum();
        for _ in 0..=total.saturating_mul(order.len()) {
            let Some((from, to, tp)) = best_move(&order, &current, &owner) else {
                break;
            };
            current[from].remove(&tp);
            current[to].insert(tp);
        }

        for (i, tps) in current.into_iter().enumerate() {
            let kept: Vec<TopicPartition> = tps
                .into_iter()
                // Cooperative: moving away from a live owner waits for its revoke.
                .filter(|tp| owner.get(tp).is_none_or(|&(_, o)| o == i))
                .collect();
            out.insert(order[i].id.clone(), kept);
        }
        out
    }
}

/// One move from the most to the least loaded compatible member, preferring
/// a partition its holder does not own yet (moving it costs no revocation).
fn best_move(
    order: &[&Member],
    current: &[BTreeSet<TopicPartition>],
    owner: &BTreeMap<TopicPartition, (i32, usize)>,
) -> Option<(usize, usize, TopicPartition)> {
    let mut by_load: Vec<usize> = (0..order.len()).collect();
    by_load.sort_by_key(|&i| (std::cmp::Reverse(current[i].len()), i));
    for &from in &by_load {
        for &to in by_load.iter().rev() {
            if current[from].len() <= current[to].len() + 1 {
                continue;
            }
            let movable = |tp: &&TopicPartition| order[to].topics.iter().any(|t| **t == *tp.topic);
            let not_owned = current[from]
                .iter()
                .filter(movable)
                .find(|tp| owner.get(*tp).is_none_or(|&(_, o)| o != from));
            let pick = not_owned.or_else(|| current[from].iter().rev().find(movable));
            if let Some(tp) = pick {
                return Some((from, to, tp.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from("t"),
            partition: p,
        }
    }

    fn member(id: &str, owned: &[i32], generation: i32) -> Member {
        Member {
            id: id.to_owned(),
            topics: vec!["t".to_owned()],
            owned: owned.iter().map(|&p| tp(p)).collect(),
            generation,
            ..Member::default()
        }
    }

    fn parts(a: &BTreeMap<String, Vec<TopicPartition>>, id: &str) -> BTreeSet<i32> {
        a[id].iter().map(|t| t.partition).collect()
    }

    fn twelve() -> BTreeMap<String, i32> {
        BTreeMap::from([("t".to_owned(), 12)])
    }

    #[test]
    fn fresh_group_is_balanced_and_complete() {
        let ms = [
            member("a", &[], -1),
            member("b", &[], -1),
            member("c", &[], -1),
        ];
        let a = CooperativeStickyAssignor.assign(&ms, &twelve());
        let mut all = BTreeSet::new();
        for id in ["a", "b", "c"] {
            assert_eq!(a[id].len(), 4);
            all.extend(parts(&a, id));
        }
        assert_eq!(all.len(), 12);
    }

    #[test]
    fn a_new_member_takes_only_what_must_move_in_two_rounds() {
        let a_owned: Vec<i32> = (0..6).collect();
        let b_owned: Vec<i32> = (6..12).collect();
        let round1 = CooperativeStickyAssignor.assign(
            &[
                member("a", &a_owned, 3),
                member("b", &b_owned, 3),
                member("c", &[], -1),
            ],
            &twelve(),
        );
        // Round 1: a and b keep 4 of their own each, nothing moves yet.
        let (ra, rb) = (parts(&round1, "a"), parts(&round1, "b"));
        assert_eq!(ra.len(), 4);
        assert_eq!(rb.len(), 4);
        assert!(ra.iter().all(|p| a_owned.contains(p)));
        assert!(rb.iter().all(|p| b_owned.contains(p)));
        assert!(round1["c"].is_empty());
        // Round 2, after a and b revoked what they lost: c gets the rest.
        let ra: Vec<i32> = ra.into_iter().collect();
        let rb: Vec<i32> = rb.into_iter().collect();
        let round2 = CooperativeStickyAssignor.assign(
            &[
                member("a", &ra, 4),
                member("b", &rb, 4),
                member("c", &[], 4),
            ],
            &twelve(),
        );
        assert_eq!(parts(&round2, "a"), ra.iter().copied().collect());
        assert_eq!(parts(&round2, "b"), rb.iter().copied().collect());
        assert_eq!(parts(&round2, "c").len(), 4);
    }

    #[test]
    fn a_departed_members_partitions_spread_without_moving_others() {
        let round = CooperativeStickyAssignor.assign(
            &[member("a", &[0, 1, 2, 3], 5), member("b", &[4, 5, 6, 7], 5)],
            &twelve(),
        );
        assert_eq!(parts(&round, "a").len(), 6);
        assert_eq!(parts(&round, "b").len(), 6);
        assert!(parts(&round, "a").is_superset(&(0..4).collect()));
        assert!(parts(&round, "b").is_superset(&(4..8).collect()));
    }

    #[test]
    fn conflicting_claims_go_to_the_newer_generation() {
        let round = CooperativeStickyAssignor.assign(
            &[member("a", &[0, 1], 2), member("b", &[0], 3)],
            &BTreeMap::from([("t".to_owned(), 2)]),
        );
        assert_eq!(parts(&round, "b"), BTreeSet::from([0]));
        assert_eq!(parts(&round, "a"), BTreeSet::from([1]));
    }

    #[test]
    fn members_only_get_subscribed_topics() {
        let mut other = member("b", &[], -1);
        other.topics = vec!["u".to_owned()];
        let parts_map = BTreeMap::from([("t".to_owned(), 4), ("u".to_owned(), 2)]);
        let round = CooperativeStickyAssignor.assign(&[member("a", &[], -1), other], &parts_map);
        assert_eq!(round["a"].len(), 4);
        assert_eq!(round["b"].len(), 2);
        assert!(round["b"].iter().all(|tp| &*tp.topic == "u"));
    }
}
