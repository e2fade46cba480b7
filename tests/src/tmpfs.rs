//! Small file systems for disk-full tests (root only).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Result};

/// A tmpfs mounted for the test's lifetime.
pub struct Tmpfs(pub PathBuf, Option<tempfile::TempDir>);

impl Tmpfs {
    /// Mount a tmpfs of `size` (`mount -o size=`) on a new temp dir.
    ///
    /// # Errors
    /// `mount` failed (it needs root).
    pub fn mount(size: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("brook-full-").tempdir()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()?;
        ensure!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Self(dir.path().to_path_buf(), Some(dir)))
    }

    /// Change its size.
    ///
    /// # Errors
    /// `mount -o remount` failed.
    pub fn resize(&self, size: &str) -> Result<()> {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()?;
        ensure!(
            out.status.success(),
            "remount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        drop(self.1.take());
    }
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
