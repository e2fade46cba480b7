//! brook-benches
pub mod path;
pub mod sink;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

/// A producer context keeping the ack latency of every delivery (the send
/// instant travels as the opaque) and the number of failed ones.
#[derive(Default)]
pub struct AckLatencies {
    pub ok: Mutex<Vec<Duration>>,
    pub failed: Mutex<usize>,
}

impl ClientContext for AckLatencies {}

impl ProducerContext for AckLatencies {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        let took = sent.elapsed();
        match result {
            Ok(_) => {
                if let Ok(mut v) = self.ok.lock() {
                    v.push(took);
                }
            }
            Err(_) => {
                if let Ok(mut n) = self.failed.lock() {
                    *n += 1;
                }
            }
        }
    }
}

/// Sleep until record `i` of a fixed-rate stream of `rate` records/s that
/// began at `start` is due; a record already late goes at once.
pub fn wait_until_due(start: Instant, i: u64, rate: u64) {
    let due = start + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

/// Make a freshly started `cluster` of `nodes` ready for a bench: wait for an
/// active controller and every broker unfenced, then create one-partition
/// `topics` with replication factor `nodes` (`min.insync.replicas` 2 from 3
/// nodes up, else 1). Returns the bootstrap servers.
///
/// # Errors
/// A wait that timed out, or a topic that could not be created.
pub fn prepare_cluster(
    cluster: &brook_tests::Cluster,
    nodes: usize,
    topics: &[&str],
) -> anyhow::Result<String> {
    cluster.wait_active_controller("a controller", Duration::from_secs(30), |_, e| e >= 1)?;
    for n in cluster.node_ids() {
        cluster.wait_broker_state(n, "unfenced", Duration::from_secs(30))?;
    }
    let bootstrap = cluster.bootstrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    let rf = i32::try_from(nodes)?;
    let min_isr = if nodes >= 3 { "2" } else { "1" };
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|n| {
            NewTopic::new(n, 1, TopicReplication::Fixed(rf)).set("min.insync.replicas", min_isr)
        })
        .collect();
    for r in rt.block_on(admin.create_topics(&new, &AdminOptions::new()))? {
        r.map_err(|(n, e)| anyhow!("creating {n}: {e:?}"))?;
    }
    Ok(bootstrap)
}
