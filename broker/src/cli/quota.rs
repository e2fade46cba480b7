//! `brook quota set|list|delete`: client quotas over the Kafka protocol
//! (AlterClientQuotas and DescribeClientQuotas), as Kafka's
//! `kafka-configs --entity-type clients` does.

use anyhow::{bail, Context};
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use brook_protocol::messages::describe_client_quotas_request::ComponentData;
use brook_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::kafka_client::Client;

#[derive(Debug, Args)]
pub struct QuotaArgs {
    /// Broker to talk to.
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: QuotaCommand,
}

/// Which entity a command is about. brook enforces client-id entities only
/// (no SASL yet); user entities are stored and listed.
#[derive(Debug, Args, Clone)]
struct EntityArgs {
    /// The client id (`client.id` of the application).
    #[arg(long, conflicts_with = "default_client")]
    client_id: Option<String>,
    /// The default client-id entity: applies to every client id without its own entry.
    #[arg(long)]
    default_client: bool,
    /// The user (stored, not enforced until brook has SASL).
    #[arg(long, conflicts_with = "default_user")]
    user: Option<String>,
    /// The default user entity (stored, not enforced).
    #[arg(long)]
    default_user: bool,
}

impl EntityArgs {
    fn parts(&self) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let mut parts = Vec::new();
        if self.user.is_some() || self.default_user {
            parts.push(("user".to_owned(), self.user.clone()));
        }
        if self.client_id.is_some() || self.default_client {
            parts.push(("client-id".to_owned(), self.client_id.clone()));
        }
        if parts.is_empty() {
            bail!("name an entity: --client-id ID, --default-client, --user U or --default-user");
        }
        Ok(parts)
    }
}

#[derive(Debug, Subcommand)]
enum QuotaCommand {
    /// Set quotas of an entity. Byte rates take B, KB, MB, GB (powers of 1000)
    /// or KiB, MiB, GiB (powers of 1024), per second: `--producer-byte-rate 10MB`.
    Set {
        #[command(flatten)]
        entity: EntityArgs,
        /// Produce bytes per second.
        #[arg(long, value_parser = parse_rate)]
        producer_byte_rate: Option<f64>,
        /// Fetch bytes per second.
        #[arg(long, value_parser = parse_rate)]
        consumer_byte_rate: Option<f64>,
        /// Percent of one request-handling thread's time (100 = one thread).
        #[arg(long)]
        request_percentage: Option<f64>,
    },
    /// List configured quotas (all, or those of the named entity).
    List {
        /// Only entries with this client id.
        #[arg(long)]
        client_id: Option<String>,
        /// Only entries with this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Remove quotas of an entity: the named keys, or all of them.
    Delete {
        #[command(flatten)]
        entity: EntityArgs,
        #[arg(long)]
        producer_byte_rate: bool,
        #[arg(long)]
        consumer_byte_rate: bool,
        #[arg(long)]
        request_percentage: bool,
    },
}

/// `10MB`, `1.5MiB`, `250000`: bytes per second.
fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a rate such as 1000, 10MB or 1MiB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit '{other}' in '{s}'")),
    };
    Ok((n * scale).round())
}

pub(super) fn run(args: QuotaArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut client = Client::connect(&args.bootstrap).await?;
        match args.command {
            QuotaCommand::Set {
                entity,
                producer_byte_rate,
                consumer_byte_rate,
                request_percentage,
            } => {
                let ops: Vec<(&str, Option<f64>)> = [
                    ("producer_byte_rate", producer_byte_rate),
                    ("consumer_byte_rate", consumer_byte_rate),
                    ("request_percentage", request_percentage),
                ]
                .into_iter()
                .filter(|(_, v)| v.is_some())
                .collect();
                if ops.is_empty() {
                    bail!("nothing to set: give --producer-byte-rate, --consumer-byte-rate or --request-percentage");
                }
                alter(&mut client, args.json, &entity.parts()?, &ops).await
            }
            QuotaCommand::Delete {
                entity,
                producer_byte_rate,
                consumer_byte_rate,
                request_percentage,
            } => {
                let parts = entity.parts()?;
                let mut keys: Vec<String> = [
                    ("producer_byte_rate", producer_byte_rate),
                    ("consumer_byte_rate", consumer_byte_rate),
                    ("request_percentage", request_percentage),
                ]
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(k, _)| k.to_owned())
                .collect();
                if keys.is_empty() {
                    // Every key the entity has.
                    let components = parts
                        .iter()
                        .map(|(t, n)| component(t, n.as_deref()))
                        .collect();
                    for (_, values) in describe(&mut client, components, true).await? {
                        keys.extend(values.into_iter().map(|(k, _)| k));
                    }
                }
                let ops: Vec<(&str, Option<f64>)> =
                    keys.iter().map(|k| (k.as_str(), None)).collect();
                alter(&mut client, args.json, &parts, &ops).await
            }
            QuotaCommand::List { client_id, user } => {
                let mut components = Vec::new();
                if let Some(c) = client_id {
                    components.push(component("client-id", Some(&c)));
                }
                if let Some(u) = user {
                    components.push(component("user", Some(&u)));
                }
                let entries = describe(&mut client, components, false).await?;
                print_list(args.json, &entries);
                Ok(())
            }
        }
    })
}

fn component(entity_type: &str, name: Option<&str>) -> ComponentData {
    ComponentData {
        entity_type: entity_type.to_owned(),
        // 0: exact name; 1: the default entity.
        match_type: if name.is_some() { 0 } else { 1 },
        r#match: name.map(str::to_owned),
        ..Default::default()
    }
}

type Entry = (Vec<(String, Option<String>)>, Vec<(String, f64)>);

async fn describe(
    c: &mut Client,
    components: Vec<ComponentData>,
    strict: bool,
) -> anyhow::Result<Vec<Entry>> {
    let resp = c
        .send(
            &DescribeClientQuotasRequest {
                components,
                strict,
                ..Default::default()
            },
            1,
        )
        .await?;
    if resp.error_code != 0 {
        bail!(
            "describing quotas: {} ({})",
            ErrorCode::from_i16(resp.error_code),
            resp.error_message.unwrap_or_default()
        );
    }
    Ok(resp
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e.entity
                    .into_iter()
                    .map(|p| (p.entity_type, p.entity_name))
                    .collect(),
                e.values.into_iter().map(|v| (v.key, v.value)).collect(),
            )
        })
        .collect())
}

fn entity_text(parts: &[(String, Option<String>)]) -> String {
    parts
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(",")
}

fn print_list(as_json: bool, entries: &[Entry]) {
    if as_json {
        let rows: Vec<_> = entries
            .iter()
            .map(|(entity, values)| {
                let entity: serde_json::Map<String, serde_json::Value> =
                    entity.iter().map(|(t, n)| (t.clone(), json!(n))).collect();
                let values: serde_json::Map<String, serde_json::Value> =
                    values.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                json!({"entity": entity, "values": values})
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return;
    }
    if entries.is_empty() {
        println!("no quotas configured");
        return;
    }
    println!("{:<40} {:<22} VALUE", "ENTITY", "QUOTA");
    for (entity, values) in entries {
        for (k, v) in values {
            println!("{:<40} {:<22} {v}", entity_text(entity), k);
        }
    }
}

async fn alter(
    c: &mut Client,
    as_json: bool,
    parts: &[(String, Option<String>)],
    ops: &[(&str, Option<f64>)],
) -> anyhow::Result<()> {
    let req = AlterClientQuotasRequest {
        entries: vec![EntryData {
            entity: parts
                .iter()
                .map(|(t, n)| EntityData {
                    entity_type: t.clone(),
                    entity_name: n.clone(),
                    ..Default::default()
                })
                .collect(),
            ops: ops
                .iter()
                .map(|(k, v)| OpData {
                    key: (*k).to_owned(),
                    value: v.unwrap_or(0.0),
                    remove: v.is_none(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        validate_only: false,
        ..Default::default()
    };
    let resp = c.send(&req, 1).await?;
    let e = resp
        .entries
        .first()
        .context("broker sent an empty AlterClientQuotas response")?;
    let what = entity_text(parts);
    if e.error_code != 0 {
        bail!(
            "altering quotas of {what}: {} ({})",
            ErrorCode::from_i16(e.error_code),
            e.error_message.clone().unwrap_or_default()
        );
    }
    if as_json {
        let changes: serde_json::Map<String, serde_json::Value> = ops
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        println!("{}", json!({"entity": what, "changes": changes}));
    } else {
        for (k, v) in ops {
            match v {
                Some(v) => println!("{what}: {k} = {v}"),
                None => println!("{what}: {k} removed"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_take_decimal_and_binary_units() {
        assert_eq!(parse_rate("10MB"), Ok(10_000_000.0));
        assert_eq!(parse_rate("1MiB"), Ok(1_048_576.0));
        assert_eq!(parse_rate("250000"), Ok(250_000.0));
        assert_eq!(parse_rate("1.5kb"), Ok(1500.0));
        assert!(parse_rate("10XB").is_err());
        assert!(parse_rate("MB").is_err());
    }
}
