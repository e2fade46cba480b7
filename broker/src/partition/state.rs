//! A partition replica's replication state as a pure state machine: no I/O,
//! no clock (time is passed in), no locks. The I/O shell
//! ([`super::Partition`]) feeds it events and carries out the effects.
//!
//! It holds the role and epochs from the committed metadata, the committed
//! ISR and an ISR change in flight, each follower's log end offset (LEO) and
//! last caught-up time (leader), the local log end and durable offsets, and
//! the high-water mark (HW), which is computed in exactly one place,
//! [`PartitionState::hw_candidate`].
//!
//! Rules (Kafka's, see shared/DESIGN.md §6):
//! - leader: HW = min over the **maximal ISR** of each member's offset (the
//!   leader's own is its durable offset under fsync-before-ack, else its LEO),
//!   and it advances only while the **committed** ISR has at least
//!   `min.insync.replicas` members (below that, the controller keeps the
//!   members that left eligible for election, KIP-966, on the premise that
//!   the HW stood still). The maximal ISR is the committed ISR plus an
//!   expansion in flight: an expansion counts at once, a shrink only once
//!   committed.
//! - follower: HW = min(leader's HW, own LEO).
//! - HW never decreases, except when the log itself is truncated below it
//!   (which replication never does to a committed offset).
//! - a follower whose fetches have not reached the leader's LEO for more than
//!   `replica.lag.time.max.ms` is proposed for removal from the ISR; one whose
//!   LEO reaches the HW (and the start of the current leader epoch) is
//!   proposed for addition. One proposal is in flight at a time.

use std::collections::BTreeMap;

/// Milliseconds on whatever clock the caller uses (monotonic in the broker,
/// simulated in tests).
pub type Millis = u64;

/// A proposal is retried after this long without an answer.
pub const ISR_PROPOSAL_TIMEOUT_MS: Millis = 5_000;
/// After a refusal, no new proposal for this long.
pub const ISR_RETRY_BACKOFF_MS: Millis = 500;

/// What this replica is for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower {
        leader: i32,
    },
    /// The partition has no leader (or no assignment yet).
    Offline,
}

/// The committed assignment of the partition (from the metadata image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Replication settings from the topic's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub min_isr: usize,
    pub lag_max_ms: Millis,
    /// fsync-before-ack: the leader's own contribution to the HW is its
    /// durable offset, not its LEO.
    pub fsync: bool,
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The follower's LEO as its last fetch reported it (-1: unknown), at
    /// most this replica's own LEO.
    pub leo: i64,
    /// The fetch offset itself, which may run ahead of the LEO this state
    /// machine knows: the log publishes an append before the shell reports
    /// it here, and a follower may fetch it in between. Counted into `leo`
    /// once the append is (see `Event::Appended`).
    fetched: i64,
    pub last_caught_up_ms: Millis,
    last_fetch_leader_leo: i64,
    last_fetch_ms: Millis,
}

/// An ISR change sent to the controller and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub isr: Vec<i32>,
    /// The partition epoch the proposal was made against.
    pub partition_epoch: i32,
    pub sent_ms: Millis,
}

/// An input to the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A committed metadata change for this partition.
    Assigned(Assignment),
    Settings(Settings),
    /// The local log end moved forward (append as leader or follower).
    Appended {
        end: i64,
    },
    /// The local log was truncated to `end` (follower reconciliation).
    Truncated {
        end: i64,
    },
    /// Offsets below `offset` are durable locally.
    Durable {
        offset: i64,
    },
    /// A follower fetched from `offset` (leader only).
    FollowerFetch {
        replica: i32,
        offset: i64,
    },
    /// The leader's HW, from a fetch response (follower only).
    LeaderHw {
        hw: i64,
    },
    /// The controller refused (or never answered) the ISR change in flight.
    IsrRejected,
    /// Time passed: check follower lag and stale proposals.
    Tick,
}

/// What the shell must do after a step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// The HW moved to this value: wake the purgatory.
    pub hw: Option<i64>,
    /// Send this ISR to the controller (AlterPartition).
    pub propose_isr: Option<InFlight>,
    /// The role changed.
    pub role_changed: bool,
}

/// Why an assignment was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    LeaderEpoch,
    PartitionEpoch,
}

/// The replication state of one partition replica.
#[derive(Debug, Clone)]
pub struct PartitionState {
    node: i32,
    role: Role,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    in_flight: Option<InFlight>,
    /// Followers' progress (leader only).
    progress: BTreeMap<i32, Progress>,
    /// Where the current leader epoch began in the local log (leader only).
    epoch_start: i64,
    leo: i64,
    durable: i64,
    /// The leader's HW as last reported (follower only).
    leader_hw: i64,
    hw: i64,
    settings: Settings,
    assigned: bool,
    /// No proposal before this time (after a refusal).
    retry_at: Millis,
}

impl PartitionState {
    /// A replica on `node` whose log ends at `leo`, durable up to `durable`,
    /// with the HW it had when it stopped (capped by the log).
    pub fn new(node: i32, leo: i64, durable: i64, hw: i64, settings: Settings) -> Self {
        Self {
            node,
            role: Role::Offline,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            in_flight: None,
            progress: BTreeMap::new(),
            epoch_start: leo,
            leo,
            durable: durable.min(leo),
            leader_hw: -1,
            hw: hw.clamp(0, leo.max(0)),
            settings,
            assigned: false,
            retry_at: 0,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn node_id(&self) -> i32 {
        self.node
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn hw(&self) -> i64 {
        self.hw
    }

    pub fn leo(&self) -> i64 {
        self.leo
    }

    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    /// The committed ISR.
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.as_ref()
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    pub fn progress(&self, replica: i32) -> Option<Progress> {
        self.progress.get(&replica).copied()
    }

    /// The ISR the leader counts: committed plus an expansion in flight
    /// (a shrink in flight does not count until committed).
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.isr.clone();
        if let Some(f) = &self.in_flight {
            for r in &f.isr {
                if !isr.contains(r) {
                    isr.push(*r);
                }
            }
        }
        isr
    }

    /// Whether a produce with acks=all may be appended now: the ISR has at
    /// least `min.insync.replicas` members (Kafka checks the committed ISR).
    pub fn enough_replicas(&self) -> bool {
        self.isr.len() >= self.settings.min_isr
    }

    /// Whether the committed ISR is smaller than the replica set.
    pub fn under_replicated(&self) -> bool {
        self.role == Role::Leader && self.isr.len() < self.replicas.len()
    }

    /// Check a committed assignment against what this replica has seen:
    /// epochs only move forward.
    pub fn check(&self, a: &Assignment) -> Result<(), Stale> {
        if a.leader_epoch < self.leader_epoch {
            return Err(Stale::LeaderEpoch);
        }
        if a.leader_epoch == self.leader_epoch && a.partition_epoch < self.partition_epoch {
            return Err(Stale::PartitionEpoch);
        }
        Ok(())
    }

    /// Apply one event at time `now`.
    pub fn step(&mut self, event: Event, now: Millis) -> Effects {
        let mut fx = Effects::default();
        match event {
            Event::Assigned(a) => self.assign(a, now, &mut fx),
            Event::Settings(s) => self.settings = s,
            Event::Appended { end } => {
                self.leo = self.leo.max(end);
                // A follower that fetched this append before it was reported
                // here now counts with it; left at its clamped LEO, it would
                // hold the HW until its next fetch, which waits a whole
                // long-poll when nothing new is appended (an idempotent
                // producer's in-flight requests all waiting for this HW).
                let leo = self.leo;
                for p in self.progress.values_mut() {
                    p.leo = p.leo.max(p.fetched.min(leo));
                }
            }
            Event::Truncated { end } => {
                self.leo = end;
                for p in self.progress.values_mut() {
                    p.fetched = p.fetched.min(end);
                    p.leo = p.leo.min(end);
                }
                self.durable = self.durable.min(end);
                // Only the log's own shrinking may lower the HW.
                self.hw = self.hw.min(end);
            }
            Event::Durable { offset } => self.durable = self.durable.max(offset.min(self.leo)),
            Event::FollowerFetch { replica, offset } => self.follower_fetch(replica, offset, now),
            Event::LeaderHw { hw } => self.leader_hw = self.leader_hw.max(hw),
            Event::IsrRejected => {
                self.in_flight = None;
                self.retry_at = now.saturating_add(ISR_RETRY_BACKOFF_MS);
            }
            Event::Tick => {}
        }
        if self.role == Role::Leader {
            if self
                .in_flight
                .as_ref()
                .is_some_and(|f| now.saturating_sub(f.sent_ms) >= ISR_PROPOSAL_TIMEOUT_MS)
            {
                self.in_flight = None;
            }
            if self.in_flight.is_none() && now >= self.retry_at {
                fx.propose_isr = self.isr_proposal(now);
                self.in_flight.clone_from(&fx.propose_isr);
            }
        }
        let hw = self.hw_candidate();
        if hw > self.hw {
            self.hw = hw;
            fx.hw = Some(hw);
        }
        fx
    }

    /// The one HW computation (see the module docs). Never below the current HW.
    fn hw_candidate(&self) -> i64 {
        let own = if self.settings.fsync {
            self.durable
        } else {
            self.leo
        };
        match self.role {
            Role::Leader => {
                // The min-ISR gate counts the committed ISR, as Kafka's
                // `isUnderMinIsr` does: while it is below min ISR the
                // controller keeps departed members eligible (KIP-966 ELR)
                // on the premise that the HW does not move, so an expansion
                // in flight must not let it move either.
                if self.isr.len() < self.settings.min_isr.max(1) {
                    return self.hw;
                }
                // Over the maximal ISR (committed members and those an
                // expansion in flight adds), without building it: this runs
                // on every step, for every follower fetch.
                let joining = self.in_flight.iter().flat_map(|f| &f.isr);
                let mut hw = own;
                for r in self.isr.iter().chain(joining) {
                    if *r != self.node {
                        hw = hw.min(self.progress.get(r).map_or(-1, |p| p.leo));
                    }
                }
                hw.max(self.hw)
            }
            Role::Follower { .. } => self.leader_hw.min(self.leo).max(self.hw),
            Role::Offline => self.hw,
        }
    }

    fn assign(&mut self, a: Assignment, now: Millis, fx: &mut Effects) {
        if self.check(&a).is_err() {
            return;
        }
        let role = if a.leader == self.node {
            Role::Leader
        } else if a.leader >= 0 {
            Role::Follower { leader: a.leader }
        } else {
            Role::Offline
        };
        let new_term = !self.assigned || a.leader_epoch != self.leader_epoch || role != self.role;
        if a.partition_epoch != self.partition_epoch || new_term {
            // Whatever was in flight was answered by this commit (or is moot).
            self.in_flight = None;
        }
        self.assigned = true;
        self.leader_epoch = a.leader_epoch;
        self.partition_epoch = a.partition_epoch;
        self.replicas = a.replicas;
        self.isr = a.isr;
        if new_term {
            fx.role_changed = role != self.role;
            self.role = role;
            self.progress.clear();
            self.leader_hw = -1;
            if role == Role::Leader {
                self.epoch_start = self.leo;
                // Kafka: ISR members count as caught up when leadership starts,
                // so a new leader does not shrink the ISR before anyone fetched.
                for r in self.replicas.iter().filter(|r| **r != self.node) {
                    let caught_up = if self.isr.contains(r) { now } else { 0 };
                    self.progress.insert(
                        *r,
                        Progress {
                            leo: -1,
                            fetched: -1,
                            last_caught_up_ms: caught_up,
                            last_fetch_leader_leo: -1,
                            last_fetch_ms: 0,
                        },
                    );
                }
            }
        } else if role == Role::Leader {
            // Same term, new replica set: track added replicas, drop removed ones.
            let replicas = self.replicas.clone();
            self.progress.retain(|r, _| replicas.contains(r));
            for r in replicas.iter().filter(|r| **r != self.node) {
                self.progress.entry(*r).or_insert(Progress {
                    leo: -1,
                    fetched: -1,
                    last_caught_up_ms: 0,
                    last_fetch_leader_leo: -1,
                    last_fetch_ms: 0,
                });
            }
        }
    }

    /// Kafka's `Replica.updateFetchState`.
    fn follower_fetch(&mut self, replica: i32, offset: i64, now: Millis) {
        if self.role != Role::Leader {
            return;
        }
        let leo = self.leo;
        let Some(p) = self.progress.get_mut(&replica) else {
            return;
        };
        if offset >= leo {
            p.last_caught_up_ms = p.last_caught_up_ms.max(now);
        } else if offset >= p.last_fetch_leader_leo && p.last_fetch_leader_leo >= 0 {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.leo = offset.min(leo);
        p.fetched = offset;
        p.last_fetch_leader_leo = leo;
        p.last_fetch_ms = now;
    }

    /// The ISR change to propose now, if any: first shrink (a lagging member
    /// out), else expand (a caught-up replica in).
    fn isr_proposal(&self, now: Millis) -> Option<InFlight> {
        let lagging: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.node)
            .filter(|r| {
                self.progress.get(r).is_none_or(|p| {
                    now.saturating_sub(p.last_caught_up_ms) > self.settings.lag_max_ms
                })
            })
            .collect();
        let proposal = |isr: Vec<i32>| InFlight {
            isr,
            partition_epoch: self.partition_epoch,
            sent_ms: now,
        };
        if !lagging.is_empty() {
            let isr = self
                .isr
                .iter()
                .copied()
                .filter(|r| !lagging.contains(r))
                .collect();
            return Some(proposal(isr));
        }
        let joining: Vec<i32> = self
            .replicas
            .iter()
            .copied()
            .filter(|r| *r != self.node && !self.isr.contains(r))
            .filter(|r| {
                self.progress.get(r).is_some_and(|p| {
                    p.leo >= 0
                        && p.leo >= self.hw
                        && p.leo >= self.epoch_start
                        && now.saturating_sub(p.last_caught_up_ms) <= self.settings.lag_max_ms
                })
            })
            .collect();
        if joining.is_empty() {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.extend(joining);
        Some(proposal(isr))
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
