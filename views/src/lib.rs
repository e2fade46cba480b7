//! brook-views: materialized views of compacted changelog topics, stored in an
//! LSM-tree (the `lsm-tree` crate) whose write-ahead log is the topic itself.
//!
//! A view is declared by a [`ViewDef`] (name, topic, kind, formats), opened as
//! a [`View`] over a directory, fed by a [`Follower`] reading a
//! [`ChangelogSource`] the broker implements, and read with [`View::get`] and
//! [`View::scan`]; every answer carries the source offsets it reflects, and
//! [`View::wait_for`] gives read-your-writes. lsm-tree runs no threads: the
//! host calls [`Follower::step`], [`View::maybe_flush`] and
//! [`View::maybe_compact`] on blocking threads.
//!
//! # Layout
//! - `def`: [`ViewDef`], kinds, formats, field paths, validation.
//! - `fold`: formats and the per-kind fold of one record into a key's state.
//! - `keys`: the key layout in the tree (META rows, user rows, deleted-key
//!   MARKER rows).
//! - `view`: [`View`]: open, apply, reads (`view/read`), flush and compaction
//!   (`view/maintain`), expiry of deleted-key markers (`view/markers`).
//! - `cursor`: scan cursors pinned to a snapshot.
//! - `snapshot`: pinned snapshots and the GC watermark.
//! - `source`: the [`ChangelogSource`] trait.
//! - `follower`: [`Follower`], the read-decode-apply loop and lag.
//! - `options`: [`ViewOptions`] and [`SharedResources`] (block cache, files).
//! - `probe`: metrics ([`METRICS`]).
//! - `log_bridge`: [`install_log_bridge`], lsm-tree's `log` records to tracing.
//! - `error`: [`ViewError`].

pub mod cursor;
pub mod def;
pub mod error;
pub mod fold;
pub mod follower;
pub mod keys;
mod log_bridge;
pub mod options;
pub mod probe;
pub mod snapshot;
pub mod source;
pub mod view;

pub use def::{DefError, FieldPath, Format, ViewDef, ViewKind};
pub use error::{ErrorClass, Result, ViewError};
pub use follower::{Follower, PartitionProgress, Progress};
pub use keys::AppliedOffsets;
pub use log_bridge::install_log_bridge;
pub use options::{SharedResources, ViewOptions};
pub use probe::{ViewMetricDef, METRICS};
pub use source::{ChangelogSource, SourceError, SourceRead};
pub use view::{ApplyStats, Entry, Lookup, Published, ScanPage, ScanRequest, View, ViewStats};
