//! Compression of a batch's records section: gzip, snappy, lz4, zstd.
//!
//! Formats, as the Java client writes them:
//! - gzip: RFC 1952 stream(s); concatenated members are accepted.
//! - snappy: xerial framing — 16-byte header (`\x82SNAPPY\x00`, i32 BE version 1,
//!   i32 BE minimum compatible version 1) then blocks of (u32 BE length, raw snappy
//!   block). Input without the magic is decoded as one raw snappy block, as
//!   snappy-java's `SnappyInputStream` does.
//! - lz4: the LZ4 frame format (magic `0x184D2204`).
//! - zstd: zstd frames; the decoder refuses windows above 2^[`ZSTD_WINDOW_LOG_MAX`].
//!
//! Decompression is capped: the caller passes `max_decompressed`, output beyond it
//! is an error, and no buffer grows past `max_decompressed + 1` bytes. Streaming
//! decoders are drained in bounded chunks; snappy blocks declare their length up
//! front, which is checked against the remaining budget before decoding. A zip
//! bomb therefore fails after at most `max_decompressed` bytes of work.

use std::io::{Read, Write};

use bytes::Bytes;

use super::{Compression, RecordError};

/// Largest zstd window (as a power of two) the decoder accepts: 16 MiB. zstd
/// allocates the declared window up front, so an unbounded value would let a
/// 20-byte frame reserve gigabytes; producers' default levels use 2^21–2^23.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// xerial snappy stream header: magic, version 1, compatible version 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Block size snappy-java's `SnappyOutputStream` uses by default.
const XERIAL_BLOCK: usize = 32 * 1024;
/// Read granularity when draining streaming decoders.
const CHUNK: usize = 32 * 1024;
/// zstd level the Java client uses by default.
const ZSTD_LEVEL: i32 = 3;

/// Compress `input` with `codec`. `Compression::None` copies.
///
/// # Errors
/// [`RecordError::Compress`] if the codec's encoder fails (it does not on
/// in-memory buffers in practice).
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, RecordError> {
    let err = |_| RecordError::Compress(codec);
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 2),
                flate2::Compression::default(),
            );
            enc.write_all(input).map_err(err)?;
            enc.finish().map_err(err)
        }
        Compression::Snappy => xerial_compress(input),
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(input.len() / 2));
            enc.write_all(input).map_err(err)?;
            enc.finish().map_err(|_| RecordError::Compress(codec))
        }
        Compression::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL).map_err(err),
    }
}

fn xerial_compress(input: &[u8]) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER.len() + input.len() / 2 + 64);
    out.extend_from_slice(XERIAL_HEADER);
    let mut enc = snap::raw::Encoder::new();
    for block in input.chunks(XERIAL_BLOCK) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.resize(start + 4 + snap::raw::max_compress_len(block.len()), 0);
        let n = enc
            .compress(block, &mut out[start + 4..])
            .map_err(|_| RecordError::Compress(Compression::Snappy))?;
        out.truncate(start + 4 + n);
        // n <= max_compress_len(32 KiB), far below u32::MAX.
        out[start..start + 4].copy_from_slice(&(n as u32).to_be_bytes());
    }
    Ok(out)
}

/// Decompress `input` with `codec`, failing once output would exceed
/// `max_decompressed` bytes. `Compression::None` returns the input as is.
///
/// # Errors
/// [`RecordError::DecompressedTooLarge`] past the cap, [`RecordError::Decompress`]
/// for corrupt input.
pub fn decompress(
    codec: Compression,
    input: &Bytes,
    max_decompressed: usize,
) -> Result<Bytes, RecordError> {
    let err = |_| RecordError::Decompress(codec);
    let out = match codec {
        Compression::None => {
            if input.len() > max_decompressed {
                return Err(RecordError::DecompressedTooLarge {
                    limit: max_decompressed,
                });
            }
            return Ok(input.clone());
        }
        Compression::Gzip => drain(
            flate2::read::MultiGzDecoder::new(&input[..]),
            codec,
            max_decompressed,
        )?,
        Compression::Snappy => snappy_decompress(input, max_decompressed)?,
        Compression::Lz4 => drain(
            lz4_flex::frame::FrameDecoder::new(&input[..]),
            codec,
            max_decompressed,
        )?,
        Compression::Zstd => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(&input[..]).map_err(err)?;
            dec.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(err)?;
            drain(dec, codec, max_decompressed)?
        }
    };
    Ok(Bytes::from(out))
}

/// Read `r` to its end into a vector whose capacity never exceeds `limit`;
/// one byte past the limit is an error.
fn drain(r: impl Read, codec: Compression, limit: usize) -> Result<Vec<u8>, RecordError> {
    let mut r = r.take((limit as u64).saturating_add(1));
    let mut chunk = [0u8; CHUNK];
    let mut out: Vec<u8> = Vec::new();
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(RecordError::Decompress(codec)),
        };
        if n > limit - out.len() {
            return Err(RecordError::DecompressedTooLarge { limit });
        }
        if out.capacity() - out.len() < n {
            // Grow geometrically, but never past the cap.
            let grow = out.capacity().max(CHUNK).min(limit - out.len()).max(n);
            out.reserve_exact(grow);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let err = |_| RecordError::Decompress(Compression::Snappy);
    let too_large = RecordError::DecompressedTooLarge { limit };
    if !input.starts_with(XERIAL_MAGIC) {
        // Raw snappy block: the length is declared up front.
        let n = snap::raw::decompress_len(input).map_err(err)?;
        if n > limit {
            return Err(too_large);
        }
        let mut out = vec![0; n];
        let written = snap::raw::Decoder::new()
            .decompress(input, &mut out)
            .map_err(err)?;
        out.truncate(written);
        return Ok(out);
    }
    // Header: magic (8), version (4), compatible version (4). The versions are not
    // checked, as snappy-java only checks the magic.
    let mut rest = input
        .get(XERIAL_HEADER.len()..)
        .ok_or(RecordError::Decompress(Compression::Snappy))?;
    let mut out = Vec::new();
    let mut dec = snap::raw::Decoder::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or(RecordError::Decompress(Compression::Snappy))?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail
            .get(..len)
            .ok_or(RecordError::Decompress(Compression::Snappy))?;
        rest = &tail[len..];
        let n = snap::raw::decompress_len(block).map_err(err)?;
        if n > limit - out.len() {
            return Err(too_large);
        }
        let start = out.len();
        out.resize(start + n, 0);
        let written = dec.decompress(block, &mut out[start..]).map_err(err)?;
        out.truncate(start + written);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in ALL {
            let c = Bytes::from(compress(codec, &data).unwrap());
            let d = decompress(codec, &c, data.len()).unwrap();
            assert_eq!(&d[..], &data[..], "{codec:?}");
        }
    }

    #[test]
    fn cap_is_exact() {
        let data = vec![7u8; 10_000];
        for codec in ALL {
            let c = Bytes::from(compress(codec, &data).unwrap());
            assert!(decompress(codec, &c, 10_000).is_ok(), "{codec:?}");
            assert_eq!(
                decompress(codec, &c, 9_999),
                Err(RecordError::DecompressedTooLarge { limit: 9_999 }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn empty_input_round_trips() {
        for codec in ALL {
            let c = Bytes::from(compress(codec, &[]).unwrap());
            assert!(decompress(codec, &c, 0).unwrap().is_empty(), "{codec:?}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let junk =
            Bytes::from_static(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff");
        assert!(decompress(Compression::Snappy, &junk, 1 << 20).is_err());
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let junk = Bytes::from_static(b"definitely not compressed");
            assert!(decompress(codec, &junk, 1 << 20).is_err(), "{codec:?}");
        }
    }
}
