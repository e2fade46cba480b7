//! Differential test against the `kafka-protocol` crate (dev-dependency only).
//!
//! For every (API, version) in `SUPPORTED_APIS` that kafka-protocol also knows:
//! a random brook message is encoded by brook, decoded and re-encoded by
//! kafka-protocol, and the bytes must be identical; the re-encoded bytes must decode
//! in brook to the original message. This is also what verifies the schema files.
//! Headers are tested separately (`header.rs`, `roundtrip.rs`).

use brook_protocol::api::{ApiKey, SUPPORTED_APIS};
use brook_protocol::codec::Encoder;
use brook_protocol::messages::{RequestBody, ResponseBody};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey as KpKey, RequestKind, ResponseKind};
use rand::rngs::StdRng;
use rand::SeedableRng;

const ITERATIONS: usize = 40;

fn kp_range(key: ApiKey) -> Option<(i16, i16)> {
    let k = KpKey::try_from(key.as_i16()).ok()?;
    let r = k.valid_versions();
    Some((r.min, r.max))
}

/// Checks one encoding; returns a description of the mismatch if any.
fn compare(
    what: &str,
    brook: &Bytes,
    kp_roundtrip: impl FnOnce(&mut Bytes) -> Result<BytesMut, String>,
) -> Result<Bytes, String> {
    let mut input = brook.clone();
    let again = kp_roundtrip(&mut input)
        .map_err(|e| format!("{what}: kafka-protocol cannot decode brook's bytes: {e}"))?;
    if !input.is_empty() {
        return Err(format!(
            "{what}: kafka-protocol left {} of {} bytes unread",
            input.len(),
            brook.len()
        ));
    }
    if again[..] != brook[..] {
        return Err(format!(
            "{what}: bytes differ\n brook: {:02x?}\n kafka: {:02x?}",
            &brook[..],
            &again[..]
        ));
    }
    Ok(again.freeze())
}

fn run(key: ApiKey, version: i16, rng: &mut StdRng) -> Result<(), String> {
    let kp_key =
        KpKey::try_from(key.as_i16()).map_err(|()| format!("{key}: unknown to kafka-protocol"))?;

    let req = RequestBody::random(key, rng, version).ok_or(format!("{key}: no schema"))?;
    let mut e = Encoder::new();
    req.encode(&mut e, version)
        .map_err(|err| format!("{key} v{version} request encode: {err}"))?;
    let bytes = e.into_bytes().map_err(|err| err.to_string())?;
    let what = format!("{key} v{version} request");
    let again = compare(&what, &bytes, |b| {
        let m = RequestKind::decode(kp_key, b, version).map_err(|e| e.to_string())?;
        let mut out = BytesMut::new();
        m.encode(&mut out, version)
            .map_err(|e| format!("re-encode: {e}"))?;
        Ok(out)
    })?;
    let back = RequestBody::decode(key, version, &mut again.clone())
        .map_err(|err| format!("{what}: {err}"))?;
    if back != req {
        return Err(format!(
            "{what}: brook decode of kafka-protocol bytes differs"
        ));
    }

    let resp = ResponseBody::random(key, rng, version).ok_or(format!("{key}: no schema"))?;
    let mut e = Encoder::new();
    resp.encode(&mut e, version)
        .map_err(|err| format!("{key} v{version} response encode: {err}"))?;
    let bytes = e.into_bytes().map_err(|err| err.to_string())?;
    let what = format!("{key} v{version} response");
    let again = compare(&what, &bytes, |b| {
        let m = ResponseKind::decode(kp_key, b, version).map_err(|e| e.to_string())?;
        let mut out = BytesMut::new();
        m.encode(&mut out, version)
            .map_err(|e| format!("re-encode: {e}"))?;
        Ok(out)
    })?;
    let back = ResponseBody::decode(key, version, &mut again.clone())
        .map_err(|err| format!("{what}: {err}"))?;
    if back != resp {
        return Err(format!(
            "{what}: brook decode of kafka-protocol bytes differs"
        ));
    }
    Ok(())
}

#[test]
fn brook_and_kafka_protocol_agree_on_every_supported_version() {
    let mut rng = StdRng::seed_from_u64(0x006b_6166_6b61);
    let mut failures: Vec<String> = Vec::new();
    let mut checked = 0;
    for s in SUPPORTED_APIS {
        let Some((kmin, kmax)) = kp_range(s.key) else {
            failures.push(format!("{}: unknown to kafka-protocol", s.key));
            continue;
        };
        // kafka-protocol 0.18 follows Kafka 4, which dropped Produce 0-2 (brook
        // advertises but refuses them); nothing to compare against there.
        for version in s.min.max(kmin)..=s.max.min(kmax) {
            checked += 1;
            for _ in 0..ITERATIONS {
                if let Err(e) = run(s.key, version, &mut rng) {
                    failures.push(e);
                    break;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} versions compared");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
