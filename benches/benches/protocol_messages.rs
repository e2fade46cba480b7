//! Message codec benchmarks for brook-protocol's two hot messages.
//!
//! - `produce_decode_1mib`: decoding a Produce request (v11, flexible) that
//!   carries one 1 MiB record batch. Decoding must not copy the batch: the
//!   decoded `Records::Bytes` is a slice of the request buffer, checked before
//!   the benchmark runs, so the figure is the cost of the message framing alone.
//! - `fetch_response_encode_100_partitions`: encoding a Fetch response (v16)
//!   for 100 partitions whose record sets are file regions
//!   (`Records::Region`), i.e. everything the broker writes itself before
//!   `sendfile` takes over.
//!
//! Run: `cargo bench -p brook-benches --bench protocol_messages -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use brook_protocol::codec::{Chunk, Encoder, Message, Records};
use brook_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use brook_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use brook_protocol::messages::{FetchResponse, ProduceRequest};
use brook_protocol::records::{BatchBuilder, Compression};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const PRODUCE_VERSION: i16 = 11;
const FETCH_VERSION: i16 = 16;
const BATCH_BYTES: usize = 1 << 20;
const PARTITIONS: i32 = 100;

/// An uncompressed batch of 1 KiB records, just over 1 MiB in total.
fn batch_1mib() -> Bytes {
    let value = vec![0x5a_u8; 1024];
    let mut b = BatchBuilder::new();
    let mut i = 0_i64;
    while b.estimated_size() < BATCH_BYTES {
        let key = i.to_be_bytes();
        if let Err(e) = b.append(1_700_000_000_000 + i, Some(&key), Some(&value), &[]) {
            panic!("append: {e}");
        }
        i += 1;
    }
    match b.build(Compression::None) {
        Ok(batch) => batch,
        Err(e) => panic!("build: {e}"),
    }
}

fn produce_request_bytes(batch: Bytes) -> Bytes {
    let req = ProduceRequest {
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: "bench".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(Records::Bytes(batch)),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut e = Encoder::new();
    if let Err(err) = req.encode(&mut e, PRODUCE_VERSION) {
        panic!("encode produce: {err}");
    }
    match e.into_bytes() {
        Ok(b) => b,
        Err(err) => panic!("produce bytes: {err}"),
    }
}

/// The records of the only partition, or a panic saying what was found.
fn only_records(req: &ProduceRequest) -> &Bytes {
    match req
        .topic_data
        .first()
        .and_then(|t| t.partition_data.first())
        .and_then(|p| p.records.as_ref())
    {
        Some(Records::Bytes(b)) => b,
        other => panic!("unexpected records {other:?}"),
    }
}

fn bench_produce_decode(c: &mut Criterion) {
    let input = produce_request_bytes(batch_1mib());

    // Zero-copy: the decoded record set must lie inside the input buffer.
    let decoded = match ProduceRequest::decode(&mut input.clone(), PRODUCE_VERSION) {
        Ok(r) => r,
        Err(e) => panic!("decode produce: {e}"),
    };
    let records = only_records(&decoded);
    let (start, end) = (
        input.as_ptr() as usize,
        input.as_ptr() as usize + input.len(),
    );
    let at = records.as_ptr() as usize;
    assert!(
        records.len() >= BATCH_BYTES,
        "batch of {} bytes",
        records.len()
    );
    assert!(
        at >= start && at + records.len() <= end,
        "decoded records were copied out of the request buffer"
    );

    let mut g = c.benchmark_group("protocol_messages");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("produce_decode_1mib", |b| {
        b.iter(|| {
            let mut buf = input.clone();
            match ProduceRequest::decode(black_box(&mut buf), PRODUCE_VERSION) {
                Ok(r) => r,
                Err(e) => panic!("decode produce: {e}"),
            }
        });
    });
    g.finish();
}

fn fetch_response() -> FetchResponse {
    let partitions = (0..PARTITIONS)
        .map(|p| PartitionData {
            partition_index: p,
            high_watermark: 1_000_000 + i64::from(p),
            last_stable_offset: 1_000_000 + i64::from(p),
            log_start_offset: 0,
            records: Some(Records::Region {
                id: u64::from(p.unsigned_abs()),
                len: 1 << 20,
            }),
            ..Default::default()
        })
        .collect();
    FetchResponse {
        session_id: 0,
        responses: vec![FetchableTopicResponse {
            topic_id: brook_protocol::codec::Uuid::from_bytes([7; 16]),
            partitions,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn bench_fetch_encode(c: &mut Criterion) {
    let resp = fetch_response();
    let chunks = {
        let mut e = Encoder::new();
        if let Err(err) = resp.encode(&mut e, FETCH_VERSION) {
            panic!("encode fetch: {err}");
        }
        e.finish()
    };
    let regions = chunks
        .iter()
        .filter(|c| matches!(c, Chunk::Region { .. }))
        .count();
    assert_eq!(regions, 100, "every partition's records are a region");

    let mut g = c.benchmark_group("protocol_messages");
    g.throughput(Throughput::Elements(u64::from(PARTITIONS.unsigned_abs())));
    g.bench_function("fetch_response_encode_100_partitions", |b| {
        b.iter(|| {
            let mut e = Encoder::with_capacity(8 * 1024);
            if let Err(err) = black_box(&resp).encode(&mut e, FETCH_VERSION) {
                panic!("encode fetch: {err}");
            }
            e.finish()
        });
    });
    g.finish();
}

criterion_group!(benches, bench_produce_decode, bench_fetch_encode);
criterion_main!(benches);
