//! Record batch round trips through brook's own builder and decoder, under every
//! codec, plus header patching and control batches.

use brook_protocol::records::header::{
    set_base_offset, set_log_append_time, set_partition_leader_epoch,
};
use brook_protocol::records::{
    decode_batches, end_txn_marker_batch, BatchBuilder, BatchHeader, Compression,
    ControlRecordType, Header, RecordBatch, RecordError,
};
use bytes::Bytes;
use proptest::prelude::*;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[derive(Debug, Clone)]
struct In {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn input() -> impl Strategy<Value = In> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..64);
    (
        -1_000_000i64..1_000_000_000_000,
        proptest::option::of(bytes.clone()),
        proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..2048)),
        proptest::collection::vec((bytes.clone(), proptest::option::of(bytes)), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| In {
            timestamp,
            key,
            value,
            headers,
        })
}

fn headers(i: &In) -> Vec<Header> {
    i.headers
        .iter()
        .map(|(k, v)| Header::new(k.clone(), v.clone()))
        .collect()
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure is a test failure"
)]
fn build(inputs: &[In], codec: Compression, base_offset: i64) -> Bytes {
    let mut b = BatchBuilder::new();
    b.set_base_offset(base_offset).set_producer(12, 3, 100);
    for i in inputs {
        b.append(
            i.timestamp,
            i.key.as_deref(),
            i.value.as_deref(),
            &headers(i),
        )
        .unwrap();
    }
    b.build(codec).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_under_every_codec(
        inputs in proptest::collection::vec(input(), 1..40),
        base_offset in 0i64..1 << 40,
    ) {
        for codec in CODECS {
            let bytes = build(&inputs, codec, base_offset);
            let batch = RecordBatch::decode(&bytes, 1 << 24).unwrap();
            prop_assert_eq!(batch.compression(), codec);
            prop_assert_eq!(batch.size(), bytes.len());
            prop_assert_eq!(batch.record_count() as usize, inputs.len());
            prop_assert_eq!(batch.last_offset(), base_offset + inputs.len() as i64 - 1);
            prop_assert_eq!(
                batch.max_timestamp(),
                inputs.iter().map(|i| i.timestamp).max().unwrap()
            );
            let records = batch.records().collect_all().unwrap();
            prop_assert_eq!(records.len(), inputs.len());
            for (n, (r, i)) in records.iter().zip(&inputs).enumerate() {
                prop_assert_eq!(r.offset, base_offset + n as i64);
                prop_assert_eq!(r.timestamp, i.timestamp);
                prop_assert_eq!(r.key.as_deref(), i.key.as_deref());
                prop_assert_eq!(r.value.as_deref(), i.value.as_deref());
                prop_assert_eq!(&r.headers, &headers(i));
            }
        }
    }

    #[test]
    fn patching_base_offset_and_epoch_keeps_the_crc_valid(
        inputs in proptest::collection::vec(input(), 1..5),
        offset in any::<i64>(),
        epoch in any::<i32>(),
    ) {
        let mut bytes = build(&inputs, Compression::Lz4, 0).to_vec();
        set_base_offset(&mut bytes, offset).unwrap();
        set_partition_leader_epoch(&mut bytes, epoch).unwrap();
        let batch = RecordBatch::decode(&Bytes::from(bytes), 1 << 24).unwrap();
        prop_assert_eq!(batch.base_offset(), offset);
        prop_assert_eq!(batch.partition_leader_epoch(), epoch);
        let first = batch.records().next().unwrap().unwrap();
        prop_assert_eq!(first.offset, offset);
    }
}

#[test]
fn log_append_time_rewrites_every_record_timestamp() {
    let inputs: Vec<In> = (0..3)
        .map(|n| In {
            timestamp: 10 + n,
            key: None,
            value: Some(vec![1]),
            headers: vec![],
        })
        .collect();
    let mut bytes = build(&inputs, Compression::Gzip, 0).to_vec();
    set_log_append_time(&mut bytes, 5_000).unwrap();
    let batch = RecordBatch::decode(&Bytes::from(bytes), 1 << 20).unwrap();
    assert!(batch.header().is_log_append_time());
    for r in batch.records() {
        assert_eq!(r.unwrap().timestamp, 5_000);
    }
}

#[test]
fn flipping_any_crc_covered_byte_is_detected() {
    let inputs = vec![In {
        timestamp: 1,
        key: Some(b"k".to_vec()),
        value: Some(b"v".to_vec()),
        headers: vec![],
    }];
    let good = build(&inputs, Compression::None, 0);
    for at in 21..good.len() {
        let mut bad = good.to_vec();
        bad[at] ^= 0x40;
        let err = RecordBatch::decode(&Bytes::from(bad), 1 << 20).unwrap_err();
        assert!(matches!(err, RecordError::Batch(_)), "byte {at}: {err:?}");
    }
}

#[test]
fn control_batches_expose_their_marker() {
    for (commit, kind) in [
        (true, ControlRecordType::Commit),
        (false, ControlRecordType::Abort),
    ] {
        let bytes = end_txn_marker_batch(77, 4, commit, 9, 123).unwrap();
        let batch = RecordBatch::decode(&bytes, 1 << 20).unwrap();
        assert!(batch.is_control() && batch.is_transactional());
        assert_eq!(batch.producer_epoch(), 4);
        assert_eq!(batch.control_record().unwrap().unwrap().kind, kind);
    }
    let data = build(
        &[In {
            timestamp: 0,
            key: None,
            value: None,
            headers: vec![],
        }],
        Compression::None,
        0,
    );
    let batch = RecordBatch::decode(&data, 1 << 20).unwrap();
    assert!(!batch.is_control());
    assert_eq!(batch.control_record().unwrap(), None);
}

#[test]
fn decode_batches_walks_a_run_and_stops_at_a_partial_tail() {
    let one = |v: u8| {
        build(
            &[In {
                timestamp: 0,
                key: None,
                value: Some(vec![v]),
                headers: vec![],
            }],
            Compression::Snappy,
            u64::from(v) as i64,
        )
    };
    let mut all = Vec::new();
    all.extend_from_slice(&one(1));
    all.extend_from_slice(&one(2));
    let partial = one(3);
    all.extend_from_slice(&partial[..partial.len() - 1]);
    let all = Bytes::from(all);
    let got: Vec<i64> = decode_batches(&all, 1 << 20)
        .map(|b| b.unwrap().base_offset())
        .collect();
    assert_eq!(got, vec![1, 2]);
    assert!(BatchHeader::new(&all).unwrap().validate().is_ok());
}

#[test]
fn decompressed_size_is_capped_per_batch() {
    let inputs = vec![In {
        timestamp: 0,
        key: None,
        value: Some(vec![0; 100_000]),
        headers: vec![],
    }];
    for codec in CODECS {
        let bytes = build(&inputs, codec, 0);
        assert!(matches!(
            RecordBatch::decode(&bytes, 50_000),
            Err(RecordError::DecompressedTooLarge { limit: 50_000 })
        ));
    }
}
