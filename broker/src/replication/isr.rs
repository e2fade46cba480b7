//! The leaders' ISR upkeep: tick every led partition's lag check and send
//! the ISR changes the state machines propose to the controller, batched in
//! one AlterPartition request per pass.
//!
//! A proposal stays "in flight" in its partition's state machine until the
//! committed metadata answers it (the partition epoch moves) or the
//! controller refuses it; the state machine retries a proposal nobody
//! answered after [`crate::partition::state::ISR_PROPOSAL_TIMEOUT_MS`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::codec::Uuid;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::controller::rpc::{ControllerRequest, IsrChange, ReplyBody};

/// Longest time between lag checks.
const MAX_TICK: Duration = Duration::from_millis(500);

pub async fn run(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let lag = Duration::from_millis(
        u64::try_from(broker.config().replica_lag_time_max_ms).unwrap_or(30_000),
    );
    let tick = (lag / 4).clamp(Duration::from_millis(10), MAX_TICK);
    // What was last sent per partition: (partition epoch, ISR, sent at).
    let mut sent: BTreeMap<(Uuid, i32), (i32, Vec<i32>, u64)> = BTreeMap::new();
    let wake = broker.isr_wake().clone();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(tick) => {}
        }
        let mut changes = Vec::new();
        let mut parts = Vec::new();
        for t in broker.topics() {
            for p in t.partitions() {
                if !p.is_leader() {
                    continue;
                }
                p.tick();
                let Some(f) = p.isr_in_flight() else {
                    continue;
                };
                let key = (p.topic_id, p.index);
                if sent.get(&key).is_some_and(|(e, isr, at)| {
                    *e == f.partition_epoch && *isr == f.isr && *at == f.sent_ms
                }) {
                    continue;
                }
                sent.insert(key, (f.partition_epoch, f.isr.clone(), f.sent_ms));
                info!(topic = %p.topic, partition = p.index, from = ?p.state().isr(), to = ?f.isr, "proposing ISR change");
                changes.push(IsrChange {
                    topic_id: p.topic_id.to_string(),
                    partition: p.index,
                    leader_epoch: p.leader_epoch(),
                    partition_epoch: f.partition_epoch,
                    isr: f.isr.clone(),
                });
                parts.push(p);
            }
        }
        if changes.is_empty() {
            continue;
        }
        let req = ControllerRequest::AlterPartition {
            id: broker.node_id(),
            epoch: broker.membership().epoch(),
            changes,
        };
        match broker.controller().submit(req).await {
            Ok(ReplyBody::IsrResults(results)) => {
                for (p, r) in parts.iter().zip(results) {
                    if let Some(e) = r {
                        debug!(topic = %p.topic, partition = p.index, error = %e.message, "ISR change refused");
                        p.isr_rejected();
                    }
                }
            }
            Ok(other) => {
                warn!(reply = ?other, "unexpected reply to AlterPartition");
                parts.iter().for_each(|p| p.isr_rejected());
            }
            Err(e) => {
                debug!(error = %e, "AlterPartition failed; retrying");
                parts.iter().for_each(|p| p.isr_rejected());
            }
        }
        // Committed changes reach the partitions through the metadata image.
        let _ = broker.catch_up().await;
        sent.retain(|k, _| broker.topic_by_id(&k.0).is_some());
    }
}
