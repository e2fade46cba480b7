//! The frame decoder fed hostile bytes in hostile chunk sizes.
//!
//! Input: u16 BE max frame size, u8 chunk size, then the stream. Checks that no
//! frame exceeds the maximum and that the buffer never reserves far beyond what
//! actually arrived.
#![no_main]

use brook_protocol::frame::{FrameDecoder, RESERVE_CHUNK};
use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let chunk = usize::from(data[2]).max(1);
    let mut dec = FrameDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut received = 0usize;
    for piece in data[3..].chunks(chunk) {
        buf.put_slice(piece);
        received += piece.len();
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => assert!(frame.len() <= max),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // Geometric growth may double what is held, plus one reserve chunk.
        assert!(
            buf.capacity() <= 2 * (received + RESERVE_CHUNK) + 64,
            "capacity {} after {} bytes",
            buf.capacity(),
            received
        );
    }
});
