//! Writes encoded responses to a client socket: owned bytes with `writev`, record
//! data held in log segments with `sendfile`, so fetched records do not pass
//! through user space. The exception is a small response (up to
//! [`COALESCE_MAX`]) whose records are in the page cache: it is copied into one
//! buffer and sent with one write (see [`gather_cached`]).
//!
//! Only the connection's writer task calls into this module; the socket is shared
//! with the reader task through tokio's readiness API, which allows one reader and
//! one writer at a time.
//!
// Hot path: no allocation beyond the small iovec array, no logging above debug.

use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};

use brook_protocol::codec::Chunk;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::log::FileRegion;

/// Record bytes sent to clients with `sendfile` since the process started.
pub static SENDFILE_BYTES: AtomicU64 = AtomicU64::new(0);

/// An encoded response frame: its pieces in order, and the file regions its
/// [`Chunk::Region`] entries refer to by index.
#[derive(Debug, Default)]
pub struct Frame {
    pub chunks: Vec<Chunk>,
    pub regions: Vec<FileRegion>,
    /// Byte offset of the response's top-level `throttle_time_ms`, when its
    /// version has one (set by the encoder; see [`Frame::set_throttle_time`]).
    pub throttle_at: Option<usize>,
}

impl Frame {
    /// Overwrite the response's `throttle_time_ms` (the client quota layer sets
    /// it after the handler encoded the response). Copies the one small byte
    /// chunk holding the field. Returns false when the response has none.
    pub fn set_throttle_time(&mut self, ms: i32) -> bool {
        let Some(at) = self.throttle_at else {
            return false;
        };
        let mut start = 0usize;
        for chunk in &mut self.chunks {
            match chunk {
                Chunk::Region { len, .. } => start += *len as usize,
                Chunk::Bytes(b) => {
                    let end = start + b.len();
                    if at >= start && at + 4 <= end {
                        let mut copy = bytes::BytesMut::from(&b[..]);
                        copy[at - start..at - start + 4].copy_from_slice(&ms.to_be_bytes());
                        *b = copy.freeze();
                        return true;
                    }
                    start = end;
                }
            }
        }
        false
    }

    /// Total bytes on the wire.
    pub fn len(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| match c {
                Chunk::Bytes(b) => b.len(),
                Chunk::Region { len, .. } => *len as usize,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The region a [`Chunk::Region`] refers to.
    ///
    /// # Errors
    /// No such region, or one shorter than the chunk: the frame's size prefix
    /// already counts `len` bytes there, and sending fewer would make the
    /// client read the next response's bytes as the rest of this one (the
    /// caller closes the connection instead).
    fn region(&self, id: u64, len: u32) -> io::Result<&FileRegion> {
        let region = usize::try_from(id)
            .ok()
            .and_then(|id| self.regions.get(id))
            .ok_or_else(|| io::Error::other("response refers to an unknown file region"))?;
        if region.len < u64::from(len) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file region shorter than the frame announced",
            ));
        }
        Ok(region)
    }
}

/// Largest number of byte chunks gathered into one `writev`.
const MAX_IOV: usize = 64;

/// Frames up to this size whose record bytes are all in the page cache go out
/// as one `write` (see [`gather_cached`]).
const COALESCE_MAX: usize = 64 * 1024;

/// Write a whole frame to `stream`, every byte its size prefix announced, or
/// fail (the caller then closes the connection: a short frame would
/// desynchronize every later response).
///
/// # Errors
/// Socket errors, or a region that refers to a missing table entry, is shorter
/// than its chunk, or lies in a file that became shorter than the region (the
/// segment was truncated or deleted under us).
pub async fn write_frame(stream: &TcpStream, frame: &Frame) -> io::Result<()> {
    if !frame.regions.is_empty() && frame.len() <= COALESCE_MAX {
        if let Some(whole) = gather_cached(frame)? {
            return write_bytes(stream, &[Chunk::Bytes(whole.into())]).await;
        }
    }
    let mut i = 0;
    while i < frame.chunks.len() {
        match &frame.chunks[i] {
            Chunk::Region { id, len } => {
                let region = frame.region(*id, *len)?;
                send_region(stream, region, u64::from(*len)).await?;
                i += 1;
            }
            Chunk::Bytes(_) => {
                let end = frame.chunks[i..]
                    .iter()
                    .take(MAX_IOV)
                    .position(|c| matches!(c, Chunk::Region { .. }))
                    .map_or_else(|| (i + MAX_IOV).min(frame.chunks.len()), |p| i + p);
                write_bytes(stream, &frame.chunks[i..end]).await?;
                i = end;
            }
        }
    }
    Ok(())
}

/// A small frame with file regions, copied into one buffer, if its record
/// bytes are in the page cache (`None` otherwise: the caller sends it with
/// `sendfile`, never waiting for the disk here). A fetch response would
/// otherwise take a `writev`, a `sendfile` and another `writev`: up to three
/// TCP segments, each waking the client, where one does. The copy of at most
/// [`COALESCE_MAX`] bytes costs less than the two extra sends.
///
/// # Errors
/// A region that refers to a missing table entry or is shorter than its
/// chunk (as [`write_frame`]); read errors other than "not cached".
fn gather_cached(frame: &Frame) -> io::Result<Option<Vec<u8>>> {
    let mut whole = Vec::with_capacity(frame.len());
    for chunk in &frame.chunks {
        match chunk {
            Chunk::Bytes(b) => whole.extend_from_slice(b),
            Chunk::Region { id, len } => {
                let region = frame.region(*id, *len)?;
                let start = whole.len();
                whole.resize(start + *len as usize, 0);
                if !super::cached_read::read_cached_at(
                    &region.file,
                    &mut whole[start..],
                    region.position,
                )? {
                    return Ok(None);
                }
            }
        }
    }
    Ok(Some(whole))
}

async fn write_bytes(stream: &TcpStream, chunks: &[Chunk]) -> io::Result<()> {
    let mut bufs: Vec<&[u8]> = chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::Bytes(b) if !b.is_empty() => Some(&b[..]),
            _ => None,
        })
        .collect();
    let mut first = 0;
    while first < bufs.len() {
        stream.writable().await?;
        let iov: Vec<IoSlice<'_>> = bufs[first..].iter().map(|b| IoSlice::new(b)).collect();
        match stream.try_write_vectored(&iov) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                while first < bufs.len() && n >= bufs[first].len() {
                    n -= bufs[first].len();
                    first += 1;
                }
                if n > 0 {
                    bufs[first] = &bufs[first][n..];
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn send_region(stream: &TcpStream, region: &FileRegion, len: u64) -> io::Result<()> {
    let mut offset = i64::try_from(region.position).map_err(io::Error::other)?;
    let mut remaining = len;
    while remaining > 0 {
        stream.writable().await?;
        let count = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        let res = stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile64(
                stream.as_fd(),
                region.file.as_fd(),
                Some(&mut offset),
                count,
            )
            .map_err(io::Error::from)
        });
        match res {
            // The file ended before the region did: the segment shrank under us.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "log segment shorter than fetched region",
                ))
            }
            Ok(n) => {
                remaining -= n as u64;
                SENDFILE_BYTES.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    async fn pair() -> io::Result<(TcpStream, TcpStream)> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(l.local_addr()?).await?;
        let (server, _) = l.accept().await?;
        Ok((server, client))
    }

    fn file_of(len: usize) -> io::Result<Arc<std::fs::File>> {
        let mut f = tempfile::tempfile()?;
        f.write_all(&vec![7u8; len])?;
        Ok(Arc::new(f))
    }

    /// Regression (issue 13): a region shorter than its chunk was sent short
    /// (`min(chunk, region)`), so the client read the next response's bytes as
    /// the rest of this one. The write must fail (and the connection close).
    #[tokio::test]
    async fn short_region_fails_instead_of_desynchronizing() -> io::Result<()> {
        let (server, mut client) = pair().await?;
        let frame = Frame {
            chunks: vec![
                Chunk::Bytes(Bytes::from_static(&[0, 0, 0, 100])),
                Chunk::Region { id: 0, len: 100 },
            ],
            regions: vec![FileRegion {
                file: file_of(100)?,
                position: 0,
                len: 60,
            }],
            throttle_at: None,
        };
        let res = write_frame(&server, &frame).await;
        assert!(res.is_err(), "a short region was written as if whole");
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await?;
        assert!(
            got.len() <= 4,
            "{} bytes of a short frame were sent",
            got.len()
        );
        Ok(())
    }

    /// A file that ends inside its region (the segment shrank after the fetch
    /// was encoded) fails the write too.
    #[tokio::test]
    async fn file_shorter_than_region_fails() -> io::Result<()> {
        let (server, _client) = pair().await?;
        let frame = region_frame(file_of(40)?, 100);
        assert!(write_frame(&server, &frame).await.is_err());
        Ok(())
    }

    /// A frame that is one region of `len` bytes of `file`, from its start.
    fn region_frame(file: Arc<std::fs::File>, len: u32) -> Frame {
        Frame {
            chunks: vec![Chunk::Region { id: 0, len }],
            regions: vec![FileRegion {
                file,
                position: 0,
                len: u64::from(len),
            }],
            throttle_at: None,
        }
    }

    fn numbered_file(len: usize) -> io::Result<Arc<std::fs::File>> {
        let mut f = tempfile::tempfile()?;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        f.write_all(&data)?;
        Ok(Arc::new(f))
    }

    /// A frame of bytes, a file region and more bytes, sent and read back.
    async fn round_trip(region_len: u32) -> io::Result<()> {
        let (server, mut client) = pair().await?;
        let frame = Frame {
            chunks: vec![
                Chunk::Bytes(Bytes::from_static(b"head")),
                Chunk::Region {
                    id: 0,
                    len: region_len,
                },
                Chunk::Bytes(Bytes::from_static(b"tail")),
            ],
            regions: vec![FileRegion {
                file: numbered_file(region_len as usize + 10)?,
                position: 10,
                len: u64::from(region_len),
            }],
            throttle_at: None,
        };
        let coalesced = gather_cached(&frame)?;
        write_frame(&server, &frame).await?;
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await?;
        let mut want = b"head".to_vec();
        want.extend((10..region_len as usize + 10).map(|i| (i % 251) as u8));
        want.extend_from_slice(b"tail");
        assert!(got == want, "the frame arrived changed");
        if let Some(whole) = coalesced {
            assert!(whole == want, "the coalesced frame differs");
        }
        Ok(())
    }

    /// A small fetch response is copied from the page cache and sent whole;
    /// what arrives is the same as with `sendfile`.
    #[tokio::test]
    async fn a_small_frame_is_sent_whole_from_the_page_cache() -> io::Result<()> {
        let frame = region_frame(numbered_file(100)?, 100);
        assert!(
            gather_cached(&frame)?.is_some(),
            "just-written bytes were not read from the page cache"
        );
        round_trip(100).await
    }

    /// A frame over the limit goes out with `sendfile`, unchanged.
    #[tokio::test]
    async fn a_large_frame_is_sent_with_sendfile() -> io::Result<()> {
        round_trip(COALESCE_MAX as u32 * 2).await
    }

    #[tokio::test]
    async fn whole_region_is_sent() -> io::Result<()> {
        let (server, mut client) = pair().await?;
        let frame = Frame {
            chunks: vec![
                Chunk::Bytes(Bytes::from_static(&[0, 0, 0, 100])),
                Chunk::Region { id: 0, len: 100 },
            ],
            regions: vec![FileRegion {
                file: file_of(100)?,
                position: 0,
                len: 100,
            }],
            throttle_at: None,
        };
        write_frame(&server, &frame).await?;
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await?;
        assert_eq!(got.len(), 104);
        Ok(())
    }
}
