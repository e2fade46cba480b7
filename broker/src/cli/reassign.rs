//! `brook topic reassign` and `brook topic reassignments`: move partitions
//! to new replica lists (AlterPartitionReassignments), cancel a move, wait
//! for it, and list what is moving (ListPartitionReassignments).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use brook_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use brook_protocol::messages::{
    AlterPartitionReassignmentsRequest, ListPartitionReassignmentsRequest,
};
use clap::Args;
use serde_json::{json, Value};

use crate::kafka_client::Client;

#[derive(Debug, Args)]
pub(super) struct ReassignArgs {
    /// The topic whose partitions move.
    topic: String,
    /// `PARTITION=BROKER,BROKER,...`: the partition's new replica list, the
    /// preferred leader first (repeatable). With --cancel: just `PARTITION`.
    #[arg(long = "partition", value_name = "PARTITION=REPLICAS", required = true)]
    partitions: Vec<String>,
    /// Cancel the named partitions' ongoing reassignments instead.
    #[arg(long)]
    cancel: bool,
    /// Wait until the reassignments are complete.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
}

/// `PARTITION=1,2,3` (or `PARTITION` when cancelling).
fn parse_partition(s: &str, cancel: bool) -> anyhow::Result<(i32, Option<Vec<i32>>)> {
    let (p, replicas) = match s.split_once('=') {
        Some((p, r)) => (p, Some(r)),
        None => (s, None),
    };
    let index: i32 = p
        .trim()
        .parse()
        .with_context(|| format!("'{s}': '{p}' is not a partition number"))?;
    if index < 0 {
        bail!("'{s}': partition {index} is negative");
    }
    match (replicas, cancel) {
        (Some(_), true) => bail!("'{s}': --cancel takes only partition numbers"),
        (None, true) => Ok((index, None)),
        (None, false) => bail!("'{s}' is not PARTITION=BROKER,BROKER,..."),
        (Some(r), false) => {
            let ids = r
                .split(',')
                .map(|b| {
                    b.trim()
                        .parse::<i32>()
                        .with_context(|| format!("'{s}': '{b}' is not a broker id"))
                })
                .collect::<anyhow::Result<Vec<i32>>>()?;
            Ok((index, Some(ids)))
        }
    }
}

pub(super) async fn reassign(
    c: &mut Client,
    as_json: bool,
    args: ReassignArgs,
) -> anyhow::Result<()> {
    let parsed = args
        .partitions
        .iter()
        .map(|s| parse_partition(s, args.cancel))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let req = AlterPartitionReassignmentsRequest {
        timeout_ms: 60_000,
        topics: vec![ReassignableTopic {
            name: args.topic.clone(),
            partitions: parsed
                .iter()
                .map(|(index, replicas)| ReassignablePartition {
                    partition_index: *index,
                    replicas: replicas.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let resp = c.send(&req, 0).await?;
    if resp.error_code != 0 {
        bail!(
            "AlterPartitionReassignments failed: {} ({})",
            ErrorCode::from_i16(resp.error_code).name(),
            resp.error_message.unwrap_or_default()
        );
    }
    let mut failed = Vec::new();
    let mut rows = Vec::new();
    for t in &resp.responses {
        for p in &t.partitions {
            let outcome = if p.error_code == 0 {
                if args.cancel { "cancelled" } else { "started" }.to_owned()
            } else {
                let m = format!(
                    "{} ({})",
                    ErrorCode::from_i16(p.error_code).name(),
                    p.error_message.clone().unwrap_or_default()
                );
                failed.push(format!("{}-{}: {m}", t.name, p.partition_index));
                m
            };
            rows.push((t.name.clone(), p.partition_index, outcome));
        }
    }
    if as_json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(t, p, o)| json!({"topic": t, "partition": p, "outcome": o}))
            .collect();
        println!("{}", Value::Array(v));
    } else {
        for (t, p, o) in &rows {
            println!("{t}-{p}: {o}");
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} partition(s) refused: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    if args.wait && !args.cancel {
        let indexes: Vec<i32> = parsed.iter().map(|(i, _)| *i).collect();
        wait_done(
            c,
            &args.topic,
            &indexes,
            Duration::from_secs(args.timeout_s),
        )
        .await?;
        if !as_json {
            println!("reassignment complete");
        }
    }
    Ok(())
}

/// Poll until none of `indexes` of `topic` is being reassigned.
async fn wait_done(
    c: &mut Client,
    topic: &str,
    indexes: &[i32],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let ongoing = list_ongoing(c, Some(topic), indexes).await?;
        if ongoing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "still reassigning after {}s: {}",
                timeout.as_secs(),
                ongoing
                    .iter()
                    .map(|(t, p, ..)| format!("{t}-{p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (topic, partition, replicas, adding, removing) of ongoing reassignments.
type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

async fn list_ongoing(
    c: &mut Client,
    topic: Option<&str>,
    indexes: &[i32],
) -> anyhow::Result<Vec<Ongoing>> {
    let req = ListPartitionReassignmentsRequest {
        timeout_ms: 60_000,
        topics: topic.map(|t| {
            vec![ListPartitionReassignmentsTopics {
                name: t.to_owned(),
                partition_indexes: indexes.to_vec(),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    let resp = c.send(&req, 0).await?;
    if resp.error_code != 0 {
        bail!(
            "ListPartitionReassignments failed: {}",
            ErrorCode::from_i16(resp.error_code).name()
        );
    }
    Ok(resp
        .topics
        .into_iter()
        .flat_map(|t| {
            t.partitions.into_iter().map(move |p| {
                (
                    t.name.clone(),
                    p.partition_index,
                    p.replicas,
                    p.adding_replicas,
                    p.removing_replicas,
                )
            })
        })
        .collect())
}

pub(super) async fn list(c: &mut Client, as_json: bool, topic: Option<&str>) -> anyhow::Result<()> {
    let all: Vec<i32> = Vec::new();
    let ongoing = match topic {
        // Every partition of the topic: the request names them.
        Some(t) => {
            let md = super::topic::partition_indexes(c, t).await?;
            list_ongoing(c, Some(t), &md).await?
        }
        None => list_ongoing(c, None, &all).await?,
    };
    if as_json {
        let v: Vec<Value> = ongoing
            .iter()
            .map(|(t, p, r, a, d)| {
                json!({"topic": t, "partition": p, "replicas": r, "adding": a, "removing": d})
            })
            .collect();
        println!("{}", Value::Array(v));
    } else if ongoing.is_empty() {
        println!("no reassignment in progress");
    } else {
        println!(
            "{:<30} {:>9}  {:<16} {:<12} REMOVING",
            "TOPIC", "PARTITION", "REPLICAS", "ADDING"
        );
        let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        for (t, p, r, a, d) in &ongoing {
            println!("{t:<30} {p:>9}  {:<16} {:<12} {}", ids(r), ids(a), ids(d));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_partition;

    #[test]
    fn partition_arguments_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse_partition("0=1,2,3", false).unwrap(),
            (0, Some(vec![1, 2, 3]))
        );
        assert_eq!(parse_partition("4", true).unwrap(), (4, None));
        for (arg, cancel, says) in [
            ("x=1", false, "not a partition number"),
            ("-1=1", false, "negative"),
            ("0=1,a", false, "not a broker id"),
            ("0", false, "PARTITION=BROKER"),
            ("0=1", true, "only partition numbers"),
        ] {
            let e = parse_partition(arg, cancel).unwrap_err().to_string();
            assert!(e.contains(says), "{arg}: {e}");
        }
    }
}
