//! The embedded "consumer" protocol: the metadata a member sends in JoinGroup
//! (`Subscription`) and the bytes the leader hands each member through
//! SyncGroup (`Assignment`). No I/O.
//!
//! Format (big-endian, Kafka's `ConsumerProtocolSubscription`/`Assignment`):
//! ```text
//! Subscription: version i16, topics [string], user_data bytes?,
//!               v1+: owned_partitions [topic string, partitions [i32]],
//!               v2+: generation_id i32, v3+: rack_id string?
//! Assignment:   version i16, assigned [topic string, partitions [i32]], user_data bytes?
//! ```
//! Arrays carry an i32 count, strings an i16 length, bytes an i32 length (-1:
//! null). We write subscription v2 and assignment v1; decoding accepts any
//! version and ignores trailing fields of newer ones, as the Java client does.
//! Every length is checked against the bytes that remain before anything is
//! allocated, so hostile metadata from another member cannot blow up the leader.

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_producer::TopicPartition;
use bytes::{BufMut, Bytes, BytesMut};

/// Subscription version written.
const SUBSCRIPTION_VERSION: i16 = 2;
/// Assignment version written.
const ASSIGNMENT_VERSION: i16 = 1;

/// A member's JoinGroup metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Assignor-specific data.
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now (cooperative protocol; empty for eager).
    pub owned: Vec<TopicPartition>,
    /// The generation `owned` comes from; -1 when unknown.
    pub generation: i32,
}

/// What the leader assigned to one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Assigned partitions.
    pub partitions: Vec<TopicPartition>,
    /// Assignor-specific data.
    pub user_data: Option<Bytes>,
}

/// Why consumer-protocol bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed consumer protocol {what}: {reason}")]
pub struct ProtocolError {
    what: &'static str,
    reason: &'static str,
}

fn put_str(b: &mut BytesMut, s: &str) {
    // Topic names are at most 249 bytes (broker-enforced); clamp defensively.
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    b.put_i16(len);
    b.put_slice(&s.as_bytes()[..usize::try_from(len).unwrap_or(0)]);
}

fn put_len(b: &mut BytesMut, n: usize) {
    b.put_i32(i32::try_from(n).unwrap_or(i32::MAX));
}

fn put_bytes(b: &mut BytesMut, v: Option<&Bytes>) {
    match v {
        None => b.put_i32(-1),
        Some(v) => {
            put_len(b, v.len());
            b.put_slice(v);
        }
    }
}

fn put_partitions(b: &mut BytesMut, tps: &[TopicPartition]) {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    put_len(b, by_topic.len());
    for (topic, mut parts) in by_topic {
        parts.sort_unstable();
        put_str(b, topic);
        put_len(b, parts.len());
        for p in parts {
            b.put_i32(p);
        }
    }
}

impl Subscription {
    /// The wire form (version 2).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_i16(SUBSCRIPTION_VERSION);
        put_len(&mut b, self.topics.len());
        for t in &self.topics {
            put_str(&mut b, t);
        }
        put_bytes(&mut b, self.user_data.as_ref());
        put_partitions(&mut b, &self.owned);
        b.put_i32(self.generation);
        b.freeze()
    }

    /// Parses any version.
    ///
    /// # Errors
    /// [`ProtocolError`] for truncated or inconsistent bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader {
            buf: bytes,
            what: "subscription",
        };
        let version = r.i16()?;
        if version < 0 {
            return Err(r.err("negative version"));
        }
        let n = r.count(2)?;
        let mut topics = Vec::with_capacity(n);
        for _ in 0..n {
            topics.push(r.string()?);
        }
        let user_data = r.bytes()?;
        let owned = if version >= 1 {
            r.partitions()?
        } else {
            Vec::new()
        };
        let generation = if version >= 2 { r.i32()? } else { -1 };
        Ok(Self {
            topics,
            user_data,
            owned,
            generation,
        })
    }
}

impl Assignment {
    /// The wire form (version 1).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_i16(ASSIGNMENT_VERSION);
        put_partitions(&mut b, &self.partitions);
        put_bytes(&mut b, self.user_data.as_ref());
        b.freeze()
    }

    /// Parses any version; empty bytes are an empty assignment (what the
    /// coordinator returns to members the leader left out).
    ///
    /// # Errors
    /// [`ProtocolError`] for truncated or inconsistent bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let mut r = Reader {
            buf: bytes,
            what: "assignment",
        };
        let version = r.i16()?;
        if version < 0 {
            return Err(r.err("negative version"));
        }
        let partitions = r.partitions()?;
        // Old clients may omit user data entirely.
        let user_data = if r.buf.is_empty() { None } else { r.bytes()? };
        Ok(Self {
            partitions,
            user_data,
        })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl Reader<'_> {
    fn err(&self, reason: &'static str) -> ProtocolError {
        ProtocolError {
            what: self.what,
            reason,
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or_else(|| self.err("truncated"))?;
        self.buf = rest;
        Ok(*head)
    }

    fn i16(&mut self) -> Result<i16, ProtocolError> {
        Ok(i16::from_be_bytes(self.take()?))
    }

    fn i32(&mut self) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    /// An array count, checked against the remaining bytes (each element is at
    /// least `min_size` bytes).
    fn count(&mut self, min_size: usize) -> Result<usize, ProtocolError> {
        let n = self.i32()?;
        if n < 0 {
            // A null array reads as empty.
            return Ok(0);
        }
        let n = usize::try_from(n).map_err(|_| self.err("bad count"))?;
        if n.saturating_mul(min_size) > self.buf.len() {
            return Err(self.err("array count exceeds the remaining bytes"));
        }
        Ok(n)
    }

    fn slice(&mut self, len: usize) -> Result<&[u8], ProtocolError> {
        if len > self.buf.len() {
            return Err(self.err("length exceeds the remaining bytes"));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    fn string(&mut self) -> Result<String, ProtocolError> {
        let len = usize::try_from(self.i16()?).map_err(|_| self.err("null string"))?;
        let raw = self.slice(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }

    fn bytes(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| self.err("bad length"))?;
        Ok(Some(Bytes::copy_from_slice(self.slice(len)?)))
    }

    fn partitions(&mut self) -> Result<Vec<TopicPartition>, ProtocolError> {
        let topics = self.count(6)?;
        let mut out = Vec::new();
        for _ in 0..topics {
            let topic: Arc<str> = Arc::from(self.string()?);
            let n = self.count(4)?;
            out.reserve(n);
            for _ in 0..n {
                out.push(TopicPartition {
                    topic: topic.clone(),
                    partition: self.i32()?,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from(t),
            partition: p,
        }
    }

    #[test]
    fn subscription_round_trips() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: Some(Bytes::from_static(b"x")),
            owned: vec![tp("a", 0), tp("a", 2), tp("b", 1)],
            generation: 7,
        };
        assert_eq!(Subscription::decode(&s.encode()), Ok(s));
    }

    #[test]
    fn subscription_v0_from_an_old_client() {
        // version 0, one topic "t", null user data.
        let raw = [0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        let s = Subscription::decode(&raw).map_err(|e| e.to_string());
        assert_eq!(
            s,
            Ok(Subscription {
                topics: vec!["t".into()],
                generation: -1,
                ..Default::default()
            })
        );
    }

    #[test]
    fn newer_versions_with_trailing_fields_decode() {
        let mut b = BytesMut::from(&Subscription::default().encode()[..]);
        b[1] = 3;
        b.put_i16(-1); // rack_id null
        assert!(Subscription::decode(&b).is_ok());
    }

    #[test]
    fn assignment_round_trips_and_empty_is_nothing() {
        let a = Assignment {
            partitions: vec![tp("t", 0), tp("t", 5)],
            user_data: None,
        };
        assert_eq!(Assignment::decode(&a.encode()), Ok(a));
        assert_eq!(Assignment::decode(&[]), Ok(Assignment::default()));
    }

    #[test]
    fn hostile_counts_are_rejected_before_allocation() {
        let raw = [0, 1, 0x7f, 0xff, 0xff, 0xff];
        assert!(Subscription::decode(&raw).is_err());
        assert!(Assignment::decode(&raw).is_err());
        let truncated = Subscription {
            topics: vec!["topic".into()],
            ..Default::default()
        }
        .encode();
        for cut in 0..truncated.len() - 4 {
            assert!(
                Subscription::decode(&truncated[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }
}
