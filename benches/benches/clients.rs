//! Throughput of brook's Rust clients next to librdkafka, in the same run,
//! against the same `brook serve`.
//!
//! Cases: 100-byte and 1 KiB records × acks=1 and acks=all (idempotent on both
//! sides for acks=all). Per case and run: brook-producer and librdkafka each
//! write N records to their own fresh topic (alternating which goes first),
//! then brook-consumer and librdkafka each read one of those topics from the
//! beginning. Both sides use the same batching (linger.ms=5, 256 KiB batches,
//! no compression). Printed: records/s per client and the median ratio
//! brook / librdkafka over the runs.
//!
//! Run (release build of the broker first):
//! `cargo build --release -p brook-broker --bin brook && cargo bench -p brook-benches --bench clients`.
//! `BROOK_BIN` overrides the broker binary; `CLIENT_BENCH_RUNS` the run count (5).
//! Without `--bench` (e.g. under `cargo test`) it runs one tiny round as a smoke test.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use brook_config::client::{ConsumerConfig, ProducerConfig};
use brook_consumer::Consumer;
use brook_producer::{Producer, ProducerRecord, TopicPartition};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;

struct Broker {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn brook_bin(smoke: bool) -> Result<PathBuf> {
    if let Some(b) = std::env::var_os("BROOK_BIN") {
        return Ok(PathBuf::from(b));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target");
    let order = if smoke {
        ["debug", "release"]
    } else {
        ["release", "debug"]
    };
    for profile in order {
        let p = root.join(profile).join("brook");
        if p.is_file() {
            if profile == "debug" && !smoke {
                eprintln!(
                    "warning: using a debug brook binary; build --release for meaningful numbers"
                );
            }
            return Ok(p);
        }
    }
    bail!(
        "no brook binary: run `cargo build --release -p brook-broker --bin brook` or set BROOK_BIN"
    )
}

fn start_broker(smoke: bool) -> Result<Broker> {
    let dir = tempfile::tempdir()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let admin = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let cfg = dir.path().join("brook.toml");
    std::fs::write(
        &cfg,
        format!(
            "log.dirs = [\"{}\"]\nlisteners = \"127.0.0.1:{port}\"\nadmin.listener = \"127.0.0.1:{admin}\"\nnum.partitions = {PARTITIONS}\n",
            dir.path().join("data").display()
        ),
    )?;
    let log = std::fs::File::create(dir.path().join("brook.log"))?;
    let child = Command::new(brook_bin(smoke)?)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        ensure!(
            Instant::now() < deadline,
            "brook did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Broker {
        child,
        addr,
        _dir: dir,
    })
}

#[derive(Clone, Copy)]
struct Case {
    size: usize,
    acks: &'static str,
    records: usize,
}

fn value(size: usize, i: usize) -> Vec<u8> {
    let mut v = format!("{i:010}").into_bytes();
    v.resize(size, b'x');
    v
}

async fn brook_produce(addr: &str, topic: &str, c: Case) -> Result<Duration> {
    let p = Producer::new(ProducerConfig::from_map([
        ("bootstrap.servers", addr),
        ("acks", c.acks),
        ("linger.ms", "5"),
        ("batch.size", "262144"),
        ("buffer.memory", "134217728"),
    ])?)?;
    // Metadata first, so both clients are timed from a warm start.
    p.client().refresh_metadata(&[topic]).await?;
    let start = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for i in 0..c.records {
        let rec = ProducerRecord::new(topic.to_owned(), value(c.size, i))
            .with_partition((i % PARTITIONS as usize) as i32);
        pending.push_back(p.enqueue(rec).await?);
        if pending.len() > 100_000 {
            if let Some(d) = pending.pop_front() {
                d.wait().await?;
            }
        }
    }
    while let Some(d) = pending.pop_front() {
        d.wait().await?;
    }
    let took = start.elapsed();
    p.close().await;
    Ok(took)
}

fn rdkafka_produce(addr: &str, topic: &str, c: Case) -> Result<Duration> {
    let idempotent = if c.acks == "all" { "true" } else { "false" };
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("acks", c.acks)
        .set("enable.idempotence", idempotent)
        .set("linger.ms", "5")
        .set("batch.size", "262144")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "131072")
        .create()?;
    p.client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let start = Instant::now();
    for i in 0..c.records {
        let v = value(c.size, i);
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
            .payload(&v[..])
            .partition((i % PARTITIONS as usize) as i32);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    p.poll(Duration::from_millis(1));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(120))?;
    ensure!(
        p.in_flight_count() == 0,
        "librdkafka did not deliver everything"
    );
    Ok(start.elapsed())
}

async fn brook_consume(addr: &str, topic: &str, c: Case) -> Result<Duration> {
    let mut consumer = Consumer::new(ConsumerConfig::from_map([
        ("bootstrap.servers", addr),
        ("auto.offset.reset", "earliest"),
        ("max.poll.records", "5000"),
    ])?);
    consumer.assign((0..PARTITIONS).map(|p| TopicPartition::new(topic, p)));
    let start = Instant::now();
    let mut n = 0;
    while n < c.records {
        ensure!(
            start.elapsed() < Duration::from_secs(120),
            "brook-consumer read {n} of {}",
            c.records
        );
        n += consumer.poll(Duration::from_millis(500)).await?.len();
    }
    Ok(start.elapsed())
}

fn rdkafka_consume(addr: &str, topic: &str, c: Case) -> Result<Duration> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "bench-assign")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let mut n = 0;
    while n < c.records {
        ensure!(
            start.elapsed() < Duration::from_secs(120),
            "librdkafka read {n} of {}",
            c.records
        );
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            m.context("librdkafka consume")?;
            n += 1;
        }
    }
    Ok(start.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let runs: usize = if bench {
        std::env::var("CLIENT_BENCH_RUNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5)
    } else {
        1
    };
    let scale = if bench { 1 } else { 100 };
    let cases = [
        Case {
            size: 100,
            acks: "1",
            records: 500_000 / scale,
        },
        Case {
            size: 100,
            acks: "all",
            records: 500_000 / scale,
        },
        Case {
            size: 1024,
            acks: "1",
            records: 100_000 / scale,
        },
        Case {
            size: 1024,
            acks: "all",
            records: 100_000 / scale,
        },
    ];
    let broker = start_broker(!bench)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("| case | brook produce rec/s | librdkafka produce rec/s | ratio (median) | brook consume rec/s | librdkafka consume rec/s | ratio (median) |");
    println!("|---|---|---|---|---|---|---|");
    for (ci, c) in cases.iter().enumerate() {
        let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let (mut pr, mut cr) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let (bt, rt_topic) = (format!("b-{ci}-{run}"), format!("r-{ci}-{run}"));
            let (b, r) = if run % 2 == 0 {
                let b = rt.block_on(brook_produce(&broker.addr, &bt, *c))?;
                (b, rdkafka_produce(&broker.addr, &rt_topic, *c)?)
            } else {
                let r = rdkafka_produce(&broker.addr, &rt_topic, *c)?;
                (rt.block_on(brook_produce(&broker.addr, &bt, *c))?, r)
            };
            // Both consumers read the same topic (the one brook-producer wrote).
            let (bc, rc) = if run % 2 == 0 {
                let bc = rt.block_on(brook_consume(&broker.addr, &bt, *c))?;
                (bc, rdkafka_consume(&broker.addr, &bt, *c)?)
            } else {
                let rc = rdkafka_consume(&broker.addr, &bt, *c)?;
                (rt.block_on(brook_consume(&broker.addr, &bt, *c))?, rc)
            };
            let rate = |d: Duration| c.records as f64 / d.as_secs_f64();
            rates.entry("bp").or_default().push(rate(b));
            rates.entry("rp").or_default().push(rate(r));
            rates.entry("bc").or_default().push(rate(bc));
            rates.entry("rc").or_default().push(rate(rc));
            pr.push(rate(b) / rate(r));
            cr.push(rate(bc) / rate(rc));
        }
        let m = |k: &str| median(rates.get(k).cloned().unwrap_or_default());
        println!(
            "| {} B, acks={} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} |",
            c.size,
            c.acks,
            m("bp"),
            m("rp"),
            median(pr),
            m("bc"),
            m("rc"),
            median(cr)
        );
    }
    Ok(())
}
