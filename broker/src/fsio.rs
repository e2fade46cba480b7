//! The file-system seam of broker storage: every operation whose durability
//! matters goes through here — file and directory syncs, creating files and
//! directories, renames and deletions in the data directory.
//!
//! - Production: each function is the plain syscall (`#[inline]`, no state, no
//!   allocation beyond what `std` does), so the seam costs nothing.
//! - Tests: each operation is reported to the power-loss recorder
//!   (`fsio::sim`), which tracks what a real disk would keep (file contents up
//!   to their last sync, directory entries up to their directory's last sync)
//!   and can rebuild the data directory as it would be after a power cut at any
//!   recorded operation. A sync the recorder takes is not passed to the disk:
//!   its model is the disk then, and the campaign runs many times faster.
//! - Appends (`write`/`pwrite`), mmapped index stores and `set_len` are not
//!   reported: they change nothing durable until the next sync, which is.
//! - Concurrency: every function may be called from any thread.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

#[cfg(test)]
pub(crate) mod sim;

/// `fdatasync(2)` of a file (or `fsync` of a directory opened as a `File`).
///
/// # Errors
/// The I/O error of the sync.
#[inline]
pub fn sync_data(file: &File) -> io::Result<()> {
    #[cfg(test)]
    if sim::synced(file) {
        return Ok(());
    }
    file.sync_data()
}

/// `fsync(2)` of a file: data and metadata.
///
/// # Errors
/// The I/O error of the sync.
#[inline]
pub fn sync_all(file: &File) -> io::Result<()> {
    #[cfg(test)]
    if sim::synced(file) {
        return Ok(());
    }
    file.sync_all()
}

/// fsync a directory, so creates, renames and deletes in it are durable.
///
/// # Errors
/// I/O errors opening or syncing the directory.
#[inline]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let f = File::open(dir)?;
    sync_all(&f)
}

/// Open `path` with `opts` (used for every open that may create a file).
///
/// # Errors
/// The I/O error of the open.
#[inline]
pub fn open(opts: &OpenOptions, path: &Path) -> io::Result<File> {
    let f = opts.open(path)?;
    #[cfg(test)]
    sim::op(path);
    Ok(f)
}

/// `mkdir -p`.
///
/// # Errors
/// The I/O error of the create.
#[inline]
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(test)]
    sim::op(path);
    Ok(())
}

/// `rename(2)`.
///
/// # Errors
/// The I/O error of the rename.
#[inline]
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    #[cfg(test)]
    sim::op(to);
    Ok(())
}

/// `unlink(2)`.
///
/// # Errors
/// The I/O error of the unlink.
#[inline]
pub fn remove_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    #[cfg(test)]
    sim::op(path);
    Ok(())
}

/// Delete a directory tree.
///
/// # Errors
/// The I/O error of the delete.
#[inline]
pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    std::fs::remove_dir_all(path)?;
    #[cfg(test)]
    sim::op(path);
    Ok(())
}
