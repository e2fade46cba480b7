//! Work the sender loop starts but never awaits: metadata refreshes and
//! connecting to a leader it has no connection to yet. Each runs in its own
//! task and reports an [`Event`] back, so a slow Metadata answer or a broker
//! that takes `connect_timeout` to refuse only delays the partitions that
//! need it; batches for partitions with known, connected leaders keep going.
//!
//! Bounds: at most one refresh and one connect per node run at a time, so the
//! event channel never holds more than `1 + nodes` messages. A node whose
//! connect failed is not tried again before `retry.backoff.ms`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::Client;

/// How a background task ended.
#[derive(Debug)]
pub(crate) enum Event {
    /// A metadata refresh ended; `true` when new metadata arrived.
    Metadata(bool),
    /// Connecting to `node` ended.
    Connected { node: i32, ok: bool },
}

#[derive(Debug)]
pub(crate) struct Background {
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    refreshing: bool,
    connecting: HashSet<i32>,
    /// Nodes whose last connect failed: not retried before the instant.
    backoff: HashMap<i32, Instant>,
    retry_backoff: Duration,
}

impl Background {
    pub fn new(retry_backoff: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx,
            refreshing: false,
            connecting: HashSet::new(),
            backoff: HashMap::new(),
            retry_backoff,
        }
    }

    pub fn refreshing(&self) -> bool {
        self.refreshing
    }

    /// Starts a metadata refresh for `topics` unless one is running.
    pub fn refresh(&mut self, client: &Client, topics: Vec<String>) {
        if self.refreshing {
            return;
        }
        self.refreshing = true;
        let (client, done) = (client.clone(), self.tx.clone());
        tokio::spawn(async move {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            let ok = match client.refresh_metadata(&names).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::debug!("metadata refresh failed: {e}");
                    false
                }
            };
            let _ = done.send(Event::Metadata(ok));
        });
    }

    /// Starts connecting to `node` unless that is running or backing off.
    pub fn connect(&mut self, client: &Client, node: i32, now: Instant) {
        if self.backoff.get(&node).is_some_and(|t| *t > now) || !self.connecting.insert(node) {
            return;
        }
        let (client, done) = (client.clone(), self.tx.clone());
        tokio::spawn(async move {
            let ok = match client.connection(node).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::debug!("cannot connect to node {node}: {e}");
                    false
                }
            };
            let _ = done.send(Event::Connected { node, ok });
        });
    }

    /// The earliest instant a backed-off node may be tried again.
    pub fn next_attempt(&self) -> Option<Instant> {
        self.backoff.values().min().copied()
    }

    /// The next event (pending forever while nothing runs).
    pub async fn next(&mut self) -> Event {
        match self.rx.recv().await {
            Some(e) => e,
            // `self.tx` is alive, so the channel never closes.
            None => std::future::pending().await,
        }
    }

    /// Records that a task ended.
    pub fn ended(&mut self, event: &Event) {
        match *event {
            Event::Metadata(_) => self.refreshing = false,
            Event::Connected { node, ok } => {
                self.connecting.remove(&node);
                if ok {
                    self.backoff.remove(&node);
                } else {
                    self.backoff
                        .insert(node, Instant::now() + self.retry_backoff);
                }
            }
        }
    }
}
