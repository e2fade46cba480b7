//! `kill -9` while a producer streams with acks=all: after a restart on the same data
//! dir every acknowledged record is present exactly once and in order, and every
//! `.log` segment left on disk is a clean sequence of CRC-valid batches.

mod common;

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use brook_protocol::records::{BatchHeader, BatchIter};
use brook_tests::{log_segments, read_file, wait_until, Broker, BrokerOptions};
use common::{consume_until, consumer, high_watermarks, owned_headers, producer, Delivered};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig};

const TOPIC: &str = "crash";
const ACKED_BEFORE_KILL: usize = 5_000;

fn value(seq: usize) -> Vec<u8> {
    format!("seq-{seq:010}").into_bytes()
}

fn parse_seq(v: &[u8]) -> Result<usize> {
    let s = std::str::from_utf8(v)?;
    let n = s
        .strip_prefix("seq-")
        .ok_or_else(|| anyhow!("unexpected value {s:?}"))?;
    Ok(n.parse()?)
}

#[test]
fn acked_records_survive_kill9_exactly_once_in_order() -> Result<()> {
    let mut broker = Broker::start(BrokerOptions::default().partitions(1))?;
    let run = stream_then_kill9(&mut broker, 0)?;
    broker.restart()?;
    verify_acked(&broker, &run)?;
    scan_data_dir(&mut broker)
}

/// Three rounds of stream / `kill -9` / restart on the same log: recovery of an
/// already-recovered log keeps every acknowledged record of every round.
#[test]
fn repeated_kill9_cycles_keep_every_acked_record() -> Result<()> {
    let mut broker = Broker::start(BrokerOptions::default().partitions(1))?;
    let mut all = Run {
        sent: 0,
        acked: Vec::new(),
    };
    for round in 0..3 {
        let run =
            stream_then_kill9(&mut broker, all.sent).with_context(|| format!("round {round}"))?;
        all.sent = run.sent;
        all.acked.extend(run.acked);
        broker.restart()?;
        verify_acked(&broker, &all).with_context(|| format!("after round {round}"))?;
    }
    scan_data_dir(&mut broker)
}

/// Like the test above, but before the restart every segment gets a torn tail, as if
/// the machine died mid-write: a partial batch header declaring a large batch, then
/// random bytes. Recovery must truncate it and lose nothing that was acknowledged.
#[test]
fn torn_segment_tail_is_truncated_on_restart() -> Result<()> {
    let mut broker = Broker::start(BrokerOptions::default().partitions(1))?;
    let run = stream_then_kill9(&mut broker, 0)?;
    let mut rng = StdRng::seed_from_u64(0x746f_726e);
    let segments = log_segments(&broker.data_dir())?;
    ensure!(!segments.is_empty(), "no segments after kill -9");
    for seg in &segments {
        let mut tail = Vec::new();
        tail.extend(i64::MAX.to_be_bytes()); // base offset
        tail.extend(1_000_000i32.to_be_bytes()); // batch length: far past the end
        tail.extend(0i32.to_be_bytes()); // leader epoch
        tail.push(2); // magic
        let mut junk = vec![0u8; 333];
        rng.fill_bytes(&mut junk);
        tail.extend(junk);
        let mut f = OpenOptions::new().append(true).open(seg)?;
        f.write_all(&tail)?;
        f.sync_all()?;
    }
    broker.restart()?;
    verify_acked(&broker, &run)?;
    scan_data_dir(&mut broker)
}

/// What the producer knew when the broker died.
struct Run {
    /// Sequence numbers handed to the producer end before `sent`.
    sent: usize,
    /// Delivery reports that came back successful before the kill.
    acked: Vec<Delivered>,
}

/// Stream records with increasing sequence numbers (acks=all) and `kill -9` the
/// broker once [`ACKED_BEFORE_KILL`] are acknowledged, while more are in flight.
/// Sequence numbers start at `first_seq`.
fn stream_then_kill9(broker: &mut Broker, first_seq: usize) -> Result<Run> {
    let producer = Arc::new(producer(
        &broker.bootstrap(),
        &[
            ("acks", "all"),
            ("linger.ms", "1"),
            ("batch.num.messages", "200"),
            // Fail fast once the broker is gone instead of retrying for a minute.
            ("message.timeout.ms", "10000"),
        ],
    )?);

    // Stream records with increasing sequence numbers until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let streamer = {
        let producer = Arc::clone(&producer);
        let stop = Arc::clone(&stop);
        thread::spawn(move || -> Result<usize> {
            let headers = owned_headers(&[("src".to_owned(), b"crash".to_vec())]);
            let mut seq = first_seq;
            while !stop.load(Ordering::Relaxed) {
                let v = value(seq);
                let r: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(TOPIC, seq)
                    .partition(0)
                    .payload(v.as_slice())
                    .headers(headers.clone());
                match producer.send(r) {
                    Ok(()) => seq += 1,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
                    Err((e, _)) => bail!("send of seq {seq}: {e}"),
                }
                producer.poll(Duration::ZERO);
                if seq.is_multiple_of(64) {
                    // Bound the backlog so "acked" keeps pace with "sent".
                    producer.poll(Duration::from_millis(1));
                }
            }
            Ok(seq)
        })
    };

    let waited = wait_until(
        &format!("{ACKED_BEFORE_KILL} acknowledged records"),
        Duration::from_secs(120),
        || {
            ensure!(!streamer.is_finished(), "the producer thread stopped early");
            Ok(producer.context().acked() >= ACKED_BEFORE_KILL)
        },
    );
    if let Err(e) = waited {
        stop.store(true, Ordering::Relaxed);
        return Err(e.context(broker.log_tail()));
    }
    broker.kill9()?;
    stop.store(true, Ordering::Relaxed);
    let sent = streamer
        .join()
        .map_err(|_| anyhow!("producer thread panicked"))??;
    // Whatever was not acknowledged now never will be: purge it so no report arrives
    // after we snapshot the acknowledged set.
    producer.purge(PurgeConfig::default().queue().inflight());
    producer.poll(Duration::from_millis(100));
    let acked: Vec<Delivered> = producer
        .context()
        .ok
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .clone();
    drop(producer);
    ensure!(
        acked.len() >= ACKED_BEFORE_KILL,
        "only {} acked",
        acked.len()
    );

    eprintln!("sent {sent}, acknowledged {} before kill -9", acked.len());
    Ok(Run { sent, acked })
}

/// Every acknowledged record is present exactly once, at the offset it was acked
/// with, in sequence order; nothing unknown appears.
fn verify_acked(broker: &Broker, run: &Run) -> Result<()> {
    let (sent, acked) = (run.sent, &run.acked);
    let c = consumer(&broker.bootstrap(), &[])?;
    let hw = high_watermarks(&c, TOPIC, &[0])?;
    let end = hw.get(&0).copied().unwrap_or(0);
    let got = consume_until(&c, TOPIC, &hw)?;
    let recs = got.get(&0).map(Vec::as_slice).unwrap_or_default();
    ensure!(
        recs.len() as i64 == end,
        "read {} records below the high watermark {end}",
        recs.len()
    );

    // Position of each sequence number in the recovered log.
    let mut offset_of: HashMap<usize, Vec<i64>> = HashMap::new();
    for c in recs {
        let seq = parse_seq(c.record.value.as_deref().unwrap_or_default())
            .with_context(|| format!("offset {}", c.offset))?;
        ensure!(
            seq < sent,
            "offset {} holds seq {seq}, never sent",
            c.offset
        );
        offset_of.entry(seq).or_default().push(c.offset);
    }
    let mut acked_sorted = acked.clone();
    acked_sorted.sort_by_key(|d| d.index);
    let mut last_offset = -1;
    for d in &acked_sorted {
        let offsets = offset_of.get(&d.index).ok_or_else(|| {
            anyhow!(
                "acknowledged seq {} (offset {}) lost after kill -9",
                d.index,
                d.offset
            )
        })?;
        ensure!(
            offsets.len() == 1,
            "acknowledged seq {} present {} times at offsets {offsets:?}",
            d.index,
            offsets.len()
        );
        ensure!(
            offsets[0] == d.offset,
            "acknowledged seq {} was acked at offset {} but is at {} after restart",
            d.index,
            d.offset,
            offsets[0]
        );
        ensure!(
            offsets[0] > last_offset,
            "acknowledged seq {} at offset {} is before an earlier seq at {last_offset}",
            d.index,
            offsets[0]
        );
        last_offset = offsets[0];
    }

    eprintln!(
        "recovered {} records; all {} acknowledged present once, in order",
        recs.len(),
        acked.len()
    );
    Ok(())
}

/// Stop the broker cleanly (exit 0 required) and CRC-scan every `.log` segment.
fn scan_data_dir(broker: &mut Broker) -> Result<()> {
    broker.stop()?;
    let segments = log_segments(&broker.data_dir())?;
    ensure!(
        !segments.is_empty(),
        "no .log segments under {}",
        broker.data_dir().display()
    );
    let mut batches = 0usize;
    for seg in &segments {
        batches += scan_segment(&read_file(seg)?).with_context(|| seg.display().to_string())?;
    }
    ensure!(batches > 0, "segments hold no batches");
    Ok(())
}

/// Walk a segment batch by batch: every batch has a valid CRC, base offsets follow on
/// from the previous batch's last offset, and no bytes are left over.
fn scan_segment(bytes: &[u8]) -> Result<usize> {
    let mut iter = BatchIter::new(bytes);
    let mut expected_base: Option<i64> = None;
    let mut count = 0;
    for (pos, header) in iter.by_ref() {
        header
            .check_crc()
            .map_err(|e| anyhow!("batch at byte {pos}: {e}"))?;
        if let Some(want) = expected_base {
            ensure!(
                header.base_offset() == want,
                "batch at byte {pos} starts at offset {} but the previous one ended before {want}",
                header.base_offset()
            );
        }
        expected_base = Some(header.next_offset());
        count += 1;
    }
    let end = iter.position();
    if end != bytes.len() {
        let why = match BatchHeader::new(&bytes[end..]) {
            Ok(h) => format!("a batch declaring length {}", h.batch_length()),
            Err(e) => e.to_string(),
        };
        bail!(
            "{} trailing bytes after the last whole batch at byte {end}: {why}",
            bytes.len() - end
        );
    }
    Ok(count)
}
