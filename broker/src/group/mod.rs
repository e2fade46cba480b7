//! The consumer group coordinator (Kafka's classic group protocol) and
//! committed offsets, persisted in the internal topic `__consumer_offsets`.
//!
//! # Layout
//! - `state`: [`Group`] (plain data) and [`Group::replay`] of one record.
//! - `machine`: [`Group::step`]: requests and timer ticks → records + responses.
//! - `records`: the `__consumer_offsets` key/value formats (Kafka's own).
//! - `coordinator`: [`GroupCoordinator`]: the I/O around the state machine —
//!   per-group locking, appending records, waiting for durability, parking
//!   JoinGroup/SyncGroup responses, the timer.
//! - `load`: rebuilding every group at startup by replaying the topic.
//! - `consumer_protocol`: decoding the standard consumer protocol's bytes.
//! - `error`: [`GroupError`] and its Kafka error codes.
//!
//! Placement: a group lives in partition `abs(java_hash(group)) % partitions`
//! of `__consumer_offsets` (Kafka's rule, so the topic is laid out as Kafka
//! lays it out). This broker is the coordinator of every group, since it leads
//! every partition. The topic has `cleanup.policy=compact`, but brook does not
//! compact yet: the topic grows until retention deletes old segments, and a
//! load replays everything that is left.

mod consumer_protocol;
mod coordinator;
#[cfg(test)]
mod coordinator_tests;
mod error;
mod load;
mod machine;
mod offsets;
mod records;
mod state;
#[cfg(test)]
mod tests;

pub use consumer_protocol::{
    assignment_partitions, encode_assignment, encode_subscription, subscription_topics,
};
pub use coordinator::{offsets_partition, run_timer, GroupCoordinator, GroupSummary, Stepped};
pub use error::GroupError;
pub use machine::{
    Command, CommitOffset, CommitRequest, Effect, JoinRequest, JoinResult, Output, Pending, Reply,
    SyncRequest, SyncResult,
};
pub use records::{
    GroupMetadata, GroupRecord, MemberMetadata, OffsetKey, OffsetValue, RecordDecodeError,
};
pub use state::{Group, GroupConfig, GroupView, Member, Phase};

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` over UTF-16 code units (wrapping `i32` arithmetic).
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of `group` (Kafka's `Utils.abs(hash) % n`,
/// where `abs(i32::MIN)` is 0).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    if partitions <= 0 {
        0
    } else {
        abs % partitions
    }
}
