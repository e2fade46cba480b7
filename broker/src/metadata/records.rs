//! Metadata records: the only way cluster metadata changes (DESIGN.md section 7).
//!
//! The set follows Kafka's KRaft records (RegisterBroker, Fence/Unfence,
//! Topic, Partition, PartitionChange, RemoveTopic, Config, ProducerIds,
//! ClientQuota) plus brook's view definitions. Every value the controller
//! chooses (ids, epochs, producer-id blocks) is inside the record, so
//! replaying a log is deterministic on every node.
//!
//! # Encoding
//!
//! A batch is `uvarint count` then `count` records. A record is
//! `u8 kind | u8 version | body`; bodies use Kafka's compact (flexible)
//! primitives: big-endian fixed-width integers, `uvarint(len + 1)` strings and
//! arrays (0 = null), 16-byte UUIDs. Decoding checks every length against what
//! remains before allocating and rejects an unknown kind or version: a node
//! must never skip a record it does not understand, or its image would
//! silently diverge from the others'. A new field means a new version; old
//! versions stay decodable forever, because the metadata log is kept.

use brook_protocol::codec::{self, varint, Bytes, DecodeError, Uuid};
use bytes::{BufMut, BytesMut};
use thiserror::Error;

/// A record or batch that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordDecodeError {
    #[error("metadata record: {0}")]
    Malformed(#[from] DecodeError),
    #[error("metadata record kind {0} is unknown (written by a newer brook?)")]
    UnknownKind(u8),
    #[error("metadata record kind {kind} has version {version}; this brook reads up to {max}")]
    UnknownVersion { kind: u8, version: u8, max: u8 },
    #[error("metadata record: {0}")]
    Invalid(String),
    #[error("metadata batch has {0} trailing bytes")]
    Trailing(usize),
}

/// One listener a broker serves clients on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Listener name (`PLAINTEXT`).
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A broker's registration (Kafka's RegisterBrokerRecord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: i32,
    /// Random per process start: tells a restarted broker from a stale one.
    pub incarnation: Uuid,
    /// Chosen by the controller; requests carrying an older epoch are stale.
    pub epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// In controlled shutdown: leadership is moving away.
    pub shutting_down: bool,
}

/// A partition's full state (Kafka's PartitionRecord).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    /// Every replica, including those a reassignment is adding or removing.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Eligible leader replicas (KIP-966).
    pub elr: Vec<i32>,
    /// -1: no leader (offline).
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Replicas an ongoing reassignment adds (KIP-455); empty when none is.
    pub adding: Vec<i32>,
    /// Replicas an ongoing reassignment removes once the others are in sync.
    pub removing: Vec<i32>,
}

impl PartitionRecord {
    /// Whether a reassignment is under way.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas the partition will have once its reassignment completes
    /// (today's replicas when none is under way).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }
}

/// A change to a partition; `None` fields are unchanged (Kafka's
/// PartitionChangeRecord). Replay bumps the partition epoch, and the leader
/// epoch when `leader` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionChange {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader: Option<i32>,
    pub isr: Option<Vec<i32>>,
    pub elr: Option<Vec<i32>>,
    pub replicas: Option<Vec<i32>>,
    pub adding: Option<Vec<i32>>,
    pub removing: Option<Vec<i32>>,
}

/// What a config record applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResource {
    /// Cluster-wide broker default (Kafka's broker resource with an empty name).
    Cluster,
    Broker(i32),
    Topic(String),
}

/// A client-quota entity: (entity type, name) pairs such as `("client-id",
/// Some("batch-job"))`, sorted by type, at most one per type. A `None` name is
/// the type's default entity (Kafka's `<default>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct QuotaEntity(pub Vec<(String, Option<String>)>);

impl QuotaEntity {
    /// The entity from unordered parts, sorted by type.
    pub fn new(mut parts: Vec<(String, Option<String>)>) -> Self {
        parts.sort();
        Self(parts)
    }

    /// The name for `entity_type`: `None` if the entity has no such part,
    /// `Some(None)` for the default entity of that type.
    pub fn part(&self, entity_type: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(t, _)| t == entity_type)
            .map(|(_, n)| n.as_deref())
    }
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (t, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}={}", n.as_deref().unwrap_or("<default>"))?;
        }
        Ok(())
    }
}

/// A quota value (Kafka's float64). Compared by bit pattern so records and
/// images stay `Eq`; the controller refuses NaN and negative values.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// One metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker(BrokerRegistration),
    FenceBroker {
        id: i32,
        epoch: i64,
    },
    UnfenceBroker {
        id: i32,
        epoch: i64,
    },
    BrokerShuttingDown {
        id: i32,
        epoch: i64,
    },
    UnregisterBroker {
        id: i32,
        epoch: i64,
    },
    Topic {
        name: String,
        id: Uuid,
    },
    Partition(PartitionRecord),
    PartitionChange(PartitionChange),
    RemoveTopic {
        id: Uuid,
    },
    /// Set (`Some`) or delete (`None`) one config key.
    Config {
        resource: ConfigResource,
        key: String,
        value: Option<String>,
    },
    /// Producer ids below `next` are handed out (to `broker_id`).
    ProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        next: i64,
    },
    View(brook_views::ViewDef),
    RemoveView {
        name: String,
    },
    /// Set (`Some`) or remove (`None`) one quota key of a client-quota entity
    /// (Kafka's ClientQuotaRecord).
    ClientQuota {
        entity: QuotaEntity,
        key: String,
        value: Option<QuotaValue>,
    },
}

// Kind numbers are part of the on-disk format: never reuse one.
const REGISTER_BROKER: u8 = 1;
const FENCE_BROKER: u8 = 2;
const UNFENCE_BROKER: u8 = 3;
const BROKER_SHUTTING_DOWN: u8 = 4;
const UNREGISTER_BROKER: u8 = 5;
const TOPIC: u8 = 6;
const PARTITION: u8 = 7;
const PARTITION_CHANGE: u8 = 8;
const REMOVE_TOPIC: u8 = 9;
const CONFIG: u8 = 10;
const PRODUCER_IDS: u8 = 11;
const VIEW: u8 = 12;
const REMOVE_VIEW: u8 = 13;
const CLIENT_QUOTA: u8 = 14;

/// The highest version of `kind` this build reads. Partition and
/// PartitionChange v1 add the reassignment's adding and removing replicas.
fn max_version(kind: u8) -> u8 {
    match kind {
        PARTITION | PARTITION_CHANGE => 1,
        _ => 0,
    }
}

impl MetadataRecord {
    fn kind(&self) -> u8 {
        match self {
            Self::RegisterBroker(_) => REGISTER_BROKER,
            Self::FenceBroker { .. } => FENCE_BROKER,
            Self::UnfenceBroker { .. } => UNFENCE_BROKER,
            Self::BrokerShuttingDown { .. } => BROKER_SHUTTING_DOWN,
            Self::UnregisterBroker { .. } => UNREGISTER_BROKER,
            Self::Topic { .. } => TOPIC,
            Self::Partition(_) => PARTITION,
            Self::PartitionChange(_) => PARTITION_CHANGE,
            Self::RemoveTopic { .. } => REMOVE_TOPIC,
            Self::Config { .. } => CONFIG,
            Self::ProducerIds { .. } => PRODUCER_IDS,
            Self::View(_) => VIEW,
            Self::RemoveView { .. } => REMOVE_VIEW,
            Self::ClientQuota { .. } => CLIENT_QUOTA,
        }
    }

    /// The version this record is written in: the lowest that carries all
    /// of it, so a cluster that never reassigns stays readable by older
    /// brooks.
    fn version(&self) -> u8 {
        match self {
            Self::Partition(p) if p.reassigning() => 1,
            Self::PartitionChange(c) if c.adding.is_some() || c.removing.is_some() => 1,
            _ => 0,
        }
    }

    /// Append this record's encoding to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let version = self.version();
        out.put_u8(self.kind());
        out.put_u8(version);
        match self {
            Self::RegisterBroker(b) => {
                out.put_i32(b.id);
                out.put_slice(&b.incarnation.0);
                out.put_i64(b.epoch);
                put_len(out, b.endpoints.len());
                for e in &b.endpoints {
                    put_str(out, &e.name);
                    put_str(out, &e.host);
                    out.put_u16(e.port);
                }
                put_opt_str(out, b.rack.as_deref());
                out.put_u8(u8::from(b.fenced));
                out.put_u8(u8::from(b.shutting_down));
            }
            Self::FenceBroker { id, epoch }
            | Self::UnfenceBroker { id, epoch }
            | Self::BrokerShuttingDown { id, epoch }
            | Self::UnregisterBroker { id, epoch } => {
                out.put_i32(*id);
                out.put_i64(*epoch);
            }
            Self::Topic { name, id } => {
                put_str(out, name);
                out.put_slice(&id.0);
            }
            Self::Partition(p) => {
                out.put_slice(&p.topic_id.0);
                out.put_i32(p.partition);
                put_ids(out, Some(&p.replicas));
                put_ids(out, Some(&p.isr));
                put_ids(out, Some(&p.elr));
                out.put_i32(p.leader);
                out.put_i32(p.leader_epoch);
                out.put_i32(p.partition_epoch);
                if version >= 1 {
                    put_ids(out, Some(&p.adding));
                    put_ids(out, Some(&p.removing));
                }
            }
            Self::PartitionChange(c) => {
                out.put_slice(&c.topic_id.0);
                out.put_i32(c.partition);
                match c.leader {
                    Some(l) => {
                        out.put_u8(1);
                        out.put_i32(l);
                    }
                    None => out.put_u8(0),
                }
                put_ids(out, c.isr.as_deref());
                put_ids(out, c.elr.as_deref());
                put_ids(out, c.replicas.as_deref());
                if version >= 1 {
                    put_ids(out, c.adding.as_deref());
                    put_ids(out, c.removing.as_deref());
                }
            }
            Self::RemoveTopic { id } => out.put_slice(&id.0),
            Self::Config {
                resource,
                key,
                value,
            } => {
                match resource {
                    ConfigResource::Cluster => out.put_u8(0),
                    ConfigResource::Broker(id) => {
                        out.put_u8(1);
                        out.put_i32(*id);
                    }
                    ConfigResource::Topic(name) => {
                        out.put_u8(2);
                        put_str(out, name);
                    }
                }
                put_str(out, key);
                put_opt_str(out, value.as_deref());
            }
            Self::ProducerIds {
                broker_id,
                broker_epoch,
                next,
            } => {
                out.put_i32(*broker_id);
                out.put_i64(*broker_epoch);
                out.put_i64(*next);
            }
            Self::View(def) => {
                // The view crate owns the definition's shape; its JSON form is
                // already versioned by `deny_unknown_fields` + defaults.
                let json = serde_json::to_string(def).unwrap_or_default();
                put_str(out, &json);
            }
            Self::RemoveView { name } => put_str(out, name),
            Self::ClientQuota { entity, key, value } => {
                put_len(out, entity.0.len());
                for (t, n) in &entity.0 {
                    put_str(out, t);
                    put_opt_str(out, n.as_deref());
                }
                put_str(out, key);
                match value {
                    Some(v) => {
                        out.put_u8(1);
                        out.put_f64(v.0);
                    }
                    None => out.put_u8(0),
                }
            }
        }
    }

    /// Decode one record from the front of `buf`.
    ///
    /// # Errors
    /// Truncated or malformed input, an unknown kind or version.
    pub fn decode(buf: &mut Bytes) -> Result<Self, RecordDecodeError> {
        let kind = codec::read_i8(buf)? as u8;
        let version = codec::read_i8(buf)? as u8;
        if kind == 0 || kind > CLIENT_QUOTA {
            return Err(RecordDecodeError::UnknownKind(kind));
        }
        if version > max_version(kind) {
            return Err(RecordDecodeError::UnknownVersion {
                kind,
                version,
                max: max_version(kind),
            });
        }
        Ok(match kind {
            REGISTER_BROKER => {
                let id = codec::read_i32(buf)?;
                let incarnation = codec::read_uuid(buf)?;
                let epoch = codec::read_i64(buf)?;
                let endpoints = codec::read_array(buf, true, |b| {
                    Ok(Endpoint {
                        name: codec::read_string(b, true)?,
                        host: codec::read_string(b, true)?,
                        port: codec::read_u16(b)?,
                    })
                })?;
                let rack = codec::read_nullable_string(buf, true)?;
                let fenced = codec::read_bool(buf)?;
                let shutting_down = codec::read_bool(buf)?;
                Self::RegisterBroker(BrokerRegistration {
                    id,
                    incarnation,
                    epoch,
                    endpoints,
                    rack,
                    fenced,
                    shutting_down,
                })
            }
            FENCE_BROKER | UNFENCE_BROKER | BROKER_SHUTTING_DOWN | UNREGISTER_BROKER => {
                let id = codec::read_i32(buf)?;
                let epoch = codec::read_i64(buf)?;
                match kind {
                    FENCE_BROKER => Self::FenceBroker { id, epoch },
                    UNFENCE_BROKER => Self::UnfenceBroker { id, epoch },
                    BROKER_SHUTTING_DOWN => Self::BrokerShuttingDown { id, epoch },
                    _ => Self::UnregisterBroker { id, epoch },
                }
            }
            TOPIC => Self::Topic {
                name: codec::read_string(buf, true)?,
                id: codec::read_uuid(buf)?,
            },
            PARTITION => {
                let mut p = PartitionRecord {
                    topic_id: codec::read_uuid(buf)?,
                    partition: codec::read_i32(buf)?,
                    replicas: read_ids(buf)?.unwrap_or_default(),
                    isr: read_ids(buf)?.unwrap_or_default(),
                    elr: read_ids(buf)?.unwrap_or_default(),
                    leader: codec::read_i32(buf)?,
                    leader_epoch: codec::read_i32(buf)?,
                    partition_epoch: codec::read_i32(buf)?,
                    ..PartitionRecord::default()
                };
                if version >= 1 {
                    p.adding = read_ids(buf)?.unwrap_or_default();
                    p.removing = read_ids(buf)?.unwrap_or_default();
                }
                Self::Partition(p)
            }
            PARTITION_CHANGE => {
                let topic_id = codec::read_uuid(buf)?;
                let partition = codec::read_i32(buf)?;
                let leader = if codec::read_bool(buf)? {
                    Some(codec::read_i32(buf)?)
                } else {
                    None
                };
                let mut c = PartitionChange {
                    topic_id,
                    partition,
                    leader,
                    isr: read_ids(buf)?,
                    elr: read_ids(buf)?,
                    replicas: read_ids(buf)?,
                    ..PartitionChange::default()
                };
                if version >= 1 {
                    c.adding = read_ids(buf)?;
                    c.removing = read_ids(buf)?;
                }
                Self::PartitionChange(c)
            }
            REMOVE_TOPIC => Self::RemoveTopic {
                id: codec::read_uuid(buf)?,
            },
            CONFIG => {
                let resource = match codec::read_i8(buf)? {
                    0 => ConfigResource::Cluster,
                    1 => ConfigResource::Broker(codec::read_i32(buf)?),
                    2 => ConfigResource::Topic(codec::read_string(buf, true)?),
                    t => {
                        return Err(RecordDecodeError::Invalid(format!(
                            "config resource type {t} is unknown"
                        )))
                    }
                };
                Self::Config {
                    resource,
                    key: codec::read_string(buf, true)?,
                    value: codec::read_nullable_string(buf, true)?,
                }
            }
            PRODUCER_IDS => Self::ProducerIds {
                broker_id: codec::read_i32(buf)?,
                broker_epoch: codec::read_i64(buf)?,
                next: codec::read_i64(buf)?,
            },
            VIEW => {
                let json = codec::read_string(buf, true)?;
                Self::View(
                    serde_json::from_str(&json)
                        .map_err(|e| RecordDecodeError::Invalid(format!("view definition: {e}")))?,
                )
            }
            REMOVE_VIEW => Self::RemoveView {
                name: codec::read_string(buf, true)?,
            },
            _ => {
                let parts = codec::read_array(buf, true, |b| {
                    Ok((
                        codec::read_string(b, true)?,
                        codec::read_nullable_string(b, true)?,
                    ))
                })?;
                let entity = QuotaEntity(parts);
                if entity.0.windows(2).any(|w| w[0].0 >= w[1].0) {
                    return Err(RecordDecodeError::Invalid(format!(
                        "quota entity {entity} is not sorted by type, or repeats a type"
                    )));
                }
                let key = codec::read_string(buf, true)?;
                let value = if codec::read_bool(buf)? {
                    Some(QuotaValue(codec::read_f64(buf)?))
                } else {
                    None
                };
                Self::ClientQuota { entity, key, value }
            }
        })
    }
}

/// Encode a batch of records.
pub fn encode_batch(records: &[MetadataRecord]) -> Bytes {
    let mut out = BytesMut::with_capacity(64 * records.len().max(1));
    put_len(&mut out, records.len());
    for r in records {
        r.encode(&mut out);
    }
    out.freeze()
}

/// Decode a whole batch; trailing bytes are an error.
///
/// # Errors
/// As [`MetadataRecord::decode`], plus a bad count or trailing garbage.
pub fn decode_batch(mut buf: Bytes) -> Result<Vec<MetadataRecord>, RecordDecodeError> {
    let count = match codec::read_unsigned_varint(&mut buf)?.checked_sub(1) {
        Some(n) => n as usize,
        None => {
            return Err(RecordDecodeError::Invalid(
                "batch record count is null".into(),
            ))
        }
    };
    // Every record takes at least two bytes (kind and version).
    if count > buf.len() / 2 {
        return Err(RecordDecodeError::Malformed(DecodeError::Truncated));
    }
    let mut out = Vec::with_capacity(count.min(codec::MAX_PREALLOC));
    for _ in 0..count {
        out.push(MetadataRecord::decode(&mut buf)?);
    }
    if buf.is_empty() {
        Ok(out)
    } else {
        Err(RecordDecodeError::Trailing(buf.len()))
    }
}

fn put_len(out: &mut BytesMut, n: usize) {
    varint::put_uvarint(out, u32::try_from(n + 1).unwrap_or(u32::MAX));
}

fn put_str(out: &mut BytesMut, s: &str) {
    put_len(out, s.len());
    out.put_slice(s.as_bytes());
}

fn put_opt_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.put_u8(0),
    }
}

fn put_ids(out: &mut BytesMut, ids: Option<&[i32]>) {
    match ids {
        Some(ids) => {
            put_len(out, ids.len());
            for id in ids {
                out.put_i32(*id);
            }
        }
        None => out.put_u8(0),
    }
}

fn read_ids(buf: &mut Bytes) -> Result<Option<Vec<i32>>, DecodeError> {
    codec::read_nullable_array(buf, true, codec::read_i32)
}
