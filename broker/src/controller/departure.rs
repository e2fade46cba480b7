//! Replicas leaving: a fenced or shutting-down broker, or one whose log
//! directory failed, gives up leadership and (where another member remains)
//! its ISR place. Pure functions of the image, like the other decisions.

use std::collections::BTreeSet;

use brook_config::BrokerConfig;
use brook_protocol::codec::Uuid;

use super::decisions::{eligible_after, is_usable, unclean_allowed};
use crate::metadata::{MetadataImage, MetadataRecord, PartitionChange, PartitionRecord};

/// Partition changes that take `gone` (fenced or shutting down) out of
/// leadership and, where another member remains, out of the ISR.
pub fn move_away(image: &MetadataImage, config: &BrokerConfig, gone: i32) -> Vec<MetadataRecord> {
    move_off(image, config, gone, |_| true, true)
}

/// Partition changes for `broker`'s replicas of `offline` partitions (topic
/// id, index), whose log directory failed while the broker stays up: as for
/// a fenced broker, out of leadership and (where another member remains) out
/// of the ISR, but never kept eligible (KIP-966 ELR), since their data can
/// no longer be read. Nothing changes for partitions already moved, so a
/// repeated report commits nothing.
pub fn replicas_offline(
    image: &MetadataImage,
    config: &BrokerConfig,
    broker: i32,
    offline: &BTreeSet<(Uuid, i32)>,
) -> Vec<MetadataRecord> {
    if offline.is_empty() {
        return Vec::new();
    }
    move_off(
        image,
        config,
        broker,
        |p| offline.contains(&(p.topic_id, p.partition)),
        false,
    )
}

/// [`move_away`] for the partitions `pick` selects; `keep_eligible: false`
/// keeps `gone` out of the ELR.
fn move_off(
    image: &MetadataImage,
    config: &BrokerConfig,
    gone: i32,
    pick: impl Fn(&PartitionRecord) -> bool,
    keep_eligible: bool,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for topic in image.topics.values() {
        for p in topic.partitions.values() {
            let in_isr = p.isr.contains(&gone);
            if !pick(p) || (p.leader != gone && !(in_isr && p.isr.len() > 1)) {
                continue;
            }
            let isr: Vec<i32> = if in_isr && p.isr.len() > 1 {
                p.isr.iter().copied().filter(|r| *r != gone).collect()
            } else {
                p.isr.clone()
            };
            let mut elr = eligible_after(image, config, &topic.name, p, &isr);
            if !keep_eligible {
                elr.retain(|r| *r != gone);
            }
            let mut change = PartitionChange {
                topic_id: p.topic_id,
                partition: p.partition,
                isr: (isr != p.isr).then(|| isr.clone()),
                elr: (elr != p.elr).then_some(elr),
                ..PartitionChange::default()
            };
            if p.leader == gone {
                let eligible = |r: &&i32| **r != gone && is_usable(image, **r);
                let leader = isr.iter().find(eligible).copied().or_else(|| {
                    unclean_allowed(image, config, &topic.name)
                        .then(|| p.replicas.iter().find(eligible).copied())
                        .flatten()
                });
                change.leader = Some(leader.unwrap_or(-1));
                if let Some(l) = leader {
                    if !isr.contains(&l) {
                        // Unclean: the new leader's log is the truth now.
                        change.isr = Some(vec![l]);
                        change.elr = Some(Vec::new());
                    }
                } else if let Some(l) = p.elr.iter().find(eligible).copied() {
                    // KIP-966: an eligible replica left the ISR only while the
                    // ISR was below min.insync.replicas, so it holds every
                    // committed record: it may lead.
                    change.leader = Some(l);
                    change.isr = Some(vec![l]);
                    let mut elr: Vec<i32> = p
                        .elr
                        .iter()
                        .chain(&isr)
                        .copied()
                        .filter(|r| *r != l)
                        .collect();
                    elr.sort_unstable();
                    elr.dedup();
                    change.elr = Some(elr);
                }
            }
            out.push(MetadataRecord::PartitionChange(change));
        }
    }
    out
}
