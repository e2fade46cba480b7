//! Process fault tests for the controller quorum: three real `brook` nodes,
//! each a broker and a controller voter, on fixed per-test ports (see
//! `brook_tests::Cluster`). Nodes are killed (`kill -9`), paused (SIGSTOP past
//! the election timeout and the broker session) and restarted; the tests check
//! what every live node's `/v1/cluster` and Kafka Metadata say afterwards.
//!
//! Each test takes its own port range (`BASE_*`, 200 ports apart) so that
//! nextest may run them in parallel. Sessions are 3 s with 500 ms heartbeats,
//! which caps the controller election timeout at 1 s.
//!
//! Every failure carries the tail of each node's log.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use brook_producer::client::Connection;
use brook_protocol::messages::metadata_request::MetadataRequest;
use brook_protocol::messages::metadata_response::MetadataResponse;
use brook_tests::{broker_state_in, wait_until, Cluster, ClusterOptions};
use common::{consume_until, consumer, produce_all, producer, TestRecord};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use tokio::runtime::Runtime;

const BASE_CONVERGE: u16 = 21000;
const BASE_KILL_CONTROLLER: u16 = 21200;
const BASE_PAUSE_CONTROLLER: u16 = 21400;
const BASE_PAUSE_BROKER: u16 = 21600;
const BASE_PRODUCE_GROUP: u16 = 21800;
const BASE_PRODUCE_ASSIGN: u16 = 22000;
const BASE_PAUSED_CONTROLLER_FENCING: u16 = 22200;
const BASE_BROKER_ONLY: u16 = 22400;
const BASE_CONTROLLER_ONLY: u16 = 22600;

/// How long survivors may take to agree on a new active controller.
const ELECTION_WAIT: Duration = Duration::from_secs(10);
/// How long a state (fenced, unfenced) may take to show on every live node.
const STATE_WAIT: Duration = Duration::from_secs(15);
/// How long the live images may take to converge.
const CONVERGE_WAIT: Duration = Duration::from_secs(20);
/// How long a paused controller stays stopped: past the election timeout
/// (1 s) and the broker session (3 s).
const PAUSE: Duration = Duration::from_secs(5);

/// Start a three-node cluster on `base`, run `body`, and attach every node's
/// log tail to a failure.
fn with_cluster(base: u16, body: impl FnOnce(&mut Cluster, &Runtime) -> Result<()>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut cluster = Cluster::start(ClusterOptions::three(base))?;
    let r = body(&mut cluster, &rt);
    cluster.with_logs(r)
}

/// Wait until the nodes agree on an active controller (returned with its
/// epoch), every broker is unfenced and the images have converged.
fn settled(c: &Cluster) -> Result<(i32, u64)> {
    let active = c.wait_active_controller("one agreed controller", ELECTION_WAIT, |_, e| e >= 1)?;
    for n in c.node_ids() {
        c.wait_broker_state(n, "unfenced", STATE_WAIT)?;
    }
    c.wait_converged(CONVERGE_WAIT)?;
    Ok(active)
}

/// Create `topics` (name, partitions; replication factor 1) with librdkafka's
/// admin client bootstrapped to `bootstrap` only.
fn create_topics(rt: &Runtime, bootstrap: &str, topics: &[(&str, i32)]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, n)| NewTopic::new(name, *n, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), admin.create_topics(&new, &opts)).await
        })
        .map_err(|_| anyhow!("CreateTopics via {bootstrap} took over 60 s"))?
        .with_context(|| format!("CreateTopics via {bootstrap}"))?;
    for r in results {
        r.map_err(|(name, code)| anyhow!("creating {name} via {bootstrap}: {code:?}"))?;
    }
    Ok(())
}

/// One Metadata request for every topic, sent to `addr` itself (not to
/// whichever broker a client library picks).
fn metadata(rt: &Runtime, addr: &str) -> Result<MetadataResponse> {
    rt.block_on(async {
        let conn = Connection::connect(
            addr,
            "cluster-quorum-test",
            Duration::from_secs(5),
            Duration::from_secs(10),
        )
        .await?;
        let req = MetadataRequest {
            topics: None,
            allow_auto_topic_creation: false,
            ..Default::default()
        };
        let resp = conn.request(&req).await;
        conn.close("done");
        Ok::<_, anyhow::Error>(resp?)
    })
    .with_context(|| format!("Metadata from {addr}"))
}

/// Broker ids a Metadata response lists.
fn md_brokers(md: &MetadataResponse) -> BTreeSet<i32> {
    md.brokers.iter().map(|b| b.node_id).collect()
}

/// `partition → (leader, leader epoch)`.
type Leaders = BTreeMap<i32, (i32, i32)>;

/// `partition → (leader, leader epoch)` of `topic` in a Metadata response.
fn md_leaders(md: &MetadataResponse, topic: &str) -> Result<Leaders> {
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some(topic))
        .ok_or_else(|| anyhow!("Metadata lists no topic {topic}"))?;
    ensure!(
        t.error_code == 0,
        "topic {topic}: error code {}",
        t.error_code
    );
    Ok(t.partitions
        .iter()
        .map(|p| (p.partition_index, (p.leader_id, p.leader_epoch)))
        .collect())
}

/// `partition → leader` of `topic` from librdkafka's `fetch_metadata` with a
/// client bootstrapped to `bootstrap` only; also the broker ids it lists.
fn rdkafka_leaders(bootstrap: &str, topic: &str) -> Result<(BTreeSet<i32>, BTreeMap<i32, i32>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("librdkafka Metadata via {bootstrap}"))?;
    let brokers = md.brokers().iter().map(|b| b.id()).collect();
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| anyhow!("librdkafka Metadata lists no topic {topic}"))?;
    ensure!(t.error().is_none(), "topic {topic}: {:?}", t.error());
    let leaders = t
        .partitions()
        .iter()
        .map(|p| (p.id(), p.leader()))
        .collect();
    Ok((brokers, leaders))
}

/// Whether Metadata from `addr` lists topic `topic` without error.
fn md_has_topic(md: &MetadataResponse, topic: &str) -> bool {
    md.topics
        .iter()
        .any(|t| t.name.as_deref() == Some(topic) && t.error_code == 0 && !t.partitions.is_empty())
}

#[test]
fn three_nodes_start_and_images_converge() -> Result<()> {
    with_cluster(BASE_CONVERGE, |c, rt| {
        let (active, epoch) =
            c.wait_active_controller("one agreed controller", ELECTION_WAIT, |_, e| e >= 1)?;
        let ids = c.node_ids();
        ensure!(
            ids.contains(&active),
            "active controller {active} is not a voter of {ids:?}"
        );
        for s in c.statuses()?.values() {
            let voters = s["controller"]["voters"].as_array().map_or(0, Vec::len);
            ensure!(voters == 3, "expected 3 voters: {}", s["controller"]);
        }
        for &b in &ids {
            c.wait_broker_state(b, "unfenced", STATE_WAIT)?;
        }
        // Through a different node each time: non-controllers forward.
        let topics = [("conv-a", 3), ("conv-b", 2), ("conv-c", 1)];
        for (i, t) in topics.iter().enumerate() {
            create_topics(rt, &c.bootstrap_of(ids[i % ids.len()])?, &[*t])?;
        }
        let (offset, hash) = c.wait_converged(CONVERGE_WAIT)?;
        eprintln!("converged at metadata offset {offset}, image hash {hash}, controller {active} epoch {epoch}");
        // The epoch did not move: nothing above should have cost an election.
        let (a2, e2) = c.active_controller()?;
        ensure!(
            (a2, e2) == (active, epoch),
            "controller moved from {active}@{epoch} to {a2}@{e2}"
        );

        // Every node answers Metadata with all three brokers and the same leaders.
        let mut views: BTreeMap<i32, BTreeMap<&str, Leaders>> = BTreeMap::new();
        for &n in &ids {
            let md = metadata(rt, &c.bootstrap_of(n)?)?;
            ensure!(
                md_brokers(&md) == ids.iter().copied().collect(),
                "node {n} Metadata lists brokers {:?}",
                md_brokers(&md)
            );
            let mut per_topic = BTreeMap::new();
            for (t, parts) in topics {
                let leaders = md_leaders(&md, t)?;
                ensure!(
                    leaders.len() == usize::try_from(parts)?,
                    "node {n}: {t} has partitions {leaders:?}"
                );
                ensure!(
                    leaders.values().all(|(l, e)| ids.contains(l) && *e >= 0),
                    "node {n}: {t} has a partition without a live leader: {leaders:?}"
                );
                per_topic.insert(t, leaders);
            }
            views.insert(n, per_topic);
        }
        let first = views.values().next().cloned().unwrap_or_default();
        ensure!(
            views.values().all(|v| *v == first),
            "nodes disagree on leaders: {views:#?}"
        );
        // Three partitions over three unfenced brokers: one each.
        let spread: BTreeSet<i32> = first["conv-a"].values().map(|(l, _)| *l).collect();
        ensure!(
            spread.len() == 3,
            "conv-a partitions are not spread over the brokers: {:?}",
            first["conv-a"]
        );

        // And librdkafka, bootstrapped to each node, sees the same.
        for &n in &ids {
            for (t, _) in topics {
                let (brokers, leaders) = rdkafka_leaders(&c.bootstrap_of(n)?, t)?;
                ensure!(
                    brokers.len() == 3,
                    "librdkafka via node {n} sees brokers {brokers:?}"
                );
                let want: BTreeMap<i32, i32> =
                    first[t].iter().map(|(p, (l, _))| (*p, *l)).collect();
                ensure!(
                    leaders == want,
                    "librdkafka via node {n}: {t} leaders {leaders:?}, expected {want:?}"
                );
            }
        }
        Ok(())
    })
}

#[test]
fn killing_the_active_controller_elects_another() -> Result<()> {
    with_cluster(BASE_KILL_CONTROLLER, |c, rt| {
        let (old, e0) =
            c.wait_active_controller("one agreed controller", ELECTION_WAIT, |_, e| e >= 1)?;
        create_topics(rt, &c.bootstrap_of(old)?, &[("before-kill", 3)])?;
        c.wait_converged(CONVERGE_WAIT)?;

        c.kill9(old)?;
        let killed_at = Instant::now();
        let (new, e1) = c.wait_active_controller(
            "the survivors to elect a new controller",
            ELECTION_WAIT,
            |id, e| id != old && e > e0,
        )?;
        eprintln!(
            "controller {old}@{e0} killed; {new}@{e1} active after {:?}",
            killed_at.elapsed()
        );

        // Topic creation works with two of three voters.
        let survivor = c
            .live()
            .into_iter()
            .find(|&n| n != new)
            .ok_or_else(|| anyhow!("no survivor"))?;
        create_topics(rt, &c.bootstrap_of(survivor)?, &[("after-kill", 2)])?;
        // The new controller fences the dead broker once its session runs out.
        c.wait_broker_state(old, "fenced", STATE_WAIT)?;
        for n in c.live() {
            c.wait_broker_state(n, "unfenced", STATE_WAIT)?;
        }
        let (_, hash_two) = c.wait_converged(CONVERGE_WAIT)?;

        // The killed node comes back, catches up and is unfenced.
        c.restart(old)?;
        for n in c.node_ids() {
            c.wait_broker_state(n, "unfenced", STATE_WAIT)?;
        }
        let (offset, hash) = c.wait_converged(CONVERGE_WAIT)?;
        ensure!(c.live().len() == 3, "not all nodes live: {:?}", c.live());
        let (a, e) = c.active_controller()?;
        ensure!(e >= e1, "epoch went back from {e1} to {e} (controller {a})");
        eprintln!("rejoined: offset {offset}, hash {hash} (two-node hash was {hash_two}), controller {a}@{e}");
        let md = metadata(rt, &c.bootstrap_of(old)?)?;
        for t in ["before-kill", "after-kill"] {
            ensure!(
                md_has_topic(&md, t),
                "restarted node {old} does not list {t}"
            );
        }
        Ok(())
    })
}

#[test]
fn a_paused_controller_rejoins_as_follower_and_changes_nothing() -> Result<()> {
    with_cluster(BASE_PAUSE_CONTROLLER, |c, rt| {
        let (old, e0) = settled(c)?;
        let survivors: Vec<i32> = c.node_ids().into_iter().filter(|&n| n != old).collect();
        // Survivors' broker epochs: a fence and re-registration would change them.
        let epochs_before = broker_epochs(c, &survivors)?;

        // The survivors must never be seen fenced: neither by the new
        // controller while the old one is paused, nor by the deposed one's
        // stale session clocks after it resumes.
        let mut fenced_seen: Vec<String> = Vec::new();
        let paused_at = Instant::now();
        let sample = |c: &Cluster, phase: &str, fenced_seen: &mut Vec<String>| -> Result<()> {
            for (observer, s) in c.statuses()? {
                for &b in &survivors {
                    let st = broker_state_in(&s, b);
                    if st.as_deref() != Some("unfenced") {
                        fenced_seen.push(format!(
                            "{:?} after SIGSTOP ({phase}): node {observer} saw broker {b} {st:?}",
                            paused_at.elapsed()
                        ));
                    }
                }
            }
            Ok(())
        };

        c.sigstop(old)?;
        let mut elected = None;
        wait_until(
            "the others to elect a new controller and fence the paused one",
            ELECTION_WAIT,
            || {
                sample(c, "paused", &mut fenced_seen)?;
                let (id, e) = c.active_controller()?;
                if id == old || e <= e0 {
                    bail!("active controller is {id} at epoch {e}");
                }
                elected.get_or_insert((id, e, paused_at.elapsed()));
                for (observer, s) in c.statuses()? {
                    let st = broker_state_in(&s, old);
                    if st.as_deref() != Some("fenced") {
                        bail!("node {observer} reports broker {old} as {st:?}");
                    }
                }
                Ok(true)
            },
        )?;
        let (new, e1, took) = elected.ok_or_else(|| anyhow!("no controller elected"))?;
        eprintln!(
            "controller {old}@{e0} paused; {new}@{e1} active after {took:?}, {old} fenced after {:?}",
            paused_at.elapsed()
        );
        // Whatever the survivors went through, a topic can be made once they
        // are unfenced (fencing them is checked at the end, not here).
        wait_until("the survivors to be unfenced", STATE_WAIT, || {
            sample(c, "paused", &mut fenced_seen)?;
            Ok(fenced_seen.is_empty() || {
                let st = c.statuses()?;
                st.values().all(|s| {
                    survivors
                        .iter()
                        .all(|b| broker_state_in(s, *b).as_deref() == Some("unfenced"))
                })
            })
        })?;
        create_topics(rt, &c.bootstrap_of(new)?, &[("made-during-pause", 2)])?;
        // Stay paused well past the session, so that the deposed controller's
        // own session clocks have all run out when it resumes: if it still
        // acted on them, it would try to fence the survivors.
        while paused_at.elapsed() < PAUSE {
            sample(c, "paused", &mut fenced_seen)?;
            std::thread::sleep(Duration::from_millis(100));
        }
        c.sigcont(old)?;
        let sample = |c: &Cluster, fenced_seen: &mut Vec<String>| sample(c, "resumed", fenced_seen);

        // The old controller follows the new one.
        wait_until(
            "the resumed node to follow the new controller",
            ELECTION_WAIT,
            || {
                sample(c, &mut fenced_seen)?;
                let s = c.status(old)?;
                let ctl = &s["controller"];
                let follows = ctl["active"].as_i64() == Some(i64::from(new))
                    && ctl["epoch"].as_u64() == Some(e1)
                    && ctl["this_node_active"].as_bool() == Some(false);
                if !follows {
                    bail!("node {old} reports controller {ctl}");
                }
                Ok(true)
            },
        )?;
        wait_until(
            "the resumed node to be unfenced everywhere",
            STATE_WAIT,
            || {
                sample(c, &mut fenced_seen)?;
                for (observer, s) in c.statuses()? {
                    let st = broker_state_in(&s, old);
                    if st.as_deref() != Some("unfenced") {
                        bail!("node {observer} reports broker {old} as {st:?}");
                    }
                }
                Ok(true)
            },
        )?;
        let (offset, hash) = c.wait_converged(CONVERGE_WAIT)?;
        // A few more samples over a full session, in case a stale timer fires late.
        let until = Instant::now() + c.options().session_timeout();
        while Instant::now() < until {
            sample(c, &mut fenced_seen)?;
            std::thread::sleep(Duration::from_millis(100));
        }
        let (a, e) = c.active_controller()?;
        ensure!(
            (a, e) == (new, e1),
            "controller moved again: {new}@{e1} → {a}@{e}"
        );
        let epochs_after = broker_epochs(c, &survivors)?;
        ensure!(
            epochs_before == epochs_after,
            "survivors' broker epochs changed: {epochs_before:?} → {epochs_after:?}"
        );
        let (offset2, hash2) = c.wait_converged(CONVERGE_WAIT)?;
        ensure!(
            (offset2, hash2) == (offset, hash),
            "the image changed after convergence: ({offset}, {hash}) → ({offset2}, {hash2})"
        );
        for n in c.node_ids() {
            let md = metadata(rt, &c.bootstrap_of(n)?)?;
            ensure!(
                md_has_topic(&md, "made-during-pause"),
                "node {n} does not list made-during-pause"
            );
        }
        let attempts = c.log_lines(old, "fenc")?;
        eprintln!(
            "converged at offset {offset}, hash {hash}; deposed node's fencing log lines: {attempts:#?}"
        );
        // Checked last, so that the checks above still run when it fails.
        ensure!(
            fenced_seen.is_empty(),
            "survivors were seen fenced ({} samples); first {:#?}, last {:?}",
            fenced_seen.len(),
            &fenced_seen[..fenced_seen.len().min(4)],
            fenced_seen.last()
        );
        Ok(())
    })
}

/// Regression: a broker's heartbeat in flight to a controller that is then
/// paused (SIGSTOP: its sockets stay open, nothing answers) waited out the
/// 10 s controller RPC timeout, longer than the 3 s broker session, so ~3 s
/// after its election the new controller fenced every live broker, itself
/// included, and a topic could not be created until the RPCs timed out.
#[test]
fn a_paused_controller_does_not_get_the_live_brokers_fenced() -> Result<()> {
    with_cluster(BASE_PAUSED_CONTROLLER_FENCING, |c, rt| {
        let (old, e0) = settled(c)?;
        let survivors: Vec<i32> = c.node_ids().into_iter().filter(|&n| n != old).collect();
        c.sigstop(old)?;
        let paused_at = Instant::now();
        let (new, e1) = c.wait_active_controller(
            "the others to elect a new controller",
            ELECTION_WAIT,
            |id, e| id != old && e > e0,
        )?;
        let elected = paused_at.elapsed();
        // Two full sessions after the election: the survivors heartbeat the
        // new controller and stay unfenced throughout.
        let watch_until = Instant::now() + 2 * c.options().session_timeout();
        while Instant::now() < watch_until {
            for (observer, s) in c.statuses()? {
                for &b in &survivors {
                    let st = broker_state_in(&s, b);
                    ensure!(
                        st.as_deref() == Some("unfenced"),
                        "{:?} after pausing controller {old} ({new}@{e1} elected after \
                         {elected:?}), node {observer} reports live broker {b} as {st:?}",
                        paused_at.elapsed()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let t = Instant::now();
        create_topics(rt, &c.bootstrap_of(new)?, &[("while-paused", 2)])?;
        ensure!(
            t.elapsed() < Duration::from_secs(10),
            "creating a topic took {:?}",
            t.elapsed()
        );
        c.sigcont(old)?;
        Ok(())
    })
}

/// `broker id → epoch` as the first live node's image has them.
fn broker_epochs(c: &Cluster, brokers: &[i32]) -> Result<BTreeMap<i32, i64>> {
    let live = c.live();
    let observer = live.first().ok_or_else(|| anyhow!("no live node"))?;
    let s = c.status(*observer)?;
    let mut out = BTreeMap::new();
    for b in s["brokers"].as_array().into_iter().flatten() {
        if let (Some(id), Some(e)) = (b["node_id"].as_i64(), b["epoch"].as_i64()) {
            let id = i32::try_from(id)?;
            if brokers.contains(&id) {
                out.insert(id, e);
            }
        }
    }
    Ok(out)
}

#[test]
fn a_paused_broker_is_fenced_and_loses_leadership() -> Result<()> {
    with_cluster(BASE_PAUSE_BROKER, |c, rt| {
        let (ctl, _) =
            c.wait_active_controller("one agreed controller", ELECTION_WAIT, |_, e| e >= 1)?;
        for n in c.node_ids() {
            c.wait_broker_state(n, "unfenced", STATE_WAIT)?;
        }
        let topic = "six";
        create_topics(rt, &c.bootstrap_of(ctl)?, &[(topic, 6)])?;
        c.wait_converged(CONVERGE_WAIT)?;
        let before = md_leaders(&metadata(rt, &c.bootstrap_of(ctl)?)?, topic)?;
        let victim = c
            .node_ids()
            .into_iter()
            .find(|&n| n != ctl)
            .ok_or_else(|| anyhow!("no non-controller node"))?;
        let led: BTreeMap<i32, i32> = before
            .iter()
            .filter(|(_, (l, _))| *l == victim)
            .map(|(p, (_, e))| (*p, *e))
            .collect();
        ensure!(
            !led.is_empty(),
            "node {victim} leads nothing of {topic}: {before:?}"
        );

        c.sigstop(victim)?;
        let paused_at = Instant::now();
        c.wait_broker_state(victim, "fenced", STATE_WAIT)?;
        eprintln!(
            "node {victim} fenced {:?} after SIGSTOP",
            paused_at.elapsed()
        );
        // Metadata from the live nodes drops the broker and its leadership.
        wait_until("Metadata to drop the paused broker", STATE_WAIT, || {
            for n in c.live() {
                let md = metadata(rt, &c.bootstrap_of(n)?)?;
                let brokers = md_brokers(&md);
                if brokers.contains(&victim) {
                    bail!("node {n} Metadata still lists broker {victim}: {brokers:?}");
                }
                let leaders = md_leaders(&md, topic)?;
                if leaders.values().any(|(l, _)| *l == victim) {
                    bail!("node {n} Metadata still has {victim} leading: {leaders:?}");
                }
                for p in led.keys() {
                    let (l, _) = leaders[p];
                    ensure!(
                        l == -1 || c.live().contains(&l),
                        "node {n}: partition {p} led by {l}, which is not live"
                    );
                }
            }
            Ok(true)
        })?;

        c.sigcont(victim)?;
        c.wait_broker_state(victim, "unfenced", STATE_WAIT)?;
        // It leads its partitions again, at a higher leader epoch.
        wait_until(
            "the resumed broker to lead its partitions again",
            STATE_WAIT,
            || {
                for n in c.live() {
                    let md = metadata(rt, &c.bootstrap_of(n)?)?;
                    if !md_brokers(&md).contains(&victim) {
                        bail!("node {n} Metadata does not list broker {victim}");
                    }
                    let leaders = md_leaders(&md, topic)?;
                    for (p, e_before) in &led {
                        let (l, e) = leaders[p];
                        if l != victim || e <= *e_before {
                            bail!("node {n}: partition {p} led by {l} at epoch {e} (before the pause: {victim} at {e_before})");
                        }
                    }
                }
                Ok(true)
            },
        )?;
        c.wait_converged(CONVERGE_WAIT)?;
        Ok(())
    })
}

/// 100 records keyed `k{i}` with value `v{i}`.
fn numbered(i: usize) -> (Option<i32>, TestRecord) {
    (
        None,
        TestRecord {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            headers: Vec::new(),
        },
    )
}

const RECORDS: usize = 100;

/// Create a six-partition topic and produce [`RECORDS`] records through node
/// `via` (acks=all, idempotent); returns the end offset of each partition.
fn produce_numbered(c: &Cluster, rt: &Runtime, topic: &str, via: i32) -> Result<HashMap<i32, i64>> {
    create_topics(rt, &c.bootstrap_of(via)?, &[(topic, 6)])?;
    c.wait_converged(CONVERGE_WAIT)?;
    let p = producer(
        &c.bootstrap_of(via)?,
        &[("enable.idempotence", "true"), ("acks", "all")],
    )?;
    let delivered = produce_all(&p, topic, RECORDS, numbered)?;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for d in &delivered {
        let e = ends.entry(d.partition).or_default();
        *e = (*e).max(d.offset + 1);
    }
    ensure!(
        ends.len() > 1,
        "all records went to one partition: {ends:?}"
    );
    Ok(ends)
}

/// Every value `v0..v{RECORDS}` exactly once.
fn check_once(values: &[String]) -> Result<()> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values {
        *count.entry(v).or_default() += 1;
    }
    let dup: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(dup.is_empty(), "records delivered more than once: {dup:?}");
    let missing: Vec<String> = (0..RECORDS)
        .map(|i| format!("v{i}"))
        .filter(|v| !count.contains_key(v.as_str()))
        .collect();
    ensure!(missing.is_empty(), "records never consumed: {missing:?}");
    ensure!(values.len() == RECORDS, "{} records consumed", values.len());
    Ok(())
}

#[test]
fn producing_and_consuming_across_the_cluster() -> Result<()> {
    with_cluster(BASE_PRODUCE_ASSIGN, |c, rt| {
        let ids = c.node_ids();
        let (from, to) = (ids[0], ids[1]);
        let ends = produce_numbered(c, rt, "across", from)?;
        // Consumed through another node; the client finds each partition's
        // leader from Metadata.
        let cons = consumer(&c.bootstrap_of(to)?, &[])?;
        let got = consume_until(&cons, "across", &ends)?;
        let values: Vec<String> = got
            .values()
            .flatten()
            .map(|r| {
                String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned()
            })
            .collect();
        check_once(&values)
    })
}

#[test]
fn producing_and_consuming_with_a_group_across_the_cluster() -> Result<()> {
    with_cluster(BASE_PRODUCE_GROUP, |c, rt| {
        let ids = c.node_ids();
        let (from, to) = (ids[0], ids[1]);
        produce_numbered(c, rt, "across-group", from)?;
        let cons: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", c.bootstrap_of(to)?)
            .set("group.id", "cluster-quorum-group")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            .set("session.timeout.ms", "10000")
            .create()?;
        cons.subscribe(&["across-group"])?;
        let mut values = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while values.len() < RECORDS {
            if Instant::now() > deadline {
                bail!(
                    "group consumer got {} of {RECORDS} records before the deadline",
                    values.len()
                );
            }
            let Some(m) = cons.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = m.context("group consumer poll")?;
            values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
        // Nothing more arrives (no duplicates after a late rebalance).
        let quiet_until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < quiet_until {
            if let Some(m) = cons.poll(Duration::from_millis(100)) {
                let m = m.context("group consumer poll")?;
                values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
        }
        check_once(&values)
    })
}

/// A node with `process.roles = "broker"` is no voter: it registers, is
/// added as a metadata learner, follows the log, leads its share of a new
/// topic's partitions and serves them; restarted (on a new learner port), it
/// rejoins.
#[test]
fn a_broker_only_node_follows_the_metadata_log_as_a_learner() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut opts = ClusterOptions::three(BASE_BROKER_ONLY);
    opts.nodes = 4;
    opts.broker_only = 1;
    let mut c = Cluster::start(opts)?;
    let r = (|| -> Result<()> {
        let learner = *c.node_ids().last().context("nodes")?;
        let status = c.status(learner)?;
        let voters = status["controller"]["voters"]
            .as_array()
            .map_or(0, Vec::len);
        ensure!(voters == 3, "the learner lists {voters} voters: {status}");
        c.wait_broker_state(learner, "unfenced", STATE_WAIT)?;
        let ends = produce_numbered(&c, &rt, "learners", learner)?;
        let md = metadata(&rt, &c.bootstrap_of(learner)?)?;
        ensure!(
            md_brokers(&md) == BTreeSet::from([1, 2, 3, learner]),
            "brokers {:?}",
            md_brokers(&md)
        );
        let leaders = md_leaders(&md, "learners")?;
        ensure!(
            leaders.values().any(|(l, _)| *l == learner),
            "the broker-only node leads nothing: {leaders:?}"
        );
        let cons = consumer(&c.bootstrap_of(1)?, &[])?;
        let got = consume_until(&cons, "learners", &ends)?;
        let values: Vec<String> = got
            .values()
            .flatten()
            .map(|r| {
                String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned()
            })
            .collect();
        check_once(&values)?;
        c.restart(learner)?;
        c.wait_broker_state(learner, "unfenced", STATE_WAIT)?;
        c.wait_converged(CONVERGE_WAIT)?;
        let md = metadata(&rt, &c.bootstrap_of(learner)?)?;
        ensure!(
            md_has_topic(&md, "learners"),
            "after restart the learner lost the topic"
        );
        Ok(())
    })();
    c.with_logs(r)
}

/// A node with `process.roles = "controller"` is a voter that serves no
/// clients: it is never a registered broker, so no partition is placed on it,
/// yet it keeps the quorum alive when a combined node dies.
#[test]
fn a_controller_only_node_votes_but_hosts_nothing() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut opts = ClusterOptions::three(BASE_CONTROLLER_ONLY);
    opts.controller_only = 1;
    let mut c = Cluster::start(opts)?;
    let r = (|| -> Result<()> {
        let ids = c.node_ids();
        let (ctl, b1, b2) = (ids[0], ids[1], ids[2]);
        let status = c.status(ctl)?;
        let brokers: BTreeSet<i64> = status["brokers"]
            .as_array()
            .context("brokers")?
            .iter()
            .filter_map(|b| b["node_id"].as_i64())
            .collect();
        ensure!(
            brokers == BTreeSet::from([i64::from(b1), i64::from(b2)]),
            "registered brokers {brokers:?}"
        );
        create_topics(&rt, &c.bootstrap_of(b1)?, &[("spread", 4)])?;
        c.wait_converged(CONVERGE_WAIT)?;
        let md = metadata(&rt, &c.bootstrap_of(b2)?)?;
        let leaders = md_leaders(&md, "spread")?;
        ensure!(
            leaders.values().all(|(l, _)| *l == b1 || *l == b2),
            "a partition was placed on the controller-only node: {leaders:?}"
        );
        // Clients send admin requests to Metadata's controller id, so it must
        // be a broker they can reach, even when the controller-only node is
        // the active controller.
        ensure!(
            md_brokers(&md).contains(&md.controller_id),
            "Metadata names controller {} that is not a listed broker {:?}",
            md.controller_id,
            md_brokers(&md)
        );
        // Two voters of three remain: the quorum still decides, whichever
        // of them is the active controller now.
        c.kill9(b1)?;
        c.wait_broker_state(b1, "fenced", STATE_WAIT)?;
        create_topics(&rt, &c.bootstrap_of(b2)?, &[("after", 1)])?;
        Ok(())
    })();
    c.with_logs(r)
}
