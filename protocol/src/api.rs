//! API keys and the one table of API versions brook supports.
//!
//! [`SUPPORTED_APIS`] is what the broker advertises in ApiVersions and what it
//! accepts; the schema files may describe more versions. Produce is advertised from
//! version 0 because librdkafka disables compression when it is not, but versions
//! below [`PRODUCE_MIN_ACCEPTED`] are refused at request time ([`is_supported`]).

macro_rules! api_keys {
    ($($name:ident = $key:literal),+ $(,)?) => {
        /// A Kafka API brook knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i16)]
        pub enum ApiKey {
            $(
                #[doc = concat!("`", stringify!($name), "` (key ", stringify!($key), ").")]
                $name = $key,
            )+
        }

        impl ApiKey {
            /// Every API key, in key order.
            pub const ALL: &'static [ApiKey] = &[$(ApiKey::$name),+];

            /// The API for a wire key, `None` if brook does not know it.
            #[must_use]
            pub const fn from_i16(key: i16) -> Option<Self> {
                match key {
                    $($key => Some(ApiKey::$name),)+
                    _ => None,
                }
            }

            /// The wire key.
            #[must_use]
            pub const fn as_i16(self) -> i16 {
                self as i16
            }

            /// The API name as Kafka spells it (`"Produce"`, `"ApiVersions"`, …).
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $(ApiKey::$name => stringify!($name),)+
                }
            }
        }
    };
}

api_keys! {
    Produce = 0,
    Fetch = 1,
    ListOffsets = 2,
    Metadata = 3,
    OffsetCommit = 8,
    OffsetFetch = 9,
    FindCoordinator = 10,
    JoinGroup = 11,
    Heartbeat = 12,
    LeaveGroup = 13,
    SyncGroup = 14,
    DescribeGroups = 15,
    ListGroups = 16,
    ApiVersions = 18,
    CreateTopics = 19,
    DeleteTopics = 20,
    DeleteRecords = 21,
    InitProducerId = 22,
    OffsetForLeaderEpoch = 23,
    DescribeConfigs = 32,
    AlterConfigs = 33,
    CreatePartitions = 37,
    DeleteGroups = 42,
    ElectLeaders = 43,
    IncrementalAlterConfigs = 44,
    AlterPartitionReassignments = 45,
    ListPartitionReassignments = 46,
    OffsetDelete = 47,
    DescribeClientQuotas = 48,
    AlterClientQuotas = 49,
    DescribeCluster = 60,
}

impl std::fmt::Display for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the supported-versions table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    /// The API.
    pub key: ApiKey,
    /// Lowest advertised version.
    pub min: i16,
    /// Highest advertised version.
    pub max: i16,
}

const fn row(key: ApiKey, min: i16, max: i16) -> ApiSupport {
    ApiSupport { key, min, max }
}

/// Lowest Produce version brook accepts; 0–2 are advertised but refused.
pub const PRODUCE_MIN_ACCEPTED: i16 = 3;

/// The versions brook advertises, per API (DESIGN.md section 3), in key order.
pub const SUPPORTED_APIS: &[ApiSupport] = &[
    row(ApiKey::Produce, 0, 11),
    row(ApiKey::Fetch, 4, 16),
    row(ApiKey::ListOffsets, 1, 8),
    row(ApiKey::Metadata, 0, 12),
    row(ApiKey::OffsetCommit, 2, 9),
    row(ApiKey::OffsetFetch, 1, 9),
    row(ApiKey::FindCoordinator, 0, 4),
    row(ApiKey::JoinGroup, 0, 9),
    row(ApiKey::Heartbeat, 0, 4),
    row(ApiKey::LeaveGroup, 0, 5),
    row(ApiKey::SyncGroup, 0, 5),
    row(ApiKey::DescribeGroups, 0, 5),
    row(ApiKey::ListGroups, 0, 4),
    row(ApiKey::ApiVersions, 0, 4),
    row(ApiKey::CreateTopics, 2, 7),
    row(ApiKey::DeleteTopics, 1, 6),
    row(ApiKey::DeleteRecords, 0, 2),
    row(ApiKey::InitProducerId, 0, 5),
    row(ApiKey::OffsetForLeaderEpoch, 2, 4),
    row(ApiKey::DescribeConfigs, 1, 4),
    row(ApiKey::AlterConfigs, 0, 2),
    row(ApiKey::CreatePartitions, 0, 3),
    row(ApiKey::DeleteGroups, 0, 2),
    row(ApiKey::ElectLeaders, 0, 2),
    row(ApiKey::IncrementalAlterConfigs, 0, 1),
    row(ApiKey::AlterPartitionReassignments, 0, 1),
    row(ApiKey::ListPartitionReassignments, 0, 0),
    row(ApiKey::OffsetDelete, 0, 0),
    row(ApiKey::DescribeClientQuotas, 0, 1),
    row(ApiKey::AlterClientQuotas, 0, 1),
    row(ApiKey::DescribeCluster, 0, 1),
];

/// The advertised row for `key`.
#[must_use]
pub fn supported(key: ApiKey) -> Option<&'static ApiSupport> {
    SUPPORTED_APIS.iter().find(|s| s.key == key)
}

/// Whether a request of `key` at `version` is accepted (advertised, and for Produce
/// at least [`PRODUCE_MIN_ACCEPTED`]).
#[must_use]
pub fn is_supported(key: ApiKey, version: i16) -> bool {
    if key == ApiKey::Produce && version < PRODUCE_MIN_ACCEPTED {
        return false;
    }
    supported(key).is_some_and(|s| (s.min..=s.max).contains(&version))
}

/// The ApiVersions answer built from [`SUPPORTED_APIS`]: every advertised API with
/// its range, `error_code` as given (0, or 35 UNSUPPORTED_VERSION, in which case the
/// caller encodes it in the v0 layout). The content is the same for every
/// `version` (fields a version lacks are skipped when encoding), so `_version` is
/// only part of the signature for the broker's convenience.
#[must_use]
pub fn api_versions_response(
    _version: i16,
    error_code: i16,
) -> crate::messages::ApiVersionsResponse {
    use crate::messages::api_versions_response::ApiVersion;
    crate::messages::ApiVersionsResponse {
        error_code,
        api_keys: SUPPORTED_APIS
            .iter()
            .map(|s| ApiVersion {
                api_key: s.key.as_i16(),
                min_version: s.min,
                max_version: s.max,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// What a schema file declares for one API (generated from `protocol/schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSchema {
    /// The API.
    pub key: ApiKey,
    /// Lowest version the schema describes.
    pub min: i16,
    /// Highest version the schema describes.
    pub max: i16,
    /// First flexible version, `None` if the API never uses the flexible encoding.
    pub flexible_min: Option<i16>,
}

impl ApiSchema {
    /// Whether `version` uses the flexible encoding (also for versions above the
    /// schema's range, which Kafka never makes non-flexible again).
    #[must_use]
    pub fn is_flexible(&self, version: i16) -> bool {
        self.flexible_min.is_some_and(|f| version >= f)
    }
}

/// The schema row for `key`, `None` if no schema file describes it.
#[must_use]
pub fn schema(key: ApiKey) -> Option<&'static ApiSchema> {
    crate::messages::API_SCHEMAS.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_roundtrip_and_table_covers_all() {
        assert_eq!(ApiKey::ALL.len(), 31);
        for &k in ApiKey::ALL {
            assert_eq!(ApiKey::from_i16(k.as_i16()), Some(k));
            assert!(supported(k).is_some(), "{k} missing from SUPPORTED_APIS");
        }
        assert_eq!(ApiKey::from_i16(17), None);
        assert_eq!(ApiKey::OffsetForLeaderEpoch.name(), "OffsetForLeaderEpoch");
        let keys: Vec<ApiKey> = SUPPORTED_APIS.iter().map(|s| s.key).collect();
        assert_eq!(
            keys,
            ApiKey::ALL,
            "table must be in key order, one row per API"
        );
    }

    #[test]
    fn api_versions_response_lists_the_table() {
        let r = api_versions_response(3, 0);
        assert_eq!(r.api_keys.len(), SUPPORTED_APIS.len());
        assert_eq!(
            (
                r.api_keys[0].api_key,
                r.api_keys[0].min_version,
                r.api_keys[0].max_version
            ),
            (0, 0, 11)
        );
        assert_eq!(api_versions_response(0, 35).error_code, 35);
    }

    #[test]
    fn produce_advertised_from_zero_accepted_from_three() {
        assert_eq!(
            supported(ApiKey::Produce).map(|s| (s.min, s.max)),
            Some((0, 11))
        );
        assert!(!is_supported(ApiKey::Produce, 2));
        assert!(is_supported(ApiKey::Produce, 3));
        assert!(is_supported(ApiKey::Produce, 11));
        assert!(!is_supported(ApiKey::Produce, 12));
        assert!(!is_supported(ApiKey::Fetch, 3));
        assert!(is_supported(ApiKey::DescribeCluster, 1));
    }
}
