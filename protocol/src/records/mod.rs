//! Record batches (magic 2): the header view, record codec, batch builder and
//! compression.
//!
//! # Layout
//! - `header`: zero-copy view over the 61-byte batch header, CRC32C validation,
//!   in-place patching of base offset / leader epoch, batch iteration.

pub mod header;

pub use header::{BatchError, BatchHeader, BatchIter, Compression, BATCH_HEADER_LEN};
