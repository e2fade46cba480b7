//! brook-producer under forced retries: a TCP proxy between the producer and
//! brook drops chosen Produce responses and closes the connection, so batches
//! the broker did append are sent again. The idempotent producer must end with
//! every record exactly once and in send order in each partition.
//!
//! The broker advertises the proxy's address, so every connection the client
//! opens after bootstrap goes through the proxy too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Result};
use brook_config::client::{ConsumerConfig, ProducerConfig};
use brook_consumer::Consumer;
use brook_producer::{Producer, ProducerRecord, TopicPartition};
use brook_tests::{Broker, BrokerOptions};

const PRODUCE: i16 = 0;

/// Counts Produce responses over all connections and drops those whose
/// (1-based) number is in `drop`, closing that connection.
struct Faults {
    drop: BTreeSet<usize>,
    produce_responses: AtomicUsize,
    dropped: AtomicUsize,
    stop: AtomicBool,
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
    let keys: Arc<Mutex<VecDeque<i16>>> = Arc::default();
    let (mut c_in, mut b_out) = (client.try_clone()?, upstream.try_clone()?);
    let req_keys = keys.clone();
    std::thread::spawn(move || {
        while let Some(frame) = read_frame(&mut c_in) {
            // Requests start with api_key (i16) after the size.
            let key = i16::from_be_bytes([frame[4], frame[5]]);
            if let Ok(mut k) = req_keys.lock() {
                k.push_back(key);
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
            let key = keys.lock().ok().and_then(|mut k| k.pop_front());
            if key == Some(PRODUCE) {
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
    let faults = Arc::new(Faults {
        drop: [2, 6, 7, 12, 18].into_iter().collect(),
        produce_responses: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
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
