//! The one error enum of the views layer.
//!
//! Definition errors ([`DefError`]) are separate so config loading can report
//! them without a store; everything a running view can hit is a [`ViewError`].
//! The HTTP edge maps [`ViewError::status_class`] to a status code.

use brook_protocol::records::RecordError;
use thiserror::Error;

use crate::def::DefError;
use crate::source::SourceError;

/// Everything that can go wrong opening, feeding or reading a view.
#[derive(Debug, Error)]
pub enum ViewError {
    /// The view definition is invalid.
    #[error("invalid view definition: {0}")]
    Def(#[from] DefError),
    /// The LSM-tree failed (I/O, corruption, format version).
    #[error("view storage: {0}")]
    Storage(#[from] lsm_tree::Error),
    /// The changelog source failed.
    #[error("changelog source: {0}")]
    Source(#[from] SourceError),
    /// A record batch read from the source could not be decoded.
    #[error("decoding {topic}-{partition} near offset {offset}: {source}")]
    Decode {
        /// Source topic.
        topic: String,
        /// Source partition.
        partition: i32,
        /// Offset the read started at.
        offset: i64,
        /// Decoder error.
        source: RecordError,
    },
    /// A META row or aggregate state in the tree does not have the expected layout.
    #[error("corrupt view row: {0}")]
    Corrupt(String),
    /// A scan cursor could not be parsed or does not fit this view.
    #[error("invalid cursor: {0}")]
    InvalidCursor(&'static str),
    /// The snapshot a cursor was pinned to has been garbage collected.
    #[error("cursor expired: its snapshot is no longer retained, restart the scan")]
    CursorExpired,
    /// A lookup key is not valid for the view's key format.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Filesystem error outside the tree (creating the view directory).
    #[error("view I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Coarse class of an error, for mapping to a status code at the HTTP edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The caller sent something invalid (400).
    BadRequest,
    /// The caller must restart (410 for an expired cursor).
    Gone,
    /// The server failed (500).
    Internal,
}

impl ViewError {
    /// Which status class this error maps to. Exhaustive on purpose: a new
    /// variant forces a decision.
    pub fn status_class(&self) -> ErrorClass {
        match self {
            ViewError::Def(_) | ViewError::InvalidCursor(_) | ViewError::InvalidKey(_) => {
                ErrorClass::BadRequest
            }
            ViewError::CursorExpired => ErrorClass::Gone,
            ViewError::Storage(_)
            | ViewError::Source(_)
            | ViewError::Decode { .. }
            | ViewError::Corrupt(_)
            | ViewError::Io(_) => ErrorClass::Internal,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = ViewError> = std::result::Result<T, E>;
