//! The Python clients (kafka-python, confluent-kafka and aiokafka, pinned in
//! `tests/python/requirements.txt`, installed into `.venv-test/`) against brook.
//! Each `tests/python/*_e2e.py` script runs against its own broker.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use brook_tests::{workspace_root, Broker, ClientScripts};

/// Every check script; `every_python_script_is_run` keeps this list complete.
const SCRIPTS: &[&str] = &[
    "kafka_python_e2e.py",
    "confluent_kafka_e2e.py",
    "aiokafka_e2e.py",
];

fn python_dir() -> PathBuf {
    workspace_root().join("tests").join("python")
}

fn run_script(script: &str) -> Result<()> {
    let Some(python) = ClientScripts::python()? else {
        return Ok(());
    };
    let broker = Broker::start_default()?;
    python.run(
        script,
        &[
            ("BROOK_BOOTSTRAP", &broker.bootstrap()),
            ("BROOK_ADMIN_URL", &broker.admin_url()),
        ],
        || broker.log_tail(),
    )
}

#[test]
fn kafka_python() -> Result<()> {
    run_script("kafka_python_e2e.py")
}

#[test]
fn confluent_kafka() -> Result<()> {
    run_script("confluent_kafka_e2e.py")
}

#[test]
fn aiokafka() -> Result<()> {
    run_script("aiokafka_e2e.py")
}

#[test]
fn every_python_script_is_run() -> Result<()> {
    let dir = python_dir();
    for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if Path::new(&name).extension().is_some_and(|e| e == "py") && name.ends_with("_e2e.py") {
            ensure!(
                SCRIPTS.contains(&name.as_str()),
                "tests/python/{name} is not run by clients_python.rs; add a #[test] for it"
            );
        }
    }
    Ok(())
}
