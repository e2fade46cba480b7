//! Sends `N` numbered records to a topic and prints the last offset.
//!
//! `cargo run -p brook-producer --example produce -- 127.0.0.1:9092 events 1000`

use brook_producer::{Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topic = args.next().unwrap_or_else(|| "events".to_owned());
    let n: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let producer = Producer::new(ProducerConfig::from_map([(
        "bootstrap.servers",
        bootstrap.as_str(),
    )])?)?;
    let started = std::time::Instant::now();
    let deliveries: Vec<_> = (0..n)
        .map(|i| {
            producer.send(
                ProducerRecord::new(topic.clone(), format!("record-{i}"))
                    .with_key(format!("k{}", i % 16)),
            )
        })
        .collect();
    let mut last = None;
    for d in deliveries {
        last = Some(d.await?);
    }
    producer.close().await;
    println!(
        "sent {n} records in {:?}; last: {last:?}",
        started.elapsed()
    );
    Ok(())
}
