//! brook-broker: the Kafka-compatible broker and the `brook` binary.
//!
//! # Layout
//! - `cli`: `brook serve` and the admin commands.
//! - `server`: listener, connections, response writer (`writev`/`sendfile`).
//! - `handlers`: one file per Kafka API.
//! - `broker`: shared state: config, topic registry, producer ids.
//! - `partition`: one hosted partition replica: the pure replication state
//!   machine (`partition::state`) and its I/O shell (log, flusher, purgatory).
//! - `replication`: followers fetching from leaders, ISR changes to the controller.
//! - `kafka_client`: a minimal Kafka client (admin CLI, replica fetchers).
//! - `log`: on-disk partition log storage (segments, indexes, recovery, …).
//! - `fsio`: the file-system seam every storage sync, create, rename and delete
//!   goes through (the `brook-fsio` crate, re-exported; the power-loss
//!   recorder of the tests watches it).
//! - `producer_state`: idempotent-producer sequence tracking.
//! - `group`: the consumer group coordinator and `__consumer_offsets`.
//! - `metadata`: metadata records, the image built by replaying them, deltas.
//! - `maintenance`: retention, periodic flush, checkpoints.
//! - `cleaner`: the log cleaner manager (compaction on blocking threads).
//! - `quota`: client quotas (byte and request-time rates per client id,
//!   throttle delays).
//! - `metrics`, `admin_http`: Prometheus metrics and the admin HTTP listener.
//! - `views`: materialized views hosted by this broker (brook-views), their
//!   followers and HTTP routes.
//! - `fetch_session`: the incremental fetch session cache (KIP-227).
//! - `error`: [`error::BrokerError`] and its mapping to Kafka error codes.
//! - `path_trace`: timestamps along a record's path (append, fsync, HW,
//!   response), off unless the log filter asks for them.

pub mod admin_http;
pub mod broker;
pub mod cleaner;
pub mod cli;
pub mod controller;
pub mod error;
pub mod fetch_session;
pub use brook_fsio as fsio;
pub mod group;
pub mod handlers;
pub mod kafka_client;
pub mod log;
pub mod maintenance;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod path_trace;
pub mod producer_state;
pub mod quota;
pub mod replication;
pub mod server;
pub mod views;
