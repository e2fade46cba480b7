//! Incremental fetch sessions (KIP-227) against a real brook process: the
//! session protocol driven with raw Fetch requests (creation, incremental
//! answers carrying only changes, forgetting, the three session errors,
//! closing), and librdkafka consuming many partitions (it sends sessionless
//! fetches: `SessionId` 0, epoch -1, even in 2.12) still reading every record
//! in order.

mod common;

use std::collections::BTreeMap;

use anyhow::{ensure, Context, Result};
use brook_broker::kafka_client::Client;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use brook_protocol::messages::fetch_response::FetchResponse;
use brook_protocol::messages::FetchRequest;
use brook_tests::{Broker, BrokerOptions};
use common::{consume_all, consumer, produce_all, producer, TestRecord};

fn record(i: usize) -> TestRecord {
    TestRecord {
        key: Some(format!("k{i}").into_bytes()),
        value: Some(format!("value-{i:06}").into_bytes()),
        headers: Vec::new(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

/// A Fetch (v12: topics by name) of `topic`'s `parts` at the given offsets.
fn fetch(session_id: i32, epoch: i32, topic: &str, parts: &[(i32, i64)]) -> FetchRequest {
    FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 1 << 20,
        session_id,
        session_epoch: epoch,
        topics: if parts.is_empty() {
            Vec::new()
        } else {
            vec![FetchTopic {
                topic: topic.to_owned(),
                partitions: parts
                    .iter()
                    .map(|&(partition, fetch_offset)| FetchPartition {
                        partition,
                        fetch_offset,
                        partition_max_bytes: 64 << 10,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

/// Partitions in a response, with their HW and whether they carry records.
fn answered(resp: &FetchResponse) -> BTreeMap<i32, (i64, bool)> {
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            let records = match &p.records {
                Some(brook_protocol::codec::Records::Bytes(b)) => !b.is_empty(),
                _ => false,
            };
            (p.partition_index, (p.high_watermark, records))
        })
        .collect()
}

#[test]
fn incremental_fetches_carry_only_changes() -> Result<()> {
    const PARTS: i32 = 50;
    let broker = Broker::start(BrokerOptions::default().partitions(PARTS))?;
    let topic = "sessions";
    let p = producer(&broker.bootstrap(), &[])?;
    produce_all(&p, topic, PARTS as usize, |i| (Some(i as i32), record(i)))?;
    let all_at = |offset| (0..PARTS).map(|p| (p, offset)).collect::<Vec<_>>();
    let rt = runtime()?;
    rt.block_on(async {
        let mut c = Client::connect(&broker.bootstrap()).await?;
        // Full fetch, epoch 0: a session, every partition with its record.
        let resp = c.send(&fetch(0, 0, topic, &all_at(0)), 12).await?;
        ensure!(
            resp.error_code == 0,
            "full fetch failed: {}",
            resp.error_code
        );
        let id = resp.session_id;
        ensure!(id > 0, "no session created");
        let got = answered(&resp);
        ensure!(got.len() == PARTS as usize && got.values().all(|&(hw, r)| hw == 1 && r));

        // Every partition moved on; nothing new: an empty answer.
        let resp = c.send(&fetch(id, 1, topic, &all_at(1)), 12).await?;
        ensure!(resp.error_code == 0 && resp.session_id == id);
        ensure!(
            answered(&resp).is_empty(),
            "unchanged partitions sent: {:?}",
            answered(&resp)
        );

        // One partition gets a record: only it comes back, the request naming none.
        produce_all(&p, topic, 1, |_| (Some(7), record(1000)))?;
        let resp = c.send(&fetch(id, 2, topic, &[]), 12).await?;
        ensure!(resp.error_code == 0 && resp.session_id == id);
        let got = answered(&resp);
        ensure!(
            got.keys().copied().collect::<Vec<_>>() == vec![7] && got[&7] == (2, true),
            "expected only partition 7 with its new record, got {got:?}"
        );

        // The session errors, as Kafka returns them (top-level, session id 0).
        let resp = c.send(&fetch(id, 2, topic, &[]), 12).await?;
        ensure!(
            resp.error_code == ErrorCode::INVALID_FETCH_SESSION_EPOCH.code(),
            "{}",
            resp.error_code
        );
        ensure!(resp.session_id == 0 && resp.responses.is_empty());
        let resp = c.send(&fetch(id, 3, topic, &[]), 13).await?;
        ensure!(
            resp.error_code == ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR.code(),
            "{}",
            resp.error_code
        );
        let resp = c
            .send(&fetch(id.wrapping_add(1).max(1), 3, topic, &[]), 12)
            .await?;
        ensure!(
            resp.error_code == ErrorCode::FETCH_SESSION_ID_NOT_FOUND.code(),
            "{}",
            resp.error_code
        );
        ensure!(broker.metric("brook_fetch_sessions")? == Some(1.0));

        // Forget all but partition 7, which moved on: the session shrinks.
        let mut req = fetch(id, 3, topic, &[(7, 2)]);
        req.forgotten_topics_data = vec![ForgottenTopic {
            topic: topic.to_owned(),
            partitions: (0..PARTS).filter(|&p| p != 7).collect(),
            ..Default::default()
        }];
        let resp = c.send(&req, 12).await?;
        ensure!(resp.error_code == 0 && resp.session_id == id);
        ensure!(broker.metric("brook_fetch_session_partitions")? == Some(1.0));
        // A record on a forgotten partition is not sent.
        produce_all(&p, topic, 1, |_| (Some(3), record(1001)))?;
        let resp = c.send(&fetch(id, 4, topic, &[]), 12).await?;
        ensure!(
            answered(&resp).is_empty(),
            "forgotten partition sent: {:?}",
            answered(&resp)
        );

        // Epoch -1 with the id closes the session; the fetch is answered in full.
        let resp = c.send(&fetch(id, -1, topic, &[(3, 1)]), 12).await?;
        ensure!(resp.error_code == 0 && resp.session_id == 0);
        ensure!(answered(&resp).get(&3) == Some(&(2, true)));
        ensure!(broker.metric("brook_fetch_sessions")? == Some(0.0));
        ensure!(broker.metric("brook_fetch_sessions_created_total")? == Some(1.0));
        Ok(())
    })
}

#[test]
fn sessions_off_answers_every_fetch_in_full() -> Result<()> {
    let broker = Broker::start(
        BrokerOptions::default()
            .partitions(4)
            .config("max.incremental.fetch.session.cache.slots", "0"),
    )?;
    let p = producer(&broker.bootstrap(), &[])?;
    produce_all(&p, "off", 4, |i| (Some(i as i32), record(i)))?;
    runtime()?.block_on(async {
        let mut c = Client::connect(&broker.bootstrap()).await?;
        let parts: Vec<_> = (0..4).map(|p| (p, 0)).collect();
        let resp = c.send(&fetch(0, 0, "off", &parts), 12).await?;
        ensure!(resp.error_code == 0 && resp.session_id == 0);
        ensure!(answered(&resp).len() == 4);
        Ok(())
    })
}

/// librdkafka sends sessionless fetches; with 300 partitions every record
/// still arrives, in order, and no session is created.
#[test]
fn librdkafka_reads_many_partitions_in_order() -> Result<()> {
    const PARTS: i32 = 300;
    const PER: usize = 20;
    let broker = Broker::start(BrokerOptions::default().partitions(PARTS))?;
    let topic = "many";
    let p = producer(&broker.bootstrap(), &[])?;
    let delivered = produce_all(&p, topic, PARTS as usize * PER, |i| {
        (Some((i % PARTS as usize) as i32), record(i))
    })?;
    let mut expected: BTreeMap<i32, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    for d in &delivered {
        expected
            .entry(d.partition)
            .or_default()
            .push((d.offset, record(d.index).value.unwrap_or_default()));
    }
    for v in expected.values_mut() {
        v.sort();
    }
    let c = consumer(&broker.bootstrap(), &[])?;
    let parts: Vec<i32> = (0..PARTS).collect();
    let got = consume_all(&c, topic, &parts)?;
    for (part, want) in &expected {
        let have: Vec<(i64, Vec<u8>)> = got
            .get(part)
            .map(|v| {
                v.iter()
                    .map(|r| (r.offset, r.record.value.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        ensure!(&have == want, "partition {part}: records differ");
    }
    ensure!(broker.metric("brook_fetch_sessions_created_total")? == Some(0.0));
    Ok(())
}
