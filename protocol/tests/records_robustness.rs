//! Truncated, garbage and hostile batches yield errors, never panics or large
//! allocations. Random bytes alone rarely pass the CRC, so most cases mutate a
//! valid batch and then fix the CRC up, which drives the record parser and the
//! decompressors with hostile input.

use brook_protocol::records::{
    decode_batches, BatchBuilder, Compression, Header, RecordBatch, RecordError,
};
use bytes::Bytes;
use proptest::prelude::*;

const CRC_START: usize = 21;

fn fix_crc(b: &mut [u8]) {
    if b.len() >= 61 {
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Decode and drain everything; the result does not matter, only that it returns
/// and that the record iterator's size hint is a true upper bound.
fn exercise(bytes: &Bytes) {
    if let Ok(batch) = RecordBatch::decode(bytes, 1 << 20) {
        let records = batch.records();
        let (_, upper) = records.size_hint();
        let yielded = records.count();
        assert!(upper.is_some_and(|u| yielded <= u), "{yielded} > {upper:?}");
        let _ = batch.control_record();
    }
    for b in decode_batches(bytes, 1 << 20).flatten() {
        let _ = b.records().count();
    }
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure is a test failure"
)]
fn sample(codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..5u8 {
        b.append(
            i64::from(i),
            Some(&[i; 3]),
            Some(&[i; 20]),
            &[Header::new("h", Some(vec![i]))],
        )
        .unwrap();
    }
    b.build(codec).unwrap().to_vec()
}

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        exercise(&Bytes::from(bytes));
    }

    #[test]
    fn random_bytes_with_valid_crc_never_panic(
        mut bytes in proptest::collection::vec(any::<u8>(), 61..400),
        codec in 0u8..8,
    ) {
        let len = (bytes.len() - 12) as i32;
        bytes[8..12].copy_from_slice(&len.to_be_bytes());
        bytes[16] = 2;
        bytes[21] = 0;
        bytes[22] = codec;
        fix_crc(&mut bytes);
        exercise(&Bytes::from(bytes));
    }

    #[test]
    fn mutated_batches_with_fixed_crc_never_panic(
        codec in codec(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut b = sample(codec);
        for (at, v) in edits {
            // Keep the magic and length plausible so the body gets parsed.
            let i = CRC_START + at.index(b.len() - CRC_START);
            b[i] = v;
        }
        fix_crc(&mut b);
        exercise(&Bytes::from(b.clone()));
        b.truncate(cut.index(b.len()));
        exercise(&Bytes::from(b));
    }

    #[test]
    fn every_truncation_is_an_error(codec in codec(), cut in any::<prop::sample::Index>()) {
        let b = sample(codec);
        let cut = cut.index(b.len());
        prop_assert!(RecordBatch::decode(&Bytes::from(b[..cut].to_vec()), 1 << 20).is_err());
    }
}

#[test]
fn trailing_bytes_after_the_last_record_are_an_error() {
    let mut b = sample(Compression::None);
    b[57..61].copy_from_slice(&4i32.to_be_bytes());
    b[23..27].copy_from_slice(&3i32.to_be_bytes());
    fix_crc(&mut b);
    let batch = RecordBatch::decode(&Bytes::from(b), 1 << 20).unwrap();
    let items: Vec<_> = batch.records().collect();
    assert_eq!(items.len(), 5);
    assert!(matches!(items[4], Err(RecordError::TrailingBytes(_))));
}

#[test]
fn record_count_lies_are_errors() {
    let mut b = sample(Compression::None);
    // Claim 6 records (last offset delta 5) but hold 5.
    b[57..61].copy_from_slice(&6i32.to_be_bytes());
    b[23..27].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut b);
    let batch = RecordBatch::decode(&Bytes::from(b), 1 << 20).unwrap();
    assert!(batch.records().collect_all().is_err());

    let mut b = sample(Compression::None);
    b[57..61].copy_from_slice(&4i32.to_be_bytes());
    b[23..27].copy_from_slice(&3i32.to_be_bytes());
    fix_crc(&mut b);
    let batch = RecordBatch::decode(&Bytes::from(b), 1 << 20).unwrap();
    assert!(batch.records().collect_all().is_err());
}

#[test]
fn huge_record_count_allocates_nothing_up_front() {
    let mut b = sample(Compression::None);
    b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    b[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    fix_crc(&mut b);
    let batch = RecordBatch::decode(&Bytes::from(b), 1 << 20).unwrap();
    let records = batch.records();
    assert!(records.size_hint().1.unwrap() < 100);
    assert!(records.collect_all().is_err());
}
