//! Error types of the codec layer: small `Copy` enums, cheap on the hot path.

/// Why a decode failed. The broker maps these to a closed connection or
/// `UNSUPPORTED_VERSION`; they carry no heap data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("input truncated")]
    Truncated,
    /// A length or count is negative (other than -1 for null) or larger than the
    /// bytes that remain.
    #[error("invalid length {0}")]
    InvalidLength(i64),
    /// A string is not valid UTF-8.
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    /// A null where the version does not allow one.
    #[error("null value in a non-nullable field")]
    UnexpectedNull,
    /// A varint longer than its type allows.
    #[error("invalid varint")]
    InvalidVarint,
    /// The API exists but not in this version.
    #[error("unsupported version {version} of api key {api_key}")]
    UnsupportedVersion {
        /// Wire API key.
        api_key: i16,
        /// Requested version.
        version: i16,
    },
    /// The API key is unknown to brook (or has no schema).
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
}

/// Why an encode failed: the value cannot be written in the requested version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A `None` in a field that is not nullable in this version.
    #[error("field {0} is null but not nullable in this version")]
    NullNotAllowed(&'static str),
    /// A string, byte string or array longer than its length prefix can express.
    #[error("length {0} does not fit the length prefix")]
    LengthOverflow(usize),
    /// The message does not exist in this version.
    #[error("unsupported version {version} of api key {api_key}")]
    UnsupportedVersion {
        /// Wire API key.
        api_key: i16,
        /// Requested version.
        version: i16,
    },
    /// [`crate::codec::Encoder::into_bytes`] was called on output holding a file region.
    #[error("output contains a file region and cannot be flattened")]
    ContainsRegion,
    /// A length prefix token does not belong to this encoder's output.
    #[error("length prefix at offset {0} is outside the output")]
    BadLengthPrefix(usize),
}
