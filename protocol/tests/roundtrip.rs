//! Round trip of every API and version the schemas describe: random message →
//! encode → decode → equal, with `encoded_size` equal to the bytes written.

use brook_protocol::api::ApiKey;
use brook_protocol::codec::{Chunk, Encoder};
use brook_protocol::messages::{RequestBody, ResponseBody, API_SCHEMAS};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;

const ITERATIONS: usize = 60;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn check_request(key: ApiKey, version: i16, rng: &mut StdRng) -> TestResult {
    let msg = RequestBody::random(key, rng, version).ok_or("no schema")?;
    let mut e = Encoder::new();
    msg.encode(&mut e, version)?;
    let bytes = e.into_bytes()?;
    assert_eq!(
        msg.encoded_size(version)?,
        bytes.len(),
        "{key} v{version} request size"
    );
    let mut buf = bytes.clone();
    let back = RequestBody::decode(key, version, &mut buf)?;
    assert!(buf.is_empty(), "{key} v{version}: {} bytes left", buf.len());
    assert_eq!(back, msg, "{key} v{version} request");
    Ok(())
}

fn check_response(key: ApiKey, version: i16, rng: &mut StdRng) -> TestResult {
    let msg = ResponseBody::random(key, rng, version).ok_or("no schema")?;
    let mut e = Encoder::new();
    msg.encode(&mut e, version)?;
    let bytes = e.into_bytes()?;
    assert_eq!(
        msg.encoded_size(version)?,
        bytes.len(),
        "{key} v{version} response size"
    );
    let mut buf = bytes.clone();
    let back = ResponseBody::decode(key, version, &mut buf)?;
    assert!(buf.is_empty(), "{key} v{version}: {} bytes left", buf.len());
    assert_eq!(back, msg, "{key} v{version} response");
    Ok(())
}

#[test]
fn every_api_every_version_roundtrips() -> TestResult {
    assert_eq!(
        API_SCHEMAS.len(),
        ApiKey::ALL.len(),
        "every API needs a schema"
    );
    let mut rng = StdRng::seed_from_u64(0x0062_726f_6f6b);
    for s in API_SCHEMAS {
        for version in s.min..=s.max {
            for _ in 0..ITERATIONS {
                check_request(s.key, version, &mut rng)?;
                check_response(s.key, version, &mut rng)?;
            }
        }
    }
    Ok(())
}

#[test]
fn truncated_input_never_panics() -> TestResult {
    // Every proper prefix of a valid encoding must fail cleanly (or, for messages
    // whose tail is optional, decode to something), never panic.
    let mut rng = StdRng::seed_from_u64(7);
    for s in API_SCHEMAS {
        for version in s.min..=s.max {
            let msg = RequestBody::random(s.key, &mut rng, version).ok_or("no schema")?;
            let mut e = Encoder::new();
            msg.encode(&mut e, version)?;
            let bytes = e.into_bytes()?;
            for cut in 0..bytes.len() {
                let mut b = bytes.slice(..cut);
                let _ = RequestBody::decode(s.key, version, &mut b);
            }
        }
    }
    Ok(())
}

#[test]
fn versions_outside_schema_are_rejected() {
    let mut b = Bytes::new();
    let err = RequestBody::decode(ApiKey::Fetch, 99, &mut b);
    assert_eq!(
        err,
        Err(brook_protocol::DecodeError::UnsupportedVersion {
            api_key: 1,
            version: 99
        })
    );
}

#[test]
fn region_records_are_emitted_as_chunks() -> TestResult {
    use brook_protocol::codec::{Message, Records};
    use brook_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use brook_protocol::messages::FetchResponse;

    let part = PartitionData {
        records: Some(Records::Region { id: 9, len: 1000 }),
        ..Default::default()
    };
    let topic = FetchableTopicResponse {
        partitions: vec![part],
        ..Default::default()
    };
    let resp = FetchResponse {
        responses: vec![topic],
        ..Default::default()
    };
    for version in [4, 11, 12, 16] {
        let mut e = Encoder::new();
        resp.encode(&mut e, version)?;
        assert_eq!(e.total_len(), resp.encoded_size(version)?);
        let chunks = e.finish();
        assert!(
            chunks
                .iter()
                .any(|c| *c == Chunk::Region { id: 9, len: 1000 }),
            "v{version}"
        );
    }
    Ok(())
}

mod header_versions {
    use brook_protocol::api::ApiKey;
    use brook_protocol::header::{request_header_version, response_header_version};

    #[test]
    fn flexible_versions_pick_header_v2_v1() {
        assert_eq!(request_header_version(ApiKey::Produce, 8), 1);
        assert_eq!(request_header_version(ApiKey::Produce, 9), 2);
        assert_eq!(response_header_version(ApiKey::Produce, 9), 1);
        assert_eq!(response_header_version(ApiKey::Fetch, 11), 0);
        assert_eq!(request_header_version(ApiKey::Metadata, 9), 2);
        assert_eq!(request_header_version(ApiKey::OffsetDelete, 0), 1);
        assert_eq!(request_header_version(ApiKey::DescribeCluster, 0), 2);
    }

    #[test]
    fn api_versions_response_is_always_header_v0() {
        for v in 0..=10 {
            assert_eq!(response_header_version(ApiKey::ApiVersions, v), 0);
        }
        assert_eq!(request_header_version(ApiKey::ApiVersions, 2), 1);
        assert_eq!(request_header_version(ApiKey::ApiVersions, 3), 2);
        // A version the broker does not know yet is still read with header v2.
        assert_eq!(request_header_version(ApiKey::ApiVersions, 7), 2);
    }
}

mod arbitrary_bytes {
    use brook_protocol::messages::{RequestBody, ResponseBody, API_SCHEMAS};
    use bytes::Bytes;
    use proptest::prelude::*;

    proptest! {
        /// Any byte string, for any API and version, decodes or fails cleanly.
        #[test]
        fn decoding_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256), pick in any::<usize>(), v in any::<i16>()) {
            let s = &API_SCHEMAS[pick % API_SCHEMAS.len()];
            let version = s.min + v.rem_euclid(s.max - s.min + 1);
            let bytes = Bytes::from(data);
            let _ = RequestBody::decode(s.key, version, &mut bytes.clone());
            let _ = ResponseBody::decode(s.key, version, &mut bytes.clone());
        }
    }
}
