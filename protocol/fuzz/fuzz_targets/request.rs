//! Request decoding fed hostile bytes: the path every byte a client sends takes.
//!
//! Input: a byte stream of size-prefixed frames, exactly as a client writes them
//! to the socket (the golden vectors under `protocol/tests/vectors/`, each with a
//! 4-byte size prefix, make a good seed corpus). Each complete frame goes through
//! `RequestHeader::decode` and `RequestBody::decode` for whatever API key and
//! version the header names. Whatever decodes must re-encode without error, and
//! the re-encoded bytes must decode to an equal header and body and re-encode to
//! the same bytes again (decode∘encode is the identity on decoded values).
//!
//! Run: `cargo +nightly fuzz run request -- -rss_limit_mb=256`.
#![no_main]

use brook_protocol::codec::Encoder;
use brook_protocol::frame::FrameDecoder;
use brook_protocol::header::RequestHeader;
use brook_protocol::messages::RequestBody;
use brook_protocol::ApiKey;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

/// Small enough that a frame the fuzzer makes up cannot cost much, large enough
/// for every seed vector.
const MAX_FRAME: usize = 1 << 20;

/// Decodes one frame; `None` when it is not a request brook can decode.
fn decode(frame: &Bytes) -> Option<(RequestHeader, RequestBody)> {
    let mut buf = frame.clone();
    let header = RequestHeader::decode(&mut buf).ok()?;
    let key = ApiKey::from_i16(header.api_key)?;
    let body = RequestBody::decode(key, header.api_version, &mut buf).ok()?;
    Some((header, body))
}

fn encode(header: &RequestHeader, body: &RequestBody) -> Bytes {
    let mut e = Encoder::new();
    if let Err(err) = header.encode(&mut e) {
        panic!("decoded header does not re-encode: {err}: {header:?}");
    }
    if let Err(err) = body.encode(&mut e, header.api_version) {
        panic!("decoded body does not re-encode: {err}: {body:?}");
    }
    let predicted = body.encoded_size(header.api_version);
    let bytes = match e.into_bytes() {
        Ok(b) => b,
        Err(err) => panic!("encoder output has regions after a decode: {err}"),
    };
    let mut h = Encoder::new();
    if header.encode(&mut h).is_ok() {
        if let (Ok(hb), Ok(size)) = (h.into_bytes(), predicted) {
            assert_eq!(
                hb.len() + size,
                bytes.len(),
                "encoded_size disagrees with encode"
            );
        }
    }
    bytes
}

fuzz_target!(|data: &[u8]| {
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut stream = BytesMut::from(data);
    while let Ok(Some(frame)) = dec.decode(&mut stream) {
        let Some((header, body)) = decode(&frame) else {
            continue;
        };
        let first = encode(&header, &body);
        let Some((header2, body2)) = decode(&first) else {
            panic!("re-encoded request does not decode: {header:?} {body:?}");
        };
        assert_eq!(header2, header, "header changed through encode/decode");
        assert_eq!(body2, body, "body changed through encode/decode");
        assert_eq!(encode(&header2, &body2), first, "encoding is not stable");
    }
});
