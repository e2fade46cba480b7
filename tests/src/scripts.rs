//! The client scripts of `tests/python` (run by the test venv's python) and
//! `tests/node` (run by node with kafkajs installed), run against a broker.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::paths::{require_clients, venv_python, which, workspace_root};

/// How long a script may run: coreutils `timeout` stops a hung client, which
/// then fails its test (status 124).
const SCRIPT_TIMEOUT_SECS: &str = "300";

/// An interpreter and the directory its scripts live in.
#[derive(Debug, Clone)]
pub struct ClientScripts {
    program: PathBuf,
    dir: PathBuf,
    env: &'static [(&'static str, &'static str)],
}

impl ClientScripts {
    /// The test venv's python for `tests/python`; `None`, after saying so,
    /// when the venv is missing and missing clients may be skipped.
    ///
    /// # Errors
    /// The venv is missing and `BROOK_REQUIRE_CLIENTS=1`.
    pub fn python() -> Result<Option<Self>> {
        match venv_python() {
            Some(program) => Ok(Some(Self {
                program,
                dir: workspace_root().join("tests").join("python"),
                env: &[("PYTHONUNBUFFERED", "1")],
            })),
            None => skip(".venv-test/ is missing; run scripts/install-test-deps.sh"),
        }
    }

    /// node for `tests/node`, with kafkajs installed in its `node_modules`;
    /// `None`, after saying so, when either is missing and missing clients
    /// may be skipped.
    ///
    /// # Errors
    /// Either is missing and `BROOK_REQUIRE_CLIENTS=1`.
    pub fn kafkajs() -> Result<Option<Self>> {
        let dir = workspace_root().join("tests").join("node");
        let installed = dir.join("node_modules").join("kafkajs").is_dir();
        match which("node") {
            Some(program) if installed => Ok(Some(Self {
                program,
                dir,
                env: &[("KAFKAJS_NO_PARTITIONER_WARNING", "1")],
            })),
            _ => {
                skip("node or tests/node/node_modules is missing; run scripts/install-test-deps.sh")
            }
        }
    }

    /// Run `script` (a file of this directory, run from it) with `env`,
    /// print its stdout, and fail with its status, stdout, stderr and
    /// `log_tail()` (the broker's log) unless it succeeds.
    ///
    /// # Errors
    /// The script could not be started, failed, or ran past the timeout.
    pub fn run(
        &self,
        script: &str,
        env: &[(&str, &str)],
        log_tail: impl FnOnce() -> String,
    ) -> Result<()> {
        let out = Command::new("timeout")
            .arg(SCRIPT_TIMEOUT_SECS)
            .arg(&self.program)
            .arg(self.dir.join(script))
            .current_dir(&self.dir)
            .envs(self.env.iter().copied())
            .envs(env.iter().copied())
            .output()
            .with_context(|| format!("running {} {script}", self.program.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        print!("{stdout}");
        ensure!(
            out.status.success(),
            "{script} failed ({})\nstdout:\n{stdout}\nstderr:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            log_tail()
        );
        Ok(())
    }
}

fn skip(why: &str) -> Result<Option<ClientScripts>> {
    if require_clients() {
        bail!("{why} (BROOK_REQUIRE_CLIENTS=1)");
    }
    eprintln!("SKIPPED: {why}");
    Ok(None)
}
