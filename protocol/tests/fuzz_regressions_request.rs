//! Regression tests for the `request` fuzz target
//! (`protocol/fuzz/fuzz_targets/request.rs`), runnable on stable without
//! cargo-fuzz.
//!
//! The property is the fuzz target's: a request frame that decodes (header,
//! then body for the key and version the header names) re-encodes without
//! error to bytes that decode to the same header and body and re-encode to the
//! same bytes. [`REGRESSIONS`] holds every input the fuzzer found that broke
//! it; the other tests apply the property to deterministic mutations of the
//! golden vectors (every truncation, every single-byte change to a few
//! values), so the shapes real clients send are covered on every `cargo test`.

use std::fs;
use std::path::Path;

use brook_protocol::api::ApiKey;
use brook_protocol::codec::Encoder;
use brook_protocol::header::RequestHeader;
use brook_protocol::messages::RequestBody;
use bytes::Bytes;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Crashing inputs found by `cargo fuzz run request` (frame body, without the
/// size prefix), each with what was wrong.
const REGRESSIONS: &[(&str, &[u8])] = &[];

fn decode(frame: &Bytes) -> Option<(RequestHeader, RequestBody)> {
    let mut buf = frame.clone();
    let header = RequestHeader::decode(&mut buf).ok()?;
    let key = ApiKey::from_i16(header.api_key)?;
    let body = RequestBody::decode(key, header.api_version, &mut buf).ok()?;
    Some((header, body))
}

fn encode(header: &RequestHeader, body: &RequestBody) -> TestResult<Bytes> {
    let mut e = Encoder::new();
    header.encode(&mut e)?;
    body.encode(&mut e, header.api_version)?;
    Ok(e.into_bytes()?)
}

/// The fuzz target's property for one frame; `Ok(false)` when the frame does
/// not decode (which is fine), an error when the property fails.
fn check(frame: &[u8]) -> TestResult<bool> {
    let Some((header, body)) = decode(&Bytes::copy_from_slice(frame)) else {
        return Ok(false);
    };
    let first =
        encode(&header, &body).map_err(|e| format!("decoded request does not re-encode: {e}"))?;
    let (header2, body2) = decode(&first).ok_or("re-encoded request does not decode")?;
    if header2 != header || body2 != body {
        return Err("request changed through encode/decode".into());
    }
    if encode(&header2, &body2)? != first {
        return Err("encoding is not stable".into());
    }
    Ok(true)
}

fn golden_vectors() -> TestResult<Vec<(String, Vec<u8>)>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut out = Vec::new();
    for client in fs::read_dir(dir)? {
        let client = client?.path();
        if !client.is_dir() {
            continue;
        }
        for f in fs::read_dir(&client)? {
            let path = f?.path();
            if path.extension().is_some_and(|e| e == "bin") {
                out.push((path.display().to_string(), fs::read(&path)?));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn fuzz_regressions_hold() {
    for (what, input) in REGRESSIONS {
        if let Err(e) = check(input) {
            panic!("{what}: {e}");
        }
    }
}

#[test]
fn truncated_golden_vectors_hold() -> TestResult {
    let vectors = golden_vectors()?;
    assert!(!vectors.is_empty(), "no golden vectors");
    for (name, v) in &vectors {
        assert!(check(v)?, "{name}: the full vector does not decode");
        for len in 0..v.len() {
            check(&v[..len]).map_err(|e| format!("{name} truncated to {len}: {e}"))?;
        }
    }
    Ok(())
}

#[test]
fn mutated_golden_vectors_hold() -> TestResult {
    let mut decoded = 0_usize;
    for (name, v) in golden_vectors()? {
        let mut m = v.clone();
        for i in 0..m.len() {
            let orig = m[i];
            // Values that flip null/empty/length markers and varint continuation bits.
            for b in [0x00, 0x01, 0x7f, 0x80, 0xff, orig ^ 0x01] {
                m[i] = b;
                if check(&m).map_err(|e| format!("{name} byte {i} = {b:#04x}: {e}"))? {
                    decoded += 1;
                }
            }
            m[i] = orig;
        }
    }
    // Most single-byte changes keep a decodable request; if none do, the test
    // is not exercising the encoder at all.
    assert!(decoded > 1000, "only {decoded} mutated vectors decoded");
    Ok(())
}
