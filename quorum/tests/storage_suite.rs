//! openraft's storage conformance suite against brook's log store and state machine.

use brook_quorum::{KvApp, LogOptions, LogStore, StateMachine, StorageError};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};

struct Builder;

fn open_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(AnyError::error(e)).into()
}

impl StoreBuilder<brook_quorum::TypeConfig, LogStore, StateMachine<KvApp>, tempfile::TempDir>
    for Builder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine<KvApp>), StorageError> {
        let dir = tempfile::tempdir().map_err(open_err)?;
        // Tiny segments so the suite also crosses segment boundaries.
        let options = LogOptions {
            segment_bytes: 64,
            ..LogOptions::default()
        };
        let log = LogStore::open(&dir.path().join("log"), options).map_err(open_err)?;
        let sm =
            StateMachine::open(&dir.path().join("snapshot"), KvApp::default()).map_err(open_err)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() -> anyhow::Result<()> {
    Suite::test_all(Builder)?;
    Ok(())
}
