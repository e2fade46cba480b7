//! Length-prefixed framing: every Kafka request and response is an `i32`
//! big-endian size followed by that many bytes.
//!
//! [`FrameDecoder`] checks the size as soon as its 4 bytes have arrived: a
//! negative size or one above `max_frame` (`socket.request.max.bytes`) is an
//! error before any of the body is read or reserved. While a body is
//! incomplete it reserves at most [`RESERVE_CHUNK`] bytes ahead of what has
//! actually been received, so a peer that announces a large (allowed) frame and
//! then stalls costs only what it really sent. After an error the connection
//! must be closed: the stream position is no longer known.
//!
//! With the `tokio-codec` feature the decoder also implements
//! `tokio_util::codec::{Decoder, Encoder}`; the module itself does no I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Size of the length prefix.
pub const LENGTH_PREFIX: usize = 4;
/// Most the decoder reserves ahead of received bytes.
pub const RESERVE_CHUNK: usize = 64 * 1024;
/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;

/// Why a frame was refused.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("negative frame size {0}")]
    NegativeSize(i32),
    #[error("frame size {size} exceeds the maximum of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("frame body of {0} bytes does not fit an i32 size")]
    BodyTooLarge(usize),
    /// Only produced through the tokio codec, which reports socket errors here.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into frame bodies (without the size prefix).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame: usize,
    /// Size of the frame whose body is being received, once its prefix is consumed.
    pending: Option<usize>,
}

impl FrameDecoder {
    /// A decoder refusing frames larger than `max_frame` bytes (body size).
    pub fn new(max_frame: usize) -> Self {
        Self {
            max_frame,
            pending: None,
        }
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The next complete frame body from `buf`, or `None` if more bytes are
    /// needed. Consumes the frame (prefix and body) from `buf`.
    ///
    /// # Errors
    /// [`FrameError::NegativeSize`] or [`FrameError::TooLarge`] as soon as the
    /// size prefix is available.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let size = match self.pending {
            Some(size) => size,
            None => {
                if buf.len() < LENGTH_PREFIX {
                    buf.reserve(LENGTH_PREFIX - buf.len());
                    return Ok(None);
                }
                let raw = buf.get_i32();
                let size = usize::try_from(raw).map_err(|_| FrameError::NegativeSize(raw))?;
                if size > self.max_frame {
                    return Err(FrameError::TooLarge {
                        size,
                        max: self.max_frame,
                    });
                }
                self.pending = Some(size);
                size
            }
        };
        if buf.len() < size {
            // Reserve room for the next chunk of the body only; the rest is
            // reserved as it actually arrives.
            let missing = size - buf.len();
            buf.reserve(missing.min(RESERVE_CHUNK));
            return Ok(None);
        }
        self.pending = None;
        Ok(Some(buf.split_to(size).freeze()))
    }

    /// Bytes of the current frame still to arrive (`None` between frames).
    pub fn pending_size(&self) -> Option<usize> {
        self.pending
    }
}

/// Append `body` as one frame (size prefix + body) to `dst`.
///
/// # Errors
/// [`FrameError::BodyTooLarge`] when the body does not fit an `i32` size.
pub fn encode_frame(body: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    let size = i32::try_from(body.len()).map_err(|_| FrameError::BodyTooLarge(body.len()))?;
    dst.reserve(LENGTH_PREFIX + body.len());
    dst.put_i32(size);
    dst.put_slice(body);
    Ok(())
}

#[cfg(feature = "tokio-codec")]
mod codec {
    use bytes::{Bytes, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    use super::{encode_frame, FrameDecoder, FrameError};

    impl Decoder for FrameDecoder {
        type Item = Bytes;
        type Error = FrameError;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
            FrameDecoder::decode(self, src)
        }
    }

    impl Encoder<Bytes> for FrameDecoder {
        type Error = FrameError;

        fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
            encode_frame(&item, dst)
        }
    }

    impl Encoder<&[u8]> for FrameDecoder {
        type Error = FrameError;

        fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
            encode_frame(item, dst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_across_arbitrary_reads() {
        let mut wire = BytesMut::new();
        encode_frame(b"hello", &mut wire).unwrap();
        encode_frame(b"", &mut wire).unwrap();
        encode_frame(b"world!", &mut wire).unwrap();
        let mut dec = FrameDecoder::new(16);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for byte in wire.iter() {
            buf.put_u8(*byte);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, vec![&b"hello"[..], b"", b"world!"]);
        assert!(buf.is_empty());
    }
}
