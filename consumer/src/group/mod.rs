//! Consumer-group membership: assignors, the embedded consumer protocol, the
//! membership task and rebalance callbacks.
//!
//! [`crate::Consumer::subscribe`] starts the membership task (`membership`),
//! which runs the classic group protocol against the coordinator
//! (FindCoordinator → JoinGroup → SyncGroup → Heartbeat, LeaveGroup). The task
//! never touches positions: whenever partitions must be revoked, lost or
//! assigned it hands an event to the consumer and waits until the consumer
//! applied it during `poll` (committing revoked positions first). That keeps the
//! "commit on revoke before rejoining" rule in one place and the consumer a
//! single-owner object.
//!
//! # Layout
//! - `assignors`: [`RangeAssignor`], [`RoundRobinAssignor`] (eager).
//! - `sticky`: [`CooperativeStickyAssignor`] (incremental cooperative, KIP-429).
//! - `protocol`: [`Subscription`] / [`Assignment`] encoding (no I/O).
//! - `leader`: the leader's step between JoinGroup and SyncGroup.
//! - `membership`: the background task and its events.

mod assignors;
mod leader;
pub(crate) mod membership;
mod protocol;
mod sticky;

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_producer::TopicPartition;

pub use assignors::{RangeAssignor, RoundRobinAssignor};
pub use protocol::{Assignment, ProtocolError, Subscription};
pub use sticky::CooperativeStickyAssignor;

/// A group member as the leader sees it in JoinGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// Member id assigned by the coordinator.
    pub id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// Topics it subscribed to.
    pub topics: Vec<String>,
    /// Partitions it owns now (sent by cooperative members only).
    pub owned: Vec<TopicPartition>,
    /// The generation `owned` is from; -1 when unknown.
    pub generation: i32,
}

impl Member {
    /// Java's member order: static members by instance id, then dynamic ones by id.
    fn sort_key(&self) -> (bool, &str, &str) {
        (
            self.instance_id.is_none(),
            self.instance_id.as_deref().unwrap_or(""),
            &self.id,
        )
    }
}

/// How members give up partitions during a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// Every member revokes everything before rejoining.
    Eager,
    /// Members keep their partitions across a rebalance and revoke only those
    /// that move, followed by a second rebalance (KIP-429).
    Cooperative,
}

/// A partition assignment strategy (runs on the group leader).
pub trait Assignor: Send + Sync + std::fmt::Debug {
    /// The protocol name (`range`, `roundrobin`, …) sent in JoinGroup.
    fn name(&self) -> &'static str;
    /// Assigns the partitions of `partitions` (topic → count) to `members`.
    /// Every member appears in the result, possibly with nothing.
    fn assign(
        &self,
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>>;
    /// The rebalance protocol this assignor supports.
    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }
}

/// The assignor for a `partition.assignment.strategy` entry: the short names
/// (`range`, `roundrobin`, `cooperative-sticky`) or the Java class names.
pub fn assignor_by_name(name: &str) -> Option<Arc<dyn Assignor>> {
    let short = name
        .strip_prefix("org.apache.kafka.clients.consumer.")
        .unwrap_or(name);
    match short {
        "range" | "RangeAssignor" => Some(Arc::new(RangeAssignor)),
        "roundrobin" | "RoundRobinAssignor" => Some(Arc::new(RoundRobinAssignor)),
        "cooperative-sticky" | "CooperativeStickyAssignor" => {
            Some(Arc::new(CooperativeStickyAssignor))
        }
        _ => None,
    }
}

/// The rebalance protocol of a set of assignors, as the Java client decides:
/// cooperative only if every configured assignor supports it.
pub fn common_protocol(assignors: &[Arc<dyn Assignor>]) -> RebalanceProtocol {
    if !assignors.is_empty()
        && assignors
            .iter()
            .all(|a| a.protocol() == RebalanceProtocol::Cooperative)
    {
        RebalanceProtocol::Cooperative
    } else {
        RebalanceProtocol::Eager
    }
}

/// Called around assignment changes, from inside `Consumer::poll` (or
/// `close`), so the application sees them between two batches of records.
pub trait RebalanceListener: Send + Sync {
    /// Partitions taken away while still owned by this member: with
    /// `enable.auto.commit` their positions were committed just before.
    fn on_revoked(&self, partitions: &[TopicPartition]);
    /// Partitions newly assigned (their positions come from the committed
    /// offsets, else `auto.offset.reset`).
    fn on_assigned(&self, partitions: &[TopicPartition]);
    /// Partitions lost without a chance to commit (the member was removed
    /// from the group: session expired, fenced, `max.poll.interval.ms`
    /// exceeded). Another member may already own them. Defaults to
    /// [`RebalanceListener::on_revoked`], as in the Java client.
    fn on_lost(&self, partitions: &[TopicPartition]) {
        self.on_revoked(partitions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_java_class_names_resolve() {
        for (name, expect) in [
            ("range", "range"),
            ("org.apache.kafka.clients.consumer.RangeAssignor", "range"),
            ("roundrobin", "roundrobin"),
            (
                "org.apache.kafka.clients.consumer.RoundRobinAssignor",
                "roundrobin",
            ),
            ("cooperative-sticky", "cooperative-sticky"),
            (
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
                "cooperative-sticky",
            ),
        ] {
            assert_eq!(assignor_by_name(name).map(|a| a.name()), Some(expect));
        }
        assert!(assignor_by_name("sticky-ish").is_none());
    }

    #[test]
    fn the_default_strategy_list_is_eager_like_java() {
        let both: Vec<_> = ["range", "cooperative-sticky"]
            .iter()
            .filter_map(|n| assignor_by_name(n))
            .collect();
        assert_eq!(common_protocol(&both), RebalanceProtocol::Eager);
        assert_eq!(common_protocol(&both[1..]), RebalanceProtocol::Cooperative);
    }
}
