//! Locating things the tests run: the `brook` binary, kcat, the Python venv, and the
//! segment files in a broker's data dir.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Root of the cargo workspace (parent of this crate's manifest dir).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Path of the `brook` binary: `$BROOK_BIN`, else `<target dir>/debug/brook` where the
/// target dir is `$CARGO_TARGET_DIR`, else the one beside the running executable
/// (`target/release/<bench>` → `target/release/brook`, `target/debug/deps/<test>` →
/// `target/debug/brook`).
///
/// # Errors
/// The binary does not exist; the message says how to build it.
pub fn brook_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("BROOK_BIN") {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        bail!("BROOK_BIN={} does not exist", bin.display());
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_relative() {
            workspace_root().join(dir)
        } else {
            dir
        };
        candidates.push(dir.join("debug").join("brook"));
    }
    if let Ok(exe) = std::env::current_exe() {
        // A binary of the same build (target/<profile>/<bench>): its own dir.
        if let Some(dir) = exe.parent() {
            if dir.file_name().is_some_and(|n| n != "deps") {
                candidates.push(dir.join("brook"));
            }
        }
        // target/debug/deps/<test-binary>: two levels up is the profile dir.
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join("brook"));
        }
    }
    candidates.push(workspace_root().join("target").join("debug").join("brook"));
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    bail!(
        "the brook binary was not found (looked at {candidates:?}); build it first with \
         `cargo build -p brook-broker --bin brook` (scripts/test.sh does this)"
    )
}

/// Whether missing external clients (kcat, the Python venv) are a failure rather
/// than a skip. `scripts/test.sh` sets `BROOK_REQUIRE_CLIENTS=1` because it installs them.
pub fn require_clients() -> bool {
    std::env::var("BROOK_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
}

/// Find an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `kcat` (or the older `kafkacat`) on `PATH`.
pub fn kcat_path() -> Option<PathBuf> {
    which("kcat").or_else(|| which("kafkacat"))
}

/// The test venv's python (`.venv-test/bin/python` in the workspace root), if present.
pub fn venv_python() -> Option<PathBuf> {
    let p = workspace_root()
        .join(".venv-test")
        .join("bin")
        .join("python");
    p.is_file().then_some(p)
}

/// Every `*.log` segment file below `dir`, sorted.
///
/// # Errors
/// A directory could not be read.
pub fn log_segments(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "log") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Read a whole file.
///
/// # Errors
/// I/O failure.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .read_to_end(&mut buf)?;
    Ok(buf)
}
