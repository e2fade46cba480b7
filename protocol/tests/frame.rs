//! The frame decoder refuses bad sizes before reading a body and never reserves
//! much beyond what arrived.

use brook_protocol::frame::{encode_frame, FrameDecoder, FrameError, RESERVE_CHUNK};
use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

#[test]
fn oversized_frame_is_refused_as_soon_as_its_size_arrives() {
    let mut dec = FrameDecoder::new(1024);
    let mut buf = BytesMut::new();
    buf.put_slice(&[0, 0]);
    assert!(dec.decode(&mut buf).unwrap().is_none());
    buf.put_slice(&[0x04, 0x01]); // 1025
    let err = dec.decode(&mut buf).unwrap_err();
    assert!(matches!(
        err,
        FrameError::TooLarge {
            size: 1025,
            max: 1024
        }
    ));
    // Nothing of the body was reserved.
    assert!(buf.capacity() < 64);
}

#[test]
fn negative_size_is_refused() {
    let mut dec = FrameDecoder::new(1024);
    let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Err(FrameError::NegativeSize(-1))
    ));
}

#[test]
fn a_stalled_large_frame_reserves_only_a_chunk() {
    let mut dec = FrameDecoder::new(100 << 20);
    let mut buf = BytesMut::new();
    buf.put_i32(90 << 20);
    buf.put_slice(b"abc");
    assert!(dec.decode(&mut buf).unwrap().is_none());
    assert!(
        buf.capacity() <= 2 * (RESERVE_CHUNK + 8),
        "capacity {}",
        buf.capacity()
    );
    assert_eq!(dec.pending_size(), Some(90 << 20));
}

#[test]
fn max_size_frame_is_accepted() {
    let mut dec = FrameDecoder::new(8);
    let mut buf = BytesMut::new();
    encode_frame(b"12345678", &mut buf).unwrap();
    assert_eq!(&dec.decode(&mut buf).unwrap().unwrap()[..], b"12345678");
}

#[cfg(feature = "tokio-codec")]
#[test]
fn tokio_codec_round_trips() {
    use bytes::Bytes;
    use tokio_util::codec::{Decoder, Encoder};
    let mut dec = FrameDecoder::new(100);
    let mut buf = BytesMut::new();
    Encoder::<Bytes>::encode(&mut dec, Bytes::from_static(b"ping"), &mut buf).unwrap();
    assert_eq!(
        &Decoder::decode(&mut dec, &mut buf).unwrap().unwrap()[..],
        b"ping"
    );
}

proptest! {
    #[test]
    fn frames_survive_any_split(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..10),
        splits in proptest::collection::vec(1usize..50, 1..100),
    ) {
        let mut wire = BytesMut::new();
        for b in &bodies {
            encode_frame(b, &mut wire).unwrap();
        }
        let mut dec = FrameDecoder::new(200);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < wire.len() {
            let n = splits[i % splits.len()].min(wire.len() - pos);
            buf.put_slice(&wire[pos..pos + n]);
            pos += n;
            i += 1;
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                out.push(f.to_vec());
            }
        }
        prop_assert_eq!(out, bodies);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..1000) {
        let mut dec = FrameDecoder::new(max);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(f)) = dec.decode(&mut buf) {
            prop_assert!(f.len() <= max);
        }
    }
}
