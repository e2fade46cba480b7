//! Tests of the I/O shell around the state machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use brook_config::{BrokerConfig, TopicConfig};
use brook_protocol::codec::Uuid;
use tokio::sync::Notify;

use super::*;
use crate::log::LogConfig;
use crate::metadata::PartitionRecord;

fn record(leader: i32, epoch: i32) -> PartitionRecord {
    PartitionRecord {
        topic_id: Uuid([1; 16]),
        partition: 0,
        replicas: vec![1, 2, 3],
        isr: vec![1, 2, 3],
        elr: Vec::new(),
        leader,
        leader_epoch: epoch,
        partition_epoch: epoch,
        ..PartitionRecord::default()
    }
}

/// Found by the replication simulation (seed 178): a broker that led epoch
/// 4 (in the image it restarted with) and is elected again in epoch 7 must
/// record epoch 7's start, or a follower that led epoch 5 meanwhile gets
/// UNDEFINED from OffsetForLeaderEpoch(5) and truncates to its HW.
#[tokio::test]
async fn a_leader_elected_again_in_a_newer_epoch_records_its_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(dir.path(), LogConfig::default())?;
    let config = Arc::new(TopicConfig::resolve(
        &BrokerConfig::default(),
        &BTreeMap::new(),
    )?);
    let part = Partition::new(
        "t".into(),
        Uuid([1; 16]),
        0,
        log,
        config,
        ProducerStateTable::default(),
        ReplicaSetup {
            node: 1,
            hw: 0,
            lag_max_ms: 1_000,
            isr_wake: Arc::new(Notify::new()),
        },
    );
    part.assign(&record(1, 4));
    anyhow::ensure!(part.log().latest_epoch() == Some(4));
    part.assign(&record(1, 7));
    anyhow::ensure!(part.is_leader());
    anyhow::ensure!(part.log().latest_epoch() == Some(7));
    // Not UNDEFINED (-1, -1): epoch 5 ends where 7 starts.
    anyhow::ensure!(part.log().end_offset_for_epoch(5).1 == 0);
    Ok(())
}
