//! Partitioners: [`DefaultPartitioner`] (Java-compatible murmur2 on the key,
//! sticky for records without a key) and the [`Partitioner`] trait for custom
//! ones.
//!
//! Compatibility: for a keyed record the partition is
//! `(murmur2(key) & 0x7fffffff) % partitions`, exactly the Java client's
//! `BuiltInPartitioner.partitionForKey`, so the same key lands on the same
//! partition whichever client wrote it. Records without a key stick to one
//! partition until its batch leaves — sealed when full, or sent when
//! `linger.ms` expires — then move to another (KIP-480), which keeps batches
//! full at low rates and still spreads records over partitions.

use std::sync::atomic::{AtomicU64, Ordering};

/// Chooses a partition for records without an explicit one.
pub trait Partitioner: Send + Sync + std::fmt::Debug {
    /// The partition for a record of `topic` with `key`, among `partitions`
    /// (at least 1). Must return a value in `0..partitions`.
    fn partition(&self, topic: &str, key: Option<&[u8]>, partitions: usize) -> usize;

    /// Called when a record picked for `topic`/`partition` would start a new
    /// batch there (the last one was sealed when full or sent on `linger.ms`);
    /// sticky partitioners move on here, and the record is then placed by a
    /// second call to [`Partitioner::partition`] (the Java client's
    /// `onNewBatch`).
    fn on_new_batch(&self, topic: &str, partition: usize, partitions: usize) {
        let _ = (topic, partition, partitions);
    }
}

/// Java's `Utils.murmur2`: 32-bit MurmurHash2 with seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java's int length; keys longer than 2 GiB cannot be sent anyway.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "Java hashes the int length"
    )]
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// The Java client's partition for a key.
pub fn partition_for_key(key: &[u8], partitions: usize) -> usize {
    let positive = u32::from_ne_bytes((murmur2(key) & 0x7fff_ffff).to_ne_bytes());
    usize::try_from(positive).unwrap_or(0) % partitions.max(1)
}

/// murmur2 for keyed records, sticky for the rest.
#[derive(Debug)]
pub struct DefaultPartitioner {
    /// Hash all records stickily, ignoring keys (`partitioner.ignore.keys`).
    pub ignore_keys: bool,
    /// Current sticky choice per topic: `topic hash → partition + 1` (0 = none)
    /// kept in a small lock-free table; collisions only make a topic share
    /// another's sticky partition index, which is harmless.
    sticky: [AtomicU64; 64],
}

impl Default for DefaultPartitioner {
    fn default() -> Self {
        Self::new(false)
    }
}

impl DefaultPartitioner {
    /// A partitioner; `ignore_keys` is `partitioner.ignore.keys`.
    pub fn new(ignore_keys: bool) -> Self {
        Self {
            ignore_keys,
            sticky: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn slot(topic: &str) -> usize {
        let h = murmur2(topic.as_bytes());
        usize::from(h.to_ne_bytes()[0]) % 64
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, topic: &str, key: Option<&[u8]>, partitions: usize) -> usize {
        if let (Some(key), false) = (key, self.ignore_keys) {
            return partition_for_key(key, partitions);
        }
        let slot = &self.sticky[Self::slot(topic)];
        let cur = slot.load(Ordering::Relaxed);
        if let Some(p) = usize::try_from(cur)
            .ok()
            .and_then(|c| c.checked_sub(1))
            .filter(|p| *p < partitions)
        {
            return p;
        }
        let p = rand::random_range(0..partitions.max(1));
        slot.store(p as u64 + 1, Ordering::Relaxed);
        p
    }

    fn on_new_batch(&self, topic: &str, partition: usize, partitions: usize) {
        let slot = &self.sticky[Self::slot(topic)];
        if partitions <= 1 || slot.load(Ordering::Relaxed) != partition as u64 + 1 {
            return;
        }
        // Any other partition, uniformly.
        let mut next = rand::random_range(0..partitions - 1);
        if next >= partition {
            next += 1;
        }
        slot.store(next as u64 + 1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2` vectors.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn key_partition_is_to_positive_modulo() {
        // (-790332482 & 0x7fffffff) = 1357151166; % 50 = 16.
        assert_eq!(partition_for_key(b"foobar", 50), 16);
        let p = DefaultPartitioner::new(false);
        for n in 1..20 {
            assert_eq!(p.partition("t", Some(b"foobar"), n), 1_357_151_166 % n);
        }
    }

    #[test]
    fn null_keys_stick_until_a_new_batch() {
        let p = DefaultPartitioner::new(false);
        let first = p.partition("t", None, 8);
        for _ in 0..100 {
            assert_eq!(p.partition("t", None, 8), first);
        }
        p.on_new_batch("t", first, 8);
        let second = p.partition("t", None, 8);
        assert_ne!(second, first);
        assert!(second < 8);
        assert_eq!(p.partition("t", None, 1), 0);
    }

    #[test]
    fn ignore_keys_makes_keyed_records_sticky() {
        let p = DefaultPartitioner::new(true);
        let a = p.partition("t", Some(b"k1"), 16);
        assert!((0..50).all(|i| p.partition("t", Some(format!("k{i}").as_bytes()), 16) == a));
    }
}
