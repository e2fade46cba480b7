//! The generator on test-only schemas (`tests/schema_fixtures/`), covering features
//! the real schemas do not use: unsigned and float scalars, a nullable struct with
//! its int8 marker, keyword field names, nested tagged fields, unknown tagged fields.

#[allow(clippy::all, reason = "generated code")]
mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}

use brook_protocol::codec::{Bytes, EncodeError, Encoder, Message, RawTaggedField};
use fixtures::heartbeat_request::Owner;
use fixtures::{HeartbeatRequest, HeartbeatResponse};
use rand::rngs::StdRng;
use rand::SeedableRng;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn encode<M: Message>(m: &M, version: i16) -> Result<Bytes, EncodeError> {
    let mut e = Encoder::new();
    m.encode(&mut e, version)?;
    assert_eq!(m.encoded_size(version)?, e.total_len());
    e.into_bytes()
}

#[test]
fn defaults_come_from_the_schema() {
    let r = HeartbeatRequest::default();
    assert_eq!((r.ratio, r.small, r.owner.clone()), (1.5, 7, None));
    assert_eq!(Owner::default().epoch, -1);
}

#[test]
fn random_roundtrip_every_version() -> TestResult {
    let mut rng = StdRng::seed_from_u64(3);
    for version in 0..=3 {
        for _ in 0..200 {
            let m = HeartbeatRequest::random(&mut rng, version);
            assert_eq!(
                HeartbeatRequest::decode(&mut encode(&m, version)?, version)?,
                m
            );
            let m = HeartbeatResponse::random(&mut rng, version);
            assert_eq!(
                HeartbeatResponse::decode(&mut encode(&m, version)?, version)?,
                m
            );
        }
    }
    Ok(())
}

#[test]
fn nullable_struct_uses_int8_marker() -> TestResult {
    let m = HeartbeatRequest {
        r#type: 5,
        blob: Some(Bytes::new()),
        ..Default::default()
    };
    let b = encode(&m, 0)?;
    // type, ratio, small, blob (int32 0), owner marker -1.
    assert_eq!(b.len(), 1 + 8 + 2 + 4 + 1);
    assert_eq!(b[b.len() - 1], 0xff);
    let m = HeartbeatRequest {
        owner: Some(Owner::default()),
        blob: Some(Bytes::new()),
        ..Default::default()
    };
    let b = encode(&m, 0)?;
    assert_eq!(&b[15..], &[1, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    Ok(())
}

#[test]
fn null_where_not_nullable_is_an_encode_error() {
    // `blob` is nullable from v1 only.
    let m = HeartbeatRequest::default();
    assert_eq!(encode(&m, 0), Err(EncodeError::NullNotAllowed("blob")));
    assert!(encode(&m, 1).is_ok());
}

#[test]
fn unknown_tagged_fields_survive_in_order() -> TestResult {
    let m = HeartbeatRequest {
        extra: vec![9],
        unknown_tagged_fields: vec![
            RawTaggedField {
                tag: 0,
                data: Bytes::from_static(b"a"),
            },
            RawTaggedField {
                tag: 5,
                data: Bytes::from_static(b"bc"),
            },
        ],
        ..Default::default()
    };
    let b = encode(&m, 2)?;
    // Tagged section at the end: count 3, then tags 0, 1 (known), 5 in order.
    let tail = &b[b.len() - 19..];
    assert_eq!(
        tail,
        &[3, 0, 1, b'a', 1, 9, 2, 0, 0, 0, 0, 0, 0, 0, 9, 5, 2, b'b', b'c'][..]
    );
    assert_eq!(HeartbeatRequest::decode(&mut b.clone(), 2)?, m);
    // In a non-flexible version the tagged section does not exist.
    assert_eq!(
        HeartbeatRequest::decode(&mut encode(&m, 1)?, 1)?.extra,
        Vec::<i64>::new()
    );
    Ok(())
}
