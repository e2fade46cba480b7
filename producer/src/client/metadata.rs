//! [`Cluster`]: an immutable snapshot of brokers and topic partition
//! leadership, built from Metadata responses. Snapshots are replaced, never
//! mutated, so readers hold an `Arc` without locking.

use std::collections::HashMap;
use std::time::Instant;

use brook_protocol::codec::Uuid;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::metadata_response::MetadataResponse;

/// One partition's leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    /// Partition index.
    pub partition: i32,
    /// Leader node id, -1 when none.
    pub leader: i32,
    /// Leader epoch, -1 when unknown.
    pub leader_epoch: i32,
    /// Partition-level error (e.g. LEADER_NOT_AVAILABLE).
    pub error: ErrorCode,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Topic-level error (e.g. UNKNOWN_TOPIC_OR_PARTITION).
    pub error: ErrorCode,
    /// Topic id (zero when the broker does not send one).
    pub topic_id: Uuid,
    /// Partitions ordered by index (index `i` holds partition `i`).
    pub partitions: Vec<PartitionMeta>,
}

/// A metadata snapshot.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// node id → `host:port`.
    pub brokers: HashMap<i32, String>,
    /// topic → metadata (only topics asked for so far).
    pub topics: HashMap<String, TopicMeta>,
    /// When this snapshot was taken.
    pub updated: Instant,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            brokers: HashMap::new(),
            topics: HashMap::new(),
            updated: Instant::now(),
        }
    }
}

impl Cluster {
    /// This snapshot updated with `resp`: brokers are replaced, topics in the
    /// response replace their old entries, other topics are kept.
    pub fn merged(&self, resp: &MetadataResponse) -> Cluster {
        let brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id, format!("{}:{}", b.host, b.port)))
            .collect();
        let mut topics = self.topics.clone();
        for t in &resp.topics {
            let Some(name) = t.name.clone() else { continue };
            let mut partitions: Vec<PartitionMeta> = t
                .partitions
                .iter()
                .map(|p| PartitionMeta {
                    partition: p.partition_index,
                    leader: p.leader_id,
                    leader_epoch: p.leader_epoch,
                    error: ErrorCode::from_i16(p.error_code),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            // A gap in partition indexes would break "index i is partition i";
            // keep only the dense prefix (brokers never send gaps).
            let dense = partitions
                .iter()
                .enumerate()
                .take_while(|(i, p)| usize::try_from(p.partition).ok() == Some(*i))
                .count();
            partitions.truncate(dense);
            topics.insert(
                name,
                TopicMeta {
                    error: ErrorCode::from_i16(t.error_code),
                    topic_id: t.topic_id,
                    partitions,
                },
            );
        }
        Cluster {
            brokers,
            topics,
            updated: Instant::now(),
        }
    }

    /// Partition count of a topic known without error.
    pub fn partition_count(&self, topic: &str) -> Option<usize> {
        self.topics
            .get(topic)
            .filter(|t| t.error.is_ok() && !t.partitions.is_empty())
            .map(|t| t.partitions.len())
    }

    /// Leader of a partition, if known and available.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<&PartitionMeta> {
        let t = self.topics.get(topic)?;
        let p = t.partitions.get(usize::try_from(partition).ok()?)?;
        (p.leader >= 0 && self.brokers.contains_key(&p.leader)).then_some(p)
    }
}
