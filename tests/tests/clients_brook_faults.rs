//! brook-producer under forced retries: a TCP proxy between the producer and
//! brook drops chosen Produce responses and closes the connection, so batches
//! the broker did append are sent again. The idempotent producer must end with
//! every record exactly once and in send order in each partition.
//!
//! The broker advertises the proxy's address, so every connection the client
//! opens after bootstrap goes through the proxy too.
//!
//! The same proxy can also hold Produce responses back (a stalled broker), to
//! check that `buffer.memory` bounds what the producer holds, that `send()`
//! then waits in order and fails after `max.block.ms`, and that `flush()`
//! waits only for records sent before it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use brook_config::client::{ConsumerConfig, ProducerConfig};
use brook_consumer::Consumer;
use brook_producer::{Error as ProducerError, Producer, ProducerRecord, TopicPartition};
use brook_tests::{Broker, BrokerOptions};

const PRODUCE: i16 = 0;
const METADATA: i16 = 3;

/// Counts Produce responses over all connections and drops those whose
/// (1-based) number is in `drop`, closing that connection.
struct Faults {
    drop: BTreeSet<usize>,
    produce_responses: AtomicUsize,
    dropped: AtomicUsize,
    stop: AtomicBool,
    /// While true, Produce responses are held back (and with them every later
    /// response on that connection).
    stalled: Mutex<bool>,
    unstalled: Condvar,
    /// Metadata responses are delayed by this much (zero: not at all).
    metadata_delay: Mutex<Duration>,
}

impl Faults {
    fn new(drop: impl IntoIterator<Item = usize>) -> Arc<Self> {
        Arc::new(Self {
            drop: drop.into_iter().collect(),
            produce_responses: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            stalled: Mutex::new(false),
            unstalled: Condvar::new(),
            metadata_delay: Mutex::new(Duration::ZERO),
        })
    }

    fn stall(&self, on: bool) {
        if let Ok(mut s) = self.stalled.lock() {
            *s = on;
        }
        self.unstalled.notify_all();
    }

    fn wait_while_stalled(&self) {
        let Ok(mut s) = self.stalled.lock() else {
            return;
        };
        while *s {
            match self.unstalled.wait(s) {
                Ok(g) => s = g,
                Err(_) => return,
            }
        }
    }
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let n = usize::try_from(i32::from_be_bytes(len)).ok()?;
    let mut frame = vec![0u8; 4 + n];
    frame[..4].copy_from_slice(&len);
    s.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

fn proxy_connection(client: TcpStream, broker: SocketAddr, faults: Arc<Faults>) -> Result<()> {
    let upstream = TcpStream::connect(broker)?;
    // Correlation id → api key: acks=0 Produce requests get no response, so
    // responses are matched by id, not by position.
    let keys: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
    let (mut c_in, mut b_out) = (client.try_clone()?, upstream.try_clone()?);
    let req_keys = keys.clone();
    std::thread::spawn(move || {
        while let Some(frame) = read_frame(&mut c_in) {
            // Requests start with api_key (i16) after the size.
            let key = i16::from_be_bytes([frame[4], frame[5]]);
            let correlation = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
            if let Ok(mut k) = req_keys.lock() {
                k.insert(correlation, key);
            }
            if b_out.write_all(&frame).is_err() {
                break;
            }
        }
        let _ = b_out.shutdown(Shutdown::Both);
    });
    let (mut b_in, mut c_out) = (upstream, client);
    std::thread::spawn(move || {
        while let Some(frame) = read_frame(&mut b_in) {
            let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            let key = keys.lock().ok().and_then(|mut k| k.remove(&correlation));
            if key == Some(METADATA) {
                let delay = faults.metadata_delay.lock().map_or(Duration::ZERO, |d| *d);
                // Fault injection: a slow metadata answer, not a wait.
                std::thread::sleep(delay);
            }
            if key == Some(PRODUCE) {
                faults.wait_while_stalled();
                let n = faults.produce_responses.fetch_add(1, Ordering::SeqCst) + 1;
                if faults.drop.contains(&n) {
                    faults.dropped.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
            if c_out.write_all(&frame).is_err() {
                break;
            }
        }
        let _ = c_out.shutdown(Shutdown::Both);
        let _ = b_in.shutdown(Shutdown::Both);
    });
    Ok(())
}

fn start_proxy(listener: TcpListener, broker: SocketAddr, faults: Arc<Faults>) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if faults.stop.load(Ordering::SeqCst) {
                return;
            }
            if let Ok(c) = conn {
                let _ = proxy_connection(c, broker, faults.clone());
            }
        }
    });
}

#[test]
fn idempotent_retries_never_duplicate_or_reorder() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let proxy_addr = listener.local_addr()?;
    let broker = Broker::start(
        BrokerOptions::default()
            .partitions(3)
            .config("advertised.listeners", &format!("[\"{proxy_addr}\"]")),
    )?;
    let faults = Faults::new([2, 6, 7, 12, 18]);
    start_proxy(listener, broker.kafka_addr(), faults.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bootstrap = proxy_addr.to_string();
    let n = 20_000usize;
    rt.block_on(async {
        let cfg = ProducerConfig::from_map([
            ("bootstrap.servers", bootstrap.as_str()),
            ("linger.ms", "2"),
            ("batch.size", "1024"),
            ("retry.backoff.ms", "20"),
            ("request.timeout.ms", "5000"),
        ])?;
        let p = Producer::new(cfg)?;
        let mut futures = Vec::with_capacity(n);
        for i in 0..n {
            let rec = ProducerRecord::new("retries", format!("{i}")).with_partition((i % 3) as i32);
            futures.push(p.enqueue(rec).await?);
            if i % 2000 == 0 {
                // Let some batches complete so faults hit a pipeline in motion.
                tokio::task::yield_now().await;
            }
        }
        let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for f in futures {
            let m = f.wait().await?;
            offsets.entry(m.partition).or_default().push(m.offset);
        }
        for (p, o) in &offsets {
            ensure!(
                o.windows(2).all(|w| w[0] < w[1]),
                "acknowledged offsets not increasing in partition {p}"
            );
        }
        p.close().await;
        anyhow::Ok(())
    })?;
    ensure!(
        faults.dropped.load(Ordering::SeqCst) == faults.drop.len(),
        "only {} of {} faults were injected",
        faults.dropped.load(Ordering::SeqCst),
        faults.drop.len()
    );

    // Read back directly from the broker's own listener: the log must hold
    // each record once, in send order, per partition.
    let got = rt.block_on(async {
        let cfg = ConsumerConfig::from_map([
            ("bootstrap.servers", bootstrap.as_str()),
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "100"),
        ])?;
        let mut c = Consumer::new(cfg);
        c.assign((0..3).map(|p| TopicPartition::new("retries", p)));
        let mut out: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        let mut total = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while total < n {
            if tokio::time::Instant::now() > deadline {
                bail!("read only {total} records");
            }
            for r in c.poll(Duration::from_millis(300)).await? {
                let v: usize =
                    std::str::from_utf8(r.value.as_deref().unwrap_or_default())?.parse()?;
                out.entry(r.partition).or_default().push(v);
                total += 1;
            }
        }
        // Anything beyond n would be a duplicate: give it a moment to show up.
        let extra = c.poll(Duration::from_millis(500)).await?;
        ensure!(
            extra.is_empty(),
            "{} records beyond the {n} sent (duplicates)",
            extra.len()
        );
        anyhow::Ok(out)
    })?;
    faults.stop.store(true, Ordering::SeqCst);
    for (p, values) in &got {
        let want: Vec<usize> = (0..n).filter(|i| (i % 3) as i32 == *p).collect();
        ensure!(
            values == &want,
            "partition {p}: {} records, not exactly the sent sequence in order",
            values.len()
        );
    }
    Ok(())
}

/// A broker behind the stall-capable proxy (no responses dropped).
fn stalling_broker(partitions: i32) -> Result<(Broker, Arc<Faults>, String)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let proxy_addr = listener.local_addr()?;
    let broker = Broker::start(
        BrokerOptions::default()
            .partitions(partitions)
            .config("advertised.listeners", &format!("[\"{proxy_addr}\"]")),
    )?;
    let faults = Faults::new([]);
    start_proxy(listener, broker.kafka_addr(), faults.clone());
    Ok((broker, faults, proxy_addr.to_string()))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

const BUFFER_MEMORY: usize = 4096;

fn small_buffer_producer(bootstrap: &str, max_block_ms: &str) -> Result<Producer> {
    Ok(Producer::new(ProducerConfig::from_map([
        ("bootstrap.servers", bootstrap),
        ("buffer.memory", "4096"),
        ("batch.size", "1024"),
        ("linger.ms", "0"),
        ("max.block.ms", max_block_ms),
        ("request.timeout.ms", "30000"),
        ("delivery.timeout.ms", "60000"),
    ])?)?)
}

/// Regression: records that did not fit were parked on an uncounted,
/// unbounded wait list, and each one's `max.block.ms` only started when the
/// list reached it (the 100th waiter failed after ~100 × max.block.ms).
#[test]
fn send_is_bounded_by_buffer_memory_and_fails_after_max_block() -> Result<()> {
    let (_broker, faults, bootstrap) = stalling_broker(1)?;
    let rt = runtime()?;
    rt.block_on(async {
        let max_block = Duration::from_millis(800);
        let p = small_buffer_producer(&bootstrap, "800")?;
        // Metadata, connection and producer id first, while the broker answers.
        p.send(ProducerRecord::new("stall", "warm-up")).await?;
        faults.stall(true);
        let value = vec![b'x'; 100];
        let started = Instant::now();
        let mut pending = Vec::new();
        for i in 0..200 {
            let rec = ProducerRecord::new("stall", value.clone()).with_key(format!("{i}"));
            pending.push(tokio::spawn(p.send(rec)));
            ensure!(
                p.buffered_bytes() <= BUFFER_MEMORY,
                "{} bytes buffered, buffer.memory is {BUFFER_MEMORY}",
                p.buffered_bytes()
            );
        }
        ensure!(p.buffered_bytes() > 0, "nothing was buffered");
        let mut timed_out = Vec::new();
        // Admitted records wait for the stalled broker; the rest must fail on
        // their own max.block.ms, all at about the same time.
        let give_up = tokio::time::Instant::now() + max_block * 4;
        for h in pending {
            match tokio::time::timeout_at(give_up, h).await {
                Ok(Ok(Err(ProducerError::Timeout(msg)))) => {
                    ensure!(msg.contains("max.block.ms"), "unexpected timeout: {msg}");
                    timed_out.push(started.elapsed());
                }
                Ok(Ok(other)) => bail!("send completed while the broker stalls: {other:?}"),
                Ok(Err(e)) => bail!("send task failed: {e}"),
                Err(_) => {} // admitted, waiting for the broker
            }
            ensure!(
                p.buffered_bytes() <= BUFFER_MEMORY,
                "buffer.memory exceeded"
            );
        }
        // 200 records of ~125 bytes; at most 4096 / 125 fit.
        ensure!(
            timed_out.len() >= 160,
            "only {} sends timed out within {:?}",
            timed_out.len(),
            max_block * 4
        );
        let first = timed_out.iter().min().copied().unwrap_or_default();
        ensure!(
            first >= max_block,
            "a send failed after {first:?}, before max.block.ms"
        );
        faults.stall(false);
        p.close().await;
        anyhow::Ok(())
    })?;
    faults.stop.store(true, Ordering::SeqCst);
    Ok(())
}

/// Sends that wait for memory are admitted in send order once the broker
/// answers again, and each record is stored once, in order.
#[test]
fn waiting_sends_are_admitted_in_order_when_memory_frees() -> Result<()> {
    let (_broker, faults, bootstrap) = stalling_broker(1)?;
    let rt = runtime()?;
    let n = 300usize;
    rt.block_on(async {
        let p = small_buffer_producer(&bootstrap, "30000")?;
        p.send(ProducerRecord::new("ordered", "warm-up")).await?;
        faults.stall(true);
        let mut pending = Vec::new();
        for i in 0..n {
            let rec = ProducerRecord::new("ordered", format!("{i:0100}")).with_partition(0);
            pending.push(tokio::spawn(p.send(rec)));
        }
        ensure!(
            p.buffered_bytes() <= BUFFER_MEMORY,
            "buffer.memory exceeded"
        );
        // The admitted ones are stuck behind the stalled broker: wait until the
        // buffer is full, then let the broker answer.
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.buffered_bytes() + 200 < BUFFER_MEMORY {
            ensure!(Instant::now() < deadline, "buffer never filled");
            tokio::task::yield_now().await;
        }
        faults.stall(false);
        let mut offsets = Vec::new();
        for h in pending {
            offsets.push(h.await??.offset);
            ensure!(
                p.buffered_bytes() <= BUFFER_MEMORY,
                "buffer.memory exceeded"
            );
        }
        ensure!(
            offsets.windows(2).all(|w| w[1] == w[0] + 1),
            "offsets not consecutive in send order: {offsets:?}"
        );
        p.close().await;
        anyhow::Ok(())
    })?;
    faults.stop.store(true, Ordering::SeqCst);
    Ok(())
}

/// Regression: `flush()` waited until the producer was idle, so a concurrent
/// sender that never paused could hold it up forever.
#[test]
fn flush_waits_only_for_records_sent_before_it() -> Result<()> {
    let broker = Broker::start(BrokerOptions::default().partitions(2))?;
    let bootstrap = broker.bootstrap();
    let rt = runtime()?;
    rt.block_on(async {
        let p = Producer::new(ProducerConfig::from_map([
            ("bootstrap.servers", bootstrap.as_str()),
            ("linger.ms", "1000"),
        ])?)?;
        p.send(ProducerRecord::new("flush", "warm-up").with_partition(0))
            .await?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let background = {
            let (p, stop, sent) = (p.clone(), stop.clone(), sent.clone());
            tokio::spawn(async move {
                // Keeps records outstanding all the time: with a 1 s linger
                // the producer is never idle while this runs.
                while !stop.load(Ordering::SeqCst) {
                    let rec = ProducerRecord::new("flush", "background").with_partition(1);
                    let _delivery = p.enqueue(rec).await?;
                    if sent.fetch_add(1, Ordering::SeqCst) % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                anyhow::Ok(())
            })
        };
        while sent.load(Ordering::SeqCst) < 100 {
            tokio::task::yield_now().await;
        }
        let before = p
            .enqueue(ProducerRecord::new("flush", "before").with_partition(0))
            .await?;
        let flushed = tokio::time::timeout(Duration::from_secs(15), p.flush()).await;
        let sent_during = sent.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        background.await??;
        ensure!(
            flushed.is_ok(),
            "flush did not return while another task kept sending"
        );
        ensure!(sent_during > 100, "the background sender stopped");
        // Completed before flush returned: the first poll is ready.
        let meta = tokio::time::timeout(Duration::from_millis(1), before.wait())
            .await
            .map_err(|_| anyhow::anyhow!("flush returned before an earlier record completed"))??;
        ensure!(meta.offset >= 1, "unexpected offset {}", meta.offset);
        p.close().await;
        anyhow::Ok(())
    })?;
    Ok(())
}

/// Regression: the sender awaited metadata refreshes in its loop, so one slow
/// Metadata answer held every partition's batches back for as long. acks=0
/// keeps Produce free of responses, so only the sender loop can delay them.
#[test]
fn slow_metadata_refresh_does_not_stall_sending() -> Result<()> {
    let (_broker, faults, bootstrap) = stalling_broker(2)?;
    let rt = runtime()?;
    rt.block_on(async {
        let p = Producer::new(ProducerConfig::from_map([
            ("bootstrap.servers", bootstrap.as_str()),
            ("acks", "0"),
            ("linger.ms", "0"),
            ("metadata.max.age.ms", "100"),
        ])?)?;
        p.send(ProducerRecord::new("slowmeta", "warm-up").with_partition(0))
            .await?;
        let delay = Duration::from_secs(3);
        if let Ok(mut d) = faults.metadata_delay.lock() {
            *d = delay;
        }
        // Sending for longer than the delay, with metadata going stale every
        // 100 ms, crosses at least one slow refresh.
        let started = Instant::now();
        let mut worst = Duration::ZERO;
        let mut i = 0;
        while started.elapsed() < delay + Duration::from_secs(1) {
            let t = Instant::now();
            p.send(ProducerRecord::new("slowmeta", format!("{i}")).with_partition(i % 2))
                .await?;
            worst = worst.max(t.elapsed());
            i += 1;
        }
        ensure!(
            worst < delay / 2,
            "a send took {worst:?} while a metadata refresh was slow ({delay:?})"
        );
        if let Ok(mut d) = faults.metadata_delay.lock() {
            *d = Duration::ZERO;
        }
        p.close().await;
        anyhow::Ok(())
    })?;
    faults.stop.store(true, Ordering::SeqCst);
    Ok(())
}
