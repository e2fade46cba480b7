//! Key layout inside a view's LSM-tree.
//!
//! ```text
//! 0x00 | partition: i32 BE          -> next offset to apply: i64 BE   (META row)
//! 0x01 | user key (stored form)     -> value (stored form, see `fold`)
//! 0x02 | user key (stored form)     -> deleting offset: i64 BE
//!                                      | written at: i64 BE, Unix ms  (MARKER row)
//! ```
//!
//! META rows sort before every user row, so one prefix scan of `0x00` reads a
//! snapshot's applied offsets. A META row is written under the same seqno as
//! the user rows of the batch that advanced it; a flush therefore persists both
//! or neither, and after a crash the view resumes exactly where its persisted
//! data ends (the changelog topic is the write-ahead log).
//!
//! A MARKER row says "this key was deleted by the tombstone at this offset".
//! It is written (and the user row removed) under the batch's seqno when a
//! tombstone deletes a key, and removed under the batch's seqno when the key is
//! written again, so it is replayed exactly like the user row it stands for.
//! Markers sort after every user row, so user-row scans (`0x01..0x02`) never
//! see them. The write time is the wall clock of the apply (a replay after a
//! crash writes a newer one, which only keeps the marker longer); it bounds a
//! marker's life, see [`crate::view`]'s `markers` module.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::{Result, ViewError};

/// First byte of META rows.
pub const META_TAG: u8 = 0x00;
/// First byte of user rows.
pub const USER_TAG: u8 = 0x01;
/// First byte of deleted-key MARKER rows.
pub const MARKER_TAG: u8 = 0x02;

/// A decoded MARKER row value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Offset of the tombstone that deleted the key.
    pub offset: i64,
    /// Wall-clock time of the apply that wrote the marker, Unix milliseconds.
    pub written_ms: i64,
}

impl Marker {
    /// The stored form.
    pub fn encode(&self) -> [u8; 16] {
        let mut v = [0; 16];
        v[..8].copy_from_slice(&self.offset.to_be_bytes());
        v[8..].copy_from_slice(&self.written_ms.to_be_bytes());
        v
    }

    /// Decode a MARKER row value.
    ///
    /// # Errors
    /// [`ViewError::Corrupt`] when the value is not 16 bytes.
    pub fn decode(value: &[u8]) -> Result<Marker> {
        let (o, t) = value
            .split_first_chunk::<8>()
            .and_then(|(o, rest)| Some((*o, *<&[u8; 8]>::try_from(rest).ok()?)))
            .ok_or_else(|| ViewError::Corrupt(format!("MARKER value of {} bytes", value.len())))?;
        Ok(Marker {
            offset: i64::from_be_bytes(o),
            written_ms: i64::from_be_bytes(t),
        })
    }
}

/// Per-partition next offset to apply (`partition -> next offset`).
pub type AppliedOffsets = BTreeMap<i32, i64>;

/// The META row key of `partition`.
pub fn meta_key(partition: i32) -> [u8; 5] {
    let mut k = [META_TAG; 5];
    k[1..].copy_from_slice(&partition.to_be_bytes());
    k
}

/// The tree key of a stored user key.
pub fn user_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(USER_TAG);
    k.extend_from_slice(key);
    k
}

/// The MARKER row key of a stored user key.
pub fn marker_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(MARKER_TAG);
    k.extend_from_slice(key);
    k
}

/// Decode one META row.
///
/// # Errors
/// [`ViewError::Corrupt`] when the key or value has the wrong length.
pub fn decode_meta(key: &[u8], value: &[u8]) -> Result<(i32, i64)> {
    let p: [u8; 4] = key
        .get(1..)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ViewError::Corrupt(format!("META key of {} bytes", key.len())))?;
    let o: [u8; 8] = value
        .try_into()
        .map_err(|_| ViewError::Corrupt(format!("META value of {} bytes", value.len())))?;
    Ok((i32::from_be_bytes(p), i64::from_be_bytes(o)))
}

/// Smallest key greater than every key starting with `prefix`; `None` if the
/// prefix is all `0xFF` (no upper bound).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last != 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Tree-key bounds of all user rows.
pub fn user_bounds() -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (
        Bound::Included(vec![USER_TAG]),
        Bound::Excluded(vec![USER_TAG + 1]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trip_and_order() -> Result<()> {
        let k = meta_key(7);
        assert_eq!(decode_meta(&k, &42i64.to_be_bytes())?, (7, 42));
        assert!(meta_key(i32::MAX).as_slice() < user_key(b"").as_slice());
        assert!(decode_meta(&k, b"short").is_err());
        assert!(decode_meta(b"\x00\x01", &[0; 8]).is_err());
        Ok(())
    }

    #[test]
    fn marker_round_trip_and_order() -> Result<()> {
        let m = Marker {
            offset: 7,
            written_ms: -3,
        };
        assert_eq!(Marker::decode(&m.encode())?, m);
        assert!(Marker::decode(&[0; 8]).is_err());
        assert!(user_key(b"\xff\xff").as_slice() < marker_key(b"").as_slice());
        let (_, hi) = user_bounds();
        assert_eq!(hi, Bound::Excluded(marker_key(b"")));
        Ok(())
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
    }
}
