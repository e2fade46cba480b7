//! Differential tests against the `kafka-protocol` crate's record codec: batches
//! built by brook decode identically there, and batches it encodes decode
//! identically in brook, for every compression codec.

use brook_protocol::records::{BatchBuilder, Compression, Header, RecordBatch};
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    self as kp, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;

const CODECS: [(Compression, kp::Compression); 5] = [
    (Compression::None, kp::Compression::None),
    (Compression::Gzip, kp::Compression::Gzip),
    (Compression::Snappy, kp::Compression::Snappy),
    (Compression::Lz4, kp::Compression::Lz4),
    (Compression::Zstd, kp::Compression::Zstd),
];

/// One record as both implementations can express it: header keys are unique
/// UTF-8 strings because kafka-protocol keeps headers in a string-keyed map.
#[derive(Debug, Clone)]
struct In {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn input() -> impl Strategy<Value = In> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..48);
    (
        0i64..1_000_000_000_000,
        proptest::option::of(bytes.clone()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..1024)),
        proptest::collection::btree_map("[a-z]{0,8}", proptest::option::of(bytes), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| In {
            timestamp,
            key,
            value,
            headers: headers.into_iter().collect(),
        })
}

#[derive(Debug, Clone)]
struct Meta {
    base_offset: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

fn meta() -> impl Strategy<Value = Meta> {
    (0i64..1 << 40, -1i64..1 << 40, -1i16..100, 0i32..1_000_000).prop_map(
        |(base_offset, producer_id, producer_epoch, base_sequence)| Meta {
            base_offset,
            producer_id,
            producer_epoch,
            base_sequence,
        },
    )
}

fn kp_records(inputs: &[In], m: &Meta) -> Vec<kp::Record> {
    inputs
        .iter()
        .enumerate()
        .map(|(n, i)| kp::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: m.base_offset + n as i64,
            sequence: m.base_sequence + n as i32,
            timestamp: i.timestamp,
            key: i.key.clone().map(Bytes::from),
            value: i.value.clone().map(Bytes::from),
            headers: i
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                .collect::<IndexMap<_, _>>(),
        })
        .collect()
}

/// Compare kafka-protocol's decoded records with the expected inputs.
fn check_kp(decoded: &[kp::Record], inputs: &[In], m: &Meta) -> Result<(), TestCaseError> {
    prop_assert_eq!(decoded.len(), inputs.len());
    for (n, (r, i)) in decoded.iter().zip(inputs).enumerate() {
        prop_assert_eq!(r.offset, m.base_offset + n as i64);
        prop_assert_eq!(r.timestamp, i.timestamp);
        prop_assert_eq!(r.producer_id, m.producer_id);
        prop_assert_eq!(r.producer_epoch, m.producer_epoch);
        prop_assert_eq!(r.sequence, m.base_sequence + n as i32);
        prop_assert_eq!(r.key.as_deref(), i.key.as_deref());
        prop_assert_eq!(r.value.as_deref(), i.value.as_deref());
        let headers: Vec<(String, Option<Vec<u8>>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_ref().map(|b| b.to_vec())))
            .collect();
        prop_assert_eq!(&headers, &i.headers);
    }
    Ok(())
}

/// Compare brook's decoded batch with the expected inputs.
fn check_brook(batch: &RecordBatch, inputs: &[In], m: &Meta) -> Result<(), TestCaseError> {
    prop_assert_eq!(batch.producer_id(), m.producer_id);
    prop_assert_eq!(batch.producer_epoch(), m.producer_epoch);
    prop_assert_eq!(batch.base_sequence(), m.base_sequence);
    let records = batch
        .records()
        .collect_all()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(records.len(), inputs.len());
    for (n, (r, i)) in records.iter().zip(inputs).enumerate() {
        prop_assert_eq!(r.offset, m.base_offset + n as i64);
        prop_assert_eq!(r.timestamp, i.timestamp);
        prop_assert_eq!(r.key.as_deref(), i.key.as_deref());
        prop_assert_eq!(r.value.as_deref(), i.value.as_deref());
        let headers: Vec<(String, Option<Vec<u8>>)> = r
            .headers
            .iter()
            .map(|h| {
                (
                    String::from_utf8_lossy(&h.key).into_owned(),
                    h.value.as_ref().map(|b| b.to_vec()),
                )
            })
            .collect();
        prop_assert_eq!(&headers, &i.headers);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn brook_batches_decode_identically_in_kafka_protocol(
        inputs in proptest::collection::vec(input(), 1..30),
        m in meta(),
    ) {
        for (codec, _) in CODECS {
            let mut b = BatchBuilder::new();
            b.set_base_offset(m.base_offset)
                .set_producer(m.producer_id, m.producer_epoch, m.base_sequence);
            for i in &inputs {
                let headers: Vec<Header> = i
                    .headers
                    .iter()
                    .map(|(k, v)| Header::new(k.clone(), v.clone()))
                    .collect();
                b.append(i.timestamp, i.key.as_deref(), i.value.as_deref(), &headers).unwrap();
            }
            let mut bytes = b.build(codec).unwrap();
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            prop_assert_eq!(set.compression as u8, codec.id());
            check_kp(&set.records, &inputs, &m)?;
        }
    }

    #[test]
    fn kafka_protocol_batches_decode_identically_in_brook(
        inputs in proptest::collection::vec(input(), 1..30),
        m in meta(),
    ) {
        let records = kp_records(&inputs, &m);
        for (codec, kp_codec) in CODECS {
            let mut buf = BytesMut::new();
            let options = RecordEncodeOptions { version: 2, compression: kp_codec };
            RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
            let bytes = buf.freeze();
            let batch = RecordBatch::decode(&bytes, 1 << 24).unwrap();
            // One batch covering everything, nothing left over.
            prop_assert_eq!(batch.size(), bytes.len());
            prop_assert_eq!(batch.compression(), codec);
            check_brook(&batch, &inputs, &m)?;
        }
    }
}
