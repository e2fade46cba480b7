//! The `brook serve` process contract the other tests rely on: the ready file,
//! graceful shutdown on SIGTERM and SIGINT (exit 0, data kept), restart on the same
//! data dir, and `BROOK_*` environment overrides of config keys.

mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use brook_tests::{wait_until, Broker, BrokerOptions, Signal};
use common::{checksum, consume_all, consumer, produce_all, producer, TestRecord};
use rdkafka::consumer::Consumer;

fn record(i: usize) -> TestRecord {
    TestRecord {
        key: Some(format!("k{i}").into_bytes()),
        value: Some(format!("v{i}").into_bytes()),
        headers: vec![("h".to_owned(), vec![i as u8])],
    }
}

fn produce_and_sum(broker: &Broker, topic: &str, partitions: i32) -> Result<u64> {
    let p = producer(&broker.bootstrap(), &[])?;
    produce_all(&p, topic, 2000, |i| {
        (Some((i % partitions as usize) as i32), record(i))
    })?;
    read_sum(broker, topic, partitions)
}

fn read_sum(broker: &Broker, topic: &str, partitions: i32) -> Result<u64> {
    let c = consumer(&broker.bootstrap(), &[])?;
    let parts: Vec<i32> = (0..partitions).collect();
    let got = consume_all(&c, topic, &parts)?;
    let n: usize = got.values().map(Vec::len).sum();
    ensure!(n == 2000, "read {n} of 2000 records");
    Ok(checksum(
        got.values()
            .flatten()
            .map(|c| (c.partition, c.offset, &c.record)),
    ))
}

#[test]
fn graceful_shutdown_on_sigterm_and_sigint_keeps_data() -> Result<()> {
    let mut broker = Broker::start(BrokerOptions::default().partitions(2))?;
    let before = produce_and_sum(&broker, "durable", 2)?;

    let status = broker.sigterm()?;
    ensure!(status.success(), "SIGTERM exit status {status}");
    broker.restart()?;
    ensure!(
        read_sum(&broker, "durable", 2)? == before,
        "records changed across a SIGTERM restart"
    );

    let status = broker.signal_and_wait(Signal::SIGINT)?;
    ensure!(status.success(), "SIGINT exit status {status}");
    broker.restart()?;
    ensure!(
        read_sum(&broker, "durable", 2)? == before,
        "records changed across a SIGINT restart"
    );
    Ok(())
}

#[test]
fn environment_overrides_config_keys() -> Result<()> {
    let mut opts = BrokerOptions::default().partitions(1);
    opts.env
        .push(("BROOK_NUM_PARTITIONS".to_owned(), "5".to_owned()));
    let broker = Broker::start(opts)?;
    // Consumers default to allow.auto.create.topics=false in their Metadata requests.
    let c = consumer(&broker.bootstrap(), &[("allow.auto.create.topics", "true")])?;
    // Metadata for an unknown topic auto-creates it with num.partitions partitions;
    // like Kafka, the first answer may still say LEADER_NOT_AVAILABLE with none.
    let mut parts = None;
    wait_until(
        "env-topic to have partitions",
        Duration::from_secs(10),
        || {
            let md = c.fetch_metadata(Some("env-topic"), Duration::from_secs(10))?;
            parts = md.topics().first().map(|t| t.partitions().len());
            Ok(parts.is_some_and(|n| n > 0))
        },
    )?;
    ensure!(
        parts == Some(5),
        "auto-created topic has {parts:?} partitions; BROOK_NUM_PARTITIONS=5 overrides num.partitions = 1"
    );
    Ok(())
}

#[test]
fn ready_file_names_live_listeners() -> Result<()> {
    let broker = Broker::start_default()?;
    ensure!(broker.rss_bytes()? > 0, "no RSS for pid {}", broker.pid());
    let metrics = brook_tests::http_get(broker.admin_addr(), "/metrics")?;
    ensure!(
        metrics.contains("brook_"),
        "/metrics at {} has no brook_ metrics",
        broker.admin_url()
    );
    std::net::TcpStream::connect(broker.kafka_addr())?;
    Ok(())
}
