//! The seam between the quorum and the application it replicates.
//!
//! [`App`] is the replicated state (brook's metadata image); it must be a pure,
//! deterministic function of the entries it is given: replaying the same
//! entries onto the same snapshot must give the same state on every node.
//! [`AppRpcHandler`] answers application RPCs (broker registration,
//! heartbeats, forwarded admin requests) that arrive on the controller listener.

use std::collections::BTreeMap;
use std::future::Future;

use crate::types::LogId;

/// The replicated application state.
///
/// Calls come from the state-machine task one at a time, under the write
/// half of a lock that readers share, so keep each call short and do no I/O.
pub trait App: Send + Sync + 'static {
    /// Apply one committed command. `log_id.leader_id.term` is the Raft term
    /// (brook's controller epoch) and `log_id.index` its position in the log.
    /// The returned bytes go back to the writer of the command.
    fn apply(&mut self, log_id: LogId, command: &[u8]) -> Vec<u8>;

    /// Called for committed entries that carry no command (the blank entry a
    /// new leader writes at the start of its term, membership changes), so the
    /// application can observe a new term. Does nothing by default.
    fn observe(&mut self, log_id: LogId) {
        let _ = log_id;
    }

    /// Serialize the whole state.
    fn snapshot(&self) -> Vec<u8>;

    /// Replace the whole state with the one serialized in `snapshot`.
    ///
    /// # Errors
    ///
    /// A description of why `snapshot` could not be decoded; the state must be
    /// left unchanged in that case.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
}

/// Answers application RPCs received on the controller listener.
pub trait AppRpcHandler: Send + Sync + 'static {
    /// Handle one request from node `from` (as it named itself in the
    /// connection handshake; a broker that is not a voter uses its own id).
    ///
    /// # Errors
    ///
    /// A message sent back to the caller as [`crate::CallError::Remote`].
    fn handle(
        &self,
        from: u64,
        request: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

/// An [`AppRpcHandler`] that refuses every request, for nodes that serve none.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAppRpc;

impl AppRpcHandler for NoAppRpc {
    async fn handle(&self, _from: u64, _request: Vec<u8>) -> Result<Vec<u8>, String> {
        Err("this node serves no application RPCs".to_string())
    }
}

/// A tiny key-value [`App`] for tests and examples.
///
/// A command is `key=value` (bytes); the response is the previous value, or
/// empty. A command without `=` deletes the key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KvApp {
    /// Current contents.
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Highest term seen in any applied entry.
    pub last_term: u64,
}

impl KvApp {
    /// Encode a `set` command.
    pub fn set(key: &str, value: &str) -> Vec<u8> {
        format!("{key}={value}").into_bytes()
    }

    /// The value of `key` as UTF-8, if present.
    pub fn get(&self, key: &str) -> Option<String> {
        self.map
            .get(key.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

impl App for KvApp {
    fn apply(&mut self, log_id: LogId, command: &[u8]) -> Vec<u8> {
        self.last_term = self.last_term.max(log_id.leader_id.term);
        match command.iter().position(|b| *b == b'=') {
            Some(eq) => {
                let (k, v) = (&command[..eq], &command[eq + 1..]);
                self.map.insert(k.to_vec(), v.to_vec()).unwrap_or_default()
            }
            None => self.map.remove(command).unwrap_or_default(),
        }
    }

    fn observe(&mut self, log_id: LogId) {
        self.last_term = self.last_term.max(log_id.leader_id.term);
    }

    fn snapshot(&self) -> Vec<u8> {
        // Infallible for these types; an empty snapshot would be caught by restore.
        postcard::to_allocvec(&(&self.map, self.last_term)).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let (map, last_term) =
            postcard::from_bytes(snapshot).map_err(|e| format!("bad KvApp snapshot: {e}"))?;
        self.map = map;
        self.last_term = last_term;
        Ok(())
    }
}
