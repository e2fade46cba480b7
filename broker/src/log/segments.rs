//! The ordered set of segments of one partition, keyed by base offset.
//!
//! - No file of its own; the set is rebuilt from the directory listing on open.
//! - Concurrency: plain data, guarded by the partition log's `RwLock`.
//! - Invariant kept by `PartitionLog`: never empty; the last segment is the active one
//!   (its indexes preallocated); segments' offset ranges do not overlap.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::log::segment::Segment;

/// Segments by base offset.
#[derive(Debug, Default)]
pub struct Segments {
    map: BTreeMap<i64, Segment>,
}

impl Segments {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, segment: Segment) {
        self.map.insert(segment.base_offset(), segment);
    }

    pub fn remove(&mut self, base_offset: i64) -> Option<Segment> {
        self.map.remove(&base_offset)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The active (last) segment.
    pub fn active(&self) -> Option<&Segment> {
        self.map.values().next_back()
    }

    pub fn active_mut(&mut self) -> Option<&mut Segment> {
        self.map.values_mut().next_back()
    }

    pub fn first(&self) -> Option<&Segment> {
        self.map.values().next()
    }

    /// The segment that would hold `offset` (largest base ≤ offset).
    pub fn floor(&self, offset: i64) -> Option<&Segment> {
        self.map.range(..=offset).next_back().map(|(_, s)| s)
    }

    pub fn floor_mut(&mut self, offset: i64) -> Option<&mut Segment> {
        self.map.range_mut(..=offset).next_back().map(|(_, s)| s)
    }

    /// Segments from the one holding `offset` (or the first, if `offset` is below
    /// every base) onward, in order.
    pub fn from_offset(&self, offset: i64) -> impl Iterator<Item = &Segment> {
        let start = self.floor(offset).map_or(i64::MIN, Segment::base_offset);
        self.map
            .range((Bound::Included(start), Bound::Unbounded))
            .map(|(_, s)| s)
    }

    /// Base offset of the segment after `base_offset`.
    pub fn next_base(&self, base_offset: i64) -> Option<i64> {
        self.map
            .range((Bound::Excluded(base_offset), Bound::Unbounded))
            .next()
            .map(|(b, _)| *b)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Segment> {
        self.map.values()
    }

    pub fn bases(&self) -> Vec<i64> {
        self.map.keys().copied().collect()
    }

    /// Bytes of all `.log` files.
    pub fn size_in_bytes(&self) -> u64 {
        self.map.values().map(Segment::size).sum()
    }
}
