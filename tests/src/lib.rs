//! brook-tests: the harness that runs `brook` as a real process for end-to-end tests.
//!
//! # Layout
//! - `broker`: [`Broker`] spawns `target/debug/brook serve` with a temporary data dir
//!   and a generated TOML config, waits for its ready file, signals it (`kill -9`,
//!   SIGTERM, SIGINT), restarts it on the same data dir and reads its RSS; the child is
//!   killed on drop.
//! - `cluster`: [`Cluster`] runs N nodes as one controller quorum (every node a
//!   broker and a voter) on fixed per-test ports, starts them together, reads
//!   each node's `/v1/cluster`, waits for an agreed active controller and
//!   converged images, and kills, pauses (SIGSTOP/SIGCONT) and restarts nodes;
//!   failures carry every node's log tail.
//! - `http`: [`http_get`], [`metric_value`] scrape the admin listener's Prometheus text.
//! - `paths`: [`brook_binary`], [`kcat_path`], [`venv_python`], [`require_clients`]
//!   locate the binary and the external clients that `scripts/test.sh` installs;
//!   [`log_segments`] lists a data dir's segment files.
//! - `scripts`: [`ClientScripts`] runs the Python and Node client scripts of
//!   `tests/python` and `tests/node` against a broker, bounded in time.
//! - [`wait_until`]: poll a condition with a deadline (the only sanctioned way to wait).
//!
//! The tests themselves live in `tests/tests/*.rs`, one file per subsystem or client.
//!
//! Crash behaviour: every broker owns a fresh [`tempfile::TempDir`]; nothing outside
//! it is written, so a test that dies leaves at most a temp dir behind. Set
//! `BROOK_TEST_KEEP=1` to keep data dirs and broker logs for post-mortems.

mod broker;
mod cluster;
mod http;
mod paths;
mod scripts;
mod tmpfs;

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

pub use broker::{Broker, BrokerOptions, ReadyInfo, READY_TIMEOUT, SHUTDOWN_TIMEOUT};
pub use cluster::{broker_state_in, Cluster, ClusterOptions, NodeState};
pub use http::{http_get, http_request, metric_value};
pub use nix::sys::signal::Signal;
pub use paths::{
    brook_binary, kcat_path, log_segments, read_file, require_clients, venv_python, which,
    workspace_root,
};
pub use scripts::ClientScripts;
pub use tmpfs::{is_root, Tmpfs};

/// Poll interval for condition waits.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Poll `cond` every few milliseconds until it returns `Ok(true)`, or fail after
/// `timeout` naming `what`. Errors from `cond` are remembered and reported on timeout,
/// not returned at once, so transient failures (a broker still starting) are tolerated.
///
/// # Errors
/// The deadline passed.
pub fn wait_until<F>(what: &str, timeout: Duration, mut cond: F) -> Result<()>
where
    F: FnMut() -> Result<bool>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match cond() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            return match last_err {
                Some(e) => {
                    Err(e.context(format!("timed out after {timeout:?} waiting for {what}")))
                }
                None => Err(anyhow!("timed out after {timeout:?} waiting for {what}")),
            };
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
