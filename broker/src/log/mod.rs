//! On-disk log storage of one partition, byte-compatible with Kafka's layout.
//!
//! ```text
//! <partition dir>/
//!     00000000000000000000.log        record batches exactly as on the wire
//!     00000000000000000000.index      sparse offset index (u32 rel offset, u32 position), BE
//!     00000000000000000000.timeindex  sparse time index (i64 timestamp, u32 rel offset), BE
//!     leader-epoch-checkpoint         "0\n<n>\n<epoch> <start offset>\n…"
//!     .kafka_cleanshutdown            present only between a clean close and the next open
//!     <base>.{log,index,timeindex}.cleaned / .swap   a clean in progress (see `cleaner::swap`)
//!     <offset>.producers              producer-state snapshot (brook's format, not
//!                                     Kafka's `.snapshot`; see `producer_state::snapshot`)
//! ```
//!
//! # Layout
//! - `config`: [`LogConfig`] (segment/index/retention sizes) and the [`Clock`] seam.
//! - `error`: [`LogError`], the one error type of this layer.
//! - `index_file`: preallocated, mmapped index file mechanics shared by both indexes
//!   (the only `unsafe` in this module tree).
//! - `offset_index`, `time_index`: the two sparse indexes of a segment.
//! - `segment`: one `.log` file plus its indexes; append, read as a [`FileRegion`].
//! - `segments`: the ordered set of segments of a partition.
//! - `partition_log`: [`PartitionLog`], the log of one partition (open, read, truncate).
//! - `append`: leader/follower appends: validation, offset assignment, rolling.
//! - `flush`: group-committed `fdatasync` and the offline ("poisoned") state.
//! - `recovery`: loading segments on open, CRC scan after an unclean stop.
//! - `retention`: time/size retention and `DeleteRecords`.
//! - `cleaner`: log compaction (`cleanup.policy=compact`) and its crash-safe swap.
//! - `checkpoint`: Kafka's offset-checkpoint text files, written atomically.
//! - `leader_epoch_cache`: epoch → start offset map behind `leader-epoch-checkpoint`.

mod append;
pub mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod error;
pub mod flush;
mod index_file;
pub mod leader_epoch_cache;
pub mod offset_index;
pub mod partition_log;
mod patched_write;
pub mod recovery;
pub mod retention;
pub mod segment;
pub mod segments;
#[cfg(test)]
pub(crate) mod test_batches;
pub mod time_index;

pub use checkpoint::{read_offset_checkpoint, write_offset_checkpoint, TopicPartitionOffset};
pub use config::{Clock, LogConfig, SystemClock};
pub use error::LogError;
pub use flush::{FsyncSyncer, Syncer};
pub use leader_epoch_cache::{EpochEntry, LeaderEpochCache};
pub use partition_log::{AppendInfo, OpenOptions, PartitionLog, ReadResult};
pub use retention::RetentionOutcome;
pub use segment::FileRegion;
