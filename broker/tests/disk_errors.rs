//! Disk errors with several log directories: an fsync that fails with EIO
//! (injected through the broker's `Syncer` seam for one directory only)
//! takes that directory offline. Its partitions refuse produce and fetch
//! with KAFKA_STORAGE_ERROR and acknowledge nothing they could not make
//! durable; partitions in the other directory keep serving. Driven over the
//! Kafka protocol against an in-process broker.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use brook_broker::broker::Broker;
use brook_broker::kafka_client::Client;
use brook_broker::log::Syncer;
use brook_config::BrokerConfig;
use brook_protocol::codec::Records;
use brook_protocol::error::ErrorCode;
use brook_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use brook_protocol::messages::{FetchRequest, ProduceRequest};
use brook_protocol::records::{BatchBuilder, Compression};

/// fsync that fails with EIO for files under `bad` once `armed`, as a
/// failing disk would; everything else is a real fdatasync.
#[derive(Debug)]
struct FailingDir {
    bad: PathBuf,
    armed: AtomicBool,
}

impl Syncer for FailingDir {
    fn sync_data(&self, file: &File) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        if self.armed.load(Ordering::Acquire) && path.starts_with(&self.bad) {
            return Err(io::Error::from_raw_os_error(nix::libc::EIO));
        }
        file.sync_data()
    }
}

fn batch(tag: &str) -> Result<bytes::Bytes> {
    let mut b = BatchBuilder::new();
    b.append(0, Some(tag.as_bytes()), Some(tag.as_bytes()), &[])?;
    Ok(b.build(Compression::None)?)
}

/// Produce one record to each of `partitions` of `t` with acks=all; the
/// error code per partition.
async fn produce(c: &mut Client, partitions: &[i32], tag: &str) -> Result<Vec<(i32, i16)>> {
    let req = ProduceRequest {
        acks: -1,
        timeout_ms: 5_000,
        topic_data: vec![TopicProduceData {
            name: "t".into(),
            partition_data: partitions
                .iter()
                .map(|p| {
                    Ok(PartitionProduceData {
                        index: *p,
                        records: Some(Records::Bytes(batch(&format!("{tag}-{p}"))?)),
                        ..Default::default()
                    })
                })
                .collect::<Result<_>>()?,
            ..Default::default()
        }],
        ..Default::default()
    };
    let resp = c.send(&req, 9).await?;
    Ok(resp.responses[0]
        .partition_responses
        .iter()
        .map(|r| (r.index, r.error_code))
        .collect())
}

async fn fetch_code(c: &mut Client, id: brook_protocol::codec::Uuid, p: i32) -> Result<i16> {
    let req = FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 1 << 20,
        topics: vec![FetchTopic {
            topic: "t".into(),
            topic_id: id,
            partitions: vec![FetchPartition {
                partition: p,
                fetch_offset: 0,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let resp = c.send(&req, 12).await?;
    Ok(resp.responses[0].partitions[0].error_code)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_fsync_eio_takes_only_its_log_directory_offline() -> Result<()> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let mut config = BrokerConfig::default();
    config.set(
        "log.dirs",
        &format!("{},{}", a.path().display(), b.path().display()),
    )?;
    config.set("listeners", "127.0.0.1:0")?;
    let syncer = Arc::new(FailingDir {
        bad: b.path().to_path_buf(),
        armed: AtomicBool::new(false),
    });
    let listener = brook_broker::server::bind("127.0.0.1:0".parse()?).await?;
    let addr = listener.local_addr()?;
    let broker = Arc::new(Broker::open_with(config, syncer.clone(), Some(addr)).await?);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(brook_broker::server::serve(listener, broker.clone(), stop));

    // Four partitions over two directories: two each.
    let topic = broker
        .create_topic("t", 4, 1, Default::default(), false)
        .await?;
    let dir_of = |p: i32| -> Result<PathBuf> {
        let part = broker.partition("t", p).context("partition")?;
        Ok(part.log().dir().parent().context("parent")?.to_path_buf())
    };
    let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
    for p in 0..4 {
        if dir_of(p)? == a.path() {
            on_a.push(p);
        } else {
            on_b.push(p);
        }
    }
    ensure!(
        on_a.len() == 2 && on_b.len() == 2,
        "spread {on_a:?} / {on_b:?}"
    );

    let mut c = Client::connect(&addr.to_string()).await?;
    for (p, code) in produce(&mut c, &[0, 1, 2, 3], "before").await? {
        ensure!(code == 0, "partition {p}: {code} before the fault");
    }
    syncer.armed.store(true, Ordering::Release);
    // The failing directory's first partition: not acknowledged.
    let got = produce(&mut c, &[on_b[0]], "during").await?;
    ensure!(
        got == vec![(on_b[0], ErrorCode::KAFKA_STORAGE_ERROR.code())],
        "a failed fsync was answered {got:?}"
    );
    ensure!(
        broker.log_dirs().offline() == vec![b.path()],
        "offline: {:?}",
        broker.log_dirs().offline()
    );
    // Its other partition is refused before anything is appended; the
    // other directory's partitions are acknowledged as before.
    let sibling = on_b[1];
    let end_before = broker
        .partition("t", sibling)
        .context("p")?
        .log_end_offset();
    for (p, code) in produce(&mut c, &[0, 1, 2, 3], "after").await? {
        if on_b.contains(&p) {
            ensure!(
                code == ErrorCode::KAFKA_STORAGE_ERROR.code(),
                "partition {p}: {code}"
            );
        } else {
            ensure!(code == 0, "partition {p} in the healthy directory: {code}");
        }
    }
    ensure!(
        broker
            .partition("t", sibling)
            .context("p")?
            .log_end_offset()
            == end_before,
        "a partition of the offline directory appended"
    );
    for p in 0..4 {
        let code = fetch_code(&mut c, topic.id, p).await?;
        let want = if on_b.contains(&p) {
            ErrorCode::KAFKA_STORAGE_ERROR.code()
        } else {
            0
        };
        ensure!(code == want, "fetch of partition {p}: {code}, want {want}");
    }
    ensure!(
        broker.is_offline(),
        "the broker reports no offline directory"
    );
    Ok(())
}

/// Where the directories' `meta.properties` went: every log directory has
/// its own copy, naming the node and cluster.
#[tokio::test(flavor = "multi_thread")]
async fn every_log_directory_gets_meta_properties() -> Result<()> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let mut config = BrokerConfig::default();
    config.set(
        "log.dirs",
        &format!("{},{}", a.path().display(), b.path().display()),
    )?;
    let broker = Broker::open(config).await?;
    drop(broker);
    for d in [a.path(), b.path()] {
        let text = std::fs::read_to_string(Path::new(d).join("meta.properties"))?;
        ensure!(
            text.contains("node.id=") && text.contains("cluster.id="),
            "{text}"
        );
    }
    Ok(())
}
