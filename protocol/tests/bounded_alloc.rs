//! Hostile counts must not turn into allocations: requests that claim 2^31-1
//! elements fail to decode while the heap grows by less than 1 MiB.
//!
//! A counting global allocator records the peak of live heap bytes. The checks run
//! in one test function so no other test of this binary allocates concurrently.
#![expect(
    unsafe_code,
    reason = "a GlobalAlloc implementation is unsafe by definition"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use brook_protocol::api::ApiKey;
use brook_protocol::codec::{Encoder, Message};
use brook_protocol::messages::{JoinGroupRequest, RequestBody};
use brook_protocol::DecodeError;
use bytes::{BufMut, Bytes, BytesMut};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters
// are only bookkeeping and never affect the returned pointers.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LIMIT: usize = 1 << 20;

/// Decodes `frame` as a request body and returns (result, peak heap growth).
fn measure(key: ApiKey, version: i16, frame: &Bytes) -> (Result<RequestBody, DecodeError>, usize) {
    let mut buf = frame.clone();
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let result = RequestBody::decode(key, version, &mut buf);
    let peak = PEAK.load(Ordering::SeqCst).saturating_sub(base);
    (result, peak)
}

fn metadata_v0_claiming_max_topics() -> Bytes {
    let mut b = BytesMut::new();
    b.put_i32(i32::MAX); // topics count
                         // A few plausible topic names after the count, as a real attacker might send.
    for _ in 0..3 {
        b.put_i16(3);
        b.put_slice(b"abc");
    }
    b.freeze()
}

fn join_group_v5_claiming_max_protocols() -> Result<Bytes, Box<dyn std::error::Error>> {
    let req = JoinGroupRequest {
        group_id: "group".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        member_id: String::new(),
        protocol_type: "consumer".into(),
        ..Default::default()
    };
    let mut e = Encoder::new();
    req.encode(&mut e, 5)?;
    let valid = e.into_bytes()?;
    // v5 ends with the protocols array count: replace the 0 with 2^31-1 and follow
    // it with one real protocol.
    let head = valid.len().checked_sub(4).ok_or("encoding too short")?;
    let mut b = BytesMut::from(&valid[..head]);
    b.put_i32(i32::MAX);
    b.put_i16(5);
    b.put_slice(b"range");
    b.put_i32(4);
    b.put_slice(&[0, 1, 0, 0]);
    Ok(b.freeze())
}

#[test]
fn hostile_counts_fail_without_allocating() -> Result<(), Box<dyn std::error::Error>> {
    let frame = metadata_v0_claiming_max_topics();
    let (result, peak) = measure(ApiKey::Metadata, 0, &frame);
    assert_eq!(
        result.err(),
        Some(DecodeError::InvalidLength(i64::from(i32::MAX)))
    );
    assert!(peak < LIMIT, "Metadata v0 decode peaked at {peak} bytes");

    let frame = join_group_v5_claiming_max_protocols()?;
    let (result, peak) = measure(ApiKey::JoinGroup, 5, &frame);
    assert_eq!(
        result.err(),
        Some(DecodeError::InvalidLength(i64::from(i32::MAX)))
    );
    assert!(peak < LIMIT, "JoinGroup v5 decode peaked at {peak} bytes");

    // The counter itself works: a real 2 MiB allocation is seen.
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let big = std::hint::black_box(vec![0u8; 2 * LIMIT]);
    assert!(PEAK.load(Ordering::SeqCst) - base >= 2 * LIMIT);
    drop(big);
    Ok(())
}
