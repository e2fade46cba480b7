//! `brook group list|describe|delete|reset-offsets`: consumer group
//! administration over the Kafka protocol (ListGroups, DescribeGroups,
//! OffsetFetch, ListOffsets, DeleteGroups, OffsetCommit).

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use brook_protocol::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use brook_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest, ListOffsetsRequest,
    MetadataRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use crate::group::assignment_partitions;
use crate::kafka_client::Client;

#[derive(Debug, Args)]
pub struct GroupArgs {
    /// Broker to talk to.
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List groups with their state and protocol type.
    List,
    /// Show a group's state, members and assignments, and per partition the
    /// committed offset, the log end offset and the lag.
    Describe { group: String },
    /// Delete a group without active members, and its committed offsets.
    Delete { group: String },
    /// Move a group's committed offsets (only while it has no active members).
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime"])))]
    ResetOffsets {
        group: String,
        /// Topic whose partitions to reset.
        #[arg(long)]
        topic: String,
        #[arg(long)]
        to_earliest: bool,
        #[arg(long)]
        to_latest: bool,
        /// An absolute offset (clamped to the partition's range).
        #[arg(long)]
        to_offset: Option<i64>,
        /// Milliseconds since the epoch or RFC 3339 (`2024-05-01T12:00:00Z`).
        #[arg(long)]
        to_datetime: Option<String>,
        /// Print the plan without committing it.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(super) fn run(args: GroupArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut c = Client::connect(&args.bootstrap).await?;
        match args.command {
            GroupCommand::List => list(&mut c, args.json).await,
            GroupCommand::Describe { group } => describe(&mut c, args.json, &group).await,
            GroupCommand::Delete { group } => delete(&mut c, args.json, &group).await,
            GroupCommand::ResetOffsets {
                group,
                topic,
                to_earliest,
                to_latest,
                to_offset,
                to_datetime,
                dry_run,
            } => {
                let target = if to_earliest {
                    Target::Earliest
                } else if to_latest {
                    Target::Latest
                } else if let Some(o) = to_offset {
                    Target::Offset(o)
                } else {
                    Target::Time(parse_datetime(to_datetime.as_deref().unwrap_or_default())?)
                };
                reset(&mut c, args.json, &group, &topic, target, dry_run).await
            }
        }
    })
}

fn check(code: i16, what: &str) -> anyhow::Result<()> {
    if code != 0 {
        bail!("{what}: {}", ErrorCode::from(code));
    }
    Ok(())
}

async fn list(c: &mut Client, json: bool) -> anyhow::Result<()> {
    let r = c.send(&ListGroupsRequest::default(), 4).await?;
    check(r.error_code, "listing groups")?;
    if json {
        let v: Vec<_> = r.groups.iter().map(|g| json!({"group": g.group_id, "state": g.group_state, "protocol_type": g.protocol_type})).collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        println!("{:<40} {:<20} PROTOCOL TYPE", "GROUP", "STATE");
        for g in &r.groups {
            println!(
                "{:<40} {:<20} {}",
                g.group_id, g.group_state, g.protocol_type
            );
        }
    }
    Ok(())
}

/// Latest (-1) or earliest (-2) offsets, or the first offset at a timestamp.
async fn list_offsets(
    c: &mut Client,
    topic: &str,
    partitions: &[i32],
    ts: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let req = ListOffsetsRequest {
        replica_id: -1,
        topics: vec![ListOffsetsTopic {
            name: topic.to_owned(),
            partitions: partitions
                .iter()
                .map(|p| ListOffsetsPartition {
                    partition_index: *p,
                    timestamp: ts,
                    current_leader_epoch: -1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = c.send(&req, 7).await?;
    let mut out = BTreeMap::new();
    for p in r.topics.iter().flat_map(|t| t.partitions.iter()) {
        check(
            p.error_code,
            &format!("offsets of {topic}-{}", p.partition_index),
        )?;
        out.insert(p.partition_index, p.offset);
    }
    Ok(out)
}

/// DescribeGroups for one group, failing on its error code.
async fn describe_group(
    c: &mut Client,
    group: &str,
) -> anyhow::Result<brook_protocol::messages::describe_groups_response::DescribedGroup> {
    let d = c
        .send(
            &DescribeGroupsRequest {
                groups: vec![group.to_owned()],
                ..Default::default()
            },
            5,
        )
        .await?;
    let g = d
        .groups
        .into_iter()
        .next()
        .context("empty DescribeGroups response")?;
    check(g.error_code, &format!("describing {group}"))?;
    Ok(g)
}

async fn describe(c: &mut Client, json: bool, group: &str) -> anyhow::Result<()> {
    let g = describe_group(c, group).await?;
    let f = c
        .send(
            &OffsetFetchRequest {
                group_id: group.to_owned(),
                topics: None,
                ..Default::default()
            },
            7,
        )
        .await?;
    check(f.error_code, &format!("fetching offsets of {group}"))?;
    let mut rows = Vec::new();
    for t in &f.topics {
        let parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        let ends = list_offsets(c, &t.name, &parts, -1)
            .await
            .unwrap_or_default();
        for p in &t.partitions {
            let end = ends.get(&p.partition_index).copied();
            let lag = end
                .filter(|_| p.committed_offset >= 0)
                .map(|e| (e - p.committed_offset).max(0));
            rows.push((
                t.name.clone(),
                p.partition_index,
                p.committed_offset,
                end,
                lag,
            ));
        }
    }
    rows.sort();
    let members: Vec<_> = g
        .members
        .iter()
        .map(|m| {
            let assignment = assignment_partitions(&m.member_assignment)
                .map(|a| a.into_iter().map(|(t, ps)| json!({"topic": t, "partitions": ps})).collect::<Vec<_>>());
            json!({
                "member_id": m.member_id, "instance_id": m.group_instance_id, "client_id": m.client_id,
                "host": m.client_host, "assignment": assignment,
            })
        })
        .collect();
    if json {
        let offsets: Vec<_> = rows
            .iter()
            .map(|(t, p, c, e, l)| json!({"topic": t, "partition": p, "committed": c, "log_end": e, "lag": l}))
            .collect();
        let v = json!({"group": g.group_id, "state": g.group_state, "protocol_type": g.protocol_type,
            "protocol": g.protocol_data, "members": members, "offsets": offsets});
        println!("{v}");
        return Ok(());
    }
    println!(
        "group {}  state {}  protocol {} {}",
        g.group_id, g.group_state, g.protocol_type, g.protocol_data
    );
    for m in &g.members {
        let assigned = match assignment_partitions(&m.member_assignment) {
            Some(a) => a
                .iter()
                .map(|(t, ps)| format!("{t}:{ps:?}"))
                .collect::<Vec<_>>()
                .join(" "),
            None => format!("{} opaque bytes", m.member_assignment.len()),
        };
        let inst = m.group_instance_id.as_deref().unwrap_or("-");
        println!(
            "  member {} instance {inst} client {} host {}  {assigned}",
            m.member_id, m.client_id, m.client_host
        );
    }
    println!(
        "{:<30} {:>9} {:>12} {:>12} {:>10}",
        "TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG"
    );
    for (t, p, committed, end, lag) in &rows {
        let show = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
        println!(
            "{t:<30} {p:>9} {committed:>12} {:>12} {:>10}",
            show(*end),
            show(*lag)
        );
    }
    Ok(())
}

async fn delete(c: &mut Client, json: bool, group: &str) -> anyhow::Result<()> {
    let r = c
        .send(
            &DeleteGroupsRequest {
                groups_names: vec![group.to_owned()],
                ..Default::default()
            },
            2,
        )
        .await?;
    let res = r.results.first().context("empty DeleteGroups response")?;
    check(res.error_code, &format!("deleting {group}"))?;
    if json {
        println!("{}", json!({"deleted": group}));
    } else {
        println!("deleted group {group}");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Time(i64),
}

async fn reset(
    c: &mut Client,
    json: bool,
    group: &str,
    topic: &str,
    target: Target,
    dry_run: bool,
) -> anyhow::Result<()> {
    let g = describe_group(c, group).await?;
    // Kafka's rule: moving offsets under active consumers would be overwritten
    // by their next commit, so only groups without members may be reset.
    if !(g.group_state == "Empty" || g.group_state == "Dead") {
        bail!(
            "group {group} has active members (state {}); stop its consumers first",
            g.group_state
        );
    }
    let m = c
        .send(
            &MetadataRequest {
                topics: Some(vec![MetadataRequestTopic {
                    name: Some(topic.to_owned()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            9,
        )
        .await?;
    let t = m
        .topics
        .into_iter()
        .next()
        .context("empty Metadata response")?;
    check(t.error_code, &format!("topic {topic}"))?;
    let mut parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    parts.sort_unstable();
    let earliest = list_offsets(c, topic, &parts, -2).await?;
    let latest = list_offsets(c, topic, &parts, -1).await?;
    let at = match target {
        Target::Time(ts) => Some(list_offsets(c, topic, &parts, ts).await?),
        _ => None,
    };
    let mut plan = Vec::new();
    for p in &parts {
        let (lo, hi) = (
            earliest.get(p).copied().unwrap_or(0),
            latest.get(p).copied().unwrap_or(0),
        );
        let to = match target {
            Target::Earliest => lo,
            Target::Latest => hi,
            Target::Offset(o) => o.clamp(lo, hi),
            // No record at or after the time: the end, as Kafka's tool does.
            Target::Time(_) => at
                .as_ref()
                .and_then(|a| a.get(p).copied())
                .filter(|o| *o >= 0)
                .unwrap_or(hi),
        };
        plan.push((*p, to));
    }
    if !dry_run {
        let req = OffsetCommitRequest {
            group_id: group.to_owned(),
            generation_id_or_member_epoch: -1,
            member_id: String::new(),
            topics: vec![OffsetCommitRequestTopic {
                name: topic.to_owned(),
                partitions: plan
                    .iter()
                    .map(|(p, o)| OffsetCommitRequestPartition {
                        partition_index: *p,
                        committed_offset: *o,
                        committed_leader_epoch: -1,
                        committed_metadata: Some(String::new()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let r = c.send(&req, 7).await?;
        for p in r.topics.iter().flat_map(|t| t.partitions.iter()) {
            check(
                p.error_code,
                &format!("committing {topic}-{}", p.partition_index),
            )?;
        }
    }
    if json {
        let v: Vec<_> = plan
            .iter()
            .map(|(p, o)| json!({"topic": topic, "partition": p, "offset": o}))
            .collect();
        println!(
            "{}",
            json!({"group": group, "dry_run": dry_run, "offsets": v})
        );
    } else {
        println!(
            "{:<30} {:>9} {:>12}{}",
            "TOPIC",
            "PARTITION",
            "NEW-OFFSET",
            if dry_run { "  (dry run)" } else { "" }
        );
        for (p, o) in &plan {
            println!("{topic:<30} {p:>9} {o:>12}");
        }
    }
    Ok(())
}

/// Milliseconds since the epoch, or RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`).
fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        anyhow::anyhow!(
            "--to-datetime {s:?}: expected milliseconds or RFC 3339 like 2024-05-01T12:00:00Z"
        )
    };
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut i = 19;
    let mut ms = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i).ok_or_else(bad)?;
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = digits.parse::<i64>().map_err(|_| bad())?;
    }
    let offset_min = match s.get(i..) {
        Some("Z" | "z") => 0,
        Some(tz) if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let hh = tz
                .get(1..3)
                .and_then(|x| x.parse::<i64>().ok())
                .ok_or_else(bad)?;
            let mm = tz
                .get(4..6)
                .and_then(|x| x.parse::<i64>().ok())
                .ok_or_else(bad)?;
            sign * (hh * 60 + mm)
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, d);
    Ok(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn datetimes_parse() {
        assert_eq!(
            parse_datetime("1700000000123").ok(),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z").ok(), Some(0));
        assert_eq!(
            parse_datetime("2024-05-01T12:00:00.5Z").ok(),
            Some(1_714_564_800_500)
        );
        assert_eq!(
            parse_datetime("2024-05-01T14:00:00+02:00").ok(),
            Some(1_714_564_800_000)
        );
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("2024-13-01T00:00:00Z").is_err());
    }
}
