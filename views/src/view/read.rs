//! Point reads and scans, each pinned to one snapshot seqno and answered with
//! the per-partition offsets that snapshot reflects.
//!
//! Keys in answers and in scan bounds are in stored form: as given for `bytes`
//! and `utf8` keys, canonical JSON for `json` keys. [`View::get`] canonicalizes
//! its key; scan bounds are compared as raw bytes and are not canonicalized.
//!
//! A deleted key is absent from scans; [`View::get`] answers it with
//! `deleted_at`, the offset of the tombstone that deleted it, read from the
//! key's MARKER row (see [`crate::keys`]) at the same snapshot. So a reader can
//! tell "deleted at offset N" from "never written (as far as this view knows)"
//! and compare N with the offsets of its own writes.
//!
//! Markers are not kept for ever: a compacted topic drops its tombstones after
//! `delete.retention.ms`, and a marker per deleted key would otherwise grow the
//! view without bound. A marker lives until the key is written again, or until
//! [`View::maybe_compact`] finds it older than
//! [`crate::ViewOptions::deleted_marker_retention`] (24 h by default, Kafka's
//! `delete.retention.ms` default) and drops it; from then on the key reads as
//! plain absent (`deleted_at: None`). Reads never write: an expired marker that
//! has not been swept yet is still reported (it is still true).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use lsm_tree::{AbstractTree, Guard as _};

use super::{Published, View};
use crate::cursor::Cursor;
use crate::error::{Result, ViewError};
use crate::fold;
use crate::keys::{self, AppliedOffsets, USER_TAG};
use crate::snapshot::Pin;

/// One row of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key (stored form).
    pub key: Bytes,
    /// The value (stored form, see [`crate::fold`]).
    pub value: Bytes,
}

/// Answer of [`View::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The value, `None` if the key is absent or deleted.
    pub value: Option<Bytes>,
    /// When `value` is `None` and the key was deleted by a tombstone whose
    /// marker is still kept: that tombstone's source offset.
    pub deleted_at: Option<i64>,
    /// The snapshot seqno read.
    pub snapshot: u64,
    /// Next offset per source partition at that snapshot.
    pub offsets: AppliedOffsets,
}

/// A range/prefix scan. Bounds intersect: `from` (inclusive), `to`
/// (exclusive) and `prefix` all apply when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanRequest {
    /// Smallest key returned.
    pub from: Option<Bytes>,
    /// Keys returned are below this one.
    pub to: Option<Bytes>,
    /// Only keys starting with this.
    pub prefix: Option<Bytes>,
    /// Page size; 0 means the view's default, capped at its maximum.
    pub limit: usize,
    /// Descending key order.
    pub reverse: bool,
    /// Continue a previous page of the same query.
    pub cursor: Option<String>,
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    /// Rows in key order (descending when reversed).
    pub entries: Vec<Entry>,
    /// Present when more rows may follow: pass it back with the same query.
    pub cursor: Option<String>,
    /// The snapshot seqno read (the same on every page of one scan).
    pub snapshot: u64,
    /// Next offset per source partition at that snapshot.
    pub offsets: AppliedOffsets,
}

/// A key bound in tree-key space: the key and whether it is inclusive.
type Edge = (Vec<u8>, bool);

impl View {
    /// The current value of `key` (in the key format's input form), or the
    /// offset of the tombstone that deleted it.
    ///
    /// # Errors
    /// [`ViewError::InvalidKey`] if `key` does not match the key format;
    /// [`ViewError::Corrupt`] for an unreadable MARKER row; storage errors.
    pub fn get(&self, key: &[u8]) -> Result<Lookup> {
        let stored = fold::encode(self.def.key_format, key).ok_or_else(|| {
            ViewError::InvalidKey(format!("not valid {}", self.def.key_format.name()))
        })?;
        let (_pin, p) = self.pin_current()?;
        let value = self
            .tree
            .get(keys::user_key(&stored), p.snapshot)?
            .map(|s| Bytes::copy_from_slice(&s));
        let deleted_at = match value {
            Some(_) => None,
            None => self
                .tree
                .get(keys::marker_key(&stored), p.snapshot)?
                .map(|m| keys::Marker::decode(&m))
                .transpose()?
                .map(|m| m.offset),
        };
        Ok(Lookup {
            value,
            deleted_at,
            snapshot: p.snapshot,
            offsets: p.offsets.clone(),
        })
    }

    /// One page of a scan; pages after the first read the first page's snapshot.
    ///
    /// # Errors
    /// [`ViewError::InvalidCursor`] for a malformed or mismatched cursor,
    /// [`ViewError::CursorExpired`] when its snapshot is gone (older than the
    /// cursor TTL, or from before a reopen); storage errors.
    pub fn scan(&self, req: &ScanRequest) -> Result<ScanPage> {
        let limit = match req.limit {
            0 => self.options.default_scan_limit,
            n => n.min(self.options.max_scan_limit),
        }
        .max(1);
        let (pin, snapshot, offsets, after) = match &req.cursor {
            None => {
                let (pin, p) = self.pin_current()?;
                (pin, p.snapshot, p.offsets.clone(), None)
            }
            Some(text) => {
                let c = Cursor::decode(text)?;
                if c.incarnation != self.incarnation {
                    return Err(ViewError::CursorExpired);
                }
                if c.reverse != req.reverse {
                    return Err(ViewError::InvalidCursor(
                        "scan direction differs from the cursor's",
                    ));
                }
                let current = self.published();
                if c.snapshot > current.snapshot {
                    return Err(ViewError::InvalidCursor("unknown snapshot"));
                }
                let pin = self.snapshots.pin(c.snapshot)?;
                let offsets = if c.snapshot == current.snapshot {
                    current.offsets.clone()
                } else {
                    self.offsets_at(c.snapshot)?
                };
                (pin, c.snapshot, offsets, Some(c.last_key))
            }
        };

        let mut lo: Edge = (vec![USER_TAG], true);
        let mut hi: Edge = (vec![USER_TAG + 1], false);
        if let Some(from) = &req.from {
            lo = tighter_lo(lo, (keys::user_key(from), true));
        }
        if let Some(to) = &req.to {
            hi = tighter_hi(hi, (keys::user_key(to), false));
        }
        if let Some(prefix) = &req.prefix {
            let start = keys::user_key(prefix);
            // The tree key starts with USER_TAG, never all 0xFF.
            if let Some(end) = keys::prefix_successor(&start) {
                hi = tighter_hi(hi, (end, false));
            }
            lo = tighter_lo(lo, (start, true));
        }
        if let Some(last) = after {
            let edge = (keys::user_key(&last), false);
            if req.reverse {
                hi = tighter_hi(hi, edge);
            } else {
                lo = tighter_lo(lo, edge);
            }
        }

        let mut entries = Vec::new();
        let empty = lo.0 > hi.0 || (lo.0 == hi.0 && !(lo.1 && hi.1));
        if !empty {
            let bound = |(k, inclusive): Edge| {
                if inclusive {
                    Bound::Included(k)
                } else {
                    Bound::Excluded(k)
                }
            };
            let iter = self.tree.range((bound(lo), bound(hi)), snapshot, None);
            let iter: Box<dyn Iterator<Item = _>> = if req.reverse {
                Box::new(iter.rev())
            } else {
                iter
            };
            for guard in iter.take(limit + 1) {
                let (k, v) = guard.into_inner()?;
                entries.push(Entry {
                    key: Bytes::copy_from_slice(k.get(1..).unwrap_or_default()),
                    value: Bytes::copy_from_slice(&v),
                });
            }
        }
        let cursor = if entries.len() > limit {
            entries.truncate(limit);
            self.snapshots.retain_cursor(snapshot, Instant::now());
            entries.last().map(|e| {
                Cursor {
                    incarnation: self.incarnation,
                    snapshot,
                    reverse: req.reverse,
                    last_key: e.key.to_vec(),
                }
                .encode()
            })
        } else {
            None
        };
        drop(pin);
        Ok(ScanPage {
            entries,
            cursor,
            snapshot,
            offsets,
        })
    }

    /// Pin the newest published snapshot. A flush may raise the GC floor
    /// between reading it and pinning it; the next published one is above the
    /// floor, so retrying terminates.
    pub(super) fn pin_current(&self) -> Result<(Pin<'_>, Arc<Published>)> {
        loop {
            let p = self.published();
            match self.snapshots.pin(p.snapshot) {
                Ok(pin) => return Ok((pin, p)),
                Err(ViewError::CursorExpired) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The META rows as of `snapshot`.
    fn offsets_at(&self, snapshot: u64) -> Result<AppliedOffsets> {
        let mut offsets = BTreeMap::new();
        for item in self.tree.prefix([keys::META_TAG], snapshot, None) {
            let (k, v) = item.into_inner()?;
            let (p, o) = keys::decode_meta(&k, &v)?;
            offsets.insert(p, o);
        }
        Ok(offsets)
    }
}

fn tighter_lo(a: Edge, b: Edge) -> Edge {
    match a.0.cmp(&b.0) {
        std::cmp::Ordering::Less => b,
        std::cmp::Ordering::Greater => a,
        std::cmp::Ordering::Equal => (a.0, a.1 && b.1),
    }
}

fn tighter_hi(a: Edge, b: Edge) -> Edge {
    match a.0.cmp(&b.0) {
        std::cmp::Ordering::Less => a,
        std::cmp::Ordering::Greater => b,
        std::cmp::Ordering::Equal => (a.0, a.1 && b.1),
    }
}
