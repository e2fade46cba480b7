//! Reads a whole topic from the beginning and prints how many records each
//! partition had.
//!
//! `cargo run -p brook-consumer --example consume -- 127.0.0.1:9092 events`

use std::collections::BTreeMap;
use std::time::Duration;

use brook_consumer::{Consumer, ConsumerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topic = args.next().unwrap_or_else(|| "events".to_owned());
    let config = ConsumerConfig::from_map([
        ("bootstrap.servers", bootstrap.as_str()),
        ("auto.offset.reset", "earliest"),
    ])?;
    let mut consumer = Consumer::new(config);
    let partitions = consumer.partitions_for(&topic).await?;
    consumer.assign(partitions);
    let started = std::time::Instant::now();
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    loop {
        let records = consumer.poll(Duration::from_secs(2)).await?;
        if records.is_empty() {
            break;
        }
        for r in records {
            *counts.entry(r.partition).or_default() += 1;
        }
    }
    println!("{counts:?} in {:?}", started.elapsed());
    Ok(())
}
