//! Timestamps along a record's path through the broker, for the latency
//! breakdown (`benches/src/bin/latency.rs --trace`, published in
//! `benches/results/latency-path.md`).
//!
//! Off unless the log filter turns on the `brook::path` target at trace level
//! (`BROOK_LOG=info,brook::path=trace`); when off, each call site costs one
//! cached interest check and reads no clock. When on, every event carries
//! `us`: `CLOCK_MONOTONIC` in microseconds, the clock that clients on the
//! same machine read too, so their send and receive instants line up with
//! the broker's.
//!
//! The stages, in path order (each names its partition as `part`,
//! "topic-index"):
//! - `appended` (produce handler): `first`/`last` offsets, `recv_us` when the
//!   handler got the request;
//! - `flush` (flusher, after the fsync): its target, the durable offset it
//!   reported and `start_us`, when it started;
//! - `hw` (state machine step): the new high-water mark;
//! - `produce_respond` / `fetch_respond`: a response was built (`port` and
//!   `corr` name the connection and request; `hw` for a fetch);
//! - `written` (connection writer): the response's last byte was handed to
//!   the socket.
//!
//! Hot path: nothing here may allocate or log while the target is off.

/// The tracing target of every event here.
pub const TARGET: &str = "brook::path";

/// Whether path tracing is on.
#[inline]
pub fn enabled() -> bool {
    tracing::enabled!(target: "brook::path", tracing::Level::TRACE)
}

/// `CLOCK_MONOTONIC` in nanoseconds (0 if the clock cannot be read).
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

/// `CLOCK_MONOTONIC` in microseconds (0 if the clock cannot be read).
pub fn now_us() -> u64 {
    now_ns() / 1_000
}

/// [`now_us`] when tracing is on, else 0 without reading the clock.
#[inline]
pub fn stamp() -> u64 {
    if enabled() {
        now_us()
    } else {
        0
    }
}

/// The correlation id of an encoded response frame (its bytes 4..8, after
/// the size prefix), or -1.
pub fn correlation_id(frame: &crate::server::writer::Frame) -> i32 {
    match frame.chunks.first() {
        Some(brook_protocol::codec::Chunk::Bytes(b)) if b.len() >= 8 => {
            i32::from_be_bytes([b[4], b[5], b[6], b[7]])
        }
        _ => -1,
    }
}
