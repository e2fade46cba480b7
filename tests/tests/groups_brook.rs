//! brook-consumer group membership against a real brook process: members split
//! a topic's partitions, rebalances on join/close/`kill -9` (a `brook consume
//! --group` process), commit-on-revoke (no record processed twice by two live
//! members in one generation), a group shared with librdkafka, cooperative-sticky
//! moving only what must move, and static membership across a restart.
//!
//! In-process members (`groups_brook/member.rs`) are tokio tasks polling in a
//! loop; the test thread watches what they publish with [`wait_until`].

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use brook_producer::{Producer, ProducerConfig, ProducerRecord};
use brook_tests::{brook_binary, wait_until, Broker, BrokerOptions};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::ClientConfig;
use tokio::runtime::Runtime;

#[path = "groups_brook/member.rs"]
mod member;

use member::{describe, lock, partitioned, Member, CLOSE};

const PARTITIONS: i32 = 12;
const WAIT: Duration = Duration::from_secs(30);

fn start_broker() -> Result<Broker> {
    Broker::start(
        BrokerOptions::default()
            .partitions(PARTITIONS)
            .config("group.initial.rebalance.delay.ms", "0")
            // Short sessions keep the kill -9 and restart cases quick.
            .config("group.min.session.timeout.ms", "1000")
            .config("offsets.topic.num.partitions", "3"),
    )
}

fn runtime() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn create_topic(rt: &Runtime, bootstrap: &str, name: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let res = rt.block_on(admin.create_topics(
        &[NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))?;
    for r in res {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

#[test]
fn members_split_partitions_and_rebalance_on_join_and_close() -> Result<()> {
    let broker = start_broker()?;
    let bs = broker.bootstrap();
    let rt = runtime()?;
    create_topic(&rt, &bs, "split")?;
    let mut a = Member::start(&rt, &bs, "g-split", "split", &[])?;
    let b = Member::start(&rt, &bs, "g-split", "split", &[])?;
    let c = Member::start(&rt, &bs, "g-split", "split", &[])?;
    wait_until("3 members own all 12 partitions once", WAIT, || {
        partitioned(&[&a, &b, &c])
    })
    .with_context(|| describe(&[&a, &b, &c]))?;
    let g3 = a.generation();
    let d = Member::start(&rt, &bs, "g-split", "split", &[])?;
    wait_until("a 4th member gets a share", WAIT, || {
        partitioned(&[&a, &b, &c, &d])
    })
    .with_context(|| describe(&[&a, &b, &c, &d]))?;
    ensure!(a.generation() > g3, "the join must start a new generation");
    let a_had = a.owned();
    a.stop(&rt, CLOSE)?;
    wait_until("a closed member's partitions move", WAIT, || {
        partitioned(&[&b, &c, &d])
    })
    .with_context(|| describe(&[&b, &c, &d]))?;
    let now: BTreeSet<i32> = [&b, &c, &d].iter().flat_map(|m| m.owned()).collect();
    ensure!(a_had.is_subset(&now));
    Ok(())
}

/// `brook consume --group` in its own process, killed with SIGKILL.
struct CliMember(Child);

impl Drop for CliMember {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_cli_members_partitions_move_within_the_session_timeout() -> Result<()> {
    let broker = start_broker()?;
    let bs = broker.bootstrap();
    let rt = runtime()?;
    create_topic(&rt, &bs, "killed")?;
    let a = Member::start(&rt, &bs, "g-kill", "killed", &[])?;
    let b = Member::start(&rt, &bs, "g-kill", "killed", &[])?;
    wait_until("2 members own everything", WAIT, || partitioned(&[&a, &b]))?;
    let mut cli = CliMember(
        Command::new(brook_binary()?)
            .args([
                "consume",
                "--group",
                "g-kill",
                "--topic",
                "killed",
                "--bootstrap",
                &bs,
            ])
            .args([
                "-X",
                "session.timeout.ms=3000",
                "-X",
                "heartbeat.interval.ms=200",
            ])
            .stdout(Stdio::null())
            .spawn()?,
    );
    // The CLI member's share is whatever the two in-process members lack.
    wait_until("the CLI member takes a share", WAIT, || {
        let (sa, sb) = (a.owned(), b.owned());
        Ok(a.generation() == b.generation()
            && !sa.is_empty()
            && !sb.is_empty()
            && sa.is_disjoint(&sb)
            && sa.len() + sb.len() < 12)
    })
    .with_context(|| describe(&[&a, &b]))?;
    ensure!(cli.0.try_wait()?.is_none(), "brook consume exited early");
    cli.0.kill()?;
    cli.0.wait()?;
    let killed_at = std::time::Instant::now();
    wait_until("the killed member's partitions move", WAIT, || {
        partitioned(&[&a, &b])
    })
    .with_context(|| describe(&[&a, &b]))?;
    // Session timeout (3 s) plus a heartbeat round and the rejoin.
    ensure!(
        killed_at.elapsed() < Duration::from_secs(15),
        "took {:?}",
        killed_at.elapsed()
    );
    Ok(())
}

#[test]
fn commit_on_revoke_means_no_record_is_processed_twice() -> Result<()> {
    let broker = start_broker()?;
    let bs = broker.bootstrap();
    let rt = runtime()?;
    create_topic(&rt, &bs, "numbered")?;
    let pcfg = ProducerConfig::from_map([("bootstrap.servers", bs.as_str()), ("linger.ms", "2")])?;
    let producer = {
        let _in_runtime = rt.enter();
        Producer::new(pcfg)?
    };
    let done = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(Mutex::new(BTreeSet::new()));
    let (d, out) = (done.clone(), produced.clone());
    let feeder = rt.spawn(async move {
        // Paced so records keep arriving across the rebalances; bounded.
        let mut pace = tokio::time::interval(Duration::from_millis(20));
        for round in 0..2_000 {
            if d.load(Ordering::SeqCst) {
                break;
            }
            pace.tick().await;
            let sends: Vec<_> = (0..PARTITIONS)
                .map(|p| {
                    producer.send(
                        ProducerRecord::new("numbered", format!("{round}-{p}")).with_partition(p),
                    )
                })
                .collect();
            for s in sends {
                let m = s.await?;
                lock(&out).insert((m.partition, m.offset));
            }
        }
        producer.close().await;
        anyhow::Ok(())
    });
    let commit = [
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "200"),
        ("max.poll.records", "20"),
    ];
    let a = Member::start(&rt, &bs, "g-once", "numbered", &commit)?;
    let mut b = Member::start(&rt, &bs, "g-once", "numbered", &commit)?;
    wait_until("2 members", WAIT, || partitioned(&[&a, &b]))?;
    let c = Member::start(&rt, &bs, "g-once", "numbered", &commit)?;
    wait_until("3 members", WAIT, || partitioned(&[&a, &b, &c]))?;
    b.stop(&rt, CLOSE)?;
    wait_until("back to 2 members", WAIT, || partitioned(&[&a, &c]))?;
    done.store(true, Ordering::SeqCst);
    rt.block_on(feeder)??;
    let produced = lock(&produced).clone();
    let seen = || -> BTreeSet<(i32, i64)> {
        [&a, &b, &c]
            .iter()
            .flat_map(|m| {
                lock(&m.view)
                    .records
                    .iter()
                    .map(|r| (r.2, r.3))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    wait_until("every produced record is consumed", WAIT, || {
        Ok(seen().is_superset(&produced))
    })?;
    // (partition, offset) → who processed it, in which generation.
    let mut by_record: BTreeMap<(i32, i64), Vec<(i32, String)>> = BTreeMap::new();
    for m in [&a, &b, &c] {
        for (g, id, p, o) in &lock(&m.view).records {
            by_record
                .entry((*p, *o))
                .or_default()
                .push((*g, id.clone()));
        }
    }
    for (rec, who) in &by_record {
        let distinct: BTreeSet<&(i32, String)> = who.iter().collect();
        let gens: BTreeSet<i32> = who.iter().map(|w| w.0).collect();
        ensure!(
            gens.len() == who.len() || distinct.len() == 1,
            "record {rec:?} processed by two members in one generation: {who:?}"
        );
        // Commits on revoke make every hand-over exact: nothing is processed twice at all.
        ensure!(
            who.len() == 1,
            "record {rec:?} processed {} times: {who:?}",
            who.len()
        );
    }
    ensure!(!produced.is_empty());
    Ok(())
}

#[test]
fn brook_and_librdkafka_members_share_a_group() -> Result<()> {
    let broker = start_broker()?;
    let bs = broker.bootstrap();
    let rt = runtime()?;
    create_topic(&rt, &bs, "mixed")?;
    let ours = Member::start(
        &rt,
        &bs,
        "g-mixed",
        "mixed",
        &[("partition.assignment.strategy", "range")],
    )?;
    let theirs: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", "g-mixed")
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("enable.auto.commit", "false")
        .create()?;
    theirs.subscribe(&["mixed"])?;
    let theirs_owned = || -> BTreeSet<i32> {
        theirs
            .assignment()
            .map(|l| l.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default()
    };
    wait_until("brook and librdkafka split the partitions", WAIT, || {
        let _ = theirs.poll(Duration::from_millis(20));
        ours.check()?;
        let (o, t) = (ours.owned(), theirs_owned());
        Ok(!o.is_empty() && !t.is_empty() && o.is_disjoint(&t) && o.union(&t).count() == 12)
    })
    .with_context(|| format!("ours {:?}, theirs {:?}", ours.owned(), theirs_owned()))?;
    // Range over 12 partitions and 2 members: 6 each.
    ensure!(ours.owned().len() == 6, "{:?}", ours.owned());
    Ok(())
}

#[test]
fn cooperative_sticky_moves_only_what_must_move() -> Result<()> {
    let broker = start_broker()?;
    let bs = broker.bootstrap();
    let rt = runtime()?;
    create_topic(&rt, &bs, "sticky")?;
    let coop = [("partition.assignment.strategy", "cooperative-sticky")];
    let a = Member::start(&rt, &bs, "g-sticky", "sticky", &coop)?;
    let b = Member::start(&rt, &bs, "g-sticky", "sticky", &coop)?;
    wait_until("2 members, 6 each", WAIT, || {
        Ok(partitioned(&[&a, &b])? && a.owned().len() == 6)
    })
    .with_context(|| describe(&[&a, &b]))?;
    let (a_before, b_before) = (a.owned(), b.owned());
    let revoked_before = (lock(&a.view).revoked.len(), lock(&b.view).revoked.len());
    let c = Member::start(&rt, &bs, "g-sticky", "sticky", &coop)?;
    wait_until("3 members, 4 each", WAIT, || {
        Ok(partitioned(&[&a, &b, &c])? && [&a, &b, &c].iter().all(|m| m.owned().len() == 4))
    })
    .with_context(|| describe(&[&a, &b, &c]))?;
    for (m, before, skip) in [
        (&a, &a_before, revoked_before.0),
        (&b, &b_before, revoked_before.1),
    ] {
        let now = m.owned();
        ensure!(
            now.is_subset(before),
            "kept partitions changed: {before:?} -> {now:?}"
        );
        let revoked: BTreeSet<i32> = lock(&m.view).revoked[skip..].iter().copied().collect();
        let lost: BTreeSet<i32> = before.difference(&now).copied().collect();
        ensure!(
            revoked == lost,
            "revoked {revoked:?}, but only {lost:?} moved"
        );
    }
    Ok(())
}

#[test]
fn a_static_member_restarting_within_the_session_keeps_its_assignment() -> Result<()> {
    let broker = start_broker()?;
    let bs = broker.bootstrap();
    let rt = runtime()?;
    create_topic(&rt, &bs, "static")?;
    let conf = |id: &'static str| {
        [
            ("group.instance.id", id),
            ("session.timeout.ms", "10000"),
            ("partition.assignment.strategy", "range"),
        ]
    };
    let a = Member::start(&rt, &bs, "g-static", "static", &conf("s-a"))?;
    wait_until("the leader owns everything", WAIT, || partitioned(&[&a]))?;
    let mut b = Member::start(&rt, &bs, "g-static", "static", &conf("s-b"))?;
    wait_until("2 static members", WAIT, || partitioned(&[&a, &b]))?;
    let (gen, b_had) = (a.generation(), b.owned());
    // close() of a static member sends no LeaveGroup: its place is kept.
    b.stop(&rt, CLOSE)?;
    let b2 = Member::start(&rt, &bs, "g-static", "static", &conf("s-b"))?;
    wait_until("the restarted member has its partitions back", WAIT, || {
        b2.check()?;
        Ok(b2.owned() == b_had)
    })
    .with_context(|| describe(&[&a, &b2]))?;
    ensure!(
        b2.generation() == gen,
        "restart rebalanced: generation {gen} -> {}",
        b2.generation()
    );
    ensure!(
        a.generation() == gen && a.owned().len() == 6,
        "the other member was disturbed: {}",
        describe(&[&a])
    );
    Ok(())
}

#[test]
fn a_member_that_stops_polling_leaves_and_rejoins_on_its_next_poll() -> Result<()> {
    let broker = start_broker()?;
    let bs = broker.bootstrap();
    let rt = runtime()?;
    create_topic(&rt, &bs, "slow")?;
    let conf = [("max.poll.interval.ms", "1500")];
    let a = Member::start(&rt, &bs, "g-slow", "slow", &conf)?;
    let b = Member::start(&rt, &bs, "g-slow", "slow", &conf)?;
    wait_until("2 members", WAIT, || partitioned(&[&a, &b]))?;
    let a_had = a.owned();
    a.pause();
    wait_until("the stalled member left; the other owns all", WAIT, || {
        partitioned(&[&b])
    })
    .with_context(|| describe(&[&a, &b]))?;
    ensure!(
        lock(&a.view).lost.is_empty(),
        "lost is reported inside poll"
    );
    a.resume();
    wait_until("the member rejoined at its next poll", WAIT, || {
        partitioned(&[&a, &b])
    })
    .with_context(|| describe(&[&a, &b]))?;
    let lost: BTreeSet<i32> = lock(&a.view).lost.iter().copied().collect();
    ensure!(
        lost == a_had,
        "lost {lost:?}, owned {a_had:?} before stalling"
    );
    Ok(())
}

#[test]
fn a_pattern_subscription_picks_up_new_topics() -> Result<()> {
    let broker = start_broker()?;
    let bs = broker.bootstrap();
    let rt = runtime()?;
    create_topic(&rt, &bs, "pat-a")?;
    create_topic(&rt, &bs, "other")?;
    let m = Member::start(&rt, &bs, "g-pat", "re:pat-.*", &[])?;
    let topics = |m: &Member| -> BTreeSet<String> {
        lock(&m.view)
            .owned_tps
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    };
    wait_until("the member owns pat-a", WAIT, || {
        m.check()?;
        Ok(lock(&m.view).owned_tps.len() == 12)
    })?;
    ensure!(
        topics(&m) == BTreeSet::from(["pat-a".to_owned()]),
        "{:?}",
        topics(&m)
    );
    create_topic(&rt, &bs, "pat-b")?;
    wait_until("the member owns pat-a and the new pat-b", WAIT, || {
        m.check()?;
        Ok(lock(&m.view).owned_tps.len() == 24)
    })
    .with_context(|| format!("{:?}", topics(&m)))?;
    ensure!(topics(&m).len() == 2, "{:?}", topics(&m));
    Ok(())
}
