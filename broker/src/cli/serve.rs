//! `brook serve`: load config, open the data directory, serve Kafka and admin
//! listeners, run background maintenance, and shut down gracefully on SIGTERM or
//! SIGINT (stop accepting, finish in-flight requests, flush, checkpoint, write
//! the clean-shutdown markers).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use brook_config::BrokerConfig;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::Broker;

pub(super) fn run(config_path: Option<PathBuf>, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = match &config_path {
        Some(p) => BrokerConfig::from_file(p)?,
        None => BrokerConfig::default(),
    };
    config.apply_env(std::env::vars())?;
    config.validate()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BROOK_LOG")
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    raise_fd_limit(config.max_connections);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("brook")
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(config, ready_file))
}

/// Every connection is a file descriptor: raise the soft `RLIMIT_NOFILE` (up to
/// the hard limit) to `max.connections` plus headroom for segments, indexes and
/// listeners, so a default soft limit of 1024 does not cut connections short.
/// Only warns: the accept loop already survives EMFILE (it backs off and keeps
/// serving).
fn raise_fd_limit(max_connections: u32) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let wanted = u64::from(max_connections) + 1024;
    if soft >= wanted {
        return;
    }
    let to = wanted.min(hard);
    if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, to, hard) {
        warn!(soft, hard, error = %e, "cannot raise the open-file limit");
    }
    if to < wanted {
        warn!(
            limit = to,
            max_connections,
            "open-file limit is below max.connections + 1024; connections beyond it fail with EMFILE"
        );
    }
}

fn resolve(hp: &brook_config::HostPort, what: &str) -> anyhow::Result<SocketAddr> {
    format!("{}:{}", hp.host, hp.port)
        .to_socket_addrs()
        .with_context(|| format!("{what} {}:{} does not resolve", hp.host, hp.port))?
        .next()
        .ok_or_else(|| {
            anyhow!(
                "{what} {}:{} does not resolve to an address",
                hp.host,
                hp.port
            )
        })
}

async fn serve(config: BrokerConfig, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    // A controller-only node (process.roles = controller) has no Kafka listener.
    let kafka_addr = if config.is_broker() {
        Some(resolve(
            config.client_listeners().first().ok_or_else(|| {
                anyhow!("listeners has no client listener: give at least one host:port that is not a controller listener")
            })?,
            "listeners",
        )?)
    } else {
        None
    };
    let admin_addr = resolve(&config.admin_listener, "admin.listener")?;
    let metrics = match crate::metrics::install() {
        Ok(h) => Some(h),
        Err(e) => {
            warn!(error = %e, "metrics disabled");
            None
        }
    };
    // Bind first, so the broker registers the address clients really reach
    // (when `listeners` asks for port 0).
    let listener = match kafka_addr {
        Some(addr) => Some(
            crate::server::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (listeners)"))?,
        ),
        None => None,
    };
    let kafka_bound = listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let broker =
        Arc::new(Broker::open_with(config, Arc::new(crate::log::FsyncSyncer), kafka_bound).await?);
    if let Some(b) = kafka_bound {
        broker.set_bound(b);
    }
    let admin = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("cannot listen on {admin_addr} (admin.listener)"))?;
    let admin_bound = admin.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let kafka_task =
        listener.map(|l| tokio::spawn(crate::server::serve(l, broker.clone(), stop_rx.clone())));
    let admin_task = tokio::spawn(crate::admin_http::serve(
        admin,
        broker.clone(),
        metrics,
        stop_rx.clone(),
    ));
    let maintenance = tokio::spawn(crate::maintenance::run(broker.clone(), stop_rx.clone()));
    let metadata = tokio::spawn(broker.clone().follow_metadata(stop_rx.clone()));
    let group_timer = tokio::spawn(crate::group::run_timer(broker.clone(), stop_rx.clone()));
    let cleaner = tokio::spawn(crate::cleaner::run(broker.clone(), stop_rx.clone()));
    broker
        .views()
        .start(&broker)
        .await
        .context("starting materialized views")?;
    match kafka_bound {
        Some(k) => {
            info!(kafka = %k, admin = %admin_bound, cluster_id = broker.cluster_id(), "brook is serving")
        }
        None => {
            info!(admin = %admin_bound, cluster_id = broker.cluster_id(), "brook is serving as a controller only")
        }
    }
    if let Some(path) = &ready_file {
        write_ready_file(path, kafka_bound, admin_bound)?;
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
    // Controlled shutdown first, while clients can still reach us and learn
    // the new leaders.
    if broker.config().is_broker() {
        broker.controlled_shutdown().await;
    }
    let _ = stop_tx.send(true);
    // Connections finish the requests they already read; bound the wait so a
    // stuck client cannot hold shutdown hostage.
    if let Some(task) = kafka_task {
        if tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .is_err()
        {
            warn!("connections did not finish within 30 s; closing anyway");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), admin_task).await;
    let _ = maintenance.await;
    let _ = group_timer.await;
    let _ = cleaner.await;
    let _ = metadata.await;
    broker.views().stop_all().await;
    broker.shutdown().await;
    // After the final flush, so the recovery points written are the final ones.
    let b = broker.clone();
    let _ = tokio::task::spawn_blocking(move || crate::maintenance::write_checkpoints(&b)).await;
    info!("shutdown complete");
    Ok(())
}

fn write_ready_file(
    path: &Path,
    kafka: Option<SocketAddr>,
    admin: SocketAddr,
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "kafka": kafka.map(|k| k.to_string()),
        "admin": admin.to_string(),
        "pid": std::process::id(),
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
