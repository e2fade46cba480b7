//! Which cluster a data directory belongs to, and the one-time import of a
//! metadata file written by single-node brook before the metadata log.
//!
//! `meta.properties` (Kafka's file) names the node and cluster of a log dir;
//! a node refuses to start on a log dir of another node or cluster. With no
//! format step, a new node takes its cluster id from, in order: its
//! `meta.properties`, the legacy metadata file, `cluster.id`, a digest of
//! `controller.quorum.voters` (so that every voter of a new cluster agrees
//! without being told), or a random id for a lone node.

use std::net::SocketAddr;
use std::path::Path;

use brook_config::BrokerConfig;
use brook_protocol::codec::Uuid;
use tracing::{info, warn};

use crate::controller::rpc::WireEndpoint;
use crate::controller::Controller;
use crate::metadata::legacy::MetadataStore;

/// The imported legacy file is renamed to this, so it is never imported twice.
const IMPORTED: &str = "__brook_metadata.json.imported";

/// Read `key` from a Java-properties style file's text.
fn property<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
}

/// This node's cluster id (see the module doc for the order).
///
/// # Errors
/// Unreadable files; a configured `cluster.id` that contradicts the data.
pub(super) fn cluster_id(
    dir: &Path,
    config: &BrokerConfig,
    legacy: &MetadataStore,
) -> anyhow::Result<String> {
    let props = dir.join("meta.properties");
    let stored = match std::fs::read_to_string(&props) {
        Ok(text) => property(&text, "cluster.id").map(str::to_owned),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => anyhow::bail!("cannot read {}: {e}", props.display()),
    };
    let stored = match stored {
        Some(id) => Some(id),
        None => legacy.load()?.map(|l| l.cluster_id),
    };
    if let (Some(stored), Some(configured)) = (&stored, &config.cluster_id) {
        anyhow::ensure!(
            stored == configured,
            "cluster.id is {configured}, but the data in {} belongs to cluster {stored}: a log dir cannot move between clusters",
            dir.display()
        );
    }
    if let Some(id) = stored.or_else(|| config.cluster_id.clone()) {
        return Ok(id);
    }
    let voters = &config.controller_quorum_voters;
    if voters.is_empty() {
        return Ok(Uuid::from_bytes(rand::random()).to_string());
    }
    let text = voters
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let id = digest(&text).to_string();
    info!(cluster_id = %id, "new cluster: id derived from controller.quorum.voters");
    Ok(id)
}

/// A stable 16-byte digest (four salted CRC32Cs): every build and platform
/// derives the same id from the same voters.
fn digest(text: &str) -> Uuid {
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(4).enumerate() {
        let salted = format!("brook-cluster-{i}:{text}");
        chunk.copy_from_slice(&crc32c::crc32c(salted.as_bytes()).to_be_bytes());
    }
    Uuid::from_bytes(out)
}

/// Write `meta.properties` on a first start; afterwards it must name this
/// node and cluster (Kafka refuses a log dir of another node or cluster too).
///
/// # Errors
/// Unreadable file, or a log dir of another node or cluster.
pub(super) fn check_meta_properties(
    dir: &Path,
    node_id: i32,
    cluster_id: &str,
) -> anyhow::Result<()> {
    let path = dir.join("meta.properties");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return crate::log::checkpoint::write_atomically(
                &path,
                format!("version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n").as_bytes(),
            )
            .map_err(Into::into);
        }
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    if let Some(v) = property(&text, "node.id") {
        anyhow::ensure!(
            v == node_id.to_string(),
            "{} belongs to node {v}, but node.id is {node_id}: use that node's config or another log dir",
            path.display()
        );
    }
    if let Some(v) = property(&text, "cluster.id") {
        anyhow::ensure!(
            v == cluster_id,
            "{} belongs to cluster {v}, but this node is in cluster {cluster_id}: a log dir cannot move between clusters",
            path.display()
        );
    }
    Ok(())
}

/// Import a legacy metadata file into the metadata log, once: topics and
/// their ids, partitions, configs, the producer-id block and view
/// definitions. Logs and committed offsets are not touched (they stay where
/// they are). The file is then renamed, so it is never imported again.
///
/// # Errors
/// An unreadable file, or the import could not be committed.
pub(super) async fn import_legacy(
    controller: &Controller,
    legacy: &MetadataStore,
    node: i32,
) -> anyhow::Result<()> {
    let Some(file) = legacy.load()? else {
        return Ok(());
    };
    if !controller.is_active() {
        warn!("a legacy metadata file is present, but this node is not the active controller: not importing it");
        return Ok(());
    }
    let records = file
        .to_records(node)
        .map_err(|e| anyhow::anyhow!("legacy metadata: {e}"))?;
    let topics = file.topics.len();
    if !records.is_empty() {
        controller
            .write_local(records)
            .await
            .map_err(|e| anyhow::anyhow!("importing legacy metadata: {e}"))?;
    }
    let path = legacy.path();
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::fsio::rename(&path, &dir.join(IMPORTED))?;
    crate::log::checkpoint::sync_dir(dir)?;
    info!(
        topics,
        "imported the metadata of single-node brook into the metadata log"
    );
    Ok(())
}

/// The endpoints this broker registers: `advertised.listeners`, or the
/// client listeners, with `bound` standing for a listener on port 0.
pub(super) fn endpoints(config: &BrokerConfig, bound: Option<SocketAddr>) -> Vec<WireEndpoint> {
    let listeners: Vec<&brook_config::HostPort> = match &config.advertised_listeners {
        Some(a) => a.iter().collect(),
        None => config.client_listeners(),
    };
    let mut out: Vec<WireEndpoint> = listeners
        .into_iter()
        .map(|l| WireEndpoint {
            name: l.name.clone().unwrap_or_else(|| "PLAINTEXT".into()),
            host: l.host.clone(),
            port: l.port,
        })
        .collect();
    if config.advertised_listeners.is_none() {
        if let (Some(b), Some(first)) = (bound, out.first_mut()) {
            first.host = b.ip().to_string();
            first.port = b.port();
        }
    }
    out
}
