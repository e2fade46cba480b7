//! Compression formats as other clients write them, and decompression caps.

use std::io::Write;
use std::time::Instant;

use brook_protocol::records::compression::{compress, decompress};
use brook_protocol::records::{Compression, RecordError};
use bytes::Bytes;

fn text(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| b"brook kafka log "[i % 16] ^ (i / 4096) as u8)
        .collect()
}

#[test]
fn snappy_is_xerial_framed_like_the_java_client() {
    let data = text(100_000);
    let c = compress(Compression::Snappy, &data).unwrap();
    assert_eq!(&c[..16], b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01");
    // 100 000 bytes in 32 KiB blocks: 4 blocks, each (u32 BE len, raw block).
    let mut rest = &c[16..];
    let mut blocks = 0;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        out.extend(
            snap::raw::Decoder::new()
                .decompress_vec(&rest[4..4 + len])
                .unwrap(),
        );
        rest = &rest[4 + len..];
        blocks += 1;
    }
    assert_eq!(blocks, 4);
    assert_eq!(out, data);
}

#[test]
fn raw_snappy_without_framing_is_accepted() {
    let data = text(50_000);
    let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
    let d = decompress(Compression::Snappy, &Bytes::from(raw.clone()), 50_000).unwrap();
    assert_eq!(&d[..], &data[..]);
    assert_eq!(
        decompress(Compression::Snappy, &Bytes::from(raw), 49_999),
        Err(RecordError::DecompressedTooLarge { limit: 49_999 })
    );
}

#[test]
fn xerial_stream_written_by_another_encoder_is_accepted() {
    // Blocks of uneven sizes, as a non-Java writer may produce.
    let data = text(70_000);
    let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    for chunk in data.chunks(10_000) {
        let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
        framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
        framed.extend_from_slice(&block);
    }
    let d = decompress(Compression::Snappy, &Bytes::from(framed), 1 << 20).unwrap();
    assert_eq!(&d[..], &data[..]);
}

#[test]
fn gzip_with_concatenated_members_is_accepted() {
    let mut all = Vec::new();
    for part in [b"first ".as_slice(), b"second"] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).unwrap();
        all.extend(e.finish().unwrap());
    }
    let d = decompress(Compression::Gzip, &Bytes::from(all), 100).unwrap();
    assert_eq!(&d[..], b"first second");
}

#[test]
fn lz4_frames_from_the_reference_format_are_accepted() {
    // lz4_flex's frame encoder with content checksum and linked blocks, settings
    // the Java client does not use, must still decode.
    let data = text(300_000);
    let info = lz4_flex::frame::FrameInfo::new()
        .content_checksum(true)
        .block_mode(lz4_flex::frame::BlockMode::Linked);
    let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    e.write_all(&data).unwrap();
    let c = e.finish().unwrap();
    assert_eq!(&c[..4], &[0x04, 0x22, 0x4d, 0x18]);
    let d = decompress(Compression::Lz4, &Bytes::from(c), 300_000).unwrap();
    assert_eq!(&d[..], &data[..]);
}

/// A bomb: 64 MiB of zeros, compressed. With a 1 MiB cap every codec must give
/// up quickly, having produced no more than the cap.
#[test]
fn decompression_bombs_fail_fast() {
    let zeros = vec![0u8; 64 << 20];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let bomb = Bytes::from(compress(codec, &zeros).unwrap());
        assert!(bomb.len() < zeros.len() / 20, "{codec:?} bomb too weak");
        let start = Instant::now();
        let err = decompress(codec, &bomb, 1 << 20).unwrap_err();
        assert_eq!(err, RecordError::DecompressedTooLarge { limit: 1 << 20 });
        // Decompressing the whole bomb takes far longer; the cap stops early.
        assert!(
            start.elapsed().as_millis() < 2_000,
            "{codec:?} took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn snappy_block_lying_about_its_length_is_refused_before_allocating() {
    // A raw snappy preamble claiming 2^32-1 bytes of output in a 6-byte input.
    let lie = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    assert_eq!(
        decompress(Compression::Snappy, &lie, 1 << 20),
        Err(RecordError::DecompressedTooLarge { limit: 1 << 20 })
    );
}

#[test]
fn zstd_windows_beyond_the_limit_are_refused() {
    // Level 22 with long-distance matching declares a 128 MiB window (2^27).
    let data = text(1 << 16);
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    enc.window_log(27).unwrap();
    enc.write_all(&data).unwrap();
    let c = enc.finish().unwrap();
    assert_eq!(
        decompress(Compression::Zstd, &Bytes::from(c), 1 << 20),
        Err(RecordError::Decompress(Compression::Zstd))
    );
}
