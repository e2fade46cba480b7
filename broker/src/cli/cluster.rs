//! `brook cluster status`: a summary from the admin HTTP API.
//! `brook cluster elect-leaders`: preferred (or unclean) leader election over
//! the Kafka protocol (ElectLeaders).

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Admin listener of a broker.
    #[arg(long, global = true, default_value = "127.0.0.1:9644")]
    admin: String,
    /// Print JSON instead of a summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Health, brokers, topics and partitions at a glance.
    Status,
    /// Move leadership back to each partition's preferred (first) replica,
    /// or with --unclean give leaderless partitions a leader that may lack
    /// committed records.
    ElectLeaders(ElectArgs),
}

#[derive(Debug, Args)]
struct ElectArgs {
    /// A broker's Kafka listener.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Only this topic (default: every partition of every topic).
    #[arg(long)]
    topic: Option<String>,
    /// Only these partitions of --topic (repeatable).
    #[arg(long, requires = "topic")]
    partition: Vec<i32>,
    /// Unclean election of leaderless partitions (may lose committed records).
    #[arg(long)]
    unclean: bool,
}

/// Largest admin response accepted.
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// GET `path` from the admin listener; returns (status, JSON body).
pub(super) async fn get_json(admin: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    request_json(admin, "GET", path, None).await
}

/// `method` `path` on the admin listener with an optional JSON body; returns
/// (status, JSON body), `Value::Null` for an empty body.
pub(super) async fn request_json(
    admin: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let io = async {
        let mut s = TcpStream::connect(admin)
            .await
            .with_context(|| format!("cannot connect to the admin listener at {admin}"))?;
        let body = body.unwrap_or("");
        s.write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\
                 Accept: application/json\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.take(MAX_BODY).read_to_end(&mut buf).await?;
        Ok::<_, anyhow::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(90), io)
        .await
        .map_err(|_| anyhow!("admin request to {admin}{path} timed out"))??;
    let text = String::from_utf8(buf).context("admin response is not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response from {admin}"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("malformed HTTP status line from {admin}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    let json = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).with_context(|| format!("{admin}{path} did not answer JSON"))?
    };
    Ok((status, json))
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body
            .split_once("\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let n = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
        if n == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..n).ok_or_else(|| anyhow!("truncated chunk"))?);
        body = rest
            .get(n + 2..)
            .ok_or_else(|| anyhow!("truncated chunk"))?;
    }
}

pub(super) fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.command {
            ClusterCommand::Status => status(&args.admin, args.json).await,
            ClusterCommand::ElectLeaders(e) => elect_leaders(&e, args.json).await,
        }
    })
}

async fn elect_leaders(args: &ElectArgs, as_json: bool) -> anyhow::Result<()> {
    use brook_protocol::error::ErrorCode;
    use brook_protocol::messages::elect_leaders_request::TopicPartitions;
    use brook_protocol::messages::ElectLeadersRequest;
    let topic_partitions = match &args.topic {
        None => None,
        Some(t) => {
            let mut partitions = args.partition.clone();
            if partitions.is_empty() {
                let mut c = crate::kafka_client::Client::connect(&args.bootstrap).await?;
                partitions = super::topic::partition_indexes(&mut c, t).await?;
            }
            Some(vec![TopicPartitions {
                topic: t.clone(),
                partitions,
                ..Default::default()
            }])
        }
    };
    let req = ElectLeadersRequest {
        election_type: i8::from(args.unclean),
        topic_partitions,
        timeout_ms: 60_000,
        ..Default::default()
    };
    let mut c = crate::kafka_client::Client::connect(&args.bootstrap).await?;
    let resp = c.send(&req, 2).await?;
    if resp.error_code != 0 {
        bail!(
            "ElectLeaders failed: {}",
            ErrorCode::from_i16(resp.error_code).name()
        );
    }
    let mut rows = Vec::new();
    let mut failed = 0;
    for t in &resp.replica_election_results {
        for p in &t.partition_result {
            let code = ErrorCode::from_i16(p.error_code);
            let outcome = match code {
                ErrorCode::NONE => "elected",
                ErrorCode::ELECTION_NOT_NEEDED => "already led by its preferred replica",
                _ => {
                    failed += 1;
                    code.name()
                }
            };
            rows.push((
                t.topic.clone(),
                p.partition_id,
                outcome,
                p.error_message.clone(),
            ));
        }
    }
    if as_json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(t, p, o, m)| serde_json::json!({"topic": t, "partition": p, "outcome": o, "message": m}))
            .collect();
        println!("{}", Value::Array(v));
    } else {
        for (t, p, o, m) in &rows {
            match m {
                Some(m) if *o != "elected" => println!("{t}-{p}: {o} ({m})"),
                _ => println!("{t}-{p}: {o}"),
            }
        }
    }
    if failed > 0 {
        bail!("{failed} partitions could not be elected");
    }
    Ok(())
}

async fn status(admin: &str, as_json: bool) -> anyhow::Result<()> {
    let (_, health) = get_json(admin, "/v1/health").await?;
    let (code, cluster) = get_json(admin, "/v1/cluster").await?;
    if code != 200 {
        bail!("{admin}/v1/cluster answered HTTP {code}");
    }
    let (_, topics) = get_json(admin, "/v1/topics").await?;
    if as_json {
        println!(
            "{}",
            serde_json::json!({"health": health, "cluster": cluster, "topics": topics})
        );
        return Ok(());
    }
    let ready = health["ready"].as_bool().unwrap_or(false);
    println!(
        "cluster   {}",
        cluster["cluster_id"].as_str().unwrap_or("?")
    );
    println!(
        "health    {}",
        if ready {
            "ready".to_owned()
        } else {
            format!("NOT READY: {}", health["reasons"])
        }
    );
    let ctl = &cluster["controller"];
    println!(
        "controller {} (epoch {}), answered by node {}",
        ctl["active"], ctl["epoch"], cluster["node_id"]
    );
    let progress = &ctl["voter_progress"];
    if let Some(voters) = ctl["voters"].as_array() {
        for v in voters {
            let id = v["id"].to_string();
            let replicated = progress
                .get(&id)
                .map_or_else(|| "-".to_owned(), ToString::to_string);
            println!(
                "voter     {id} at {}   replicated offset {replicated}",
                v["address"].as_str().unwrap_or("?")
            );
        }
    }
    let md = &cluster["metadata"];
    println!(
        "metadata  applied offset {} (epoch {}), published {}, image hash {}",
        md["applied_offset"], md["applied_epoch"], md["published_offset"], md["image_hash"]
    );
    if let Some(brokers) = cluster["brokers"].as_array() {
        for b in brokers {
            println!(
                "broker    {} at {}:{}   {}   epoch {}",
                b["node_id"],
                b["host"].as_str().unwrap_or("?"),
                b["port"],
                b["state"].as_str().unwrap_or("?"),
                b["epoch"]
            );
        }
    }
    println!(
        "topics    {}   partitions {}   under-replicated {}   offline {}",
        cluster["topics"],
        cluster["partitions"],
        cluster["under_replicated_partitions"],
        cluster["offline_partitions"]
    );
    if let Some(list) = topics.as_array() {
        if !list.is_empty() {
            println!();
            println!(
                "{:<40} {:>10} {:>14}",
                "TOPIC", "PARTITIONS", "SIZE (BYTES)"
            );
            for t in list {
                println!(
                    "{:<40} {:>10} {:>14}",
                    t["name"].as_str().unwrap_or("?"),
                    t["partitions"].to_string(),
                    t["size_bytes"].to_string()
                );
            }
        }
    }
    Ok(())
}
