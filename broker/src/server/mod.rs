//! The Kafka listener: accepts connections, enforces the connection limit, and
//! runs one [`connection`] task per client. The connections share one budget of
//! request bytes ([`connection::RequestBudget`], `queued.max.request.bytes`).
//!
//! # Layout
//! - `connection`: frame reading, request dispatch, in-order response writing.
//! - `writer`: `writev`/`sendfile` output of encoded responses.

mod cached_read;
pub mod connection;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::broker::Broker;

/// Accept connections until `shutdown` turns true, then wait for open
/// connections to finish the requests they have already read.
///
/// # Errors
/// Only a failure of the listening socket itself.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let max = broker.config().max_connections.max(1) as usize;
    let permits = Arc::new(Semaphore::new(max));
    let budget = connection::RequestBudget::new(broker.config().queued_max_request_bytes);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: keep serving the connections we have,
                        // and back off — the pending connection stays queued, so
                        // retrying at once would spin.
                        warn!(error = %e, "accept failed; backing off 100 ms");
                        crate::metrics::connection_error();
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    debug!(%peer, "connection refused: max.connections reached");
                    crate::metrics::connection_error();
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                let budget = budget.clone();
                conns.spawn(async move {
                    connection::run(stream, peer, broker, budget, shutdown).await;
                    drop(permit);
                });
            }
        }
    }
    info!(
        "listener closed; waiting for {} open connections",
        conns.len()
    );
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Bind the Kafka listener.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
