//! Helpers shared by brook-protocol's fuzz targets (`fuzz_targets/*.rs`).
//!
//! Run a target with
//! `ASAN_OPTIONS=quarantine_size_mb=32 cargo +nightly fuzz run <name> -- -rss_limit_mb=256 -jobs=1`.
//! The smaller ASan quarantine matters: by default ASan keeps 256 MiB of freed
//! memory, and the decompressors legitimately allocate (and free) up to the
//! zstd window / lz4 block size per input, so a long run would hit the RSS limit
//! through the quarantine alone (seen: an `oom-` artifact for the empty input).

/// Decompression cap the targets use: large enough to exercise real batches,
/// small enough that a bomb that slipped past the cap would blow the RSS limit.
pub const MAX_DECOMPRESSED: usize = 1 << 20;

/// Make `data` look like a batch header with a matching length, magic 2 and a
/// correct CRC32C, so the fuzzer gets past the checksum and explores the
/// record parser and decompressors. `data` must be at least 61 bytes.
pub fn fix_up_batch(data: &mut [u8]) {
    if data.len() < 61 {
        return;
    }
    let len = i32::try_from(data.len() - 12).unwrap_or(i32::MAX);
    data[8..12].copy_from_slice(&len.to_be_bytes());
    data[16] = 2;
    let crc = crc32c(&data[21..]);
    data[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// CRC32C (Castagnoli), bitwise; fuzz inputs are small, so speed is not a concern
/// and the fuzz crate needs no extra dependency.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}
