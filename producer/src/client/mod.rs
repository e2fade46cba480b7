//! The shared client layer: pipelined broker connections, API version
//! negotiation and cluster metadata. brook-consumer builds on it too.
//!
//! [`Client`] is a cheap handle (`Clone`) over shared state: one
//! [`Connection`] per broker node (plus bootstrap connections until the first
//! metadata arrives), and the current [`Cluster`] snapshot. Metadata refreshes
//! are single-flight: concurrent callers wait for one request. A connection that
//! closed is replaced on the next use.
//!
//! # Layout
//! - `connection`: [`Connection`], reader/writer tasks, correlation matching.
//! - `metadata`: [`Cluster`] snapshots.

mod connection;
mod metadata;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use brook_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};

pub use connection::{Connection, Reply, ReplyTo};
pub use metadata::{Cluster, PartitionMeta, TopicMeta};

use crate::error::{Error, Result};

/// Settings of the client layer, taken from the producer or consumer config.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host:port` bootstrap servers.
    pub bootstrap: Vec<String>,
    /// `client.id`.
    pub client_id: String,
    /// `request.timeout.ms`.
    pub request_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whether Metadata may auto-create topics (producers: yes; consumers: no).
    pub allow_auto_topic_creation: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            bootstrap: vec!["127.0.0.1:9092".to_owned()],
            client_id: String::new(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            allow_auto_topic_creation: true,
        }
    }
}

/// Shared handle to connections and metadata.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: ClientOptions,
    /// Node id → connection. Bootstrap connections use ids below -1000.
    conns: Mutex<HashMap<i32, Arc<Connection>>>,
    connect_lock: tokio::sync::Mutex<()>,
    cluster: RwLock<Arc<Cluster>>,
    refresh_lock: tokio::sync::Mutex<()>,
    topics: Mutex<BTreeSet<String>>,
}

const BOOTSTRAP_BASE: i32 = -1000;

impl Client {
    /// A client; nothing is connected until the first request.
    pub fn new(opts: ClientOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                opts,
                conns: Mutex::new(HashMap::new()),
                connect_lock: tokio::sync::Mutex::new(()),
                cluster: RwLock::new(Arc::new(Cluster::default())),
                refresh_lock: tokio::sync::Mutex::new(()),
                topics: Mutex::new(BTreeSet::new()),
            }),
        }
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// The current metadata snapshot.
    pub fn cluster(&self) -> Arc<Cluster> {
        self.inner
            .cluster
            .read()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    fn live(&self, id: i32) -> Option<Arc<Connection>> {
        let conns = self.inner.conns.lock().ok()?;
        conns.get(&id).filter(|c| !c.is_closed()).cloned()
    }

    /// The open connection to broker `node`, if there is one; never connects.
    pub fn live_connection(&self, node: i32) -> Option<Arc<Connection>> {
        self.live(node)
    }

    /// The connection to broker `node`, opening it if needed.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]-free: [`Error::Connect`] when it cannot connect,
    /// [`Error::NoBroker`] when `node` is not in the metadata.
    pub async fn connection(&self, node: i32) -> Result<Arc<Connection>> {
        if let Some(c) = self.live(node) {
            return Ok(c);
        }
        let addr = self
            .cluster()
            .brokers
            .get(&node)
            .cloned()
            .ok_or_else(|| Error::NoBroker {
                servers: format!("node {node}"),
                last: "not in the cluster metadata".to_owned(),
            })?;
        self.connect_as(node, &addr).await
    }

    /// The connection registered as `id`, opened to `addr` if there is none
    /// (e.g. a group coordinator learned from FindCoordinator).
    ///
    /// # Errors
    /// [`Error::Connect`].
    pub async fn connection_at(&self, id: i32, addr: &str) -> Result<Arc<Connection>> {
        self.connect_as(id, addr).await
    }

    async fn connect_as(&self, id: i32, addr: &str) -> Result<Arc<Connection>> {
        let _guard = self.inner.connect_lock.lock().await;
        if let Some(c) = self.live(id) {
            return Ok(c);
        }
        let o = &self.inner.opts;
        let conn =
            Connection::connect(addr, &o.client_id, o.connect_timeout, o.request_timeout).await?;
        if let Ok(mut conns) = self.inner.conns.lock() {
            conns.insert(id, conn.clone());
        }
        Ok(conn)
    }

    /// Any live connection: a known broker's, else a bootstrap server's.
    ///
    /// # Errors
    /// [`Error::NoBroker`] when no server can be reached.
    pub async fn any_connection(&self) -> Result<Arc<Connection>> {
        let existing = self
            .inner
            .conns
            .lock()
            .ok()
            .and_then(|c| c.values().find(|c| !c.is_closed()).cloned());
        if let Some(c) = existing {
            return Ok(c);
        }
        let mut last = String::from("no bootstrap servers");
        let nodes: Vec<(i32, String)> = self
            .cluster()
            .brokers
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (node, addr) in nodes {
            match self.connect_as(node, &addr).await {
                Ok(c) => return Ok(c),
                Err(e) => last = e.to_string(),
            }
        }
        for (i, addr) in self.inner.opts.bootstrap.iter().enumerate() {
            let id = BOOTSTRAP_BASE - i32::try_from(i).unwrap_or(0);
            match self.connect_as(id, addr).await {
                Ok(c) => return Ok(c),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::NoBroker {
            servers: self.inner.opts.bootstrap.join(","),
            last,
        })
    }

    /// Adds topics to the set every metadata refresh asks for.
    pub fn track_topics<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut t) = self.inner.topics.lock() {
            t.extend(topics.into_iter().map(str::to_owned));
        }
    }

    /// Fetches metadata for the tracked topics plus `topics` (which become
    /// tracked). Concurrent calls share one request when possible.
    ///
    /// # Errors
    /// Connection errors; topic-level errors are in the returned snapshot.
    pub async fn refresh_metadata(&self, topics: &[&str]) -> Result<Arc<Cluster>> {
        let before = self.cluster().updated;
        let missing = {
            let tracked = self
                .inner
                .topics
                .lock()
                .map(|t| t.clone())
                .unwrap_or_default();
            topics.iter().any(|t| !tracked.contains(*t))
        };
        self.track_topics(topics.iter().copied());
        let _guard = self.inner.refresh_lock.lock().await;
        if !missing && self.cluster().updated > before {
            // Someone refreshed while we waited, for the same topics.
            return Ok(self.cluster());
        }
        let wanted: Vec<String> = self
            .inner
            .topics
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        let req = MetadataRequest {
            topics: Some(
                wanted
                    .iter()
                    .map(|n| MetadataRequestTopic {
                        name: Some(n.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            allow_auto_topic_creation: self.inner.opts.allow_auto_topic_creation,
            ..Default::default()
        };
        let mut last = None;
        for _ in 0..3 {
            let conn = self.any_connection().await?;
            match conn.request(&req).await {
                Ok(resp) => {
                    let next = Arc::new(self.cluster().merged(&resp));
                    if let Ok(mut c) = self.inner.cluster.write() {
                        *c = next.clone();
                    }
                    return Ok(next);
                }
                Err(e) => {
                    conn.close("metadata request failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(Error::Closed))
    }

    /// Closes every connection.
    pub fn close(&self) {
        if let Ok(mut conns) = self.inner.conns.lock() {
            for c in conns.values() {
                c.close("client closed");
            }
            conns.clear();
        }
    }
}
