//! kafkajs (pinned in `tests/node/package.json`, installed into
//! `tests/node/node_modules` by scripts/install-test-deps.sh) against brook: the
//! admin API, an idempotent producer, a consumer group of two members, offsets
//! set while the group is empty, and a compacted topic read while the cleaner
//! runs (`tests/node/e2e_kafkajs.js`).

use std::process::Command;

use anyhow::{ensure, Context, Result};
use brook_tests::{require_clients, which, workspace_root, Broker, BrokerOptions};

#[test]
fn kafkajs_end_to_end() -> Result<()> {
    let dir = workspace_root().join("tests").join("node");
    let installed = dir.join("node_modules").join("kafkajs").is_dir();
    if which("node").is_none() || !installed {
        ensure!(
            !require_clients(),
            "node or tests/node/node_modules is missing; run scripts/install-test-deps.sh"
        );
        eprintln!(
            "SKIPPED: node or kafkajs is missing; scripts/install-test-deps.sh installs them"
        );
        return Ok(());
    }
    // The cleaner looks for work every 100 ms, so the compacted topic is cleaned
    // while the script reads it; the script's groups (seven joins) rebalance at
    // once instead of after the default 3 s.
    let broker = Broker::start(
        BrokerOptions::default()
            .config("log.cleaner.backoff.ms", "100")
            .config("group.initial.rebalance.delay.ms", "0"),
    )?;
    // coreutils `timeout` bounds the script: a hung client fails the test (status 124).
    let out = Command::new("timeout")
        .arg("300")
        .arg("node")
        .arg("e2e_kafkajs.js")
        .current_dir(&dir)
        .env("BROOK_BOOTSTRAP", broker.bootstrap())
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1")
        .output()
        .context("running e2e_kafkajs.js")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    ensure!(
        out.status.success(),
        "e2e_kafkajs.js failed ({})\nstdout:\n{stdout}\nstderr:\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        broker.log_tail()
    );
    Ok(())
}
