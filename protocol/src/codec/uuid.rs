//! Kafka's 128-bit UUID (topic ids, incarnation ids). Shown as Kafka shows it:
//! URL-safe base64 without padding (22 characters). Hand-rolled to keep the
//! crate free of an encoding dependency for one 16-byte value.

use std::fmt;
use std::str::FromStr;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A Kafka UUID: 16 raw bytes, most significant first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID Kafka uses for "no id".
    pub const ZERO: Uuid = Uuid([0; 16]);

    /// A UUID from caller-supplied bytes (the caller chooses the randomness source).
    #[must_use]
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 22];
        let mut o = 0;
        // 16 bytes = five 3-byte groups (20 chars) + one trailing byte (2 chars).
        for group in self.0.chunks(3) {
            let b0 = group[0];
            let b1 = group.get(1).copied().unwrap_or(0);
            let b2 = group.get(2).copied().unwrap_or(0);
            let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
            let chars = group.len() + 1;
            for i in 0..chars {
                out[o] = ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize];
                o += 1;
            }
        }
        // The alphabet is ASCII, so this cannot fail; fall back to an error rather
        // than panic to keep Display total.
        f.write_str(std::str::from_utf8(&out[..o]).map_err(|_| fmt::Error)?)
    }
}

/// Error parsing a [`Uuid`] from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid UUID: expected 22 URL-safe base64 characters")]
pub struct ParseUuidError;

fn sextet(c: u8) -> Result<u32, ParseUuidError> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return Err(ParseUuidError),
    };
    Ok(u32::from(v))
}

impl FromStr for Uuid {
    type Err = ParseUuidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_suffix("==").unwrap_or(s).as_bytes();
        if s.len() != 22 {
            return Err(ParseUuidError);
        }
        let mut out = [0u8; 16];
        let mut o = 0;
        for group in s.chunks(4) {
            let mut n = 0u32;
            for (i, &c) in group.iter().enumerate() {
                n |= sextet(c)? << (18 - 6 * i);
            }
            for i in 0..group.len() - 1 {
                out[o] = (n >> (16 - 8 * i)) as u8;
                o += 1;
            }
            // Non-canonical trailing bits would make two strings name one UUID.
            if group.len() == 2 && n & 0xffff != 0 {
                return Err(ParseUuidError);
            }
        }
        Ok(Uuid(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_kafka() {
        assert_eq!(Uuid::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        // Kafka: new Uuid(0x0123456789abcdefL, 0xfedcba9876543210L).toString()
        let u = Uuid([
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
            0x32, 0x10,
        ]);
        assert_eq!(u.to_string(), "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(Uuid([0xff; 16]).to_string(), "_____________________w");
    }

    #[test]
    fn parse_roundtrip_and_rejects() {
        for b in [[0u8; 16], [0xff; 16], [7; 16]] {
            let u = Uuid(b);
            assert_eq!(u.to_string().parse::<Uuid>(), Ok(u));
        }
        assert_eq!(
            "ASNFZ4mrze_-3LqYdlQyEA==".parse::<Uuid>().map(|u| u.0[0]),
            Ok(1)
        );
        assert_eq!("short".parse::<Uuid>(), Err(ParseUuidError));
        assert_eq!(
            "ASNFZ4mrze_-3LqYdlQyE+".parse::<Uuid>(),
            Err(ParseUuidError)
        );
        // Last char with non-zero low bits is not canonical.
        assert_eq!(
            "_____________________x".parse::<Uuid>(),
            Err(ParseUuidError)
        );
    }
}
