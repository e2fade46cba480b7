//! Records of the `__consumer_offsets` topic, in Kafka's own formats so Kafka's
//! tools can read a brook offsets topic (and brook can read Kafka's).
//!
//! Every record has a key whose first `i16` is its version, which tells the kind:
//! - key v0/v1 `OffsetCommitKey`: `group string, topic string, partition i32`.
//!   Value `OffsetCommitValue`: v0 `offset i64, metadata string, commit_ts i64`;
//!   v1 adds `expire_ts i64`; v2 is v0's layout; v3 (what brook writes)
//!   `offset i64, leader_epoch i32, metadata string, commit_ts i64`.
//! - key v2 `GroupMetadataKey`: `group string`. Value `GroupMetadataValue`
//!   v0 `protocol_type string, generation i32, protocol string?, leader string?,
//!   members [member_id, client_id, client_host, session_timeout i32,
//!   subscription bytes, assignment bytes]`; v1 adds the member's
//!   `rebalance_timeout i32` before `session_timeout`; v2 adds
//!   `current_state_timestamp i64` after `leader`; v3 (what brook writes) adds the
//!   member's `group_instance_id string?` after `member_id`.
//!
//! Strings are `i16` length + UTF-8 (-1 = null), bytes `i32` length, arrays
//! `i32` count. A null value is a tombstone: the offset or group is deleted.
//! Decoding is bounded: lengths are checked against what remains; an unknown
//! version or malformed record is an error the loader logs and skips.

use bytes::{BufMut, Bytes, BytesMut};

/// One decoded `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    /// A committed offset, or its deletion (`value: None`).
    Offset {
        key: OffsetKey,
        value: Option<OffsetValue>,
    },
    /// A group's membership snapshot, or the group's deletion (`value: None`).
    Group {
        group: String,
        value: Option<GroupMetadata>,
    },
}

/// Key of a committed offset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only in value v1 (clients that asked for a retention time).
    pub expire_timestamp: Option<i64>,
}

/// A group's persisted state: written when a generation's assignment is
/// complete and when the group becomes empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMetadata {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

/// One member as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordDecodeError {
    #[error("record has no key")]
    MissingKey,
    #[error("truncated or malformed {0}")]
    Malformed(&'static str),
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown {what} value version {version}")]
    UnknownValueVersion { what: &'static str, version: i16 },
}

impl GroupRecord {
    /// The group this record belongs to.
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::Offset { key, .. } => &key.group,
            GroupRecord::Group { group, .. } => group,
        }
    }

    /// Encode as (key, value) bytes in the versions Kafka writes today.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        match self {
            GroupRecord::Offset { key, value } => {
                let mut k = BytesMut::new();
                k.put_i16(1);
                put_str(&mut k, &key.group);
                put_str(&mut k, &key.topic);
                k.put_i32(key.partition);
                let v = value.as_ref().map(|v| {
                    let mut b = BytesMut::new();
                    if let Some(expire) = v.expire_timestamp {
                        // Kafka writes v1 only for offsets carrying an explicit expiry.
                        b.put_i16(1);
                        b.put_i64(v.offset);
                        put_str(&mut b, &v.metadata);
                        b.put_i64(v.commit_timestamp);
                        b.put_i64(expire);
                    } else {
                        b.put_i16(3);
                        b.put_i64(v.offset);
                        b.put_i32(v.leader_epoch);
                        put_str(&mut b, &v.metadata);
                        b.put_i64(v.commit_timestamp);
                    }
                    b.freeze()
                });
                (k.freeze(), v)
            }
            GroupRecord::Group { group, value } => {
                let mut k = BytesMut::new();
                k.put_i16(2);
                put_str(&mut k, group);
                let v = value.as_ref().map(|g| {
                    let mut b = BytesMut::new();
                    b.put_i16(3);
                    put_str(&mut b, &g.protocol_type);
                    b.put_i32(g.generation);
                    put_opt_str(&mut b, g.protocol.as_deref());
                    put_opt_str(&mut b, g.leader.as_deref());
                    b.put_i64(g.current_state_timestamp);
                    b.put_i32(g.members.len() as i32);
                    for m in &g.members {
                        put_str(&mut b, &m.member_id);
                        put_opt_str(&mut b, m.group_instance_id.as_deref());
                        put_str(&mut b, &m.client_id);
                        put_str(&mut b, &m.client_host);
                        b.put_i32(m.rebalance_timeout_ms);
                        b.put_i32(m.session_timeout_ms);
                        put_bytes(&mut b, &m.subscription);
                        put_bytes(&mut b, &m.assignment);
                    }
                    b.freeze()
                });
                (k.freeze(), v)
            }
        }
    }

    /// Decode a record's key and value.
    ///
    /// # Errors
    /// Missing key, unknown versions, malformed bytes.
    pub fn decode(key: Option<&Bytes>, value: Option<&Bytes>) -> Result<Self, RecordDecodeError> {
        let mut k = Cur(key.ok_or(RecordDecodeError::MissingKey)?.clone());
        match k.i16("key")? {
            0 | 1 => {
                let key = OffsetKey {
                    group: k.string("offset key")?,
                    topic: k.string("offset key")?,
                    partition: k.i32("offset key")?,
                };
                let value = value.map(decode_offset_value).transpose()?;
                Ok(GroupRecord::Offset { key, value })
            }
            2 => {
                let group = k.string("group key")?;
                let value = value.map(decode_group_value).transpose()?;
                Ok(GroupRecord::Group { group, value })
            }
            v => Err(RecordDecodeError::UnknownKeyVersion(v)),
        }
    }
}

fn decode_offset_value(v: &Bytes) -> Result<OffsetValue, RecordDecodeError> {
    const W: &str = "offset value";
    let mut c = Cur(v.clone());
    let version = c.i16(W)?;
    let offset = c.i64(W)?;
    let leader_epoch = if version >= 3 { c.i32(W)? } else { -1 };
    if version > 4 {
        return Err(RecordDecodeError::UnknownValueVersion {
            what: "offset",
            version,
        });
    }
    let metadata = c.string(W)?;
    let commit_timestamp = c.i64(W)?;
    let expire_timestamp = if version == 1 { Some(c.i64(W)?) } else { None };
    // v4 (flexible) appends tagged fields only; the fields above are the same.
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

fn decode_group_value(v: &Bytes) -> Result<GroupMetadata, RecordDecodeError> {
    const W: &str = "group value";
    let mut c = Cur(v.clone());
    let version = c.i16(W)?;
    if !(0..=3).contains(&version) {
        return Err(RecordDecodeError::UnknownValueVersion {
            what: "group",
            version,
        });
    }
    let protocol_type = c.string(W)?;
    let generation = c.i32(W)?;
    let protocol = c.opt_string(W)?;
    let leader = c.opt_string(W)?;
    let current_state_timestamp = if version >= 2 { c.i64(W)? } else { -1 };
    let n = c.count(W)?;
    let mut members = Vec::new();
    for _ in 0..n {
        let member_id = c.string(W)?;
        let group_instance_id = if version >= 3 { c.opt_string(W)? } else { None };
        let client_id = c.string(W)?;
        let client_host = c.string(W)?;
        let rebalance_timeout_ms = if version >= 1 { c.i32(W)? } else { -1 };
        let session_timeout_ms = c.i32(W)?;
        let subscription = c.bytes(W)?;
        let assignment = c.bytes(W)?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupMetadata {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

fn put_str(b: &mut BytesMut, s: &str) {
    // Group ids, topics and member ids are far below i16::MAX bytes (the request
    // codec already bounded them by the same wire type).
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_opt_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, s: &[u8]) {
    b.put_i32(s.len() as i32);
    b.put_slice(s);
}

/// A bounded big-endian cursor over a shared buffer (slicing it is zero-copy).
struct Cur(Bytes);

impl Cur {
    fn take(&mut self, n: usize, what: &'static str) -> Result<Bytes, RecordDecodeError> {
        if self.0.len() < n {
            return Err(RecordDecodeError::Malformed(what));
        }
        Ok(self.0.split_to(n))
    }
    fn i16(&mut self, w: &'static str) -> Result<i16, RecordDecodeError> {
        let b = self.take(2, w)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self, w: &'static str) -> Result<i32, RecordDecodeError> {
        let b = self.take(4, w)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self, w: &'static str) -> Result<i64, RecordDecodeError> {
        let b = self.take(8, w)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(i64::from_be_bytes(a))
    }
    fn opt_string(&mut self, w: &'static str) -> Result<Option<String>, RecordDecodeError> {
        let len = self.i16(w)?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize, w)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| RecordDecodeError::Malformed(w))
    }
    fn string(&mut self, w: &'static str) -> Result<String, RecordDecodeError> {
        Ok(self.opt_string(w)?.unwrap_or_default())
    }
    fn bytes(&mut self, w: &'static str) -> Result<Bytes, RecordDecodeError> {
        let len = self.i32(w)?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        self.take(len as usize, w)
    }
    fn count(&mut self, w: &'static str) -> Result<usize, RecordDecodeError> {
        let n = self.i32(w)?;
        let n = usize::try_from(n).map_err(|_| RecordDecodeError::Malformed(w))?;
        if n > self.0.len() {
            return Err(RecordDecodeError::Malformed(w));
        }
        Ok(n)
    }
}
