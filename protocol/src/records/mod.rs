//! Record batches (magic 2): the header view, record codec, batch builder and
//! compression.
//!
//! # Layout
//! - `header`: zero-copy view over the 61-byte batch header, CRC32C validation,
//!   in-place patching of base offset / leader epoch, batch iteration.
//! - `batch`: [`RecordBatch`] — a validated, decompressed batch and its record
//!   iterator; [`decode_batches`] for a run of batches.
//! - `record`: the record layout ([`Record`], [`Header`]), bounded decode, encode.
//! - `builder`: [`BatchBuilder`] for producers and tests.
//! - `compact`: [`compact::rebuild_batch`], a stored batch rewritten by the log cleaner.
//! - `compression`: gzip, snappy (xerial), lz4 frame, zstd; capped decompression.
//! - `control`: control records (transaction markers).
//! - `error`: [`RecordError`], mapped to Kafka error codes.
//! - `wire`: bounded cursor and zigzag varints (crate-private).

pub mod batch;
pub mod builder;
pub mod compact;
pub mod compression;
pub mod control;
pub mod error;
pub mod header;
pub mod record;
mod wire;

pub use batch::{decode_batches, Batches, RecordBatch, Records};
pub use builder::BatchBuilder;
pub use control::{end_txn_marker_batch, ControlRecord, ControlRecordType};
pub use error::RecordError;
pub use header::{BatchError, BatchHeader, BatchIter, Compression, BATCH_HEADER_LEN};
pub use record::{Header, Record};
