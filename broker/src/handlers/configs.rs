//! DescribeConfigs (32), AlterConfigs (33) and IncrementalAlterConfigs (44).
//!
//! Topic configs are persisted with the topic and applied to its partitions
//! live. Broker configs are described (every key, defaults included, with their
//! source) but static: changing them means editing the config file.

use std::collections::BTreeMap;

use brook_config::ConfigEntry;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::alter_configs_response::{
    AlterConfigsResourceResponse, AlterConfigsResponse,
};
use brook_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
    DescribeConfigsSynonym,
};
use brook_protocol::messages::incremental_alter_configs_response as inc;
use brook_protocol::messages::{
    AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};

use super::Ctx;
use crate::controller::rpc::ConfigChange;
use crate::error::BrokerError;
use crate::server::connection::Reply;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

pub(super) fn describe(ctx: &Ctx, req: DescribeConfigsRequest) -> Reply {
    // A resource named twice is described once, so a small request cannot
    // demand a huge response.
    let mut seen = std::collections::HashSet::new();
    let results = req
        .resources
        .into_iter()
        .filter(|r| seen.insert((r.resource_type, r.resource_name.clone())))
        .map(|r| {
            let mut out = DescribeConfigsResult {
                resource_type: r.resource_type,
                resource_name: r.resource_name.clone(),
                ..Default::default()
            };
            let entries = match entries_for(ctx, r.resource_type, &r.resource_name) {
                Ok(e) => e,
                Err(e) => {
                    out.error_code = e.code();
                    out.error_message = e.message();
                    return out;
                }
            };
            out.configs = entries
                .into_iter()
                .filter(|e| {
                    r.configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k == &e.name))
                })
                .map(|e| DescribeConfigsResourceResult {
                    is_default: e.source == brook_config::ConfigSource::DefaultConfig,
                    config_source: e.source.code(),
                    read_only: e.read_only,
                    is_sensitive: e.sensitive,
                    value: if e.sensitive { None } else { e.value.clone() },
                    synonyms: if req.include_synonyms {
                        e.synonyms
                            .iter()
                            .map(|s| DescribeConfigsSynonym {
                                name: s.name.clone(),
                                value: s.value.clone(),
                                source: s.source.code(),
                                ..Default::default()
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                    config_type: e.config_type.code(),
                    documentation: req
                        .include_documentation
                        .then(|| e.documentation.to_owned()),
                    name: e.name,
                    ..Default::default()
                })
                .collect();
            out
        })
        .collect();
    ctx.reply(&DescribeConfigsResponse {
        results,
        ..Default::default()
    })
}

fn entries_for(ctx: &Ctx, resource_type: i8, name: &str) -> Result<Vec<ConfigEntry>, BrokerError> {
    match resource_type {
        TOPIC => {
            let topic = ctx
                .broker
                .topic(name)
                .ok_or(BrokerError::UnknownTopicOrPartition)?;
            Ok(brook_config::describe_topic(
                ctx.broker.config(),
                &topic.overrides(),
            ))
        }
        BROKER => {
            check_broker_name(ctx, name)?;
            Ok(brook_config::describe_broker(ctx.broker.config()))
        }
        BROKER_LOGGER => Err(BrokerError::InvalidRequest(
            "broker loggers are not configurable in brook".into(),
        )),
        other => Err(BrokerError::InvalidRequest(format!(
            "unknown resource type {other}"
        ))),
    }
}

fn check_broker_name(ctx: &Ctx, name: &str) -> Result<(), BrokerError> {
    if name.is_empty() || name == ctx.broker.node_id().to_string() {
        Ok(())
    } else {
        Err(BrokerError::InvalidRequest(format!(
            "unknown broker {name}; this is broker {}",
            ctx.broker.node_id()
        )))
    }
}

fn static_broker(ctx: &Ctx, name: &str) -> BrokerError {
    match check_broker_name(ctx, name) {
        Err(e) => e,
        Ok(()) => BrokerError::InvalidRequest(
            "broker configs are static in brook: edit the config file and restart".into(),
        ),
    }
}

pub(super) async fn alter(ctx: &Ctx, req: AlterConfigsRequest) -> Reply {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let result = match r.resource_type {
            TOPIC => {
                // AlterConfigs replaces the whole set of overrides.
                let mut set = BTreeMap::new();
                let mut bad = None;
                for c in &r.configs {
                    match &c.value {
                        Some(v) => {
                            set.insert(c.name.clone(), v.clone());
                        }
                        None => bad = Some(c.name.clone()),
                    }
                }
                match bad {
                    Some(k) => Err(BrokerError::InvalidConfig(format!(
                        "config {k} has a null value"
                    ))),
                    None => {
                        ctx.broker
                            .alter_topic_configs(
                                &r.resource_name,
                                ConfigChange::Replace(set),
                                req.validate_only,
                            )
                            .await
                    }
                }
            }
            BROKER => Err(static_broker(ctx, &r.resource_name)),
            other => Err(BrokerError::InvalidRequest(format!(
                "unknown resource type {other}"
            ))),
        };
        let (error_code, error_message) = split(result);
        responses.push(AlterConfigsResourceResponse {
            error_code,
            error_message,
            resource_type: r.resource_type,
            resource_name: r.resource_name,
            ..Default::default()
        });
    }
    ctx.reply(&AlterConfigsResponse {
        responses,
        ..Default::default()
    })
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub(super) async fn incremental_alter(ctx: &Ctx, req: IncrementalAlterConfigsRequest) -> Reply {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let result = match r.resource_type {
            TOPIC => {
                let ops: Vec<(String, i8, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| (c.name.clone(), c.config_operation, c.value.clone()))
                    .collect();
                ctx.broker
                    .alter_topic_configs(
                        &r.resource_name,
                        ConfigChange::Incremental(ops),
                        req.validate_only,
                    )
                    .await
            }
            BROKER => Err(static_broker(ctx, &r.resource_name)),
            other => Err(BrokerError::InvalidRequest(format!(
                "unknown resource type {other}"
            ))),
        };
        let (error_code, error_message) = split(result);
        responses.push(inc::AlterConfigsResourceResponse {
            error_code,
            error_message,
            resource_type: r.resource_type,
            resource_name: r.resource_name,
            ..Default::default()
        });
    }
    ctx.reply(&inc::IncrementalAlterConfigsResponse {
        responses,
        ..Default::default()
    })
}

pub(crate) fn apply_ops(
    overrides: &mut BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
    broker: &brook_config::BrokerConfig,
) -> Result<(), BrokerError> {
    for (name, op, value) in ops {
        match *op {
            SET => {
                let v = value.clone().ok_or_else(|| {
                    BrokerError::InvalidConfig(format!("SET of {name} needs a value"))
                })?;
                overrides.insert(name.clone(), v);
            }
            DELETE => {
                overrides.remove(name);
            }
            APPEND | SUBTRACT => {
                let v = value.clone().ok_or_else(|| {
                    BrokerError::InvalidConfig(format!("APPEND/SUBTRACT of {name} needs a value"))
                })?;
                let current = match overrides.get(name) {
                    Some(c) => c.clone(),
                    None => brook_config::describe_topic(broker, &BTreeMap::new())
                        .into_iter()
                        .find(|e| &e.name == name)
                        .and_then(|e| e.value)
                        .ok_or_else(|| {
                            BrokerError::InvalidConfig(format!("unknown topic config {name}"))
                        })?,
                };
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                for x in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if *op == APPEND {
                        if !items.iter().any(|i| i == x) {
                            items.push(x.to_owned());
                        }
                    } else {
                        items.retain(|i| i != x);
                    }
                }
                overrides.insert(name.clone(), items.join(","));
            }
            other => {
                return Err(BrokerError::InvalidRequest(format!(
                    "unknown config operation {other} for {name}"
                )))
            }
        }
    }
    Ok(())
}

fn split(r: Result<(), BrokerError>) -> (i16, Option<String>) {
    match r {
        Ok(()) => (ErrorCode::NONE.code(), None),
        Err(e) => (e.code(), e.message()),
    }
}
