//! The Python clients (kafka-python, confluent-kafka and aiokafka, pinned in
//! `tests/python/requirements.txt`, installed into `.venv-test/`) against brook.
//! Each `tests/python/*_e2e.py` script runs against its own broker.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use brook_tests::{require_clients, venv_python, workspace_root, Broker};

/// Every check script; `every_python_script_is_run` keeps this list complete.
const SCRIPTS: &[&str] = &[
    "kafka_python_e2e.py",
    "confluent_kafka_e2e.py",
    "aiokafka_e2e.py",
];

fn python_dir() -> PathBuf {
    workspace_root().join("tests").join("python")
}

fn python() -> Result<Option<PathBuf>> {
    match venv_python() {
        Some(p) => Ok(Some(p)),
        None if require_clients() => bail!(
            "the test venv .venv-test/ is missing (BROOK_REQUIRE_CLIENTS=1); \
             run scripts/install-test-deps.sh"
        ),
        None => {
            eprintln!("SKIPPED: .venv-test/ is missing; scripts/install-test-deps.sh creates it");
            Ok(None)
        }
    }
}

fn run_script(script: &str) -> Result<()> {
    let Some(python) = python()? else {
        return Ok(());
    };
    let broker = Broker::start_default()?;
    let path = python_dir().join(script);
    // coreutils `timeout` bounds the script: a hung client fails the test (status 124).
    let out = Command::new("timeout")
        .arg("300")
        .arg(&python)
        .arg(&path)
        .current_dir(python_dir())
        .env("BROOK_BOOTSTRAP", broker.bootstrap())
        .env("BROOK_ADMIN_URL", broker.admin_url())
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .with_context(|| format!("running {} {}", python.display(), path.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    ensure!(
        out.status.success(),
        "{script} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        out.status,
        broker.log_tail()
    );
    Ok(())
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
