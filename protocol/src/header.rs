//! Request and response headers.
//!
//! Layouts (Kafka header versions):
//! - request v1: `api_key int16, api_version int16, correlation_id int32,
//!   client_id nullable int16-length string`; v2 adds a tagged-field section
//!   (the client id stays a classic string even in v2). v0 (no client id) is only
//!   used by ControlledShutdown v0, which brook does not serve.
//! - response v0: `correlation_id int32`; v1 adds a tagged-field section.
//!
//! Flexible API versions use request header v2 / response header v1, except that
//! the ApiVersions *response* is always header v0, so a client that sent a version
//! the broker does not know can still parse the answer.

use bytes::Bytes;

use crate::api::{self, ApiKey};
use crate::codec::{
    self, read_i16, read_i32, read_nullable_string, read_tagged_field, DecodeError, EncodeError,
    Encoder, RawTaggedField,
};

/// The header version of requests of `key` at `version`: 2 for flexible versions,
/// otherwise 1. Versions beyond the schema count as flexible if the API already is.
#[must_use]
pub fn request_header_version(key: ApiKey, version: i16) -> i16 {
    if api::schema(key).is_some_and(|s| s.is_flexible(version)) {
        2
    } else {
        1
    }
}

/// The header version of responses of `key` at `version`: 1 for flexible versions,
/// otherwise 0; always 0 for ApiVersions.
#[must_use]
pub fn response_header_version(key: ApiKey, version: i16) -> i16 {
    if key != ApiKey::ApiVersions && api::schema(key).is_some_and(|s| s.is_flexible(version)) {
        1
    } else {
        0
    }
}

fn read_tags(buf: &mut Bytes) -> Result<Vec<RawTaggedField>, DecodeError> {
    let n = codec::varint::read_uvarint(buf)?;
    // Each field takes at least two bytes, so `n` is bounded by the input; do not
    // pre-reserve from it.
    let mut out = Vec::new();
    for _ in 0..n {
        let (tag, data) = read_tagged_field(buf)?;
        out.push(RawTaggedField { tag, data });
    }
    Ok(out)
}

fn put_tags(e: &mut Encoder, tags: &[RawTaggedField]) -> Result<(), EncodeError> {
    let n = u32::try_from(tags.len()).map_err(|_| EncodeError::LengthOverflow(tags.len()))?;
    e.put_uvarint(n);
    codec::put_raw_tags_in(e, tags, 0, u64::MAX)
}

/// A request header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestHeader {
    /// Wire API key; kept raw so unknown keys can still be answered.
    pub api_key: i16,
    /// Requested API version.
    pub api_version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// Client-chosen name; null is allowed.
    pub client_id: Option<String>,
    /// Tagged fields of header v2 (none are defined; preserved verbatim).
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl RequestHeader {
    /// The known API, if any.
    #[must_use]
    pub fn key(&self) -> Option<ApiKey> {
        ApiKey::from_i16(self.api_key)
    }

    /// The header version this header uses on the wire: per
    /// [`request_header_version`], and the v1 layout for unknown keys.
    #[must_use]
    pub fn header_version(&self) -> i16 {
        self.key()
            .map_or(1, |k| request_header_version(k, self.api_version))
    }

    /// Reads a request header from the front of a frame, choosing the header
    /// version from the key and version it finds. Unknown keys are read in the v1
    /// layout, so the broker can still answer or close.
    ///
    /// # Errors
    /// Truncated or malformed input.
    pub fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        let api_key = read_i16(buf)?;
        let api_version = read_i16(buf)?;
        let correlation_id = read_i32(buf)?;
        let client_id = read_nullable_string(buf, false)?;
        let mut h = Self {
            api_key,
            api_version,
            correlation_id,
            client_id,
            unknown_tagged_fields: Vec::new(),
        };
        if h.header_version() >= 2 {
            h.unknown_tagged_fields = read_tags(buf)?;
        }
        Ok(h)
    }

    /// Writes the header in the layout [`RequestHeader::header_version`] picks.
    ///
    /// # Errors
    /// A client id longer than `i16::MAX` bytes.
    pub fn encode(&self, e: &mut Encoder) -> Result<(), EncodeError> {
        e.put_i16(self.api_key);
        e.put_i16(self.api_version);
        e.put_i32(self.correlation_id);
        codec::put_nullable_string(e, self.client_id.as_deref(), false)?;
        if self.header_version() >= 2 {
            put_tags(e, &self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

/// A response header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseHeader {
    /// The request's correlation id.
    pub correlation_id: i32,
    /// Tagged fields of header v1 (none are defined; preserved verbatim).
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ResponseHeader {
    /// Reads a response header of `header_version` (0 or 1).
    ///
    /// # Errors
    /// Truncated or malformed input.
    pub fn decode(buf: &mut Bytes, header_version: i16) -> Result<Self, DecodeError> {
        let correlation_id = read_i32(buf)?;
        let unknown_tagged_fields = if header_version >= 1 {
            read_tags(buf)?
        } else {
            Vec::new()
        };
        Ok(Self {
            correlation_id,
            unknown_tagged_fields,
        })
    }

    /// Writes the header in `header_version` (0 or 1).
    ///
    /// # Errors
    /// Only for absurdly large tagged fields.
    pub fn encode(&self, e: &mut Encoder, header_version: i16) -> Result<(), EncodeError> {
        e.put_i32(self.correlation_id);
        if header_version >= 1 {
            put_tags(e, &self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_v1_for_unknown_key() -> Result<(), DecodeError> {
        let raw = [0x03, 0xe7, 0, 5, 0, 0, 0, 9, 0, 2, b'c', b'1', 0xaa];
        let mut b = Bytes::copy_from_slice(&raw);
        let h = RequestHeader::decode(&mut b)?;
        assert_eq!((h.api_key, h.api_version, h.correlation_id), (999, 5, 9));
        assert_eq!(h.client_id.as_deref(), Some("c1"));
        // v1 layout: the trailing byte is body, not a tagged-field count.
        assert_eq!(&b[..], &[0xaa]);
        Ok(())
    }

    #[test]
    fn header_roundtrip_null_client_id() -> Result<(), Box<dyn std::error::Error>> {
        let h = RequestHeader {
            api_key: 1,
            api_version: 4,
            correlation_id: -7,
            ..Default::default()
        };
        let mut e = Encoder::new();
        h.encode(&mut e)?;
        let bytes = e.into_bytes()?;
        assert_eq!(&bytes[8..], &[0xff, 0xff]);
        assert_eq!(RequestHeader::decode(&mut bytes.clone())?, h);
        Ok(())
    }

    #[test]
    fn truncated_header_is_an_error() {
        let mut b = Bytes::from_static(&[0, 3, 0]);
        assert_eq!(RequestHeader::decode(&mut b), Err(DecodeError::Truncated));
    }

    #[test]
    fn response_header_tags_roundtrip() -> Result<(), Box<dyn std::error::Error>> {
        let h = ResponseHeader {
            correlation_id: 5,
            unknown_tagged_fields: vec![RawTaggedField {
                tag: 3,
                data: Bytes::from_static(b"xy"),
            }],
        };
        let mut e = Encoder::new();
        h.encode(&mut e, 1)?;
        let bytes = e.into_bytes()?;
        assert_eq!(&bytes[..], &[0, 0, 0, 5, 1, 3, 2, b'x', b'y']);
        assert_eq!(ResponseHeader::decode(&mut bytes.clone(), 1)?, h);
        Ok(())
    }
}
