//! Hostile bytes on the Kafka port, built by hand (never with the codec under test):
//! truncated frames, absurd and negative sizes, unknown API keys, unsupported
//! versions, garbage bodies and seeded random bytes. Each must get an error response
//! or a closed connection, never a hang; afterwards a fresh connection still completes
//! an ApiVersions v3 round trip, and the broker's RSS stays under 200 MiB throughout,
//! including under many concurrent hostile connections.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use brook_tests::Broker;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const RSS_LIMIT: u64 = 200 * 1024 * 1024;
/// How long the broker may take to answer or close after a hostile input.
const REACT_TIMEOUT: Duration = Duration::from_secs(10);
const UNSUPPORTED_VERSION: i16 = 35;
const API_VERSIONS: i16 = 18;

// ---- request bytes, by hand -------------------------------------------------

/// Request header v1: api_key, api_version, correlation_id, client_id (nullable string).
fn header_v1(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(api_key.to_be_bytes());
    b.extend(version.to_be_bytes());
    b.extend(correlation_id.to_be_bytes());
    let client = b"brook-hostile";
    b.extend((client.len() as i16).to_be_bytes());
    b.extend(client);
    b
}

/// Request header v2: v1 plus an empty tagged-field section.
fn header_v2(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut b = header_v1(api_key, version, correlation_id);
    b.push(0);
    b
}

/// Prefix with the 4-byte big-endian size.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut b = (payload.len() as i32).to_be_bytes().to_vec();
    b.extend(payload);
    b
}

fn compact_string(b: &mut Vec<u8>, s: &str) {
    // Compact strings carry length + 1 as an unsigned varint; these are < 127 bytes.
    b.push((s.len() + 1) as u8);
    b.extend(s.as_bytes());
}

/// ApiVersions request (flexible body layout of v3+) at `version`.
fn api_versions(version: i16, correlation_id: i32) -> Vec<u8> {
    let mut b = header_v2(API_VERSIONS, version, correlation_id);
    compact_string(&mut b, "brook-tests");
    compact_string(&mut b, "0.1.0");
    b.push(0);
    frame(&b)
}

/// Produce v2: acks=-1, one topic, one partition with an empty record set.
fn produce_v2(correlation_id: i32) -> Vec<u8> {
    let mut b = header_v1(0, 2, correlation_id);
    b.extend((-1i16).to_be_bytes());
    b.extend(1000i32.to_be_bytes());
    b.extend(1i32.to_be_bytes());
    let topic = b"hostile";
    b.extend((topic.len() as i16).to_be_bytes());
    b.extend(topic);
    b.extend(1i32.to_be_bytes());
    b.extend(0i32.to_be_bytes());
    b.extend(0i32.to_be_bytes());
    frame(&b)
}

// ---- responses ---------------------------------------------------------------

#[derive(Debug)]
enum Outcome {
    Response(Vec<u8>),
    Closed,
    TimedOut,
}

fn read_exact_or(stream: &mut TcpStream, buf: &mut [u8]) -> Result<Option<Outcome>> {
    match stream.read_exact(buf) {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(Some(Outcome::Closed)),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
            Ok(Some(Outcome::Closed))
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Ok(Some(Outcome::TimedOut))
        }
        Err(e) => Err(e.into()),
    }
}

/// Read one response frame, or notice the connection closing, within the timeout.
fn read_response(stream: &mut TcpStream, timeout: Duration) -> Result<Outcome> {
    stream.set_read_timeout(Some(timeout))?;
    let mut size = [0u8; 4];
    if let Some(o) = read_exact_or(stream, &mut size)? {
        return Ok(o);
    }
    let size = i32::from_be_bytes(size);
    ensure!(
        (4..=64 << 20).contains(&size),
        "broker sent a response frame of size {size}"
    );
    let mut body = vec![0u8; size as usize];
    if let Some(o) = read_exact_or(stream, &mut body)? {
        bail!("response frame cut short: {o:?}");
    }
    Ok(Outcome::Response(body))
}

/// Send `bytes` on a fresh connection (ignoring write errors: the broker may close
/// mid-send), optionally half-close, and report what the broker did.
fn send_hostile(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Result<Outcome> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_write_timeout(Some(REACT_TIMEOUT))?;
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    read_response(&mut s, REACT_TIMEOUT)
}

/// The broker answered with a frame for `correlation_id`, or closed the connection.
fn expect_error_or_close(what: &str, outcome: Outcome, correlation_id: i32) -> Result<()> {
    match outcome {
        Outcome::Closed => Ok(()),
        Outcome::Response(body) => {
            ensure!(body.len() >= 4, "{what}: response of {} bytes", body.len());
            let corr = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            ensure!(
                corr == correlation_id,
                "{what}: response carries correlation id {corr}, sent {correlation_id}"
            );
            Ok(())
        }
        Outcome::TimedOut => bail!("{what}: no response and no close within {REACT_TIMEOUT:?}"),
    }
}

fn expect_closed(what: &str, outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Closed => Ok(()),
        other => bail!("{what}: expected the connection to be closed, got {other:?}"),
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or_else(|| anyhow!("response truncated at byte {} (+{n})", self.pos))?;
        self.pos += n;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16> {
        let s = self.take(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32(&mut self) -> Result<i32> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn uvarint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("varint too long")
    }
}

/// A fresh connection completes ApiVersions v3 with error 0 and a non-empty API list.
fn check_alive(addr: SocketAddr, correlation_id: i32) -> Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .context("connecting for the liveness check")?;
    s.set_write_timeout(Some(REACT_TIMEOUT))?;
    s.write_all(&api_versions(3, correlation_id))?;
    let Outcome::Response(body) = read_response(&mut s, REACT_TIMEOUT)? else {
        bail!("ApiVersions v3 liveness check got no response");
    };
    // Response header v0 (ApiVersions responses never use the flexible header).
    let mut c = Cursor { b: &body, pos: 0 };
    ensure!(c.i32()? == correlation_id, "liveness: wrong correlation id");
    let err = c.i16()?;
    ensure!(err == 0, "ApiVersions v3 error code {err}");
    let n = c.uvarint()?.saturating_sub(1);
    ensure!(n > 0, "ApiVersions v3 lists no APIs");
    Ok(())
}

struct Rss<'a> {
    broker: &'a Broker,
    max: AtomicU64,
}

impl Rss<'_> {
    fn check(&self, after: &str) -> Result<()> {
        let rss = self.broker.rss_bytes()?;
        self.max.fetch_max(rss, Ordering::Relaxed);
        ensure!(
            rss < RSS_LIMIT,
            "broker RSS {} MiB after {after} exceeds {} MiB",
            rss >> 20,
            RSS_LIMIT >> 20
        );
        Ok(())
    }
}

// ---- the cases ----------------------------------------------------------------

/// The deterministic hostile inputs: (name, bytes, half-close, must the broker close?).
fn cases() -> Vec<(&'static str, Vec<u8>, bool, bool)> {
    let mut truncated = 100i32.to_be_bytes().to_vec();
    truncated.extend(&header_v1(18, 0, 7)[..6]);
    let mut huge = 0x7fff_ffffi32.to_be_bytes().to_vec();
    huge.extend(header_v1(18, 0, 7));
    let mut negative = (-1i32).to_be_bytes().to_vec();
    negative.extend(header_v1(18, 0, 7));
    let mut min = i32::MIN.to_be_bytes().to_vec();
    min.extend(header_v1(18, 0, 7));
    let mut garbage_api_versions = header_v2(API_VERSIONS, 3, 7);
    garbage_api_versions.extend([0xff; 40]);
    let mut garbage_metadata = header_v2(3, 12, 7);
    garbage_metadata.extend([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]);
    let mut bad_client_id = header_v1(3, 1, 7);
    bad_client_id[8..10].copy_from_slice(&30_000i16.to_be_bytes());
    vec![
        ("truncated frame then EOF", truncated, true, true),
        ("size 0x7fffffff", huge, false, true),
        ("size -1", negative, false, true),
        ("size i32::MIN", min, false, true),
        ("size 0", frame(&[]), false, false),
        ("3-byte header", frame(&[0, 18, 0]), false, false),
        (
            "unknown api key 9999",
            frame(&header_v1(9999, 0, 7)),
            false,
            false,
        ),
        (
            "negative api key",
            frame(&header_v1(-5, 0, 7)),
            false,
            false,
        ),
        (
            "ApiVersions v3 + garbage body",
            frame(&garbage_api_versions),
            false,
            false,
        ),
        (
            "Metadata v12 + garbage body",
            frame(&garbage_metadata),
            false,
            false,
        ),
        (
            "client_id longer than the frame",
            frame(&bad_client_id),
            false,
            false,
        ),
    ]
}

fn run_case(
    addr: SocketAddr,
    name: &str,
    bytes: &[u8],
    half_close: bool,
    must_close: bool,
) -> Result<()> {
    let outcome = send_hostile(addr, bytes, half_close)?;
    if must_close {
        expect_closed(name, outcome)
    } else {
        expect_error_or_close(name, outcome, 7)
    }
}

#[test]
fn malformed_frames_get_an_error_or_a_close() -> Result<()> {
    let broker = Broker::start_default()?;
    let addr = broker.kafka_addr();
    let rss = Rss {
        broker: &broker,
        max: AtomicU64::new(0),
    };
    check_alive(addr, 1)?;
    rss.check("start")?;
    for (name, bytes, half_close, must_close) in cases() {
        run_case(addr, name, &bytes, half_close, must_close).with_context(|| broker.log_tail())?;
        check_alive(addr, 2).with_context(|| format!("broker unusable after: {name}"))?;
        rss.check(name)?;
    }
    Ok(())
}

#[test]
fn unsupported_api_versions_version_gets_v0_answer_with_error_35() -> Result<()> {
    let broker = Broker::start_default()?;
    let mut s = TcpStream::connect(broker.kafka_addr())?;
    s.write_all(&api_versions(99, 42))?;
    let Outcome::Response(body) = read_response(&mut s, REACT_TIMEOUT)? else {
        bail!("ApiVersions v99 got no response");
    };
    // v0 layout: correlation_id, error_code, [api_key, min, max] with an i32 count.
    let mut c = Cursor { b: &body, pos: 0 };
    ensure!(c.i32()? == 42, "wrong correlation id");
    let err = c.i16()?;
    ensure!(
        err == UNSUPPORTED_VERSION,
        "ApiVersions v99 error {err}, want 35"
    );
    let n = c.i32()?;
    ensure!((1..1000).contains(&n), "v0 api list count {n}");
    let mut api_versions_max = None;
    for _ in 0..n {
        let (key, _min, max) = (c.i16()?, c.i16()?, c.i16()?);
        if key == API_VERSIONS {
            api_versions_max = Some(max);
        }
    }
    ensure!(
        api_versions_max.is_some_and(|m| m >= 3),
        "v0 answer does not list ApiVersions up to v3 ({api_versions_max:?})"
    );
    ensure!(
        c.pos == body.len(),
        "{} bytes after the v0 answer",
        body.len() - c.pos
    );
    check_alive(broker.kafka_addr(), 43)
}

#[test]
fn produce_v2_is_rejected_with_unsupported_version() -> Result<()> {
    let broker = Broker::start_default()?;
    let mut s = TcpStream::connect(broker.kafka_addr())?;
    s.write_all(&produce_v2(77))?;
    let Outcome::Response(body) = read_response(&mut s, REACT_TIMEOUT)? else {
        bail!("Produce v2 got no response (expected error 35)");
    };
    // Produce response v2: [topic, [partition, error, base_offset, log_append_time]], throttle.
    let mut c = Cursor { b: &body, pos: 0 };
    ensure!(c.i32()? == 77, "wrong correlation id");
    let topics = c.i32()?;
    ensure!(topics == 1, "{topics} topics in the response: {body:02x?}");
    let name_len = c.i16()?;
    let name = c.take(usize::try_from(name_len)?)?;
    ensure!(
        name == b"hostile",
        "topic {:?}",
        String::from_utf8_lossy(name)
    );
    ensure!(c.i32()? == 1, "partition count");
    ensure!(c.i32()? == 0, "partition index");
    let err = c.i16()?;
    ensure!(
        err == UNSUPPORTED_VERSION,
        "Produce v2 partition error {err}, want 35"
    );
    check_alive(broker.kafka_addr(), 78)
}

/// Seeded random frames: random bodies behind a valid size, random versions of real
/// APIs with random bodies, and raw random streams. A valid-looking random request
/// may legitimately get no answer (acks=0 Produce, a long-poll Fetch), so here the
/// requirement is that the broker survives, stays usable and bounded in memory.
fn random_round(addr: SocketAddr, rng: &mut StdRng, rss: &Rss<'_>, rounds: usize) -> Result<()> {
    const APIS: [i16; 14] = [0, 1, 2, 3, 8, 9, 10, 11, 18, 19, 20, 22, 32, 60];
    for round in 0..rounds {
        let len = rng.random_range(0..600usize);
        let mut body = vec![0u8; len];
        rng.fill_bytes(&mut body);
        let bytes = match round % 3 {
            0 => frame(&body),
            1 => {
                let api = APIS[rng.random_range(0..APIS.len())];
                let mut b = header_v2(api, rng.random_range(-1..20), 7);
                b.extend(&body);
                frame(&b)
            }
            _ => body,
        };
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_write_timeout(Some(REACT_TIMEOUT))?;
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(Shutdown::Write);
        // Drain whatever comes back (bounded); the outcome is not asserted here.
        let _ = read_response(&mut s, Duration::from_millis(500));
        drop(s);
        if round % 10 == 9 {
            check_alive(addr, 3).with_context(|| format!("after random round {round}"))?;
            rss.check("random frames")?;
        }
    }
    Ok(())
}

#[test]
fn seeded_random_bytes_do_not_break_the_broker() -> Result<()> {
    let broker = Broker::start_default()?;
    let rss = Rss {
        broker: &broker,
        max: AtomicU64::new(0),
    };
    let mut rng = StdRng::seed_from_u64(0x0062_726f_6f6b);
    random_round(broker.kafka_addr(), &mut rng, &rss, 300).with_context(|| broker.log_tail())?;
    check_alive(broker.kafka_addr(), 4)
}

#[test]
fn many_concurrent_hostile_connections() -> Result<()> {
    let broker = Broker::start_default()?;
    let addr = broker.kafka_addr();
    let rss = Rss {
        broker: &broker,
        max: AtomicU64::new(0),
    };

    // 64 connections each announcing a 96 MiB frame (under the 100 MiB limit) and
    // sending only its first KiB, held open: memory must follow bytes received, not
    // bytes announced.
    let mut held = Vec::new();
    for _ in 0..64 {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        let mut head = (96i32 << 20).to_be_bytes().to_vec();
        head.extend(header_v2(0, 9, 7));
        head.resize(1024, 0);
        s.write_all(&head)?;
        held.push(s);
    }
    check_alive(addr, 5)?;
    rss.check("64 connections announcing 96 MiB frames")?;

    // Meanwhile 16 threads replay every hostile case and random rounds.
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + Duration::from_secs(120);
    thread::scope(|scope| {
        for t in 0..16u64 {
            let failures = Arc::clone(&failures);
            let rss = &rss;
            scope.spawn(move || {
                let run = || -> Result<()> {
                    for (name, bytes, half_close, must_close) in cases() {
                        run_case(addr, name, &bytes, half_close, must_close)?;
                    }
                    let mut rng = StdRng::seed_from_u64(t);
                    random_round(addr, &mut rng, rss, 30)
                };
                if let Err(e) = run() {
                    if let Ok(mut f) = failures.lock() {
                        f.push(format!("thread {t}: {e:#}"));
                    }
                }
            });
        }
        // Sample RSS while the threads run.
        while Instant::now() < deadline && Arc::strong_count(&failures) > 1 {
            if let Err(e) = rss.check("concurrent hostile connections") {
                if let Ok(mut f) = failures.lock() {
                    f.push(format!("{e:#}"));
                }
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let failures = failures.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    ensure!(
        failures.is_empty(),
        "{} failures under concurrency:\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        broker.log_tail()
    );
    drop(held);
    check_alive(addr, 6)?;
    rss.check("the end")?;
    eprintln!(
        "max broker RSS during hostile input: {} MiB",
        rss.max.load(Ordering::Relaxed) >> 20
    );
    Ok(())
}
