//! kafkajs (pinned in `tests/node/package.json`, installed into
//! `tests/node/node_modules` by scripts/install-test-deps.sh) against brook: the
//! admin API, an idempotent producer, a consumer group of two members, offsets
//! set while the group is empty, and a compacted topic read while the cleaner
//! runs (`tests/node/e2e_kafkajs.js`).

use anyhow::Result;
use brook_tests::{Broker, BrokerOptions, ClientScripts};

#[test]
fn kafkajs_end_to_end() -> Result<()> {
    let Some(node) = ClientScripts::kafkajs()? else {
        return Ok(());
    };
    // The cleaner looks for work every 100 ms, so the compacted topic is cleaned
    // while the script reads it; the script's groups (seven joins) rebalance at
    // once instead of after the default 3 s.
    let broker = Broker::start(
        BrokerOptions::default()
            .config("log.cleaner.backoff.ms", "100")
            .config("group.initial.rebalance.delay.ms", "0"),
    )?;
    node.run(
        "e2e_kafkajs.js",
        &[("BROOK_BOOTSTRAP", &broker.bootstrap())],
        || broker.log_tail(),
    )
}
