//! Record batch micro-benchmarks: CRC32C validation of a 1 MiB batch (GB/s),
//! building a 1000-record batch, and decoding + iterating one.

use std::hint::black_box;

use brook_protocol::records::{BatchBuilder, BatchHeader, Compression, Header, RecordBatch};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const RECORDS: usize = 1000;

/// A realistic record: 16-byte key, 100-byte value, one header.
fn fill(b: &mut BatchBuilder, n: usize, value_len: usize) {
    let header = [Header::new(
        "trace",
        Some(Bytes::from_static(b"0123456789abcdef")),
    )];
    let value: Vec<u8> = (0..value_len).map(|i| (i % 97) as u8).collect();
    for i in 0..n {
        let key = format!("key-{i:012}");
        if b.append(
            1_700_000_000_000 + i as i64,
            Some(key.as_bytes()),
            Some(&value),
            &header,
        )
        .is_err()
        {
            panic!("append failed");
        }
    }
}

fn build(n: usize, value_len: usize, codec: Compression) -> Bytes {
    let mut b = BatchBuilder::new();
    fill(&mut b, n, value_len);
    match b.build(codec) {
        Ok(bytes) => bytes,
        Err(e) => panic!("build failed: {e}"),
    }
}

fn crc_validate(c: &mut Criterion) {
    // ~1 MiB: 1000 records of ~1 KiB values.
    let batch = build(RECORDS, 1024, Compression::None);
    let mut g = c.benchmark_group("batch_validate");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("crc32c_1MiB", |bench| {
        bench.iter(|| {
            let h = BatchHeader::new(black_box(&batch)).map(|h| h.validate());
            black_box(h.is_ok())
        })
    });
    g.finish();
}

fn build_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_build_1000");
    g.throughput(Throughput::Elements(RECORDS as u64));
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        g.bench_function(codec.name(), |bench| {
            bench.iter_batched(
                BatchBuilder::new,
                |mut b| {
                    fill(&mut b, RECORDS, 100);
                    black_box(b.build(codec).map(|x| x.len()).unwrap_or(0))
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn decode_iterate(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_decode_iterate_1000");
    g.throughput(Throughput::Elements(RECORDS as u64));
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let batch = build(RECORDS, 100, codec);
        g.bench_function(codec.name(), |bench| {
            bench.iter(|| {
                let Ok(decoded) = RecordBatch::decode(black_box(&batch), 16 << 20) else {
                    panic!("decode failed");
                };
                let mut bytes = 0usize;
                for r in decoded.records() {
                    match r {
                        Ok(r) => bytes += r.value.map_or(0, |v| v.len()),
                        Err(e) => panic!("record: {e}"),
                    }
                }
                black_box(bytes)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, crc_validate, build_batch, decode_iterate);
criterion_main!(benches);
