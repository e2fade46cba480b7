//! The cleaner's key → latest offset map over the dirty section of one log.
//!
//! Keys are not stored: each is reduced to a 128-bit hash (two independent SipHash
//! passes), as Kafka's `SkimpyOffsetMap` keeps an MD5 digest; at 2^-64 odds per pair a
//! collision is negligible next to disk corruption. Memory is bounded by
//! `log.cleaner.dedupe.buffer.size`, shared among `log.cleaner.threads`: the map
//! accepts at most `bytes / ENTRY_BYTES` entries (a hash-table slot costs about that
//! much with its load factor), and reports itself full so the cleaner can clean the
//! part of the log the map covers and leave the rest for the next pass.
//! Nothing is persisted; the map lives for one clean.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Memory one entry costs: 16-byte hash, 8-byte offset, and the table's slack.
pub const ENTRY_BYTES: usize = 32;

/// A 128-bit digest of a record key.
pub type KeyHash = u128;

/// Digest of `key`.
pub fn key_hash(key: &[u8]) -> KeyHash {
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x5a)) << 64) | u128::from(half(0xa5))
}

/// Latest offset per key hash, with a fixed entry budget.
#[derive(Debug)]
pub struct OffsetMap {
    map: HashMap<KeyHash, i64>,
    max_entries: usize,
    /// Largest offset put into the map, -1 when empty.
    latest_offset: i64,
}

impl OffsetMap {
    /// A map that holds at most `memory_bytes / ENTRY_BYTES` keys (at least one).
    pub fn with_memory(memory_bytes: usize) -> Self {
        Self {
            map: HashMap::new(),
            max_entries: (memory_bytes / ENTRY_BYTES).max(1),
            latest_offset: -1,
        }
    }

    /// Record that `key` was written at `offset` (offsets arrive increasing). Returns
    /// false, changing nothing, when the key is new and the map is full.
    pub fn put(&mut self, key: KeyHash, offset: i64) -> bool {
        if self.map.len() >= self.max_entries && !self.map.contains_key(&key) {
            return false;
        }
        self.map.insert(key, offset);
        self.latest_offset = self.latest_offset.max(offset);
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: KeyHash) -> Option<i64> {
        self.map.get(&key).copied()
    }

    /// Room for `n` more new keys.
    pub fn has_room_for(&self, n: usize) -> bool {
        self.map.len().saturating_add(n) <= self.max_entries
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Largest offset recorded, -1 when empty.
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    /// Forget every entry, keeping the budget (and the table's allocation).
    pub fn clear(&mut self) {
        self.map.clear();
        self.latest_offset = -1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_wins_and_budget_holds() {
        let mut m = OffsetMap::with_memory(ENTRY_BYTES * 2);
        assert!(m.put(key_hash(b"a"), 1));
        assert!(m.put(key_hash(b"b"), 2));
        assert!(m.put(key_hash(b"a"), 3), "known keys still update");
        assert!(
            !m.put(key_hash(b"c"), 4),
            "a new key over budget is refused"
        );
        assert_eq!(m.get(key_hash(b"a")), Some(3));
        assert_eq!(m.get(key_hash(b"c")), None);
        assert_eq!((m.len(), m.latest_offset()), (2, 3));
        assert_ne!(key_hash(b"ab"), key_hash(b"ba"));
        assert_ne!(key_hash(b""), key_hash(b"\0"));
    }
}
