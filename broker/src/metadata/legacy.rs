//! The metadata file of single-node brook: cluster id, topics (name, id,
//! partition count, config overrides), the next producer-id block and the
//! materialized view definitions, as one JSON document.
//!
//! File: `<first log dir>/__brook_metadata.json`, replaced atomically (write to a
//! temporary file, fsync, rename, fsync the directory), so after a crash it is
//! either the old or the new version, never a mix.
//!
//! The image is built from records ([`super::MetadataImage`]); this file is
//! its durable form until the controller quorum's metadata log replaces it.
//! [`LegacyImage::to_records`] is the import: the records that rebuild an
//! image from a file written by any earlier brook.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use brook_protocol::codec::Uuid;
use serde::{Deserialize, Serialize};

use super::image::MetadataImage;
use super::records::{ConfigResource, MetadataRecord, PartitionRecord};
use thiserror::Error;

const FILE_NAME: &str = "__brook_metadata.json";

/// Errors reading or writing the metadata file.
#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("metadata file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata file {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One topic's durable record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyTopic {
    /// Topic id, base64 as Kafka prints it.
    pub id: String,
    pub partitions: i32,
    /// Topic-level config overrides (DescribeConfigs source DYNAMIC_TOPIC_CONFIG).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyImage {
    pub cluster_id: String,
    #[serde(default)]
    pub topics: BTreeMap<String, LegacyTopic>,
    /// Producer ids below this are handed out; allocation reserves blocks.
    #[serde(default)]
    pub next_producer_id_block: i64,
    /// Materialized view definitions, by name.
    #[serde(default)]
    pub views: BTreeMap<String, brook_views::ViewDef>,
}

impl LegacyImage {
    /// The records that rebuild this file's content as an image in which
    /// `node` hosts and leads every partition (the only replica of a
    /// single-node cluster), at leader epoch 0 as single-node brook served it.
    ///
    /// # Errors
    /// A topic id that does not parse.
    pub fn to_records(&self, node: i32) -> Result<Vec<MetadataRecord>, String> {
        let mut out = Vec::new();
        for (name, t) in &self.topics {
            let id: Uuid =
                t.id.parse()
                    .map_err(|_| format!("topic {name} has a bad id {}", t.id))?;
            out.push(MetadataRecord::Topic {
                name: name.clone(),
                id,
            });
            for p in 0..t.partitions {
                out.push(MetadataRecord::Partition(PartitionRecord {
                    topic_id: id,
                    partition: p,
                    replicas: vec![node],
                    isr: vec![node],
                    elr: Vec::new(),
                    leader: node,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    ..PartitionRecord::default()
                }));
            }
            for (k, v) in &t.configs {
                out.push(MetadataRecord::Config {
                    resource: ConfigResource::Topic(name.clone()),
                    key: k.clone(),
                    value: Some(v.clone()),
                });
            }
        }
        if self.next_producer_id_block > 0 {
            out.push(MetadataRecord::ProducerIds {
                broker_id: node,
                broker_epoch: -1,
                next: self.next_producer_id_block,
            });
        }
        for def in self.views.values() {
            out.push(MetadataRecord::View(def.clone()));
        }
        Ok(out)
    }

    /// This file's content for `image` (what single-node brook stores).
    pub fn from_image(cluster_id: &str, image: &MetadataImage) -> Self {
        Self {
            cluster_id: cluster_id.to_owned(),
            topics: image
                .topics
                .values()
                .map(|t| {
                    (
                        t.name.clone(),
                        LegacyTopic {
                            id: t.id.to_string(),
                            partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
                            configs: image.topic_configs(&t.name),
                        },
                    )
                })
                .collect(),
            next_producer_id_block: image.next_producer_id,
            views: image.views.clone(),
        }
    }
}

/// Reads and atomically replaces the metadata file.
#[derive(Debug, Clone)]
pub struct MetadataStore {
    dir: PathBuf,
}

impl MetadataStore {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Load the image, or `None` when the broker has never written one.
    ///
    /// # Errors
    /// I/O errors and a file that does not parse.
    pub fn load(&self) -> Result<Option<LegacyImage>, MetadataError> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| MetadataError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(MetadataError::Io { path, source }),
        }
    }

    /// Atomically replace the image on disk.
    ///
    /// # Errors
    /// Any I/O error; the previous file is then still intact.
    pub fn save(&self, image: &LegacyImage) -> Result<(), MetadataError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let io = |source| MetadataError::Io {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(image).map_err(|e| io(std::io::Error::other(e)))?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        let mut img = LegacyImage {
            cluster_id: "abc".into(),
            ..Default::default()
        };
        img.topics.insert(
            "t".into(),
            LegacyTopic {
                id: "x".into(),
                partitions: 3,
                configs: BTreeMap::from([("retention.ms".into(), "5".into())]),
            },
        );
        store.save(&img).unwrap();
        assert_eq!(store.load().unwrap(), Some(img.clone()));
        img.topics.clear();
        store.save(&img).unwrap();
        assert_eq!(store.load().unwrap(), Some(img));
    }

    #[test]
    fn corrupt_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"{nope").unwrap();
        let err = MetadataStore::new(dir.path()).load().unwrap_err();
        assert!(err.to_string().contains(FILE_NAME));
    }
}
