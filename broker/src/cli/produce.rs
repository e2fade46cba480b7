//! `brook produce`: lines from stdin (or `--file`) become records, sent with
//! brook-producer. Each line is a value, or `key<SEP>value` with
//! `--key-separator`. Exits non-zero with one line on the first failure.

use std::collections::VecDeque;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use brook_producer::{
    DeliveryFuture, Error as ProducerError, Producer, ProducerConfig, ProducerRecord,
};
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Delivery reports awaited at once before reading more input.
const WINDOW: usize = 50_000;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to write to.
    #[arg(long)]
    topic: String,
    /// Broker(s) to bootstrap from (comma-separated host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Split each line at the first occurrence of this string into key and value.
    #[arg(long)]
    key_separator: Option<String>,
    /// Headers added to every record, `key=value`, comma-separated or repeated.
    #[arg(long, value_name = "KEY=VALUE", value_delimiter = ',')]
    headers: Vec<String>,
    /// acks: all, 1 or 0.
    #[arg(long, default_value = "all")]
    acks: String,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Write every record to this partition instead of using the partitioner.
    #[arg(long)]
    partition: Option<i32>,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Extra producer config, `key=value` (Java property names); repeatable.
    #[arg(long = "property", short = 'X', value_name = "KEY=VALUE")]
    properties: Vec<String>,
}

pub(super) fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(produce(args))
}

fn config(args: &ProduceArgs) -> anyhow::Result<ProducerConfig> {
    let mut entries = vec![
        ("bootstrap.servers".to_owned(), args.bootstrap.clone()),
        ("acks".to_owned(), args.acks.clone()),
        ("compression.type".to_owned(), args.compression.clone()),
        ("client.id".to_owned(), "brook-produce".to_owned()),
        ("max.block.ms".to_owned(), "15000".to_owned()),
    ];
    for p in &args.properties {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--property {p:?}: expected key=value"))?;
        entries.push((k.to_owned(), v.to_owned()));
    }
    Ok(ProducerConfig::from_map(entries)?)
}

fn headers(args: &ProduceArgs) -> anyhow::Result<Vec<(String, String)>> {
    args.headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("--headers {h:?}: expected key=value"))
        })
        .collect()
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let producer = Producer::new(config(&args)?)?;
    let headers = headers(&args)?;
    // Fail fast with a clear message when the broker is down or the topic
    // cannot exist, instead of waiting max.block.ms per record.
    let cluster = producer
        .client()
        .refresh_metadata(&[args.topic.as_str()])
        .await
        .map_err(describe)?;
    if let Some(t) = cluster.topics.get(&args.topic) {
        if t.error == brook_protocol::error::ErrorCode::UNKNOWN_TOPIC_OR_PARTITION {
            bail!(
                "unknown topic {} (and the broker does not auto-create topics)",
                args.topic
            );
        }
    }
    let input: Box<dyn AsyncRead + Unpin + Send> = match &args.file {
        Some(path) => Box::new(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdin()),
    };
    let mut lines = BufReader::with_capacity(1 << 16, input).lines();
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut sent = 0u64;
    while let Some(line) = lines.next_line().await? {
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_owned()), v.to_owned()),
                None => (None, line),
            },
            None => (None, line),
        };
        let mut record = ProducerRecord::new(args.topic.clone(), value);
        if let Some(k) = key {
            record = record.with_key(k);
        }
        if let Some(p) = args.partition {
            record = record.with_partition(p);
        }
        for (k, v) in &headers {
            record = record.with_header(k.clone(), v.clone());
        }
        pending.push_back(producer.enqueue(record).await.map_err(describe)?);
        sent += 1;
        if pending.len() >= WINDOW {
            if let Some(d) = pending.pop_front() {
                d.wait().await.map_err(describe)?;
            }
        }
    }
    while let Some(d) = pending.pop_front() {
        d.wait().await.map_err(describe)?;
    }
    producer.close().await;
    tracing::debug!(sent, "produce finished");
    Ok(())
}

/// One clear line for the common failures.
pub(super) fn describe(e: ProducerError) -> anyhow::Error {
    match e {
        ProducerError::NoBroker { servers, .. } => {
            anyhow!("cannot reach a broker at {servers} (is `brook serve` running?)")
        }
        other => anyhow!(other),
    }
}
