//! Durable small-file replacement shared by the vote, purge marker and snapshot.
//!
//! `write_atomic` writes `<name>.tmp`, fsyncs it, renames it over `<name>` and
//! fsyncs the directory. After a crash the file holds either the old or the
//! new contents, never a mix; a leftover `.tmp` is ignored and overwritten.
//!
//! Every sync, create and rename goes through the `brook_fsio` seam, so the
//! power-loss recorder of the tests sees them.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replace `path` with `bytes` durably (temp file + fsync + rename + dir fsync).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        let mut f = brook_fsio::open(&opts, tmp)?;
        f.write_all(bytes)?;
        brook_fsio::sync_all(&f)?;
    }
    brook_fsio::rename(tmp, path)?;
    brook_fsio::sync_dir(dir)
}

/// Read a whole file, or `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
