//! Read file bytes only if they are in the page cache: `preadv2(RWF_NOWAIT)`.
//!
//! The writer uses it to send a small fetch response as one `write` instead of
//! `writev` + `sendfile` + `writev` (one TCP segment and one wake-up of the
//! client instead of up to three), without ever waiting for the disk on an
//! async worker thread: bytes that are not cached make the read give up, and
//! the writer falls back to `sendfile`.
//!
//! The one `unsafe` block is the `preadv2` call (nix has no wrapper for it).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Fill `buf` from `file` at `offset` if every byte is in the page cache.
/// `Ok(false)` when some are not (`EAGAIN`), when the file system does not
/// support `RWF_NOWAIT`, or when the file ends first: the caller takes the
/// slow path, which reports a short file as its own error.
///
/// # Errors
/// Other read errors.
pub fn read_cached_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<bool> {
    let mut done = 0usize;
    while done < buf.len() {
        let rest = &mut buf[done..];
        let iov = libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        let at = offset
            .checked_add(done as u64)
            .and_then(|o| libc::off_t::try_from(o).ok())
            .ok_or_else(|| io::Error::other("file offset out of range"))?;
        // SAFETY: `iov` points at `rest`, which is valid for writes of
        // `rest.len()` bytes and outlives the call; the fd is open (borrowed
        // from `file`); the kernel writes at most `iov_len` bytes.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at, libc::RWF_NOWAIT) };
        if n > 0 {
            done += n as usize;
            continue;
        }
        if n == 0 {
            return Ok(false);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::EINVAL) => return Ok(false),
            _ => return Err(err),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_cached_bytes_and_gives_up_at_the_end_of_the_file() -> io::Result<()> {
        let mut f = tempfile::tempfile()?;
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        f.write_all(&data)?;
        let mut buf = vec![0u8; 4_000];
        // Just written, so in the page cache (ext4 and tmpfs take RWF_NOWAIT).
        assert!(read_cached_at(&f, &mut buf, 3_000)?);
        assert_eq!(buf, data[3_000..7_000]);
        // Past the end: never reported as read.
        assert!(!read_cached_at(&f, &mut buf, 8_000)?);
        assert!(!read_cached_at(&f, &mut buf, 20_000)?);
        Ok(())
    }
}
