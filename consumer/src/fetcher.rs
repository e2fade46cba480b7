//! Turning a Fetch response partition into records. No I/O.
//!
//! A fetch may start inside a batch (the broker returns whole batches), so
//! records below the requested offset are skipped; control batches
//! (transaction markers) are never shown to the application but move the
//! position past them; an incomplete batch at the end of the data (cut by
//! `max.partition.fetch.bytes`) is ignored and fetched again next time.

use std::sync::Arc;

use brook_producer::TopicPartition;
use brook_protocol::records::decode_batches;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::record::ConsumerRecord;

/// Cap on one batch's decompressed size (Kafka's largest message is far smaller).
const MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;

/// Records of one partition's fetched data and the next offset to fetch.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub records: Vec<ConsumerRecord>,
    /// Offset after the last complete batch (or `fetch_offset` if none).
    pub next_offset: i64,
}

/// Decodes `data` fetched at `fetch_offset`.
pub(crate) fn parse(tp: &TopicPartition, data: &Bytes, fetch_offset: i64) -> Result<Parsed> {
    let topic: Arc<str> = tp.topic.clone();
    let mut records = Vec::new();
    let mut next_offset = fetch_offset;
    let corrupt = |e: brook_protocol::records::RecordError| Error::Corrupt {
        tp: tp.clone(),
        reason: e.to_string(),
    };
    for batch in decode_batches(data, MAX_DECOMPRESSED) {
        let batch = batch.map_err(corrupt)?;
        let last = batch.last_offset();
        if last < next_offset {
            continue;
        }
        if !batch.is_control() {
            for r in batch.records() {
                let r = r.map_err(corrupt)?;
                if r.offset < next_offset {
                    continue;
                }
                records.push(ConsumerRecord {
                    topic: topic.clone(),
                    partition: tp.partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                });
            }
        }
        next_offset = last + 1;
    }
    Ok(Parsed {
        records,
        next_offset,
    })
}

#[cfg(test)]
mod tests {
    use brook_protocol::records::{end_txn_marker_batch, BatchBuilder, Compression};
    use bytes::BytesMut;

    use super::*;

    fn batch(base: i64, n: i64, codec: Compression) -> Bytes {
        let mut b = BatchBuilder::new();
        b.set_base_offset(base);
        for i in 0..n {
            b.append(
                1000 + i,
                Some(format!("k{}", base + i).as_bytes()),
                Some(b"v"),
                &[],
            )
            .unwrap();
        }
        b.build(codec).unwrap()
    }

    fn tp() -> TopicPartition {
        TopicPartition {
            topic: Arc::from("t"),
            partition: 0,
        }
    }

    #[test]
    fn skips_records_below_the_fetch_offset_and_decompresses() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, 5, Compression::Lz4));
        data.extend_from_slice(&batch(5, 5, Compression::Zstd));
        let p = parse(&tp(), &data.freeze(), 3).unwrap();
        let offsets: Vec<i64> = p.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(p.next_offset, 10);
        assert_eq!(p.records[0].key.as_deref(), Some(&b"k3"[..]));
    }

    #[test]
    fn hides_control_batches_but_moves_past_them() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, 2, Compression::None));
        let mut marker = BytesMut::from(&end_txn_marker_batch(7, 0, true, 0, 1).unwrap()[..]);
        brook_protocol::records::header::set_base_offset(&mut marker, 2).unwrap();
        data.extend_from_slice(&marker);
        let p = parse(&tp(), &data.freeze(), 0).unwrap();
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.next_offset, 3);
    }

    #[test]
    fn ignores_a_truncated_trailing_batch() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, 2, Compression::None));
        let second = batch(2, 2, Compression::None);
        data.extend_from_slice(&second[..second.len() - 5]);
        let p = parse(&tp(), &data.freeze(), 0).unwrap();
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.next_offset, 2);
    }

    #[test]
    fn corrupt_batches_are_errors() {
        let mut data = BytesMut::from(&batch(0, 2, Compression::None)[..]);
        let n = data.len();
        data[n - 1] ^= 0xff;
        assert!(matches!(
            parse(&tp(), &data.freeze(), 0),
            Err(Error::Corrupt { .. })
        ));
    }
}
