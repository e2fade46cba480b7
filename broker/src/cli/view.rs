//! `brook view create|list|describe|get|scan|drop`: materialized views over the
//! admin HTTP API (`/v1/views`, see `crate::views::http`).

use std::fmt::Write as _;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::cluster::request_json;

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The broker's admin HTTP listener.
    #[arg(long, global = true, default_value = "127.0.0.1:9644")]
    admin: String,
    /// Print the JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ViewCommand,
}

#[derive(Debug, Subcommand)]
enum ViewCommand {
    /// Create a view over a (compacted) topic.
    Create {
        name: String,
        /// Source topic.
        #[arg(long)]
        topic: String,
        /// table (latest value per key), count, sum or latest.
        #[arg(long, default_value = "table")]
        kind: String,
        /// JSON field path for sum/latest, or a projection for table.
        #[arg(long)]
        field: Option<String>,
        /// bytes, utf8 or json.
        #[arg(long, default_value = "bytes")]
        key_format: String,
        /// bytes, utf8 or json.
        #[arg(long, default_value = "bytes")]
        value_format: String,
    },
    /// List views with their state and lag.
    List,
    /// One view: definition, state, offsets, lag, store stats.
    Describe { name: String },
    /// Read one key.
    Get {
        name: String,
        key: String,
        /// Wait until the view applied these offsets: PARTITION:OFFSET[,…].
        #[arg(long)]
        min_offset: Option<String>,
        /// How long to wait for --min-offset, in ms.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// Read a range of keys (one page, or all pages with --all).
    Scan {
        name: String,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        reverse: bool,
        /// Follow the cursor until the end (every page reads the same snapshot).
        #[arg(long)]
        all: bool,
        #[arg(long)]
        min_offset: Option<String>,
    },
    /// Drop a view and its data.
    Drop { name: String },
}

/// Percent-encode a path segment or query value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn fail(status: u16, body: &Value) -> anyhow::Error {
    let msg = body["error"]
        .as_str()
        .map_or_else(|| body.to_string(), str::to_owned);
    anyhow::anyhow!("{msg} (HTTP {status})")
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn row(e: &Value) -> String {
    let key = e
        .get("key")
        .or_else(|| e.get("key_base64"))
        .unwrap_or(&Value::Null);
    let value = e
        .get("value")
        .or_else(|| e.get("value_base64"))
        .unwrap_or(&Value::Null);
    format!("{}\t{}", show(key), show(value))
}

pub(super) fn run(args: ViewArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: ViewArgs) -> anyhow::Result<()> {
    let admin = args.admin.as_str();
    match args.command {
        ViewCommand::Create {
            name,
            topic,
            kind,
            field,
            key_format,
            value_format,
        } => {
            let mut body = json!({"topic": topic, "kind": kind, "key_format": key_format, "value_format": value_format});
            if let Some(f) = field {
                body["field"] = json!(f);
            }
            let (status, v) = request_json(
                admin,
                "PUT",
                &format!("/v1/views/{}", enc(&name)),
                Some(&body.to_string()),
            )
            .await?;
            match status {
                201 => println!("created view {name}"),
                200 => println!("view {name} already exists with this definition"),
                _ => return Err(fail(status, &v)),
            }
        }
        ViewCommand::List => {
            let (status, v) = request_json(admin, "GET", "/v1/views", None).await?;
            if status != 200 {
                return Err(fail(status, &v));
            }
            if args.json {
                println!("{v}");
                return Ok(());
            }
            println!(
                "{:<30} {:<30} {:<8} {:<10} {:>10}",
                "VIEW", "TOPIC", "KIND", "STATE", "LAG"
            );
            for x in v.as_array().context("expected a list")? {
                println!(
                    "{:<30} {:<30} {:<8} {:<10} {:>10}",
                    show(&x["name"]),
                    show(&x["definition"]["topic"]),
                    show(&x["definition"]["kind"]),
                    show(&x["state"]),
                    show(&x["lag"])
                );
            }
        }
        ViewCommand::Describe { name } => {
            let (status, v) =
                request_json(admin, "GET", &format!("/v1/views/{}", enc(&name)), None).await?;
            if status != 200 {
                return Err(fail(status, &v));
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        ViewCommand::Get {
            name,
            key,
            min_offset,
            timeout_ms,
        } => {
            let mut path = format!(
                "/v1/views/{}/keys/{}?timeout_ms={timeout_ms}",
                enc(&name),
                enc(&key)
            );
            if let Some(m) = min_offset {
                let _ = write!(path, "&min_offset={}", enc(&m));
            }
            let (status, v) = request_json(admin, "GET", &path, None).await?;
            if args.json && (status == 200 || status == 404) {
                println!("{v}");
            } else if status == 200 {
                println!(
                    "{}",
                    show(
                        v.get("value")
                            .or_else(|| v.get("value_base64"))
                            .unwrap_or(&Value::Null)
                    )
                );
            } else if status == 404 && v.get("offsets").is_some() {
                bail!("key {key} is not in view {name}");
            } else {
                return Err(fail(status, &v));
            }
        }
        ViewCommand::Scan {
            name,
            prefix,
            from,
            to,
            limit,
            reverse,
            all,
            min_offset,
        } => {
            let mut base = format!(
                "/v1/views/{}/scan?limit={limit}&reverse={reverse}",
                enc(&name)
            );
            for (k, v) in [
                ("prefix", &prefix),
                ("from", &from),
                ("to", &to),
                ("min_offset", &min_offset),
            ] {
                if let Some(v) = v {
                    let _ = write!(base, "&{k}={}", enc(v));
                }
            }
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("{base}&cursor={}", enc(c)),
                    None => base.clone(),
                };
                let (status, v) = request_json(admin, "GET", &path, None).await?;
                if status != 200 {
                    return Err(fail(status, &v));
                }
                if args.json {
                    println!("{v}");
                } else {
                    for e in v["entries"].as_array().context("expected entries")? {
                        println!("{}", row(e));
                    }
                }
                cursor = v["cursor"].as_str().map(str::to_owned);
                if !all || cursor.is_none() {
                    break;
                }
            }
        }
        ViewCommand::Drop { name } => {
            let (status, v) =
                request_json(admin, "DELETE", &format!("/v1/views/{}", enc(&name)), None).await?;
            match status {
                204 => println!("dropped view {name}"),
                _ => return Err(fail(status, &v)),
            }
        }
    }
    Ok(())
}
