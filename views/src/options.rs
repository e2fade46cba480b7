//! Tuning of a view store and the resources shared between views.
//!
//! Memory of one view is bounded by `max_memtable_bytes` (plus what arrives
//! between two `maybe_flush` calls, and sealed memtables while a flush runs);
//! block cache and open table files are bounded once for all views by
//! [`SharedResources`].

use std::sync::Arc;
use std::time::Duration;

use lsm_tree::{Cache, DescriptorTable};

/// Per-view settings.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// Flush when the active memtable holds this many bytes.
    pub max_memtable_bytes: u64,
    /// Flush when unflushed data is older than this.
    pub max_flush_interval: Duration,
    /// Flush when this many source offsets were applied since the last flush
    /// (bounds the replay after a crash).
    pub max_unflushed_offsets: u64,
    /// Leveled compaction: target size of one table file.
    pub table_target_size: u64,
    /// Leveled compaction: L0 runs that trigger a merge into L1.
    pub l0_threshold: u8,
    /// Cap on one decompressed record batch read from the source.
    pub max_decompressed_batch: usize,
    /// Bytes asked of the source per partition and step.
    pub read_max_bytes: usize,
    /// How long a scan cursor's snapshot is kept from garbage collection.
    pub cursor_ttl: Duration,
    /// Largest page a scan returns.
    pub max_scan_limit: usize,
    /// Page size when a scan asks for 0.
    pub default_scan_limit: usize,
    /// How long a deleted key's MARKER row (which answers `deleted_at`) is kept
    /// at least; [`crate::View::maybe_compact`] drops older ones. Matches
    /// Kafka's `delete.retention.ms` default, the time a consumer of the
    /// compacted topic itself may still see the tombstone.
    pub deleted_marker_retention: Duration,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions {
            max_memtable_bytes: 16 << 20,
            max_flush_interval: Duration::from_secs(30),
            max_unflushed_offsets: 100_000,
            table_target_size: 64 << 20,
            l0_threshold: 4,
            max_decompressed_batch: 16 << 20,
            read_max_bytes: 1 << 20,
            cursor_ttl: Duration::from_secs(60),
            max_scan_limit: 10_000,
            default_scan_limit: 100,
            deleted_marker_retention: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// Block cache and file-descriptor table shared by every view of a broker.
#[derive(Clone)]
pub struct SharedResources {
    /// Data/index/filter block cache.
    pub cache: Arc<Cache>,
    /// Open table files.
    pub descriptors: Arc<DescriptorTable>,
}

impl SharedResources {
    /// A block cache of `cache_bytes` and at most `max_open_files` open table
    /// files, for all views together.
    pub fn new(cache_bytes: u64, max_open_files: usize) -> Self {
        SharedResources {
            cache: Arc::new(Cache::with_capacity_bytes(cache_bytes)),
            descriptors: Arc::new(DescriptorTable::new(max_open_files)),
        }
    }
}

impl std::fmt::Debug for SharedResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedResources")
            .field("cache_capacity", &self.cache.capacity())
            .finish_non_exhaustive()
    }
}

impl Default for SharedResources {
    fn default() -> Self {
        SharedResources::new(32 << 20, 512)
    }
}
