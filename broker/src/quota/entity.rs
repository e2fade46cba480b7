//! Quota entities and keys: which configured entry applies to a client
//! (Kafka's precedence), what AlterClientQuotas may set (Kafka's
//! `ClientQuotaControlManager` validation) and DescribeClientQuotas' filter
//! (Kafka's `ClientQuotasImage.describe`). Pure functions of the image.
//!
//! brook has no SASL yet, so every connection's user is unknown: user and
//! (user, client-id) entities are accepted, stored and described, but only
//! client-id entities — a named client id, then the default client id — are
//! matched when enforcing. Kafka's order for one quota key is
//! `/users/<user>/clients/<client-id>`, `/users/<user>/clients/<default>`,
//! `/users/<user>`, `/users/<default>/clients/<client-id>`,
//! `/users/<default>/clients/<default>`, `/users/<default>`,
//! `/clients/<client-id>`, `/clients/<default>`; brook applies the last two.

use std::collections::BTreeMap;

use crate::error::BrokerError;
use crate::metadata::{MetadataRecord, QuotaEntity, QuotaValue};

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// Stored and described; not enforced (brook has no controller-mutation quota).
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
/// Stored and described; not enforced (brook has no connection-rate quota).
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// The configured quotas, as in the metadata image.
pub type QuotaTable = BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>;

/// The limits that apply to one client; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Bytes per second of Produce requests.
    pub produce: Option<f64>,
    /// Bytes per second of Fetch responses.
    pub fetch: Option<f64>,
    /// Percent of one thread's time (100 = one whole thread).
    pub request: Option<f64>,
}

/// The limits for `client_id`: per key, the client's own entity, else the
/// default client-id entity. Kafka gives an empty client id no client-id
/// quota, and so does brook.
pub fn resolve(table: &QuotaTable, client_id: &str) -> Limits {
    if client_id.is_empty() || table.is_empty() {
        return Limits::default();
    }
    let own = QuotaEntity(vec![(CLIENT_ID.to_owned(), Some(client_id.to_owned()))]);
    let default = QuotaEntity(vec![(CLIENT_ID.to_owned(), None)]);
    let lookup = |key: &str| {
        table
            .get(&own)
            .and_then(|v| v.get(key))
            .or_else(|| table.get(&default).and_then(|v| v.get(key)))
            .map(|v| v.0)
    };
    Limits {
        produce: lookup(PRODUCER_BYTE_RATE),
        fetch: lookup(CONSUMER_BYTE_RATE),
        request: lookup(REQUEST_PERCENTAGE),
    }
}

/// Check an entity as Kafka does: not empty, known types, each at most once,
/// no empty names, and `ip` only alone.
///
/// # Errors
/// [`BrokerError::InvalidRequest`] naming the problem.
pub fn validate_entity(parts: &[(String, Option<String>)]) -> Result<QuotaEntity, BrokerError> {
    if parts.is_empty() {
        return Err(BrokerError::InvalidRequest(
            "Invalid empty client quota entity".into(),
        ));
    }
    let mut seen = Vec::new();
    for (t, n) in parts {
        if seen.contains(&t.as_str()) {
            return Err(BrokerError::InvalidRequest(format!(
                "Invalid client quota entity, duplicate entity entry {t}"
            )));
        }
        if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
            return Err(BrokerError::InvalidRequest(format!(
                "Unhandled client quota entity type: {t}"
            )));
        }
        if n.as_deref() == Some("") {
            return Err(BrokerError::InvalidRequest(format!(
                "Empty {t} not supported"
            )));
        }
        seen.push(t.as_str());
    }
    if seen.contains(&IP) && seen.len() > 1 {
        return Err(BrokerError::InvalidRequest(
            "Invalid quota entity combination, IP entity should not be combined with User or ClientId entities.".into(),
        ));
    }
    Ok(QuotaEntity::new(parts.to_vec()))
}

/// Check one key and value for `entity` (Kafka: a known key, greater than 0,
/// whole numbers for byte and connection rates).
fn validate_value(entity: &QuotaEntity, key: &str, value: f64) -> Result<(), BrokerError> {
    let ip = entity.part(IP).is_some();
    let integral = match key {
        PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE if !ip => true,
        CONNECTION_CREATION_RATE if ip => true,
        REQUEST_PERCENTAGE | CONTROLLER_MUTATION_RATE if !ip => false,
        _ => {
            return Err(BrokerError::InvalidRequest(format!(
                "Invalid configuration key {key}"
            )))
        }
    };
    if !value.is_finite() || value <= 0.0 {
        return Err(BrokerError::InvalidRequest(format!(
            "Quota {key} must be greater than 0"
        )));
    }
    if integral && value.fract() != 0.0 {
        return Err(BrokerError::InvalidRequest(format!(
            "{key} cannot be a fractional value."
        )));
    }
    Ok(())
}

/// The records for one AlterClientQuotas entry: `ops` are (key, value), a
/// `None` value removing the key. Keys whose value does not change produce no
/// record.
///
/// # Errors
/// An invalid entity, key or value ([`BrokerError::InvalidRequest`]); then
/// nothing of the entry is applied.
pub fn alter(
    table: &QuotaTable,
    parts: &[(String, Option<String>)],
    ops: &[(String, Option<QuotaValue>)],
) -> Result<Vec<MetadataRecord>, BrokerError> {
    let entity = validate_entity(parts)?;
    let mut seen = Vec::new();
    for (key, value) in ops {
        if seen.contains(&key.as_str()) {
            return Err(BrokerError::InvalidRequest(format!(
                "Duplicate quota key {key}"
            )));
        }
        seen.push(key.as_str());
        match value {
            Some(v) => validate_value(&entity, key, v.0)?,
            None => validate_value(&entity, key, 1.0)?,
        }
    }
    let current = table.get(&entity);
    Ok(ops
        .iter()
        .filter(|(key, value)| current.and_then(|c| c.get(key)) != value.as_ref())
        .map(|(key, value)| MetadataRecord::ClientQuota {
            entity: entity.clone(),
            key: key.clone(),
            value: *value,
        })
        .collect())
}

/// How a DescribeClientQuotas filter component matches an entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// This exact name (`Some`) or the default entity (`None`).
    Exact(Option<String>),
    /// Any entity with a part of this type.
    Specified,
}

/// A validated DescribeClientQuotas filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub components: Vec<(String, Match)>,
    pub strict: bool,
}

impl Filter {
    /// The filter from the request's (entity type, match type, match).
    ///
    /// # Errors
    /// As Kafka (all [`BrokerError::InvalidRequest`]; Kafka answers an
    /// unknown type with UNSUPPORTED_VERSION): an empty or repeated type, an
    /// unknown type, a match string where none
    /// belongs or missing where one does, an unknown match type, `ip` with
    /// other types.
    pub fn new(
        components: &[(String, i8, Option<String>)],
        strict: bool,
    ) -> Result<Self, BrokerError> {
        let mut out = Filter {
            components: Vec::new(),
            strict,
        };
        for (t, match_type, name) in components {
            if t.is_empty() {
                return Err(BrokerError::InvalidRequest(
                    "Invalid empty entity type.".into(),
                ));
            }
            if out.components.iter().any(|(s, _)| s == t) {
                return Err(BrokerError::InvalidRequest(format!(
                    "Entity type {t} cannot appear more than once in the filter."
                )));
            }
            if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
                return Err(BrokerError::InvalidRequest(format!(
                    "Unsupported entity type {t}"
                )));
            }
            let m = match (match_type, name) {
                (0, Some(n)) => Match::Exact(Some(n.clone())),
                (0, None) => {
                    return Err(BrokerError::InvalidRequest(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                    ))
                }
                (1, None) => Match::Exact(None),
                (2, None) => Match::Specified,
                (1 | 2, Some(_)) => {
                    return Err(BrokerError::InvalidRequest(
                        "Request specified MATCH_TYPE_DEFAULT or MATCH_TYPE_SPECIFIED, but also specified a match string.".into(),
                    ))
                }
                (other, _) => {
                    return Err(BrokerError::InvalidRequest(format!(
                        "Unknown match type {other}"
                    )))
                }
            };
            out.components.push((t.clone(), m));
        }
        let has = |t: &str| out.components.iter().any(|(s, _)| s == t);
        if has(IP) && (has(USER) || has(CLIENT_ID)) {
            return Err(BrokerError::InvalidRequest(
                "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into(),
            ));
        }
        Ok(out)
    }

    /// Whether `entity` passes the filter.
    pub fn matches(&self, entity: &QuotaEntity) -> bool {
        if self.strict && entity.0.len() != self.components.len() {
            return false;
        }
        self.components
            .iter()
            .all(|(t, m)| match (entity.part(t), m) {
                (None, _) => false,
                (Some(name), Match::Exact(want)) => name == want.as_deref(),
                (Some(_), Match::Specified) => true,
            })
    }

    /// The entries of `table` that pass.
    pub fn select<'a>(
        &'a self,
        table: &'a QuotaTable,
    ) -> impl Iterator<Item = (&'a QuotaEntity, &'a BTreeMap<String, QuotaValue>)> + 'a {
        table.iter().filter(|(e, _)| self.matches(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: Option<&str>) -> QuotaEntity {
        QuotaEntity(vec![(CLIENT_ID.into(), name.map(str::to_owned))])
    }

    fn table(entries: &[(QuotaEntity, &str, f64)]) -> QuotaTable {
        let mut t = QuotaTable::new();
        for (e, k, v) in entries {
            t.entry(e.clone())
                .or_default()
                .insert((*k).to_owned(), QuotaValue(*v));
        }
        t
    }

    #[test]
    fn a_client_id_entry_wins_over_the_default_key_by_key() {
        let t = table(&[
            (client(Some("a")), PRODUCER_BYTE_RATE, 100.0),
            (client(None), PRODUCER_BYTE_RATE, 5.0),
            (client(None), CONSUMER_BYTE_RATE, 7.0),
            (
                QuotaEntity::new(vec![
                    (USER.into(), None),
                    (CLIENT_ID.into(), Some("a".into())),
                ]),
                REQUEST_PERCENTAGE,
                1.0,
            ),
        ]);
        let a = resolve(&t, "a");
        assert_eq!(
            (a.produce, a.fetch, a.request),
            (Some(100.0), Some(7.0), None),
            "user entities are not matched without SASL"
        );
        assert_eq!(resolve(&t, "b").produce, Some(5.0));
        assert_eq!(resolve(&t, ""), Limits::default());
    }

    #[test]
    fn alterations_are_validated_as_kafka_does() {
        let t = QuotaTable::new();
        let c = vec![(CLIENT_ID.to_owned(), Some("x".to_owned()))];
        let set = |k: &str, v: f64| vec![(k.to_owned(), Some(QuotaValue(v)))];
        assert_eq!(
            alter(&t, &c, &set(PRODUCER_BYTE_RATE, 1e6)).unwrap().len(),
            1
        );
        assert!(alter(&t, &c, &set(PRODUCER_BYTE_RATE, 1.5)).is_err());
        assert!(alter(&t, &c, &set(PRODUCER_BYTE_RATE, 0.0)).is_err());
        assert!(alter(&t, &c, &set("nonsense", 1.0)).is_err());
        assert!(alter(&t, &c, &set(CONNECTION_CREATION_RATE, 1.0)).is_err());
        assert_eq!(
            alter(&t, &c, &set(REQUEST_PERCENTAGE, 12.5)).unwrap().len(),
            1
        );
        assert!(alter(&t, &[], &set(PRODUCER_BYTE_RATE, 1.0)).is_err());
        let ip_and_client = vec![(IP.to_owned(), None), (CLIENT_ID.to_owned(), None)];
        assert!(alter(&t, &ip_and_client, &set(CONNECTION_CREATION_RATE, 1.0)).is_err());
        let dup = vec![(CLIENT_ID.to_owned(), None), (CLIENT_ID.to_owned(), None)];
        assert!(alter(&t, &dup, &set(PRODUCER_BYTE_RATE, 1.0)).is_err());
        // No change, no record.
        let t = table(&[(client(Some("x")), PRODUCER_BYTE_RATE, 1e6)]);
        assert!(alter(&t, &c, &set(PRODUCER_BYTE_RATE, 1e6))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn describe_filters_match_as_kafka_does() {
        let both = QuotaEntity::new(vec![
            (USER.into(), Some("u".into())),
            (CLIENT_ID.into(), Some("a".into())),
        ]);
        let t = table(&[
            (client(Some("a")), PRODUCER_BYTE_RATE, 1.0),
            (client(None), PRODUCER_BYTE_RATE, 1.0),
            (both.clone(), PRODUCER_BYTE_RATE, 1.0),
        ]);
        let f = |c: &[(&str, i8, Option<&str>)], strict| {
            let c: Vec<_> = c
                .iter()
                .map(|(t, m, n)| ((*t).to_owned(), *m, n.map(str::to_owned)))
                .collect();
            let filter = Filter::new(&c, strict).unwrap();
            filter
                .select(&t)
                .map(|(e, _)| e.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(f(&[], false).len(), 3);
        assert_eq!(f(&[], true).len(), 0);
        assert_eq!(
            f(&[(CLIENT_ID, 0, Some("a"))], false),
            vec![client(Some("a")), both.clone()]
        );
        assert_eq!(
            f(&[(CLIENT_ID, 0, Some("a"))], true),
            vec![client(Some("a"))]
        );
        assert_eq!(f(&[(CLIENT_ID, 1, None)], false), vec![client(None)]);
        assert_eq!(f(&[(USER, 2, None)], false), vec![both]);
        assert!(Filter::new(&[(CLIENT_ID.into(), 0, None)], false).is_err());
        assert!(Filter::new(&[("nope".into(), 2, None)], false).is_err());
    }
}
