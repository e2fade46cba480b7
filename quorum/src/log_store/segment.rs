//! One log segment file: `log/<seq:020>.seg`, a run of framed entries.
//!
//! # Byte layout
//!
//! ```text
//! frame   = len: u32 LE | crc: u32 LE | payload: [u8; len]
//! payload = postcard(openraft::Entry<TypeConfig>)
//! crc     = crc32c(payload)
//! ```
//!
//! Frames are written back to back from offset 0; a segment holds consecutive
//! log indexes, and a later segment (higher `seq`) continues where the earlier
//! one ends. `seq` only orders the files: which indexes a segment holds is read
//! from its frames.
//!
//! # Concurrency
//!
//! Only the writer thread appends to or truncates a segment. Readers use
//! positioned reads (`pread`) on their own shared handle, for frames the
//! writer has already written; an unlinked segment stays readable through an
//! open handle.
//!
//! # After a crash
//!
//! [`scan`] stops at the first frame whose length runs past the end of the
//! file, exceeds [`MAX_FRAME_PAYLOAD`], fails its checksum or does not decode;
//! the caller truncates the newest segment there (a torn append) and refuses
//! to open if an older segment is damaged.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::types::{Entry, LogId};

/// Bytes before the payload: length and checksum.
pub(crate) const FRAME_HEADER: usize = 8;

/// Largest payload a frame may carry; anything larger is treated as damage.
pub(crate) const MAX_FRAME_PAYLOAD: usize = 64 << 20;

/// File name of segment `seq`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

/// The `seq` of a segment file name, or `None` for other files.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Append the frame for `entry` to `out`; returns the frame's total length.
pub(crate) fn encode_frame(entry: &Entry, out: &mut Vec<u8>) -> io::Result<u32> {
    let payload = postcard::to_allocvec(entry).map_err(io::Error::other)?;
    if payload.len() > MAX_FRAME_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "log entry of {} bytes exceeds the {MAX_FRAME_PAYLOAD} byte limit",
                payload.len()
            ),
        ));
    }
    // payload.len() <= MAX_FRAME_PAYLOAD, so it fits in u32.
    let len32 = payload.len() as u32;
    out.extend_from_slice(&len32.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(len32 + FRAME_HEADER as u32)
}

/// Why a frame could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes remain than the header or the declared length needs.
    Short,
    /// Declared length above [`MAX_FRAME_PAYLOAD`].
    TooLong,
    /// Checksum mismatch.
    Crc,
    /// Checksum fine but the payload does not decode as an entry.
    Decode,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameError::Short => "frame runs past the end of the data",
            FrameError::TooLong => "frame length above the limit",
            FrameError::Crc => "frame checksum mismatch",
            FrameError::Decode => "frame payload does not decode",
        })
    }
}

/// Decode the frame at the start of `buf`: the entry and the frame's length.
/// The whole frame is length- and checksum-checked before decoding.
pub(crate) fn decode_frame(buf: &[u8]) -> Result<(Entry, usize), FrameError> {
    let header = buf.get(..FRAME_HEADER).ok_or(FrameError::Short)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_FRAME_PAYLOAD {
        return Err(FrameError::TooLong);
    }
    let payload = buf
        .get(FRAME_HEADER..FRAME_HEADER + len)
        .ok_or(FrameError::Short)?;
    if crc32c::crc32c(payload) != crc {
        return Err(FrameError::Crc);
    }
    let entry: Entry = postcard::from_bytes(payload).map_err(|_| FrameError::Decode)?;
    Ok((entry, FRAME_HEADER + len))
}

/// One valid frame found by [`scan`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScannedFrame {
    pub(crate) log_id: LogId,
    pub(crate) pos: u64,
    pub(crate) len: u32,
}

/// Result of reading a segment on open.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) frames: Vec<ScannedFrame>,
    /// Bytes covered by valid frames; equal to the file length unless damaged.
    pub(crate) valid_len: u64,
    /// Why scanning stopped before the end, if it did.
    pub(crate) damage: Option<FrameError>,
}

/// Read every valid frame of a segment's contents.
pub(crate) fn scan(data: &[u8]) -> Scan {
    let mut frames = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        match decode_frame(&data[pos..]) {
            Ok((entry, len)) => {
                frames.push(ScannedFrame {
                    log_id: entry.log_id,
                    pos: pos as u64,
                    len: len as u32,
                });
                pos += len;
            }
            Err(e) => {
                return Scan {
                    frames,
                    valid_len: pos as u64,
                    damage: Some(e),
                }
            }
        }
    }
    Scan {
        frames,
        valid_len: pos as u64,
        damage: None,
    }
}

/// Read `len` bytes at `pos` of `file` (positioned; does not move any cursor).
pub(crate) fn read_at(file: &File, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, pos)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::types::AppRequest;

    fn entry(term: u64, index: u64, data: &[u8]) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(AppRequest(data.to_vec())),
        }
    }

    #[test]
    fn frames_round_trip_and_damage_stops_the_scan() {
        let mut buf = Vec::new();
        for i in 0..3 {
            encode_frame(&entry(1, i, b"hello"), &mut buf).unwrap();
        }
        let scan_all = scan(&buf);
        assert_eq!(scan_all.frames.len(), 3);
        assert_eq!(scan_all.valid_len, buf.len() as u64);
        assert!(scan_all.damage.is_none());

        let second = scan_all.frames[1];
        let mut torn = buf.clone();
        torn.truncate(second.pos as usize + 5);
        let s = scan(&torn);
        assert_eq!(
            (s.frames.len(), s.valid_len, s.damage),
            (1, second.pos, Some(FrameError::Short))
        );

        let mut flipped = buf.clone();
        flipped[second.pos as usize + FRAME_HEADER + 1] ^= 0xff;
        let s = scan(&flipped);
        assert_eq!((s.frames.len(), s.damage), (1, Some(FrameError::Crc)));

        let mut huge = buf;
        huge[second.pos as usize..second.pos as usize + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(scan(&huge).damage, Some(FrameError::TooLong));
    }

    #[test]
    fn file_names() {
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("00000000000000000042.seg.tmp"), None);
        assert_eq!(parse_file_name("42.seg"), None);
    }
}
