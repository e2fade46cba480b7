//! Record batches from hostile bytes: validate, decompress (capped), iterate.
//!
//! The first input byte picks a mode: raw bytes as received (mostly rejected by
//! the CRC), bytes with length/magic/CRC fixed up (reaches the record parser and
//! decompressors through the batch path), or a bare compressed section for one
//! codec (reaches the decompressors directly).
#![no_main]

use brook_protocol::records::compression::decompress;
use brook_protocol::records::{decode_batches, Compression, RecordBatch};
use brook_protocol_fuzz::{fix_up_batch, MAX_DECOMPRESSED};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fn drain(bytes: &Bytes) {
    if let Ok(batch) = RecordBatch::decode(bytes, MAX_DECOMPRESSED) {
        assert!(batch.records_section().len() <= MAX_DECOMPRESSED);
        let mut n = 0i64;
        for r in batch.records() {
            match r {
                Ok(_) => n += 1,
                Err(_) => break,
            }
        }
        assert!(n <= i64::from(batch.record_count()));
        let _ = batch.control_record();
    }
    for batch in decode_batches(bytes, MAX_DECOMPRESSED).flatten() {
        for r in batch.records() {
            if r.is_err() {
                break;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => drain(&Bytes::copy_from_slice(rest)),
        1 => {
            let mut b = rest.to_vec();
            fix_up_batch(&mut b);
            drain(&Bytes::from(b));
        }
        _ => {
            let codec = match (mode / 3) % 4 {
                0 => Compression::Gzip,
                1 => Compression::Snappy,
                2 => Compression::Lz4,
                _ => Compression::Zstd,
            };
            if let Ok(out) = decompress(codec, &Bytes::copy_from_slice(rest), MAX_DECOMPRESSED) {
                assert!(out.len() <= MAX_DECOMPRESSED);
            }
        }
    }
});
