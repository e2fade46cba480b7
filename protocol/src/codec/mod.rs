//! Hand-written runtime the generated message codecs are built on.
//!
//! Wire format (Kafka protocol): integers are big-endian; strings, byte strings and
//! arrays carry a length prefix that is an `int16`/`int32` in classic versions and an
//! unsigned varint holding `length + 1` (0 = null) in flexible versions; flexible
//! structs end with a tagged-field section.
//!
//! Decoding is bounded: every length read from the wire is checked against the bytes
//! that remain before anything is allocated or sliced, so a hostile frame costs at
//! most its own size in memory. No function here panics on any input.
//!
//! Encoding writes into an [`Encoder`], which can interleave owned bytes with file
//! regions ([`Chunk::Region`]) so that record data is sent with `sendfile` instead of
//! being copied through user space.
//!
//! Nothing here is shared between threads; every value is plain data.

#[cfg(feature = "arbitrary")]
pub mod arbitrary;
mod decode;
mod encoder;
mod error;
mod types;
mod uuid;
pub mod varint;

pub use decode::*;
pub use encoder::{Chunk, Encoder, LengthPrefix};
pub use error::{DecodeError, EncodeError};
pub use types::{
    array_len_size, bytes_size, put_array_len, put_bytes, put_nullable_bytes, put_nullable_string,
    put_raw_tags_in, put_records, put_string, put_tag_header, raw_tags_size, records_size,
    string_size, tag_size, RawTaggedField, Records,
};
pub use uuid::{ParseUuidError, Uuid};
pub use varint::uvarint_size;

use crate::api::ApiKey;

/// A message (or a nested struct of one) that can be encoded and decoded in every
/// version of [`Message::VERSIONS`].
pub trait Message: Sized {
    /// Inclusive `(min, max)` versions this type's schema describes.
    const VERSIONS: (i16, i16);

    /// Appends the message in the layout of `version` to `e`.
    ///
    /// # Errors
    /// [`EncodeError`] if a value cannot be represented in `version` (a null in a
    /// non-nullable version, a string longer than the length prefix allows, …).
    fn encode(&self, e: &mut Encoder, version: i16) -> Result<(), EncodeError>;

    /// Reads one message in the layout of `version` from the front of `buf`.
    /// Record sets are returned as zero-copy slices of `buf`.
    ///
    /// # Errors
    /// [`DecodeError`] on truncated or malformed input; never panics.
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError>;

    /// The exact number of bytes [`Message::encode`] writes for `version`, counting
    /// the length of file regions.
    ///
    /// # Errors
    /// The same errors [`Message::encode`] would return.
    fn encoded_size(&self, version: i16) -> Result<usize, EncodeError>;
}

/// A top-level request message: knows its API key and its response type.
pub trait Request: Message {
    /// The API this request belongs to.
    const KEY: ApiKey;
    /// The matching response message.
    type Response: Message;
}

pub use bytes::Bytes;
