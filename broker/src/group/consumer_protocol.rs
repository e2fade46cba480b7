//! The standard consumer protocol's opaque bytes (protocol type `consumer`),
//! decoded only where the broker needs to look inside them: which topics a group
//! is subscribed to (OffsetDelete) and what a member was assigned (the CLI).
//!
//! Layout (big-endian, Kafka's `ConsumerProtocolSubscription` /
//! `ConsumerProtocolAssignment`, versions 0–3; fields after the ones read here
//! are ignored, which is how Kafka keeps older readers working):
//! - subscription: `version i16`, `topics [string]`, `user_data bytes|null`, …
//! - assignment: `version i16`, `[topic string, partitions [i32]]`, `user_data`, …
//!
//! Decoding is bounded: every length is checked against what remains.

/// Topics a member subscribed to; `None` if the bytes are not a consumer
/// subscription.
pub fn subscription_topics(mut b: &[u8]) -> Option<Vec<String>> {
    let _version = take_i16(&mut b)?;
    let n = take_count(&mut b)?;
    let mut topics = Vec::new();
    for _ in 0..n {
        topics.push(take_string(&mut b)?);
    }
    Some(topics)
}

/// `(topic, partitions)` a member was assigned; `None` if the bytes are not a
/// consumer assignment. Empty bytes are an empty assignment (Kafka sends them
/// to members the leader left out).
pub fn assignment_partitions(mut b: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if b.is_empty() {
        return Some(Vec::new());
    }
    let _version = take_i16(&mut b)?;
    let n = take_count(&mut b)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let topic = take_string(&mut b)?;
        let m = take_count(&mut b)?;
        let mut parts = Vec::new();
        for _ in 0..m {
            parts.push(take_i32(&mut b)?);
        }
        out.push((topic, parts));
    }
    Some(out)
}

/// Encode a version-0 assignment (used by tests and tools that build assignments).
pub fn encode_assignment(topics: &[(String, Vec<i32>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (t, parts) in topics {
        out.extend_from_slice(&(t.len() as i16).to_be_bytes());
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(&(parts.len() as i32).to_be_bytes());
        for p in parts {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out
}

/// Encode a version-0 subscription.
pub fn encode_subscription(topics: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        out.extend_from_slice(&(t.len() as i16).to_be_bytes());
        out.extend_from_slice(t.as_bytes());
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Some(head)
}

fn take_i16(b: &mut &[u8]) -> Option<i16> {
    take(b, 2).map(|s| i16::from_be_bytes([s[0], s[1]]))
}

fn take_i32(b: &mut &[u8]) -> Option<i32> {
    take(b, 4).map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// An array count, refused when it cannot fit in what remains (each element is
/// at least 2 bytes), so hostile counts allocate nothing.
fn take_count(b: &mut &[u8]) -> Option<usize> {
    let n = usize::try_from(take_i32(b)?).ok()?;
    (n <= b.len() / 2).then_some(n)
}

fn take_string(b: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(take_i16(b)?).ok()?;
    String::from_utf8(take(b, len)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_round_trips() {
        let a = vec![("t".to_owned(), vec![0, 3]), ("u".to_owned(), vec![])];
        assert_eq!(assignment_partitions(&encode_assignment(&a)), Some(a));
    }

    #[test]
    fn subscription_round_trips_and_garbage_is_refused() {
        assert_eq!(
            subscription_topics(&encode_subscription(&["a", "b"])),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(subscription_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(assignment_partitions(&[1]), None);
    }
}
