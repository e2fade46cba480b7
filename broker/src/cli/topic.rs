//! `brook topic create|list|describe|delete|alter-config|reassign|reassignments`.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use brook_protocol::messages::delete_topics_request::DeleteTopicState;
use brook_protocol::messages::describe_configs_request::DescribeConfigsResource;
use brook_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use brook_protocol::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, MetadataRequest,
};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::kafka_client::Client;

#[derive(Debug, Args)]
pub struct TopicArgs {
    /// Broker to talk to.
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Partition count (-1: the broker's num.partitions).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (-1: the broker's default.replication.factor).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// Place the partitions by hand, as `kafka-topics --replica-assignment`
        /// does: partitions separated by commas, each partition's broker ids
        /// by colons, preferred leader first (`1:2,2:3,3:1`).
        #[arg(
            long,
            value_name = "B:B,B:B",
            value_parser = parse_replica_assignment,
            conflicts_with_all = ["partitions", "replication_factor"]
        )]
        replica_assignment: Option<ReplicaAssignment>,
        /// Topic config override, `key=value`; repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics.
    List,
    /// Show a topic's partitions, offsets and non-default configs; for a compacted
    /// topic also each partition's dirty ratio and cleaned point (from the admin API).
    Describe {
        name: String,
        /// Admin HTTP listener of the broker, for the cleaner's figures.
        #[arg(long, default_value = "127.0.0.1:9644")]
        admin: String,
    },
    /// Delete a topic and its data.
    Delete { name: String },
    /// Move partitions to new replica lists, or cancel such a move
    /// (AlterPartitionReassignments).
    Reassign(super::reassign::ReassignArgs),
    /// List ongoing reassignments, of one topic or all.
    Reassignments { name: Option<String> },
    /// Set or delete topic config overrides.
    AlterConfig {
        name: String,
        /// `key=value` to set; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Key to reset to its default; repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

pub(super) fn run(args: TopicArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut client = Client::connect(&args.bootstrap).await?;
        match args.command {
            TopicCommand::Create {
                name,
                partitions,
                replication_factor,
                replica_assignment,
                configs,
            } => {
                let placement = match replica_assignment {
                    Some(ReplicaAssignment(lists)) => CreatePlacement::Manual(lists),
                    None => CreatePlacement::Counts(partitions, replication_factor),
                };
                create(&mut client, args.json, name, placement, &configs).await
            }
            TopicCommand::List => list(&mut client, args.json).await,
            TopicCommand::Describe { name, admin } => {
                describe(&mut client, args.json, &name, &admin).await
            }
            TopicCommand::Delete { name } => delete(&mut client, args.json, &name).await,
            TopicCommand::AlterConfig { name, set, delete } => {
                alter(&mut client, args.json, &name, &set, &delete).await
            }
            TopicCommand::Reassign(r) => super::reassign::reassign(&mut client, args.json, r).await,
            TopicCommand::Reassignments { name } => {
                super::reassign::list(&mut client, args.json, name.as_deref()).await
            }
        }
    })
}

/// The partition indexes of `topic`, from Metadata.
pub(super) async fn partition_indexes(c: &mut Client, topic: &str) -> anyhow::Result<Vec<i32>> {
    let md = c
        .send(
            &MetadataRequest {
                topics: Some(vec![MetadataRequestTopic {
                    name: Some(topic.to_owned()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            12,
        )
        .await?;
    let t = md
        .topics
        .iter()
        .find(|x| x.name.as_deref() == Some(topic))
        .filter(|x| x.error_code == 0)
        .ok_or_else(|| anyhow::anyhow!("topic {topic} does not exist"))?;
    Ok(t.partitions.iter().map(|p| p.partition_index).collect())
}

/// One replica list per partition, from `--replica-assignment`.
#[derive(Debug, Clone)]
struct ReplicaAssignment(Vec<Vec<i32>>);

/// `1:2,2:3` as `[[1, 2], [2, 3]]`.
fn parse_replica_assignment(s: &str) -> Result<ReplicaAssignment, String> {
    s.split(',')
        .enumerate()
        .map(|(p, part)| {
            part.split(':')
                .map(|id| {
                    id.trim().parse::<i32>().map_err(|_| {
                        format!("partition {p}: '{id}' is not a broker id (expected e.g. 1:2,2:3)")
                    })
                })
                .collect()
        })
        .collect::<Result<_, _>>()
        .map(ReplicaAssignment)
}

/// How `brook topic create` places the new topic.
enum CreatePlacement {
    /// Partition count and replication factor (-1: the broker's defaults).
    Counts(i32, i16),
    /// One replica list per partition.
    Manual(Vec<Vec<i32>>),
}

fn parse_kv(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("'{s}' is not KEY=VALUE"))?;
    if k.is_empty() {
        bail!("'{s}' has an empty key");
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn check(code: i16, message: Option<&str>, what: &str) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = ErrorCode::from_i16(code);
    match message {
        Some(m) if !m.is_empty() => bail!("{what}: {name} ({m})"),
        _ => bail!("{what}: {name}"),
    }
}

async fn create(
    c: &mut Client,
    as_json: bool,
    name: String,
    placement: CreatePlacement,
    configs: &[String],
) -> anyhow::Result<()> {
    let mut cfgs = Vec::new();
    for kv in configs {
        let (k, v) = parse_kv(kv)?;
        cfgs.push(CreatableTopicConfig {
            name: k,
            value: Some(v),
            ..Default::default()
        });
    }
    let (partitions, rf, assignments) = match placement {
        CreatePlacement::Counts(p, rf) => (p, rf, Vec::new()),
        CreatePlacement::Manual(lists) => (
            -1,
            -1,
            lists
                .into_iter()
                .zip(0..)
                .map(|(broker_ids, partition_index)| CreatableReplicaAssignment {
                    partition_index,
                    broker_ids,
                    ..Default::default()
                })
                .collect(),
        ),
    };
    let req = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: name.clone(),
            num_partitions: partitions,
            replication_factor: rf,
            assignments,
            configs: cfgs,
            ..Default::default()
        }],
        timeout_ms: 30_000,
        ..Default::default()
    };
    let resp = c.send(&req, 7).await?;
    let r = resp
        .topics
        .first()
        .context("broker sent an empty CreateTopics response")?;
    check(
        r.error_code,
        r.error_message.as_deref(),
        &format!("creating topic {name}"),
    )?;
    if as_json {
        println!(
            "{}",
            json!({"topic": name, "topic_id": r.topic_id.to_string(), "partitions": r.num_partitions, "replication_factor": r.replication_factor})
        );
    } else {
        println!(
            "created topic {name} ({} partitions, replication factor {}, id {})",
            r.num_partitions, r.replication_factor, r.topic_id
        );
    }
    Ok(())
}

async fn list(c: &mut Client, as_json: bool) -> anyhow::Result<()> {
    let resp = c
        .send(
            &MetadataRequest {
                topics: None,
                allow_auto_topic_creation: false,
                ..Default::default()
            },
            12,
        )
        .await?;
    let mut rows: Vec<(String, usize, String)> = resp
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone().unwrap_or_default(),
                t.partitions.len(),
                t.topic_id.to_string(),
            )
        })
        .collect();
    rows.sort();
    if as_json {
        let v: Vec<_> = rows
            .iter()
            .map(|(n, p, id)| json!({"topic": n, "partitions": p, "topic_id": id}))
            .collect();
        println!("{}", Value::Array(v));
    } else {
        println!("{:<40} {:>10}  TOPIC ID", "TOPIC", "PARTITIONS");
        for (n, p, id) in rows {
            println!("{n:<40} {p:>10}  {id}");
        }
    }
    Ok(())
}

async fn describe(c: &mut Client, as_json: bool, name: &str, admin: &str) -> anyhow::Result<()> {
    let meta = c
        .send(
            &MetadataRequest {
                topics: Some(vec![MetadataRequestTopic {
                    name: Some(name.to_owned()),
                    ..Default::default()
                }]),
                allow_auto_topic_creation: false,
                ..Default::default()
            },
            12,
        )
        .await?;
    let t = meta
        .topics
        .first()
        .context("broker sent an empty Metadata response")?;
    check(t.error_code, None, &format!("describing topic {name}"))?;
    let mut parts: Vec<_> = t.partitions.iter().collect();
    parts.sort_by_key(|p| p.partition_index);
    // ListOffsets goes to each partition's leader (another broker answers
    // NOT_LEADER_OR_FOLLOWER).
    let offsets = |ts: i64, which: &[i32]| {
        use brook_protocol::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: name.to_owned(),
                partitions: which
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
        }
    };
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in &parts {
        if p.leader_id >= 0 {
            by_leader
                .entry(p.leader_id)
                .or_default()
                .push(p.partition_index);
        }
    }
    let mut earliest: BTreeMap<i32, i64> = BTreeMap::new();
    let mut latest: BTreeMap<i32, i64> = BTreeMap::new();
    for (leader, which) in &by_leader {
        let Some(b) = meta.brokers.iter().find(|b| b.node_id == *leader) else {
            continue;
        };
        let mut lc = Client::connect(&format!("{}:{}", b.host, b.port))
            .await
            .with_context(|| format!("connecting to broker {leader}, a partition leader"))?;
        for (ts, out) in [(-2, &mut earliest), (-1, &mut latest)] {
            let r = lc.send(&offsets(ts, which), 7).await?;
            for x in r.topics.iter().flat_map(|t| t.partitions.iter()) {
                if x.error_code == 0 {
                    out.insert(x.partition_index, x.offset);
                }
            }
        }
    }
    let lookup = |m: &BTreeMap<i32, i64>, p: i32| m.get(&p).copied().unwrap_or(-1);
    let cfg = c
        .send(
            &DescribeConfigsRequest {
                resources: vec![DescribeConfigsResource {
                    resource_type: 2,
                    resource_name: name.to_owned(),
                    configuration_keys: None,
                    ..Default::default()
                }],
                ..Default::default()
            },
            4,
        )
        .await?;
    let overrides: BTreeMap<String, String> = cfg
        .results
        .iter()
        .flat_map(|r| r.configs.iter())
        .filter(|e| e.config_source == 1)
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    let compacted = cfg.results.iter().flat_map(|r| r.configs.iter()).any(|e| {
        e.name == "cleanup.policy" && e.value.as_deref().is_some_and(|v| v.contains("compact"))
    });
    // The cleaner's figures are not in the Kafka protocol; the admin API has them.
    let (compaction, compaction_note) = if compacted {
        match super::cluster::get_json(admin, &format!("/v1/topics/{name}")).await {
            Ok((200, v)) => (
                v["partitions"].as_array().cloned().unwrap_or_default(),
                None,
            ),
            Ok((code, _)) => (Vec::new(), Some(format!("admin API answered HTTP {code}"))),
            Err(e) => (Vec::new(), Some(format!("{e:#}"))),
        }
    } else {
        (Vec::new(), None)
    };
    let cleaner = |p: i32| {
        compaction
            .iter()
            .find(|x| x["partition"] == json!(p))
            .map_or(Value::Null, |x| x["compaction"].clone())
    };
    if as_json {
        let ps: Vec<_> = parts
            .iter()
            .map(|p| json!({
                "partition": p.partition_index, "leader": p.leader_id, "leader_epoch": p.leader_epoch,
                "replicas": p.replica_nodes, "isr": p.isr_nodes,
                "log_start_offset": lookup(&earliest, p.partition_index), "high_watermark": lookup(&latest, p.partition_index),
                "compaction": cleaner(p.partition_index),
            }))
            .collect();
        println!(
            "{}",
            json!({"topic": name, "topic_id": t.topic_id.to_string(), "partitions": ps, "configs": overrides})
        );
    } else {
        println!(
            "topic {name}  id {}  partitions {}",
            t.topic_id,
            parts.len()
        );
        if !overrides.is_empty() {
            let list: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("configs: {}", list.join(", "));
        }
        let extra = if compacted {
            format!(" {:>11} {:>12}", "DIRTY RATIO", "CLEANED TO")
        } else {
            String::new()
        };
        println!(
            "{:>9} {:>7} {:>6} {:>10} {:>10} {:>14} {:>14}{extra}",
            "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "START OFFSET", "HIGH WATERMARK"
        );
        for p in parts {
            let extra = if compacted {
                let c = cleaner(p.partition_index);
                let ratio = c["dirty_ratio"]
                    .as_f64()
                    .map_or("-".to_owned(), |r| format!("{r:.2}"));
                let to = c["cleaned_offset"]
                    .as_i64()
                    .map_or("-".to_owned(), |o| o.to_string());
                format!(" {ratio:>11} {to:>12}")
            } else {
                String::new()
            };
            println!(
                "{:>9} {:>7} {:>6} {:>10} {:>10} {:>14} {:>14}{extra}",
                p.partition_index,
                p.leader_id,
                p.leader_epoch,
                format!("{:?}", p.replica_nodes),
                format!("{:?}", p.isr_nodes),
                lookup(&earliest, p.partition_index),
                lookup(&latest, p.partition_index)
            );
        }
        if let Some(note) = compaction_note {
            println!("(dirty ratio and cleaned point unavailable: {note}; pass --admin HOST:PORT)");
        }
    }
    Ok(())
}

async fn delete(c: &mut Client, as_json: bool, name: &str) -> anyhow::Result<()> {
    let req = DeleteTopicsRequest {
        topics: vec![DeleteTopicState {
            name: Some(name.to_owned()),
            ..Default::default()
        }],
        timeout_ms: 30_000,
        ..Default::default()
    };
    let resp = c.send(&req, 6).await?;
    let r = resp
        .responses
        .first()
        .context("broker sent an empty DeleteTopics response")?;
    check(
        r.error_code,
        r.error_message.as_deref(),
        &format!("deleting topic {name}"),
    )?;
    if as_json {
        println!("{}", json!({"deleted": name}));
    } else {
        println!("deleted topic {name}");
    }
    Ok(())
}

async fn alter(
    c: &mut Client,
    as_json: bool,
    name: &str,
    set: &[String],
    delete: &[String],
) -> anyhow::Result<()> {
    if set.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --set KEY=VALUE and/or --delete KEY");
    }
    let mut configs = Vec::new();
    for kv in set {
        let (k, v) = parse_kv(kv)?;
        configs.push(AlterableConfig {
            name: k,
            config_operation: 0,
            value: Some(v),
            ..Default::default()
        });
    }
    for k in delete {
        configs.push(AlterableConfig {
            name: k.clone(),
            config_operation: 1,
            value: None,
            ..Default::default()
        });
    }
    let req = IncrementalAlterConfigsRequest {
        resources: vec![AlterConfigsResource {
            resource_type: 2,
            resource_name: name.to_owned(),
            configs,
            ..Default::default()
        }],
        validate_only: false,
        ..Default::default()
    };
    let resp = c.send(&req, 1).await?;
    let r = resp
        .responses
        .first()
        .context("broker sent an empty IncrementalAlterConfigs response")?;
    check(
        r.error_code,
        r.error_message.as_deref(),
        &format!("altering configs of {name}"),
    )?;
    if as_json {
        println!("{}", json!({"topic": name, "altered": true}));
    } else {
        println!("altered configs of topic {name}");
    }
    Ok(())
}
