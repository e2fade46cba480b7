//! `brook consume`: prints records of a topic with brook-consumer, as text
//! (the value, or `key<TAB>value` with `--print-key`) or JSON lines.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail};
use base64::Engine as _;
use brook_consumer::{Consumer, ConsumerConfig, ConsumerRecord, Error as ConsumerError};
use clap::{Args, ValueEnum};
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(long)]
    topic: String,
    /// Broker(s) to bootstrap from (comma-separated host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Consumer group: join it (subscribe) and consume the partitions it
    /// assigns, from their committed offsets; commit what was read. With
    /// `--partition` or `--offset`, the partitions are assigned by hand and the
    /// group only stores offsets.
    #[arg(long)]
    group: Option<String>,
    /// Start at the beginning when there is no committed offset (default: the end).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset (in every consumed partition).
    #[arg(long)]
    offset: Option<i64>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Exit after this many records.
    #[arg(long)]
    count: Option<u64>,
    /// Exit when no record arrived for this many milliseconds.
    #[arg(long)]
    idle_timeout_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// In text format, print `key<TAB>value`.
    #[arg(long)]
    print_key: bool,
    /// Extra consumer config, `key=value` (Java property names); repeatable.
    #[arg(long = "property", short = 'X', value_name = "KEY=VALUE")]
    properties: Vec<String>,
}

pub(super) fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(consume(args))
}

fn config(args: &ConsumeArgs) -> anyhow::Result<ConsumerConfig> {
    let reset = if args.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    let mut entries = vec![
        ("bootstrap.servers".to_owned(), args.bootstrap.clone()),
        ("auto.offset.reset".to_owned(), reset.to_owned()),
        ("client.id".to_owned(), "brook-consume".to_owned()),
        (
            "group.id".to_owned(),
            args.group.clone().unwrap_or_default(),
        ),
    ];
    for p in &args.properties {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--property {p:?}: expected key=value"))?;
        entries.push((k.to_owned(), v.to_owned()));
    }
    Ok(ConsumerConfig::from_map(entries)?)
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut consumer = Consumer::new(config(&args)?);
    if args.group.is_some() && args.partition.is_none() && args.offset.is_none() {
        // Fail fast on a missing topic instead of waiting for an assignment.
        consumer
            .partitions_for(&args.topic)
            .await
            .map_err(describe)?;
        consumer.subscribe(&[&args.topic]).map_err(describe)?;
        return print_loop(&args, consumer).await;
    }
    let mut partitions = consumer
        .partitions_for(&args.topic)
        .await
        .map_err(describe)?;
    if let Some(p) = args.partition {
        partitions.retain(|tp| tp.partition == p);
        if partitions.is_empty() {
            bail!("topic {} has no partition {p}", args.topic);
        }
    }
    consumer.assign(partitions.clone());
    if let Some(offset) = args.offset {
        for tp in &partitions {
            consumer.seek(tp, offset)?;
        }
    }
    print_loop(&args, consumer).await
}

async fn print_loop(args: &ConsumeArgs, mut consumer: Consumer) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut seen = 0u64;
    let idle = args.idle_timeout_ms.map(Duration::from_millis);
    let mut last_record = tokio::time::Instant::now();
    'outer: loop {
        let records = consumer
            .poll(Duration::from_millis(500))
            .await
            .map_err(describe)?;
        if records.is_empty() {
            out.flush()?;
            if idle.is_some_and(|d| last_record.elapsed() >= d) {
                break;
            }
            continue;
        }
        last_record = tokio::time::Instant::now();
        for r in &records {
            print(&mut out, args, r)?;
            seen += 1;
            if args.count.is_some_and(|c| seen >= c) {
                break 'outer;
            }
        }
    }
    out.flush()?;
    if args.group.is_some() {
        consumer.commit_sync().await.map_err(describe)?;
    }
    consumer.close().await.map_err(describe)?;
    Ok(())
}

fn text(b: Option<&bytes::Bytes>) -> String {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn print(out: &mut impl Write, args: &ConsumeArgs, r: &ConsumerRecord) -> anyhow::Result<()> {
    match args.format {
        Format::Text if args.print_key => {
            writeln!(out, "{}\t{}", text(r.key.as_ref()), text(r.value.as_ref()))?
        }
        Format::Text => writeln!(out, "{}", text(r.value.as_ref()))?,
        Format::Json => {
            let show = |b: Option<&bytes::Bytes>| match b {
                None => serde_json::Value::Null,
                Some(b) => match std::str::from_utf8(b) {
                    Ok(s) => json!(s),
                    Err(_) => {
                        json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) })
                    }
                },
            };
            let headers: Vec<_> = r
                .headers
                .iter()
                .map(|h| json!([String::from_utf8_lossy(&h.key), show(h.value.as_ref())]))
                .collect();
            let line = json!({
                "topic": &*r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": show(r.key.as_ref()),
                "value": show(r.value.as_ref()),
                "headers": headers,
            });
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

fn describe(e: ConsumerError) -> anyhow::Error {
    match e {
        ConsumerError::Client(c) => super::produce::describe(c),
        other => anyhow!(other),
    }
}
