//! Cluster metadata as a log of records replayed into an image
//! (DESIGN.md section 7).
//!
//! Nothing writes metadata state except replay: the broker turns an admin
//! request into [`MetadataRecord`]s, commits them, replays them into a new
//! [`MetadataImage`] and acts on the [`MetadataDelta`] replay produced.
//!
//! # Layout
//! - `records`: the record types and their versioned binary encoding.
//! - `image`: the image and its pure `replay`; snapshots as records.
//! - `delta`: what a replay changed, and what that means for one node.
//! - `legacy`: the JSON file of single-node brook before the metadata log,
//!   read to import an old data directory.

pub mod delta;
pub mod image;
pub mod legacy;
pub mod records;

#[cfg(test)]
mod tests;

pub use delta::{LocalChanges, MetadataDelta};
pub use image::{MetadataImage, ReplayError, TopicImage};
pub use records::{
    decode_batch, encode_batch, BrokerRegistration, ConfigResource, Endpoint, MetadataRecord,
    PartitionChange, PartitionRecord, QuotaEntity, QuotaValue, RecordDecodeError,
};
