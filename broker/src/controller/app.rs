//! [`MetadataApp`]: the metadata image as the quorum's replicated state.
//!
//! Each committed Raft entry carries one encoded batch of metadata records
//! (`metadata::records`); applying it replays the batch onto the image. The
//! result is published on a `watch` channel (latest wins, so a slow reader
//! never holds up the quorum and nothing queues). A snapshot is the image's
//! records ([`MetadataImage::to_records`]) behind the offset and epoch it was
//! taken at: `u64 offset | u64 epoch | batch`, big-endian.
//!
//! Apply is deterministic: a batch that fails to decode, or a record that the
//! image refuses, fails the same way on every node, and the records before it
//! stay applied everywhere alike.

use std::sync::Arc;

use brook_quorum::{App, LogId};
use tokio::sync::watch;
use tracing::error;

use crate::metadata::{decode_batch, encode_batch, MetadataDelta, MetadataImage};

/// The image at one point of the metadata log.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub image: Arc<MetadataImage>,
    /// Index of the last applied entry (0: none).
    pub offset: u64,
    /// Term of the last applied entry: the controller epoch that wrote it.
    pub epoch: u64,
}

/// The replicated metadata state.
#[derive(Debug)]
pub struct MetadataApp {
    current: Applied,
    tx: watch::Sender<Applied>,
}

/// The first byte of an apply result.
const OK: u8 = 0;
const REFUSED: u8 = 1;

impl MetadataApp {
    pub fn new() -> (Self, watch::Receiver<Applied>) {
        let (tx, rx) = watch::channel(Applied::default());
        (
            Self {
                current: Applied::default(),
                tx,
            },
            rx,
        )
    }

    pub fn current(&self) -> &Applied {
        &self.current
    }

    fn advance(&mut self, log_id: LogId) {
        self.current.offset = log_id.index;
        self.current.epoch = log_id.leader_id.term;
    }

    fn publish(&self) {
        self.tx.send_replace(self.current.clone());
    }
}

/// Decode what [`MetadataApp::apply`] returned: `Err` with the reason when
/// the image refused the batch.
pub fn apply_result(bytes: &[u8]) -> Result<(), String> {
    match bytes.split_first() {
        Some((&REFUSED, msg)) => Err(String::from_utf8_lossy(msg).into_owned()),
        _ => Ok(()),
    }
}

impl App for MetadataApp {
    fn apply(&mut self, log_id: LogId, command: &[u8]) -> Vec<u8> {
        self.advance(log_id);
        let result = match decode_batch(bytes::Bytes::copy_from_slice(command)) {
            Ok(records) => {
                let mut next = (*self.current.image).clone();
                let r = next
                    .replay_all(&records, &mut MetadataDelta::default())
                    .map_err(|(i, e)| format!("record {i} of entry {}: {e}", log_id.index));
                self.current.image = Arc::new(next);
                r
            }
            Err(e) => Err(format!("entry {}: {e}", log_id.index)),
        };
        self.publish();
        match result {
            Ok(()) => vec![OK],
            Err(msg) => {
                error!(error = %msg, "metadata entry refused by the image");
                let mut out = vec![REFUSED];
                out.extend_from_slice(msg.as_bytes());
                out
            }
        }
    }

    fn observe(&mut self, log_id: LogId) {
        self.advance(log_id);
        self.publish();
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.current.offset.to_be_bytes());
        out.extend_from_slice(&self.current.epoch.to_be_bytes());
        out.extend_from_slice(&encode_batch(&self.current.image.to_records()));
        out
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let (head, batch) = snapshot
            .split_at_checked(16)
            .ok_or("metadata snapshot is shorter than its header")?;
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let records =
            decode_batch(bytes::Bytes::copy_from_slice(batch)).map_err(|e| e.to_string())?;
        let mut image = MetadataImage::default();
        image
            .replay_all(&records, &mut MetadataDelta::default())
            .map_err(|(i, e)| format!("snapshot record {i}: {e}"))?;
        self.current = Applied {
            image: Arc::new(image),
            offset: word(0),
            epoch: word(8),
        };
        self.publish();
        Ok(())
    }
}
