//! brook's file-system seam: every storage operation whose durability
//! matters goes through here — file and directory syncs, creating files and
//! directories, renames and deletions. The broker's partition storage and the
//! controller quorum's metadata log (`brook-quorum`) both use it.
//!
//! # Layout
//!
//! - this module: the seam, one `#[inline]` function per operation.
//! - [`sim`] (feature `sim`, and this crate's own tests): the power-loss
//!   recorder.
//!
//! - Production: each function is the plain syscall (`#[inline]`, no state, no
//!   allocation beyond what `std` does), so the seam costs nothing.
//! - Tests (feature `sim`, enabled from the dev-dependencies of the crates
//!   whose tests cut power): each operation is reported to the power-loss
//!   recorder ([`sim`]), which tracks what a real disk would keep (file contents up
//!   to their last sync, directory entries up to their directory's last sync)
//!   and can rebuild the data directory as it would be after a power cut at any
//!   recorded operation. A sync the recorder takes is not passed to the disk:
//!   its model is the disk then, and the campaign runs many times faster.
//!   With no recorder active the hook costs one uncontended mutex lock per
//!   operation (cargo unifies features per build, so a test build's binaries
//!   carry it too; release builds of the binary do not).
//! - Appends (`write`/`pwrite`), mmapped index stores and `set_len` are not
//!   reported: they change nothing durable until the next sync, which is.
//! - Concurrency: every function may be called from any thread.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

#[cfg(any(test, feature = "sim"))]
pub mod sim;

/// `fdatasync(2)` of a file (or `fsync` of a directory opened as a `File`).
///
/// # Errors
/// The I/O error of the sync.
#[inline]
pub fn sync_data(file: &File) -> io::Result<()> {
    #[cfg(any(test, feature = "sim"))]
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
    #[cfg(any(test, feature = "sim"))]
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
    #[cfg(any(test, feature = "sim"))]
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
    #[cfg(any(test, feature = "sim"))]
    sim::op(path);
    Ok(())
}

/// `mkdir -p`, durably: each directory it creates is fsynced into its parent,
/// top down, so a power cut leaves a prefix of the path, never a directory
/// whose own entries were synced but whose entry in its parent was lost.
///
/// # Errors
/// I/O errors of the create or of a directory sync.
#[inline]
pub fn create_dir_all_synced(path: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = path
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .collect();
    create_dir_all(path)?;
    for dir in missing.iter().rev() {
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent)?,
            _ => sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

/// `rename(2)`.
///
/// # Errors
/// The I/O error of the rename.
#[inline]
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    #[cfg(any(test, feature = "sim"))]
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
    #[cfg(any(test, feature = "sim"))]
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
    #[cfg(any(test, feature = "sim"))]
    sim::op(path);
    Ok(())
}
