//! Writing batches with patched headers: a leader assigns offsets and its
//! epoch in copies of each batch's 61-byte header and writes them with one
//! `pwritev` beside the rest of the request buffer, so produced records are
//! never copied in memory.

use std::fs::File;
use std::io::IoSlice;

use brook_protocol::records::{BatchHeader, BATCH_HEADER_LEN};

/// Batches to append: as they are, or with each batch's 61-byte header
/// replaced by a patched copy (a leader's offsets and epoch) while the rest
/// is written straight from the request buffer, so a produce request's
/// records are never copied in memory.
#[derive(Debug, Clone, Copy)]
pub enum Batches<'a> {
    Whole(&'a [u8]),
    /// `headers[i]` replaces the first 61 bytes of the `i`-th batch of `bytes`.
    Patched {
        bytes: &'a [u8],
        headers: &'a [[u8; BATCH_HEADER_LEN]],
    },
}

impl Batches<'_> {
    /// Bytes the append writes.
    pub fn len(&self) -> usize {
        match self {
            Batches::Whole(b) | Batches::Patched { bytes: b, .. } => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Most iovecs one `pwritev` takes (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// Write `bytes` at `position` with each batch's header taken from
/// `headers`: one `pwritev` per 512 batches, two iovecs each.
pub(crate) fn write_patched(
    file: &File,
    bytes: &[u8],
    headers: &[[u8; BATCH_HEADER_LEN]],
    position: u64,
) -> std::io::Result<()> {
    let mismatch = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "patched headers do not match the batches they patch",
        )
    };
    let mut iov = Vec::with_capacity(headers.len() * 2);
    let mut at = 0usize;
    for h in headers {
        let total = BatchHeader::new(h)
            .ok()
            .and_then(|h| h.total_size())
            .filter(|t| at + t <= bytes.len())
            .ok_or_else(mismatch)?;
        iov.push(IoSlice::new(h));
        iov.push(IoSlice::new(&bytes[at + BATCH_HEADER_LEN..at + total]));
        at += total;
    }
    if at != bytes.len() {
        return Err(mismatch());
    }
    let mut rest: &mut [IoSlice<'_>] = &mut iov;
    let mut position = position;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(IOV_MAX)];
        let offset = i64::try_from(position).map_err(|_| mismatch())?;
        let n = match nix::sys::uio::pwritev(file, chunk, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        position += n as u64;
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}
