//! A deterministic simulation of one partition replicated on three brokers:
//! the real replica state machine ([`PartitionState`]) and the real
//! controller decisions ([`decisions`]) over [`MetadataImage`], wired by a
//! simulated clock and network that delays, reorders and drops messages,
//! with brokers that crash (losing what was not durable), pause and resume.
//!
//! The I/O shell and the fetcher are modelled in the test, step for step as
//! `partition/mod.rs`, `replication/fetcher.rs`, `replication/isr.rs` and
//! `handlers/{fetch,offset_for_leader_epoch}.rs` do it: a follower
//! reconciles with its leader once per leader epoch (OffsetForLeaderEpoch,
//! KIP-101/279), then fetches from its log end (durable before it is
//! reported), appends, and takes the leader's HW; a leader appends produce
//! at its log end in its leader epoch and acknowledges acks=all once its HW
//! passes the record.
//!
//! Invariants are checked after every step (see [`Sim::check`]). A failure
//! prints the seed and the last steps of the trace. `BROOK_SIM_SEED=<n>`
//! replays one seed; `BROOK_SIM_SEEDS` / `BROOK_SIM_FIRST` run seeds
//! `FIRST..FIRST+SEEDS` (default 0..150); `BROOK_SIM_STEPS` sets the length
//! of a run before the healing phase (default 2500).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use brook_config::BrokerConfig;
use brook_protocol::codec::Uuid;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::controller::decisions;
use crate::controller::rpc::IsrChange;
use crate::error::BrokerError;
use crate::metadata::{
    BrokerRegistration, MetadataDelta, MetadataImage, MetadataRecord, PartitionRecord,
};
use crate::partition::state::{Assignment, Event, Millis, PartitionState, Role, Settings};

const NODES: [i32; 3] = [1, 2, 3];
const TOPIC: Uuid = Uuid([7; 16]);
const LAG_MAX_MS: Millis = 300;
const SESSION_MS: Millis = 800;
const HEARTBEAT_MS: Millis = 100;
const METADATA_RESEND_MS: Millis = 250;
const REQUEST_TIMEOUT_MS: Millis = 600;
const FETCH_BACKOFF_MS: Millis = 50;
const MAX_FETCH_RECORDS: usize = 4;
const TRACE_LEN: usize = 60;
const PRODUCE_TIMEOUT_MS: Millis = 5_000;

/// One record: its leader epoch and a value unique in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    epoch: i32,
    value: u64,
}

/// A replica's log: record `i` is at offset `i`; the first `durable` survive
/// a crash; `epochs` is the leader-epoch cache (epoch, start offset), kept as
/// `log/leader_epoch_cache.rs` keeps it (persisted on every change).
#[derive(Debug, Clone, Default)]
struct Log {
    recs: Vec<Rec>,
    durable: usize,
    epochs: Vec<(i32, i64)>,
}

impl Log {
    fn leo(&self) -> i64 {
        self.recs.len() as i64
    }

    fn latest_epoch(&self) -> Option<i32> {
        self.epochs.last().map(|e| e.0)
    }

    /// `LeaderEpochCache::assign`.
    fn assign(&mut self, epoch: i32, start: i64) {
        if epoch < 0 || self.latest_epoch() == Some(epoch) {
            return;
        }
        while self
            .epochs
            .last()
            .is_some_and(|e| e.0 >= epoch || e.1 >= start)
        {
            self.epochs.pop();
        }
        self.epochs.push((epoch, start));
    }

    /// `LeaderEpochCache::end_offset_for`.
    fn end_offset_for(&self, requested: i32) -> (i32, i64) {
        let Some(latest) = self.epochs.last() else {
            return (-1, -1);
        };
        if requested < 0 {
            return (-1, -1);
        }
        if requested == latest.0 {
            return (requested, self.leo());
        }
        let Some(higher) = self.epochs.iter().find(|e| e.0 > requested) else {
            return (-1, -1);
        };
        match self.epochs.iter().rev().find(|e| e.0 <= requested) {
            Some(floor) => (floor.0, higher.1),
            None => (requested, higher.1),
        }
    }

    /// Where the epoch cache does not describe the log (each record's epoch
    /// is that of the entry covering its offset), if anywhere.
    fn epoch_mismatch(&self) -> Option<String> {
        let mut covering = None;
        let mut next = 0;
        for (o, r) in self.recs.iter().enumerate() {
            while next < self.epochs.len() && self.epochs[next].1 <= o as i64 {
                covering = Some(self.epochs[next].0);
                next += 1;
            }
            if covering != Some(r.epoch) {
                return Some(format!(
                    "offset {o} holds epoch {} but its epoch cache {:?} says {covering:?}",
                    r.epoch, self.epochs
                ));
            }
        }
        None
    }

    /// `PartitionLog::truncate_to`: the log and the epoch cache.
    fn truncate_to(&mut self, end: i64) {
        let end = end.max(0) as usize;
        if end >= self.recs.len() {
            return;
        }
        self.recs.truncate(end);
        self.durable = self.durable.min(end);
        self.epochs.retain(|e| e.1 < end as i64);
    }
}

#[derive(Debug, Clone)]
enum Msg {
    /// Controller → broker: the partition's committed record as of the
    /// controller's `n`th commit.
    Meta(u64, PartitionRecord),
    Register {
        from: i32,
        inc: u32,
    },
    /// The registration committed as the controller's `index`th commit.
    Registered {
        epoch: i64,
        index: u64,
    },
    Heartbeat {
        from: i32,
        epoch: i64,
    },
    AlterPartition {
        from: i32,
        broker_epoch: i64,
        change: IsrChange,
        req: u64,
    },
    AlterReply {
        req: u64,
        ok: bool,
    },
    EpochReq {
        from: i32,
        current_epoch: i32,
        leader_epoch: i32,
        req: u64,
    },
    EpochResp {
        req: u64,
        error: bool,
        leader_epoch: i32,
        end_offset: i64,
    },
    FetchReq {
        from: i32,
        current_epoch: i32,
        offset: i64,
        req: u64,
    },
    FetchResp {
        req: u64,
        error: Option<&'static str>,
        base: i64,
        recs: Vec<Rec>,
        hw: i64,
    },
}

/// Messages carry the receiver's incarnation: a response to a process that
/// has since crashed is lost with its connection; requests from a dead
/// process may still arrive.
#[derive(Debug, Clone)]
struct Envelope {
    at: Millis,
    seq: u64,
    to: i32,
    /// 0: the controller.
    to_inc: Option<u32>,
    msg: Msg,
}

/// The fetcher's view of one followed partition (`replication::Followed`).
#[derive(Debug, Clone)]
struct Follow {
    leader: i32,
    epoch: i32,
    reconciled: bool,
    /// A request in flight: its id and when it times out.
    outstanding: Option<(u64, Millis)>,
    not_before: Millis,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    offset: i64,
    value: u64,
    epoch: i32,
    /// The watch version the waiter saw last: it looks again only when the
    /// watch changes (`wait_committed` sleeps on `rx.changed()`).
    seen: u64,
    /// Woken, and runs at this time.
    wake_at: Option<Millis>,
    deadline: Millis,
}

#[derive(Debug)]
struct Node {
    id: i32,
    up: bool,
    paused_until: Millis,
    restart_at: Millis,
    inc: u32,
    broker_epoch: Option<i64>,
    /// The broker's stored metadata image (it survives a crash): the
    /// partition's record and the commit it is as of.
    image: Option<(u64, PartitionRecord)>,
    /// A restarted broker publishes metadata to its partitions, serves and
    /// fetches only once its image includes its own registration (which
    /// moved leadership away from its previous incarnation), as
    /// `Broker::join_cluster` orders it.
    joined: bool,
    join_at: Option<u64>,
    register_sent: Millis,
    st: PartitionState,
    log: Log,
    /// The shell's HW watch (`Shared::hw`): only ever raised by `fx.hw`,
    /// touched (waking waiters) on a role change.
    hw_watch: i64,
    watch_version: u64,
    /// The replication-offset-checkpoint (written now and then; may be stale).
    checkpoint_hw: i64,
    follow: Option<Follow>,
    pending: Vec<Pending>,
    last_heartbeat: Millis,
    /// `isr.rs`: the last change sent, and the request in flight.
    isr_sent: Option<(i32, Vec<i32>, Millis)>,
    alter_outstanding: Option<(u64, Millis)>,
    /// Invariant 1: the HW seen last in this incarnation.
    last_hw: i64,
}

impl Node {
    fn running(&self, now: Millis) -> bool {
        self.up && now >= self.paused_until
    }
}

struct Config {
    min_isr: usize,
    fsync: bool,
    drop_pct: u32,
    max_delay: Millis,
    /// Longest a woken acks=all waiter waits for its task to run.
    sched_delay: Millis,
}

struct Sim {
    seed: u64,
    rng: StdRng,
    now: Millis,
    cfg: Config,
    broker_config: BrokerConfig,
    image: MetadataImage,
    next_broker_epoch: i64,
    commits: u64,
    checks: u64,
    last_heartbeat: BTreeMap<i32, Millis>,
    last_meta_resend: Millis,
    nodes: Vec<Node>,
    net: Vec<Envelope>,
    seq: u64,
    next_req: u64,
    next_value: u64,
    /// Acknowledged records: offset → value.
    acked: BTreeMap<i64, u64>,
    /// Leader epoch → leader, as the controller committed them.
    epoch_leaders: BTreeMap<i32, i32>,
    /// Leader epoch → the brokers that acted as leader in it.
    acted: BTreeMap<i32, BTreeSet<i32>>,
    trace: VecDeque<String>,
    stats: Stats,
    /// Check caches: node `i` holds every acknowledged record below
    /// `acked_ok[i]`; nodes `a` and `b` agree below `agreed[a][b]`. Logs only
    /// grow, so only truncations and new acknowledgements lower them.
    acked_ok: [usize; 3],
    agreed: [[usize; 3]; 3],
    /// Faults stop (for the final convergence check).
    calm: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    acked: usize,
    crashes: usize,
    pauses: usize,
    elections: usize,
    isr_changes: usize,
    truncations: usize,
}

fn settings(cfg: &Config) -> Settings {
    Settings {
        min_isr: cfg.min_isr,
        lag_max_ms: LAG_MAX_MS,
        fsync: cfg.fsync,
    }
}

fn incarnation(id: i32, inc: u32) -> Uuid {
    let mut b = [0u8; 16];
    b[0] = id as u8;
    b[1..5].copy_from_slice(&inc.to_be_bytes());
    Uuid(b)
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let cfg = Config {
            min_isr: if rng.random_bool(0.3) { 1 } else { 2 },
            fsync: rng.random_bool(0.8),
            drop_pct: rng.random_range(0..15),
            max_delay: rng.random_range(5..60),
            sched_delay: rng.random_range(0..30),
        };
        let broker_config = BrokerConfig {
            min_insync_replicas: cfg.min_isr as i32,
            ..BrokerConfig::default()
        };
        let mut image = MetadataImage::default();
        let mut records: Vec<MetadataRecord> = NODES
            .iter()
            .map(|id| {
                MetadataRecord::RegisterBroker(BrokerRegistration {
                    id: *id,
                    incarnation: incarnation(*id, 0),
                    epoch: 1,
                    endpoints: Vec::new(),
                    rack: None,
                    fenced: false,
                    shutting_down: false,
                })
            })
            .collect();
        records.push(MetadataRecord::Topic {
            name: "t".into(),
            id: TOPIC,
        });
        records.push(decisions::new_partition(TOPIC, 0, NODES.to_vec()));
        image
            .replay_all(&records, &mut MetadataDelta::default())
            .expect("setup replays");
        let nodes = NODES
            .iter()
            .map(|id| Node {
                id: *id,
                up: true,
                paused_until: 0,
                restart_at: 0,
                inc: 0,
                broker_epoch: Some(1),
                image: None,
                joined: true,
                join_at: None,
                register_sent: 0,
                st: PartitionState::new(*id, 0, 0, 0, settings(&cfg)),
                log: Log::default(),
                hw_watch: 0,
                watch_version: 0,
                checkpoint_hw: 0,
                follow: None,
                pending: Vec::new(),
                last_heartbeat: 0,
                isr_sent: None,
                alter_outstanding: None,
                last_hw: 0,
            })
            .collect();
        let mut sim = Self {
            seed,
            rng,
            now: 0,
            cfg,
            broker_config,
            image,
            next_broker_epoch: 2,
            commits: 0,
            checks: 0,
            last_heartbeat: NODES.iter().map(|id| (*id, 0)).collect(),
            last_meta_resend: 0,
            nodes,
            net: Vec::new(),
            seq: 0,
            next_req: 1,
            next_value: 1,
            acked: BTreeMap::new(),
            epoch_leaders: BTreeMap::from([(0, NODES[0])]),
            acted: BTreeMap::new(),
            trace: VecDeque::new(),
            stats: Stats::default(),
            acked_ok: [0; 3],
            agreed: [[0; 3]; 3],
            calm: false,
        };
        sim.broadcast_meta();
        sim
    }

    fn note(&mut self, s: String) {
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("t={} {s}", self.now));
    }

    fn fail(&self, what: &str) -> ! {
        let mut out = format!(
            "replication simulation: seed {} (min.insync.replicas {}, fsync {}, drop {}%, delay ≤{}ms) at t={}: {what}\n\
             replay with BROOK_SIM_SEED={}\ncontroller: {:?}\n",
            self.seed,
            self.cfg.min_isr,
            self.cfg.fsync,
            self.cfg.drop_pct,
            self.cfg.max_delay,
            self.now,
            self.seed,
            self.partition(),
        );
        for n in &self.nodes {
            out.push_str(&format!(
                "node {}: up {} paused {} role {:?} epoch {} pepoch {} isr {:?} hw {} leo {} durable {} epochs {:?} log {:?}\n",
                n.id,
                n.up,
                n.paused_until > self.now,
                n.st.role(),
                n.st.leader_epoch(),
                n.st.partition_epoch(),
                n.st.isr(),
                n.st.hw(),
                n.log.leo(),
                n.log.durable,
                n.log.epochs,
                n.log.recs.iter().map(|r| (r.epoch, r.value)).collect::<Vec<_>>(),
            ));
        }
        out.push_str(&format!("acked: {:?}\ntrace:\n", self.acked));
        for t in &self.trace {
            out.push_str(t);
            out.push('\n');
        }
        panic!("{out}");
    }

    fn partition(&self) -> PartitionRecord {
        self.image
            .partition(&TOPIC, 0)
            .expect("the partition exists")
            .clone()
    }

    fn idx(id: i32) -> usize {
        NODES.iter().position(|n| *n == id).expect("known node")
    }

    // ---- network ----

    fn send(&mut self, to: i32, msg: Msg) {
        if !self.calm && self.rng.random_range(0..100) < self.cfg.drop_pct {
            return;
        }
        let to_inc = (to != 0).then(|| self.nodes[Self::idx(to)].inc);
        let delay = self.rng.random_range(1..=self.cfg.max_delay);
        self.seq += 1;
        self.net.push(Envelope {
            at: self.now + delay,
            seq: self.seq,
            to,
            to_inc,
            msg,
        });
    }

    /// Deliver one due message, if any (earliest first; a paused or crashed
    /// receiver's messages wait or are lost).
    fn deliver_one(&mut self) -> bool {
        let now = self.now;
        let nodes = &self.nodes;
        let ready = self
            .net
            .iter()
            .enumerate()
            .filter(|(_, e)| e.at <= now)
            .filter(|(_, e)| {
                e.to == 0 || nodes[Self::idx(e.to)].running(now) || !nodes[Self::idx(e.to)].up
            })
            .min_by_key(|(_, e)| (e.at, e.seq))
            .map(|(i, _)| i);
        let Some(i) = ready else {
            return false;
        };
        let e = self.net.swap_remove(i);
        if e.to == 0 {
            self.controller_receive(e.msg);
        } else {
            let n = &self.nodes[Self::idx(e.to)];
            if !n.up || e.to_inc.is_some_and(|inc| inc != n.inc) {
                return true;
            }
            self.node_receive(Self::idx(e.to), e.msg);
        }
        true
    }

    // ---- controller ----

    fn commit(&mut self, records: Vec<MetadataRecord>, why: &str) {
        if records.is_empty() {
            return;
        }
        self.commits += 1;
        let before = self.partition();
        if let Err((i, e)) = self
            .image
            .replay_all(&records, &mut MetadataDelta::default())
        {
            self.fail(&format!("controller record {i} refused: {e} ({why})"));
        }
        let after = self.partition();
        if after != before {
            self.note(format!(
                "controller {why}: leader {} epoch {} pepoch {} isr {:?} elr {:?}",
                after.leader, after.leader_epoch, after.partition_epoch, after.isr, after.elr
            ));
            if after.leader_epoch != before.leader_epoch {
                self.stats.elections += 1;
                if let Some(l) = self.epoch_leaders.insert(after.leader_epoch, after.leader) {
                    self.fail(&format!(
                        "leader epoch {} committed twice (leaders {l} and {})",
                        after.leader_epoch, after.leader
                    ));
                }
            }
            if after.isr != before.isr {
                self.stats.isr_changes += 1;
            }
            self.broadcast_meta();
        }
    }

    fn broadcast_meta(&mut self) {
        let p = self.partition();
        for id in NODES {
            self.send(id, Msg::Meta(self.commits, p.clone()));
        }
    }

    fn controller_receive(&mut self, msg: Msg) {
        match msg {
            Msg::Register { from, inc } => {
                let current = self.image.brokers.get(&from);
                let epoch = match current {
                    Some(b) if b.incarnation == incarnation(from, inc) => b.epoch,
                    _ => {
                        let epoch = self.next_broker_epoch;
                        self.next_broker_epoch += 1;
                        let reg = BrokerRegistration {
                            id: from,
                            incarnation: incarnation(from, inc),
                            epoch,
                            endpoints: Vec::new(),
                            rack: None,
                            fenced: true,
                            shutting_down: false,
                        };
                        let records = decisions::register(&self.image, &self.broker_config, reg);
                        self.commit(records, &format!("register {from} epoch {epoch}"));
                        epoch
                    }
                };
                self.last_heartbeat.insert(from, self.now);
                let index = self.commits;
                self.send(from, Msg::Registered { epoch, index });
            }
            Msg::Heartbeat { from, epoch } => {
                let Some(b) = self.image.brokers.get(&from) else {
                    return;
                };
                if b.epoch != epoch {
                    return;
                }
                self.last_heartbeat.insert(from, self.now);
                if b.fenced {
                    let records = decisions::unfence(&self.image, &self.broker_config, from, epoch);
                    self.commit(records, &format!("unfence {from}"));
                }
            }
            Msg::AlterPartition {
                from,
                broker_epoch,
                change,
                req,
            } => {
                let ok = match decisions::alter_partition(
                    &self.image,
                    &self.broker_config,
                    from,
                    broker_epoch,
                    std::slice::from_ref(&change),
                ) {
                    Ok((records, results)) => {
                        let ok = results.first().is_some_and(Result::is_ok);
                        self.commit(
                            records,
                            &format!("alter-partition from {from} {:?}", change.isr),
                        );
                        if let Some(Err(e)) = results.first() {
                            self.note(format!(
                                "controller refused {:?} from {from}: {e}",
                                change.isr
                            ));
                        }
                        ok
                    }
                    Err(BrokerError::StaleBrokerEpoch) => false,
                    Err(e) => self.fail(&format!("alter_partition failed: {e}")),
                };
                self.send(from, Msg::AlterReply { req, ok });
            }
            other => self.fail(&format!("controller got {other:?}")),
        }
    }

    fn controller_tick(&mut self) {
        let expired = decisions::expired(&self.image, &self.last_heartbeat, self.now, SESSION_MS);
        for id in expired {
            let epoch = self.image.brokers[&id].epoch;
            let records = decisions::fence(&self.image, &self.broker_config, id, epoch);
            self.commit(records, &format!("fence {id} (session expired)"));
        }
        if self.now >= self.last_meta_resend + METADATA_RESEND_MS {
            // Brokers catch up with the metadata log eventually.
            self.last_meta_resend = self.now;
            self.broadcast_meta();
        }
    }

    // ---- brokers ----

    /// Step the state machine and carry out the effects as the shell does.
    fn step(&mut self, i: usize, event: Event) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let truncated = matches!(event, Event::Truncated { .. });
        let fx = n.st.step(event, now);
        if let Some(hw) = fx.hw {
            n.hw_watch = hw;
            n.watch_version += 1;
        } else if n.st.hw() < n.hw_watch {
            n.hw_watch = n.st.hw();
            n.watch_version += 1;
        } else if fx.role_changed {
            n.watch_version += 1;
        }
        if truncated {
            n.last_hw = n.last_hw.min(n.st.hw());
        }
        if n.st.hw() < n.last_hw {
            let msg = format!(
                "node {} HW went back from {} to {} without a truncation",
                n.id,
                n.last_hw,
                n.st.hw()
            );
            self.fail(&msg);
        }
        n.last_hw = n.st.hw();
    }

    fn node_receive(&mut self, i: usize, msg: Msg) {
        let id = self.nodes[i].id;
        match msg {
            Msg::Meta(index, p) => {
                let n = &mut self.nodes[i];
                if n.image.as_ref().is_none_or(|(k, _)| *k < index) {
                    n.image = Some((index, p.clone()));
                }
                if !n.joined {
                    if n.join_at.is_none_or(|j| index < j) {
                        return;
                    }
                    n.joined = true;
                    self.note(format!("node {id} has caught up with its registration"));
                }
                self.assign(i, &p);
            }
            Msg::Registered { epoch, index } => {
                let n = &mut self.nodes[i];
                if n.broker_epoch.is_none() {
                    n.broker_epoch = Some(epoch);
                    n.join_at = Some(index);
                    self.note(format!("node {id} registered with epoch {epoch}"));
                }
            }
            Msg::AlterReply { req, ok } => {
                if self.nodes[i]
                    .alter_outstanding
                    .is_some_and(|(r, _)| r == req)
                {
                    self.nodes[i].alter_outstanding = None;
                    if !ok {
                        self.step(i, Event::IsrRejected);
                    }
                }
            }
            // Not serving yet: the request goes unanswered.
            Msg::EpochReq { .. } | Msg::FetchReq { .. } if !self.nodes[i].joined => {}
            Msg::EpochReq {
                from,
                current_epoch,
                leader_epoch,
                req,
            } => {
                let n = &self.nodes[i];
                let error = Self::epoch_check(&n.st, current_epoch);
                let (e, end) = if error {
                    (-1, -1)
                } else {
                    n.log.end_offset_for(leader_epoch)
                };
                self.send(
                    from,
                    Msg::EpochResp {
                        req,
                        error,
                        leader_epoch: e,
                        end_offset: end,
                    },
                );
            }
            Msg::EpochResp {
                req,
                error,
                leader_epoch,
                end_offset,
            } => self.reconcile_response(i, req, error, leader_epoch, end_offset),
            Msg::FetchReq {
                from,
                current_epoch,
                offset,
                req,
            } => self.serve_fetch(i, from, current_epoch, offset, req),
            Msg::FetchResp {
                req,
                error,
                base,
                recs,
                hw,
            } => self.fetch_response(i, req, error, base, recs, hw),
            other => self.fail(&format!("node {id} got {other:?}")),
        }
    }

    /// `handlers::fetch::epoch_check`: true when the request is refused.
    fn epoch_check(st: &PartitionState, requested: i32) -> bool {
        let current = st.leader_epoch();
        (requested >= 0 && requested < current) || requested > current || !st.is_leader()
    }

    /// `Partition::assign` and `ReplicaManager::follow`.
    fn assign(&mut self, i: usize, p: &PartitionRecord) {
        let a = Assignment {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
        };
        let n = &mut self.nodes[i];
        if n.st.check(&a).is_err() {
            return;
        }
        let before = n.st.role();
        let before_epoch = n.st.leader_epoch();
        // Every new leader epoch this broker leads starts in its epoch cache
        // at its log end (Kafka's makeLeader), also when it led the one before.
        if p.leader == n.id && (before != Role::Leader || p.leader_epoch != n.st.leader_epoch()) {
            let leo = n.log.leo();
            n.log.assign(p.leader_epoch, leo);
        }
        self.step(i, Event::Assigned(a));
        let n = &mut self.nodes[i];
        let role = n.st.role();
        if role != before || n.st.leader_epoch() != before_epoch {
            let msg = format!(
                "node {} learns leader {} epoch {} (was {:?} in {before_epoch}), leo {} hw {}",
                n.id,
                p.leader,
                p.leader_epoch,
                before,
                n.log.leo(),
                n.st.hw()
            );
            self.note(msg);
        }
        let n = &mut self.nodes[i];
        match role {
            Role::Follower { leader } => {
                let epoch = n.st.leader_epoch();
                if !n
                    .follow
                    .as_ref()
                    .is_some_and(|f| f.leader == leader && f.epoch == epoch)
                {
                    n.follow = Some(Follow {
                        leader,
                        epoch,
                        reconciled: false,
                        outstanding: None,
                        not_before: 0,
                    });
                }
            }
            _ => n.follow = None,
        }
    }

    /// One fetcher round for node `i`: reconcile or fetch.
    fn fetcher(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let Some(f) = n.follow.clone() else {
            return;
        };
        if f.not_before > now {
            return;
        }
        if let Some((_, deadline)) = f.outstanding {
            if now < deadline {
                return;
            }
            // Timed out: the connection is dropped, the round fails.
            if let Some(f) = n.follow.as_mut() {
                f.outstanding = None;
                f.not_before = now + FETCH_BACKOFF_MS;
            }
            return;
        }
        let req = self.next_req;
        self.next_req += 1;
        let id = n.id;
        if !f.reconciled {
            let Some(latest) = n.log.latest_epoch() else {
                // An empty log (or one without epochs): Kafka falls back to the HW.
                let hw = n.hw_watch;
                if n.log.leo() > hw {
                    self.truncate(i, hw, "no epochs: to the HW");
                }
                if let Some(f) = self.nodes[i].follow.as_mut() {
                    f.reconciled = true;
                }
                return;
            };
            if let Some(f) = n.follow.as_mut() {
                f.outstanding = Some((req, now + REQUEST_TIMEOUT_MS));
            }
            self.send(
                f.leader,
                Msg::EpochReq {
                    from: id,
                    current_epoch: f.epoch,
                    leader_epoch: latest,
                    req,
                },
            );
            return;
        }
        // Durable before the next fetch reports the log end (fsync-before-ack).
        if self.cfg.fsync && n.log.durable < n.log.recs.len() {
            return;
        }
        let offset = n.log.leo();
        if let Some(f) = n.follow.as_mut() {
            f.outstanding = Some((req, now + REQUEST_TIMEOUT_MS));
        }
        self.send(
            f.leader,
            Msg::FetchReq {
                from: id,
                current_epoch: f.epoch,
                offset,
                req,
            },
        );
    }

    fn take_response(&mut self, i: usize, req: u64) -> Option<Follow> {
        let n = &mut self.nodes[i];
        let f = n.follow.as_mut()?;
        if f.outstanding.map(|o| o.0) != Some(req) {
            return None;
        }
        f.outstanding = None;
        Some(f.clone())
    }

    /// `fetcher::reconcile`, one round.
    fn reconcile_response(
        &mut self,
        i: usize,
        req: u64,
        error: bool,
        leader_epoch: i32,
        end_offset: i64,
    ) {
        let Some(_) = self.take_response(i, req) else {
            return;
        };
        let now = self.now;
        let n = &mut self.nodes[i];
        if error {
            if let Some(f) = n.follow.as_mut() {
                f.not_before = now + FETCH_BACKOFF_MS;
            }
            return;
        }
        let leo = n.log.leo();
        let (target, done) = if end_offset < 0 {
            (n.hw_watch.min(leo), true)
        } else if leader_epoch < 0 {
            (end_offset.min(leo), true)
        } else {
            let (own_epoch, own_end) = n.log.end_offset_for(leader_epoch);
            if own_end < 0 {
                (0, true)
            } else if own_epoch != leader_epoch {
                (own_end.min(leo), false)
            } else {
                (end_offset.min(own_end).min(leo), true)
            }
        };
        if target < leo {
            self.truncate(
                i,
                target,
                &format!("reconcile: leader epoch {leader_epoch} ends at {end_offset}"),
            );
        } else {
            // `PartitionLog::truncate_to` at the log end trims the epoch cache.
            let n = &mut self.nodes[i];
            n.log.epochs.retain(|e| e.1 < leo);
        }
        if done {
            if let Some(f) = self.nodes[i].follow.as_mut() {
                f.reconciled = true;
            }
        }
    }

    fn truncate(&mut self, i: usize, end: i64, why: &str) {
        let n = &self.nodes[i];
        let from = n.log.leo();
        for (o, v) in self.acked.range(end..) {
            if n.log.recs.get(*o as usize).is_some_and(|r| r.value == *v) {
                let msg = format!(
                    "node {} truncates acknowledged record {v} at offset {o} ({from} → {end}: {why})",
                    n.id
                );
                self.fail(&msg);
            }
        }
        self.truncate_log(i, end);
        let n = &self.nodes[i];
        let msg = format!("node {} truncates {from} → {end} ({why})", n.id);
        self.note(msg);
        self.stats.truncations += 1;
        let end = self.nodes[i].log.leo();
        self.step(i, Event::Truncated { end });
    }

    /// Truncate node `i`'s log and lower the check caches.
    fn truncate_log(&mut self, i: usize, end: i64) {
        self.nodes[i].log.truncate_to(end);
        let end = self.nodes[i].log.recs.len();
        self.acked_ok[i] = self.acked_ok[i].min(end);
        for j in 0..NODES.len() {
            self.agreed[i][j] = self.agreed[i][j].min(end);
            self.agreed[j][i] = self.agreed[j][i].min(end);
        }
    }

    /// Whether nodes `a` and `b` agree on offsets below `upto` (both logs reach it).
    fn agree(&mut self, a: usize, b: usize, upto: usize) -> bool {
        let (la, lb) = (&self.nodes[a].log.recs, &self.nodes[b].log.recs);
        if la.len() < upto || lb.len() < upto {
            return false;
        }
        let from = self.agreed[a][b].min(upto);
        if la[from..upto] != lb[from..upto] {
            return false;
        }
        let k = self.agreed[a][b].max(upto);
        self.agreed[a][b] = k;
        self.agreed[b][a] = k;
        true
    }

    /// The first acknowledged record node `i` lacks below `upto`, if any.
    fn lacks_acked(&mut self, i: usize, upto: usize) -> Option<(i64, u64)> {
        let log = &self.nodes[i].log.recs;
        let from = self.acked_ok[i].min(upto) as i64;
        for (o, v) in self.acked.range(from..upto as i64) {
            if log.get(*o as usize).map(|r| r.value) != Some(*v) {
                return Some((*o, *v));
            }
        }
        if log.len() >= upto {
            self.acked_ok[i] = self.acked_ok[i].max(upto);
        }
        None
    }

    /// The leader side of a follower fetch (`handlers::fetch::build`).
    fn serve_fetch(&mut self, i: usize, from: i32, current_epoch: i32, offset: i64, req: u64) {
        let refused = Self::epoch_check(&self.nodes[i].st, current_epoch);
        if !refused && (0..=self.nodes[i].log.leo()).contains(&offset) {
            self.step(
                i,
                Event::FollowerFetch {
                    replica: from,
                    offset,
                },
            );
        }
        let n = &self.nodes[i];
        let hw = n.hw_watch;
        let (error, recs) = if refused {
            (Some("epoch"), Vec::new())
        } else if offset > n.log.leo() {
            (Some("out of range"), Vec::new())
        } else {
            let start = offset as usize;
            let end = (start + MAX_FETCH_RECORDS).min(n.log.recs.len());
            (None, n.log.recs[start..end].to_vec())
        };
        self.send(
            from,
            Msg::FetchResp {
                req,
                error,
                base: offset,
                recs,
                hw,
            },
        );
    }

    /// `fetcher::fetch`, the response side.
    fn fetch_response(
        &mut self,
        i: usize,
        req: u64,
        error: Option<&'static str>,
        base: i64,
        recs: Vec<Rec>,
        hw: i64,
    ) {
        let Some(_) = self.take_response(i, req) else {
            return;
        };
        let now = self.now;
        match error {
            None => {}
            Some("out of range") => {
                if let Some(f) = self.nodes[i].follow.as_mut() {
                    f.reconciled = false;
                }
                return;
            }
            Some(_) => {
                if let Some(f) = self.nodes[i].follow.as_mut() {
                    f.not_before = now + FETCH_BACKOFF_MS;
                }
                return;
            }
        }
        let n = &mut self.nodes[i];
        if !recs.is_empty() {
            if base != n.log.leo() {
                // UnexpectedAppendOffset (or a gap): reconcile again.
                if let Some(f) = n.follow.as_mut() {
                    f.reconciled = false;
                }
                return;
            }
            for r in &recs {
                let off = n.log.leo();
                n.log.assign(r.epoch, off);
                n.log.recs.push(*r);
            }
            if !self.cfg.fsync {
                n.log.durable = n.log.recs.len();
            }
            let end = n.log.leo();
            self.step(i, Event::Appended { end });
        }
        self.step(i, Event::LeaderHw { hw });
    }

    /// A client's acks=all produce to whoever node `i` thinks leads.
    fn produce(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if !n.st.is_leader() || !n.st.enough_replicas() {
            return;
        }
        let value = self.next_value;
        self.next_value += 1;
        let epoch = n.st.leader_epoch();
        let offset = n.log.leo();
        n.log.assign(epoch, offset);
        n.log.recs.push(Rec { epoch, value });
        if !self.cfg.fsync {
            n.log.durable = n.log.recs.len();
        }
        // The waiter's first look is right after the append.
        n.pending.push(Pending {
            offset,
            value,
            epoch,
            seen: u64::MAX,
            wake_at: None,
            deadline: self.now + PRODUCE_TIMEOUT_MS,
        });
        let id = n.id;
        self.note(format!(
            "node {id} appends {value} at {offset} in epoch {epoch}"
        ));
        let (node, acted) = (id, epoch);
        self.acted.entry(acted).or_default().insert(node);
        self.step(i, Event::Appended { end: offset + 1 });
    }

    fn flush(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.log.durable == n.log.recs.len() {
            return;
        }
        n.log.durable = n.log.recs.len();
        let offset = n.log.leo();
        self.step(i, Event::Durable { offset });
    }

    /// `isr.rs`: tick the leader and send its proposal, one request at a time.
    fn isr_tick(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        if let Some((_, deadline)) = n.alter_outstanding {
            if now < deadline {
                return;
            }
            n.alter_outstanding = None;
            self.step(i, Event::IsrRejected);
        }
        let n = &self.nodes[i];
        if !n.st.is_leader() {
            return;
        }
        self.step(i, Event::Tick);
        let n = &mut self.nodes[i];
        let Some(f) = n.st.in_flight().cloned() else {
            return;
        };
        if n.isr_sent.as_ref().is_some_and(|(e, isr, at)| {
            *e == f.partition_epoch && *isr == f.isr && *at == f.sent_ms
        }) {
            return;
        }
        let Some(broker_epoch) = n.broker_epoch else {
            return;
        };
        n.isr_sent = Some((f.partition_epoch, f.isr.clone(), f.sent_ms));
        let req = self.next_req;
        self.next_req += 1;
        n.alter_outstanding = Some((req, now + REQUEST_TIMEOUT_MS));
        let change = IsrChange {
            topic_id: TOPIC.to_string(),
            partition: 0,
            leader_epoch: n.st.leader_epoch(),
            partition_epoch: f.partition_epoch,
            isr: f.isr.clone(),
        };
        let id = n.id;
        self.note(format!(
            "node {id} proposes isr {:?} (pepoch {})",
            f.isr, f.partition_epoch
        ));
        self.send(
            0,
            Msg::AlterPartition {
                from: id,
                broker_epoch,
                change,
                req,
            },
        );
    }

    fn heartbeat(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let id = n.id;
        match n.broker_epoch {
            Some(epoch) if now >= n.last_heartbeat + HEARTBEAT_MS => {
                n.last_heartbeat = now;
                self.send(0, Msg::Heartbeat { from: id, epoch });
            }
            None if now >= n.register_sent + REQUEST_TIMEOUT_MS => {
                n.register_sent = now;
                let inc = n.inc;
                self.send(0, Msg::Register { from: id, inc });
            }
            _ => {}
        }
    }

    /// Wake or fail the acks=all produces waiting on node `i`
    /// (`Partition::wait_committed`).
    fn settle_acks(&mut self, i: usize) {
        let now = self.now;
        // A woken waiter runs a little later (task scheduling) and reads
        // the state as it is then.
        let delay = self.rng.random_range(0..=self.cfg.sched_delay);
        let n = &mut self.nodes[i];
        let mut acked = Vec::new();
        // `wait_committed` reads the state's HW under its lock.
        let (hw, role, epoch, enough, version) = (
            n.st.hw(),
            n.st.role(),
            n.st.leader_epoch(),
            n.st.enough_replicas(),
            n.watch_version,
        );
        n.pending.retain_mut(|p| {
            if now > p.deadline {
                return false;
            }
            if p.seen != version && p.wake_at.is_none() {
                p.wake_at = Some(now + delay);
            }
            if p.wake_at.is_none_or(|w| w > now) {
                return true;
            }
            p.seen = version;
            p.wake_at = None;
            if role != Role::Leader || epoch != p.epoch {
                false
            } else if hw > p.offset {
                acked.push(*p);
                false
            } else {
                enough
            }
        });
        let id = n.id;
        for p in acked {
            for k in &mut self.acked_ok {
                *k = (*k).min(p.offset as usize);
            }
            if let Some(v) = self.acked.insert(p.offset, p.value) {
                if v != p.value {
                    self.fail(&format!(
                        "offset {} acknowledged twice: {v}, then {} by node {id} in epoch {}",
                        p.offset, p.value, p.epoch
                    ));
                }
            }
            self.stats.acked += 1;
            self.note(format!(
                "node {id} acknowledges {} at {} (epoch {}, hw {hw})",
                p.value, p.offset, p.epoch
            ));
        }
    }

    fn crash(&mut self, i: usize) {
        let now = self.now;
        let down_for = self.rng.random_range(50..1500);
        let n = &mut self.nodes[i];
        n.up = false;
        n.restart_at = now + down_for;
        n.pending.clear();
        let id = n.id;
        self.stats.crashes += 1;
        self.note(format!("node {id} crashes"));
    }

    fn restart(&mut self, i: usize) {
        let settings = settings(&self.cfg);
        let n = &mut self.nodes[i];
        let durable = n.log.durable as i64;
        self.truncate_log(i, durable);
        let n = &mut self.nodes[i];
        n.inc += 1;
        n.up = true;
        n.paused_until = 0;
        n.broker_epoch = None;
        n.register_sent = 0;
        let leo = n.log.leo();
        n.st = PartitionState::new(n.id, leo, leo, n.checkpoint_hw, settings);
        n.hw_watch = n.st.hw();
        n.last_hw = n.st.hw();
        n.follow = None;
        n.isr_sent = None;
        n.alter_outstanding = None;
        n.joined = false;
        n.join_at = None;
        let msg = format!(
            "node {} restarts (incarnation {}), leo {leo}, hw {} from the checkpoint",
            n.id,
            n.inc,
            n.st.hw()
        );
        self.note(msg);
        // `open_partition` assigns the stored image's record at once.
        if let Some((_, p)) = self.nodes[i].image.clone() {
            self.assign(i, &p);
        }
    }

    // ---- the run ----

    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.one_step();
            self.check();
        }
        // Heal: no more faults; everything converges and nothing acknowledged is lost.
        self.calm = true;
        for i in 0..NODES.len() {
            if !self.nodes[i].up {
                self.nodes[i].restart_at = self.now;
            }
            self.nodes[i].paused_until = 0;
        }
        for _ in 0..1500 {
            self.one_step();
            self.check();
        }
        self.check_converged();
    }

    fn one_step(&mut self) {
        self.now += self.rng.random_range(1..=10);
        let now = self.now;
        for i in 0..NODES.len() {
            if !self.nodes[i].up && now >= self.nodes[i].restart_at {
                self.restart(i);
            }
        }
        while self.deliver_one() {
            self.after_event();
        }
        self.controller_tick();
        for i in 0..NODES.len() {
            if !self.nodes[i].running(now) {
                continue;
            }
            self.heartbeat(i);
            if !self.nodes[i].joined {
                continue;
            }
            self.fetcher(i);
            if self.rng.random_bool(0.3) {
                self.isr_tick(i);
            }
            if self.rng.random_bool(0.5) {
                self.flush(i);
            }
            if self.rng.random_bool(0.05) {
                self.nodes[i].checkpoint_hw = self.nodes[i].st.hw();
            }
            if self.rng.random_bool(0.3) {
                self.produce(i);
            }
            self.after_event();
        }
        if !self.calm {
            let r = self.rng.random_range(0..1000);
            let i = self.rng.random_range(0..NODES.len());
            if r < 4 && self.nodes[i].up {
                self.crash(i);
            } else if r < 10 && self.nodes[i].running(now) {
                let pause = self.rng.random_range(100..2000);
                self.nodes[i].paused_until = now + pause;
                self.stats.pauses += 1;
                let id = self.nodes[i].id;
                self.note(format!("node {id} pauses for {pause}ms"));
            }
        }
    }

    fn after_event(&mut self) {
        for i in 0..NODES.len() {
            if self.nodes[i].running(self.now) {
                self.settle_acks(i);
            }
        }
    }

    /// The invariants, after every step.
    fn check(&mut self) {
        self.checks += 1;
        let p = self.partition();
        // (2) A broker acts as leader only in an epoch the controller gave it,
        // and at most one broker per leader epoch.
        for n in self.nodes.iter().filter(|n| n.up) {
            if n.st.is_leader() {
                let e = n.st.leader_epoch();
                if self.epoch_leaders.get(&e) != Some(&n.id) {
                    self.fail(&format!(
                        "node {} leads in epoch {e}, which the controller gave to {:?}",
                        n.id,
                        self.epoch_leaders.get(&e)
                    ));
                }
            }
        }
        for (e, who) in &self.acted {
            if who.len() > 1 {
                self.fail(&format!("brokers {who:?} all acted as leader in epoch {e}"));
            }
        }
        // (3) The current leader, once it knows it leads, holds every
        // acknowledged record at its offset; ISR members agree with it below its HW.
        let leader = self.nodes.iter().position(|n| {
            n.up && n.id == p.leader && n.st.is_leader() && n.st.leader_epoch() == p.leader_epoch
        });
        if let Some(l) = leader {
            let upto = self
                .acked
                .last_key_value()
                .map_or(0, |(o, _)| *o as usize + 1);
            if let Some((o, v)) = self.lacks_acked(l, upto) {
                self.fail(&format!(
                    "leader {} (epoch {}) lacks acknowledged record {v} at offset {o}",
                    p.leader, p.leader_epoch
                ));
            }
            let hw = self.nodes[l].st.hw() as usize;
            for r in &p.isr {
                let m = Self::idx(*r);
                if m == l || !self.nodes[m].up {
                    continue;
                }
                if !self.agree(l, m, hw) {
                    self.fail(&format!(
                        "ISR member {r} disagrees with leader {} below its HW {hw}",
                        p.leader
                    ));
                }
            }
        }
        // (5) Replicas agree on every offset below both their HWs, and no
        // replica's HW covers an offset holding anything but what was acknowledged.
        //
        // A restarted broker is left out until it has rejoined and (as a
        // follower) reconciled: at open it took the record of its stored
        // image (`open_partition`), and if it led there with an ISR of
        // itself under min ISR 1, its HW jumped to its log end, over a
        // suffix the new leader may not share. It cannot be elected before
        // it is back in the ISR, which needs a reconciled fetch, and
        // reconciling truncates that HW; but the HW is visible (and
        // checkpointed) in between.
        let settled = |n: &Node| {
            n.up && n.joined
                && (n.st.is_leader() || n.follow.as_ref().is_some_and(|f| f.reconciled))
        };
        for a in 0..NODES.len() {
            if !settled(&self.nodes[a]) {
                continue;
            }
            let n = &self.nodes[a];
            if n.st.hw() > n.log.leo() {
                self.fail(&format!(
                    "node {} HW {} beyond its log end",
                    n.id,
                    n.st.hw()
                ));
            }
            if self.checks.is_multiple_of(32) {
                if let Some(e) = n.log.epoch_mismatch() {
                    self.fail(&format!("node {}: {e}", n.id));
                }
            }
            let ha = n.st.hw() as usize;
            if let Some((o, v)) = self.lacks_acked(a, ha) {
                self.fail(&format!(
                    "node {} has {:?} at offset {o} below its HW {ha}; acknowledged was {v}",
                    self.nodes[a].id,
                    self.nodes[a].log.recs.get(o as usize)
                ));
            }
            for b in a + 1..NODES.len() {
                if !settled(&self.nodes[b]) {
                    continue;
                }
                let hb = self.nodes[b].st.hw() as usize;
                if !self.agree(a, b, ha.min(hb)) {
                    self.fail(&format!(
                        "nodes {} and {} disagree below their HWs ({ha}, {hb})",
                        self.nodes[a].id, self.nodes[b].id
                    ));
                }
            }
        }
    }

    fn check_converged(&mut self) {
        let p = self.partition();
        if p.leader < 0 {
            self.fail("no leader after healing");
        }
        let l = &self.nodes[Self::idx(p.leader)];
        if !l.st.is_leader() {
            self.fail("the elected leader does not know it leads after healing");
        }
        for (o, v) in &self.acked {
            if l.log.recs.get(*o as usize).map(|r| r.value) != Some(*v) {
                self.fail(&format!("after healing the leader lacks {v} at {o}"));
            }
        }
    }
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn seeded_replication_simulation_keeps_acknowledged_records() {
    let steps = env("BROOK_SIM_STEPS").map_or(2500, |s| s as usize);
    let seeds: Vec<u64> = match env("BROOK_SIM_SEED") {
        Some(s) => vec![s],
        None => {
            let first = env("BROOK_SIM_FIRST").unwrap_or(0);
            (first..first + env("BROOK_SIM_SEEDS").unwrap_or(150)).collect()
        }
    };
    let mut total = Stats::default();
    for seed in seeds {
        let mut sim = Sim::new(seed);
        sim.run(steps);
        let s = sim.stats;
        total.acked += s.acked;
        total.crashes += s.crashes;
        total.pauses += s.pauses;
        total.elections += s.elections;
        total.isr_changes += s.isr_changes;
        total.truncations += s.truncations;
    }
    eprintln!("replication simulation: {total:?}");
    assert!(total.acked > 0, "the simulation acknowledged nothing");
}
