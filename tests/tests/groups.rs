//! Consumer groups against a real brook process, with real clients: librdkafka
//! (rdkafka `BaseConsumer`s in this process), confluent-kafka members in their
//! own Python processes (so one can be `kill -9`ed), kafka-python, and the
//! `brook group` CLI.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use brook_tests::{
    brook_binary, require_clients, venv_python, wait_until, workspace_root, Broker, BrokerOptions,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

const PARTITIONS: i32 = 12;
/// Long enough for a member killed with -9 to be expired and the rest rebalanced.
const REBALANCE_WAIT: Duration = Duration::from_secs(40);

fn start_broker() -> Result<Broker> {
    Broker::start(
        BrokerOptions::default()
            .partitions(PARTITIONS)
            .config("group.initial.rebalance.delay.ms", "0")
            .config("offsets.topic.num.partitions", "5"),
    )
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let res = rt.block_on(admin.create_topics(
        &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))?;
    for r in res {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// Counts the assignments a member received (each one is a completed rebalance).
struct Counting(Arc<AtomicUsize>);
impl ClientContext for Counting {}
impl ConsumerContext for Counting {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if matches!(r, Rebalance::Assign(_)) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn member(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> Result<(BaseConsumer<Counting>, Arc<AtomicUsize>)> {
    let n = Arc::new(AtomicUsize::new(0));
    let c: BaseConsumer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create_with_context(Counting(n.clone()))?;
    c.subscribe(&[topic])?;
    Ok((c, n))
}

fn owned(c: &BaseConsumer<Counting>) -> BTreeSet<i32> {
    c.assignment()
        .map(|l| l.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// A confluent-kafka member in its own process; its latest `ASSIGNED` line.
struct PyMember {
    child: Child,
    assigned: Arc<Mutex<Option<BTreeSet<i32>>>>,
}

impl PyMember {
    fn start(
        bootstrap: &str,
        topic: &str,
        group: &str,
        instance: Option<&str>,
    ) -> Result<Option<Self>> {
        let Some(python) = venv_python() else {
            if require_clients() {
                bail!(".venv-test/ is missing (BROOK_REQUIRE_CLIENTS=1)");
            }
            eprintln!("SKIPPED: .venv-test/ is missing; scripts/install-test-deps.sh creates it");
            return Ok(None);
        };
        let dir = workspace_root().join("tests").join("python");
        let mut cmd = Command::new(python);
        cmd.arg(dir.join("groups_member.py"))
            .arg(topic)
            .arg(group)
            .args(instance)
            .current_dir(&dir);
        let mut child = cmd
            .env("BROOK_BOOTSTRAP", bootstrap)
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().context("member stdout")?;
        let assigned = Arc::new(Mutex::new(None));
        let a = assigned.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if let Some(rest) = line.strip_prefix("ASSIGNED ") {
                    let set = rest
                        .split(',')
                        .filter_map(|p| p.trim().parse().ok())
                        .collect();
                    *a.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(set);
                }
            }
        });
        Ok(Some(Self { child, assigned }))
    }

    fn owned(&self) -> Option<BTreeSet<i32>> {
        self.assigned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn kill9(&mut self) -> Result<()> {
        self.child.kill()?; // SIGKILL
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for PyMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when the sets are disjoint, non-empty, and cover every partition.
fn partitioned(sets: &[BTreeSet<i32>]) -> bool {
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    sets.iter().all(|s| !s.is_empty()) && total == union.len() && union == (0..PARTITIONS).collect()
}

#[test]
fn members_split_partitions_and_a_killed_member_is_replaced() -> Result<()> {
    let broker = start_broker()?;
    let bs = broker.bootstrap();
    create_topic(&bs, "split", PARTITIONS)?;
    let (a, _) = member(&bs, "g-split", "split")?;
    let (b, _) = member(&bs, "g-split", "split")?;
    let Some(mut py) = PyMember::start(&bs, "split", "g-split", None)? else {
        return Ok(());
    };
    let poll = || {
        a.poll(Duration::from_millis(20));
        b.poll(Duration::from_millis(20));
    };
    wait_until(
        "3 members own all 12 partitions, each exactly once",
        REBALANCE_WAIT,
        || {
            poll();
            Ok(py
                .owned()
                .is_some_and(|p| partitioned(&[owned(&a), owned(&b), p])))
        },
    )
    .with_context(|| broker.log_tail())?;
    py.kill9()?;
    wait_until(
        "the killed member's partitions move to the other two",
        REBALANCE_WAIT,
        || {
            poll();
            Ok(partitioned(&[owned(&a), owned(&b)]))
        },
    )?;
    let (c, _) = member(&bs, "g-split", "split")?;
    wait_until("a new member gets a share", REBALANCE_WAIT, || {
        poll();
        c.poll(Duration::from_millis(20));
        Ok(partitioned(&[owned(&a), owned(&b), owned(&c)]))
    })?;
    Ok(())
}

#[test]
fn static_member_restart_causes_no_rebalance() -> Result<()> {
    let broker = start_broker()?;
    let bs = broker.bootstrap();
    create_topic(&bs, "static", PARTITIONS)?;
    let (a, rebalances) = member(&bs, "g-static", "static")?;
    wait_until("a owns everything", REBALANCE_WAIT, || {
        a.poll(Duration::from_millis(20));
        Ok(owned(&a).len() == PARTITIONS as usize)
    })?;
    let Some(mut s) = PyMember::start(&bs, "static", "g-static", Some("static-1"))? else {
        return Ok(());
    };
    wait_until("the static member gets a share", REBALANCE_WAIT, || {
        a.poll(Duration::from_millis(20));
        Ok(s.owned().is_some_and(|p| partitioned(&[owned(&a), p])))
    })?;
    let before = (rebalances.load(Ordering::SeqCst), owned(&a), s.owned());
    s.kill9()?;
    let Some(s2) = PyMember::start(&bs, "static", "g-static", Some("static-1"))? else {
        return Ok(());
    };
    wait_until(
        "the restarted static member gets its old partitions back",
        REBALANCE_WAIT,
        || {
            a.poll(Duration::from_millis(20));
            Ok(s2.owned().is_some())
        },
    )?;
    // Keep polling past a heartbeat interval: a rebalance would show up by now.
    for _ in 0..50 {
        a.poll(Duration::from_millis(20));
    }
    ensure!(
        s2.owned() == before.2,
        "static member's assignment changed: {:?} → {:?}",
        before.2,
        s2.owned()
    );
    ensure!(
        owned(&a) == before.1,
        "the other member's assignment changed"
    );
    ensure!(
        rebalances.load(Ordering::SeqCst) == before.0,
        "the other member saw a rebalance"
    );
    Ok(())
}

#[test]
fn committed_offsets_survive_restart_and_cli_shows_lag() -> Result<()> {
    let mut broker = start_broker()?;
    let bs = broker.bootstrap();
    create_topic(&bs, "commits", 2)?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", &bs).create()?;
    for i in 0..10 {
        producer
            .send(
                BaseRecord::<(), _>::to("commits")
                    .partition(0)
                    .payload(&format!("v{i}")),
            )
            .map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(30))?;
    let (c, _) = member(&bs, "g-commit", "commits")?;
    wait_until("assigned", REBALANCE_WAIT, || {
        c.poll(Duration::from_millis(20));
        Ok(owned(&c).len() == 2)
    })?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("commits", 0, Offset::Offset(7))?;
    c.commit(&tpl, CommitMode::Sync)?;
    drop(c);
    broker.kill9()?;
    broker.restart()?;
    let bs = broker.bootstrap();
    let (c, _) = member(&bs, "g-commit", "commits")?;
    let mut want = TopicPartitionList::new();
    want.add_partition("commits", 0);
    let got = c.committed_offsets(want, Duration::from_secs(10))?;
    let off = got.find_partition("commits", 0).map(|e| e.offset());
    ensure!(
        off == Some(Offset::Offset(7)),
        "committed offset after restart: {off:?}"
    );
    drop(c);
    // The consumer closed, so the group drains to Empty; describe shows the lag.
    let mut lag = None;
    wait_until("brook group describe shows lag 3", REBALANCE_WAIT, || {
        let Ok(out) = Command::new(brook_binary().unwrap_or_default())
            .args([
                "group",
                "describe",
                "g-commit",
                "--json",
                "--bootstrap",
                &bs,
            ])
            .output()
        else {
            return Ok(false);
        };
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        lag = v["offsets"].as_array().and_then(|rows| {
            rows.iter()
                .find(|r| r["topic"] == "commits" && r["partition"] == 0)
                .map(|r| {
                    (
                        r["committed"].clone(),
                        r["log_end"].clone(),
                        r["lag"].clone(),
                    )
                })
        });
        Ok(lag
            .as_ref()
            .is_some_and(|(c, e, l)| *c == 7 && *e == 10 && *l == 3))
    })
    .with_context(|| format!("last describe row: {lag:?}"))?;
    Ok(())
}

/// Regression: on a fresh broker the first group lookup creates
/// `__consumer_offsets` (50 partitions, opened one by one), and FindCoordinator
/// names this broker at once. OffsetFetch for a group whose partition was not
/// open yet answered NOT_COORDINATOR, which librdkafka's `committed()` reports
/// as a failure instead of retrying. It must answer
/// COORDINATOR_LOAD_IN_PROGRESS (retriable) until the shard is loaded.
#[test]
fn committed_offsets_right_after_the_offsets_topic_is_created() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(1))?;
    let bs = broker.bootstrap();
    create_topic(&bs, "fresh", 1)?;
    // Several groups, so some map to offsets partitions opened late.
    for g in 0..4 {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bs)
            .set("group.id", format!("fresh-group-{g}"))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut want = TopicPartitionList::new();
        want.add_partition("fresh", 0);
        let got = c
            .committed_offsets(want, Duration::from_secs(30))
            .with_context(|| format!("committed() of fresh-group-{g}"))?;
        let off = got.find_partition("fresh", 0).map(|e| e.offset());
        ensure!(
            off == Some(Offset::Invalid),
            "a group that never committed has {off:?}"
        );
    }
    Ok(())
}

fn run_python(script: &str) -> Result<()> {
    let Some(python) = venv_python() else {
        if require_clients() {
            bail!(".venv-test/ is missing (BROOK_REQUIRE_CLIENTS=1)");
        }
        eprintln!("SKIPPED: .venv-test/ is missing");
        return Ok(());
    };
    let broker = start_broker()?;
    let dir = workspace_root().join("tests").join("python");
    let out = Command::new(python)
        .arg(dir.join(script))
        .current_dir(&dir)
        .env("BROOK_BOOTSTRAP", broker.bootstrap())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    ensure!(
        out.status.success(),
        "{script} failed\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log_tail()
    );
    Ok(())
}

#[test]
fn confluent_kafka_group_consumer() -> Result<()> {
    run_python("groups_confluent_kafka.py")
}

#[test]
fn kafka_python_group_consumer() -> Result<()> {
    run_python("groups_kafka_python.py")
}
