//! Command-line interface: `brook serve` runs a broker; `brook topic …` talks to
//! one over the Kafka protocol.
//!
//! # Layout
//! - `serve`: startup, background tasks, graceful shutdown.
//! - `topic`: topic administration commands.
//! - `group`: consumer group administration commands.
//! - `cluster`: `brook cluster status` over the admin HTTP API.
//! - `produce`, `consume`: `brook produce` / `brook consume` (brook-producer, brook-consumer).
//! - `quota`: `brook quota set|list|delete` (client quotas).
//! - `view`: `brook view …` (materialized views) over the admin HTTP API.
//! - the Kafka request/response client the commands use is `crate::kafka_client`.

mod cluster;
mod consume;
mod dev_cluster;
mod group;
mod pipe;
mod produce;
mod quota;
mod reassign;
mod serve;
mod topic;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "brook",
    version,
    about = "A Kafka-compatible partitioned commit-log broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (single node by default: data in ./data, Kafka on 127.0.0.1:9092).
    Serve {
        /// TOML config file; without it every key has its documented default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write {"kafka":…,"admin":…,"pid":…} here (atomically) once serving
        /// ("kafka" is null on a controller-only node).
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Manage topics on a running broker.
    Topic(topic::TopicArgs),
    /// Inspect and manage consumer groups on a running broker.
    Group(group::GroupArgs),
    /// Cluster overview from a broker's admin listener.
    Cluster(cluster::ClusterArgs),
    /// Run a multi-node cluster on this machine (3 nodes by default), or
    /// just write its config files.
    DevCluster(dev_cluster::DevClusterArgs),
    /// Send lines from stdin (or a file) as records.
    Produce(produce::ProduceArgs),
    /// Print records of a topic.
    Consume(consume::ConsumeArgs),
    /// Create, query and drop materialized views on a running broker.
    View(view::ViewArgs),
    /// Set, list and delete client quotas (byte rates, request time) on a running broker.
    Quota(quota::QuotaArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if !matches!(cli.command, Command::Serve { .. } | Command::DevCluster(_)) {
        pipe::die_quietly_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Serve { config, ready_file } => serve::run(config, ready_file),
        Command::Topic(args) => topic::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(args) => group::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::DevCluster(args) => dev_cluster::run(args),
        Command::View(args) => view::run(args),
        Command::Quota(args) => quota::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("brook: {e:#}");
            ExitCode::FAILURE
        }
    }
}
