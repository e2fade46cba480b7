//! The error-code table against the `kafka-protocol` crate's list.

use brook_protocol::error::{ErrorCode, ERROR_CODES};
use kafka_protocol::ResponseError;

/// kafka-protocol's variant names are Kafka's names in CamelCase.
fn upper_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[test]
fn matches_kafka_protocol_for_every_code_both_know() {
    let mut compared = 0;
    for code in -1i16..=400 {
        let Some(theirs) = ResponseError::try_from_code(code) else {
            // kafka-protocol maps 0 to "no error".
            assert_eq!(code, 0);
            assert_eq!(ErrorCode::from_i16(0).name(), "NONE");
            continue;
        };
        if matches!(theirs, ResponseError::Unknown(_)) {
            continue;
        }
        let ours = ErrorCode::from_i16(code);
        assert!(ours.is_known(), "brook lacks code {code} ({theirs:?})");
        assert_eq!(
            ours.name(),
            upper_snake(&format!("{theirs:?}")),
            "code {code}"
        );
        assert_eq!(ours.is_retriable(), theirs.is_retriable(), "code {code}");
        compared += 1;
    }
    assert!(compared >= 120, "only {compared} codes compared");
}

#[test]
fn covers_the_codes_the_design_needs() {
    for (code, name) in [
        (1, "OFFSET_OUT_OF_RANGE"),
        (3, "UNKNOWN_TOPIC_OR_PARTITION"),
        (6, "NOT_LEADER_OR_FOLLOWER"),
        (10, "MESSAGE_TOO_LARGE"),
        (17, "INVALID_TOPIC_EXCEPTION"),
        (35, "UNSUPPORTED_VERSION"),
        (40, "INVALID_CONFIG"),
        (45, "OUT_OF_ORDER_SEQUENCE_NUMBER"),
        (56, "KAFKA_STORAGE_ERROR"),
        (74, "FENCED_LEADER_EPOCH"),
        (79, "MEMBER_ID_REQUIRED"),
        (82, "FENCED_INSTANCE_ID"),
        (100, "UNKNOWN_TOPIC_ID"),
        (103, "INCONSISTENT_TOPIC_ID"),
    ] {
        assert_eq!(ErrorCode::from_i16(code).name(), name);
        assert_eq!(ErrorCode::from_name(name), Some(ErrorCode::from_i16(code)));
    }
}

#[test]
fn no_duplicate_codes_or_names() {
    let mut codes: Vec<i16> = ERROR_CODES.iter().map(|e| e.code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), ERROR_CODES.len());
    let mut names: Vec<&str> = ERROR_CODES.iter().map(|e| e.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ERROR_CODES.len());
}
