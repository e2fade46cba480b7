//! The eager assignors of the Java client: `range` and `roundrobin` (no I/O).

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_producer::TopicPartition;

use super::{Assignor, Member};

pub(super) fn empty(members: &[Member]) -> BTreeMap<String, Vec<TopicPartition>> {
    members.iter().map(|m| (m.id.clone(), Vec::new())).collect()
}

/// Java's `RangeAssignor`: per topic, members (sorted by id) get consecutive
/// ranges; the first `partitions % members` get one extra.
#[derive(Debug, Default, Clone, Copy)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut out = empty(members);
        for (topic, &count) in partitions {
            let mut subs: Vec<&Member> = members
                .iter()
                .filter(|m| m.topics.contains(topic))
                .collect();
            // As Java's MemberInfo order: static members by instance id first,
            // so a restarted static member (new member id) keeps its range.
            subs.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            let subs = subs.into_iter().map(|m| m.id.as_str());
            let Ok(n) = i32::try_from(subs.len()) else {
                continue;
            };
            if n == 0 {
                continue;
            }
            let (per, extra) = (count / n, count % n);
            let name: Arc<str> = Arc::from(topic.as_str());
            for (i, id) in (0..n).zip(subs) {
                let start = per * i + i.min(extra);
                let len = per + i32::from(i < extra);
                let owned = out.entry(id.to_owned()).or_default();
                owned.extend((start..start + len).map(|partition| TopicPartition {
                    topic: name.clone(),
                    partition,
                }));
            }
        }
        out
    }
}

/// Java's `RoundRobinAssignor`: all partitions (sorted by topic, partition)
/// dealt in turn to the sorted members subscribed to their topic.
#[derive(Debug, Default, Clone, Copy)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn assign(
        &self,
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut out = empty(members);
        let mut ids: Vec<&Member> = members.iter().collect();
        ids.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        if ids.is_empty() {
            return out;
        }
        let mut next = 0usize;
        for (topic, &count) in partitions {
            let name: Arc<str> = Arc::from(topic.as_str());
            for partition in 0..count {
                // The next member (cyclically) subscribed to this topic.
                for _ in 0..ids.len() {
                    let m = ids[next % ids.len()];
                    next += 1;
                    if m.topics.contains(topic) {
                        out.entry(m.id.clone()).or_default().push(TopicPartition {
                            topic: name.clone(),
                            partition,
                        });
                        break;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str], topics: &[&str]) -> Vec<Member> {
        ids.iter()
            .map(|id| Member {
                id: (*id).to_owned(),
                topics: topics.iter().map(|t| (*t).to_owned()).collect(),
                ..Member::default()
            })
            .collect()
    }

    fn show(a: &BTreeMap<String, Vec<TopicPartition>>) -> Vec<(String, Vec<String>)> {
        a.iter()
            .map(|(m, ps)| {
                (
                    m.clone(),
                    ps.iter()
                        .map(|p| format!("{}{}", p.topic, p.partition))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn range_matches_the_java_example() {
        // Kafka's RangeAssignor doc: t0, t1 with 3 partitions, C0 and C1.
        let parts = BTreeMap::from([("t0".to_owned(), 3), ("t1".to_owned(), 3)]);
        let a = RangeAssignor.assign(&members(&["C0", "C1"], &["t0", "t1"]), &parts);
        assert_eq!(
            show(&a),
            vec![
                (
                    "C0".to_owned(),
                    vec!["t00".into(), "t01".into(), "t10".into(), "t11".into()]
                ),
                ("C1".to_owned(), vec!["t02".into(), "t12".into()]),
            ]
        );
    }

    #[test]
    fn roundrobin_matches_the_java_example() {
        let parts = BTreeMap::from([("t0".to_owned(), 3), ("t1".to_owned(), 3)]);
        let a = RoundRobinAssignor.assign(&members(&["C0", "C1"], &["t0", "t1"]), &parts);
        assert_eq!(
            show(&a),
            vec![
                (
                    "C0".to_owned(),
                    vec!["t00".into(), "t02".into(), "t11".into()]
                ),
                (
                    "C1".to_owned(),
                    vec!["t01".into(), "t10".into(), "t12".into()]
                ),
            ]
        );
    }

    #[test]
    fn members_without_the_topic_get_nothing() {
        let parts = BTreeMap::from([("t".to_owned(), 2)]);
        let mut ms = members(&["a"], &["t"]);
        ms.extend(members(&["b"], &["other"]));
        for assignor in [&RangeAssignor as &dyn Assignor, &RoundRobinAssignor] {
            let a = assignor.assign(&ms, &parts);
            assert_eq!(a["a"].len(), 2, "{}", assignor.name());
            assert!(a["b"].is_empty(), "{}", assignor.name());
        }
    }
}
