//! Scan cursors: the snapshot a paged scan is pinned to and where it stopped.
//!
//! A cursor is lowercase hex of
//! `version: u8 = 1 | incarnation: u64 BE | snapshot seqno: u64 BE | reverse: u8 |
//! last user key`, where the incarnation identifies one opening of the view
//! (seqnos restart after a reopen, so older cursors are refused as expired),
//! so it is URL-safe and opaque to clients. Paging with it reads the same
//! snapshot on every page, so concurrent writes never shift or duplicate rows.
//! It carries no bounds: the caller repeats its query with the cursor.

use crate::error::{Result, ViewError};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 8 + 8 + 1;

/// A decoded cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Which opening of the view issued it.
    pub incarnation: u64,
    /// The snapshot seqno the scan reads at.
    pub snapshot: u64,
    /// Whether the scan runs in descending key order.
    pub reverse: bool,
    /// The last user key (stored form) returned.
    pub last_key: Vec<u8>,
}

impl Cursor {
    /// Encode as an opaque string.
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(HEADER + self.last_key.len());
        raw.push(VERSION);
        raw.extend_from_slice(&self.incarnation.to_be_bytes());
        raw.extend_from_slice(&self.snapshot.to_be_bytes());
        raw.push(u8::from(self.reverse));
        raw.extend_from_slice(&self.last_key);
        raw.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Decode a string made by [`Cursor::encode`].
    ///
    /// # Errors
    /// [`ViewError::InvalidCursor`] for anything else.
    pub fn decode(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        if bytes.len() & 1 == 1 {
            return Err(ViewError::InvalidCursor("odd length"));
        }
        let raw = bytes
            .chunks_exact(2)
            .map(|pair| Some(hex(pair[0])? << 4 | hex(pair[1])?))
            .collect::<Option<Vec<u8>>>()
            .ok_or(ViewError::InvalidCursor("not hex"))?;
        if raw.len() < HEADER || raw[0] != VERSION {
            return Err(ViewError::InvalidCursor("unknown version or too short"));
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&raw[at..at + 8]);
            u64::from_be_bytes(w)
        };
        let reverse = match raw[17] {
            0 => false,
            1 => true,
            _ => return Err(ViewError::InvalidCursor("bad direction")),
        };
        Ok(Cursor {
            incarnation: word(1),
            snapshot: word(9),
            reverse,
            last_key: raw[HEADER..].to_vec(),
        })
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() -> Result<()> {
        let c = Cursor {
            incarnation: 99,
            snapshot: 0x0102_0304_0506_0708,
            reverse: true,
            last_key: b"\x00k\xff".to_vec(),
        };
        assert_eq!(Cursor::decode(&c.encode())?, c);
        Ok(())
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "0",
            "zz",
            "02000000000000000000",
            "010000000000000000000000000000000002",
        ] {
            assert!(Cursor::decode(s).is_err(), "{s}");
        }
    }
}
