//! brook's Prometheus metrics end to end: after real librdkafka traffic every
//! metric in the registry (`brook_broker::metrics::METRICS`) is exported with its
//! declared type and labels and the per-topic counters match what was produced and
//! consumed; a real Prometheus server (Debian's `prometheus`) scrapes the admin
//! listener and its query API sees counters rise, request rates, latency quantiles
//! and group lag; and group lag agrees across the gauge, `/v1/groups/{id}` and
//! `brook group describe --json`.
//!
//! Prometheus runs as a child process with its config and TSDB in a temp dir and is
//! killed on drop. When the binary is missing the test is skipped, unless
//! `BROOK_REQUIRE_CLIENTS=1` (set by `scripts/test.sh`) makes that a failure.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use brook_broker::metrics::Kind;
use brook_tests::{
    brook_binary, http_get, http_request, metric_value, require_clients, wait_until, which, Broker,
    BrokerOptions,
};
use common::{consume_all, consumer, produce_all, producer, TestRecord};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

/// How long a scrape-visible condition may take to hold.
const WAIT: Duration = Duration::from_secs(30);
/// Value size of every produced record.
const VALUE_LEN: usize = 100;

fn start_broker(partitions: i32) -> Result<Broker> {
    Broker::start(
        BrokerOptions::default()
            .partitions(partitions)
            .config("group.initial.rebalance.delay.ms", "0")
            .config("offsets.topic.num.partitions", "1")
            .config("log.cleaner.backoff.ms", "100")
            .config("view.flush.interval.ms", "100"),
    )
}

/// A compacted topic with tiny segments, cleaned at least once, and a view over it,
/// caught up: so the cleaner's and the views' series exist.
fn compact_and_view(broker: &Broker) -> Result<()> {
    let topic = "metrics-compacted";
    let body = http_request(
        broker.admin_addr(),
        "PUT",
        "/v1/views/metrics-view",
        Some(&format!(r#"{{"topic":"{topic}"}}"#)),
    )?;
    ensure!(
        body.0 == 400,
        "a view of a missing topic must be refused: {body:?}"
    );
    common::create_topic(
        &broker.bootstrap(),
        topic,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1024"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )?;
    let (status, body) = http_request(
        broker.admin_addr(),
        "PUT",
        "/v1/views/metrics-view",
        Some(&format!(r#"{{"topic":"{topic}","key_format":"utf8"}}"#)),
    )?;
    ensure!(status == 201, "view not created: {status} {body}");
    let p = producer(&broker.bootstrap(), &[("batch.size", "200")])?;
    let n = 200;
    produce_all(&p, topic, n, |i| {
        (
            Some(0),
            TestRecord {
                key: Some(format!("k{}", i % 10).into_bytes()),
                value: Some(vec![b'c'; 50]),
                headers: Vec::new(),
            },
        )
    })?;
    wait_until("a clean of the compacted topic", WAIT, || {
        let body = http_get(broker.admin_addr(), "/metrics")?;
        Ok(metric_value(&body, "brook_cleaner_cleans_total").unwrap_or(0.0) >= 1.0)
    })?;
    wait_until("the view to catch up", WAIT, || {
        let (status, _) = http_request(
            broker.admin_addr(),
            "GET",
            &format!("/v1/views/metrics-view/keys/k9?min_offset=0:{}", n - 1),
            None,
        )?;
        Ok(status == 200)
    })?;
    // Flush and compaction series appear when the view flushes.
    let (status, body) = http_request(broker.admin_addr(), "GET", "/v1/views/metrics-view", None)?;
    ensure!(status == 200, "describe: {status} {body}");
    Ok(())
}

/// Produce `n` records of [`VALUE_LEN`] bytes to `partition` and wait for every ack.
fn produce(broker: &Broker, topic: &str, partition: i32, n: usize) -> Result<()> {
    let p = producer(&broker.bootstrap(), &[("compression.type", "none")])?;
    produce_all(&p, topic, n, |i| {
        let mut value = vec![b'v'; VALUE_LEN];
        value[..8].copy_from_slice(&(i as u64).to_be_bytes());
        (
            Some(partition),
            TestRecord {
                key: None,
                value: Some(value),
                headers: Vec::new(),
            },
        )
    })?;
    Ok(())
}

/// A `subscribe`-based group member that never commits on its own.
fn group_member(broker: &Broker, group: &str, topic: &str) -> Result<BaseConsumer> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("creating group consumer")?;
    c.subscribe(&[topic])?;
    Ok(c)
}

/// Poll `c` until it has delivered `want[p]` records of each partition `p`; returns
/// the next offset per partition. More than wanted from a partition is an error.
fn poll_counts(c: &BaseConsumer, want: &BTreeMap<i32, i64>) -> Result<BTreeMap<i32, i64>> {
    let mut next: BTreeMap<i32, i64> = want.keys().map(|&p| (p, 0)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while next != *want {
        ensure!(
            Instant::now() < deadline,
            "group member reached {next:?}, wanted {want:?}"
        );
        let Some(m) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.context("group member poll")?;
        let slot = next
            .get_mut(&m.partition())
            .ok_or_else(|| anyhow!("record from unexpected partition {}", m.partition()))?;
        ensure!(
            m.offset() == *slot,
            "partition {} delivered offset {} where {} was next",
            m.partition(),
            m.offset(),
            slot
        );
        *slot += 1;
        ensure!(
            *slot <= want[&m.partition()],
            "partition {} delivered more than the {} records produced",
            m.partition(),
            want[&m.partition()]
        );
    }
    Ok(next)
}

/// Commit exactly `offsets` (partition → next offset) of `topic`, synchronously.
fn commit(c: &BaseConsumer, topic: &str, offsets: &BTreeMap<i32, i64>) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
    }
    c.commit(&tpl, CommitMode::Sync).context("OffsetCommit")
}

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse every sample line of `body` (comments skipped). Strict: a line that does
/// not parse is an error, so malformed exposition fails the test.
fn samples(body: &str) -> Result<Vec<Sample>> {
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_sample(l).with_context(|| format!("malformed sample line {l:?}")))
        .collect()
}

fn parse_sample(line: &str) -> Result<Sample> {
    let end = line.find(['{', ' ']).ok_or_else(|| anyhow!("no value"))?;
    let name = line[..end].to_owned();
    let mut rest = &line[end..];
    let mut labels = BTreeMap::new();
    if let Some(mut s) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = s.strip_prefix('}') {
                s = after;
                break;
            }
            let (key, after) = s.split_once("=\"").ok_or_else(|| anyhow!("bad label"))?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let close = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => bail!("dangling escape"),
                    },
                    Some((_, c)) => value.push(c),
                    None => bail!("unterminated label value"),
                }
            };
            labels.insert(key.to_owned(), value);
            s = &after[close + 1..];
            s = s.strip_prefix(',').unwrap_or(s);
        }
        rest = s;
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| anyhow!("no value"))?
        .parse::<f64>()?;
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// Value of the one series of `name` whose labels include all of `labels`.
fn series(body: &str, name: &str, labels: &[(&str, &str)]) -> Result<Option<f64>> {
    let found: Vec<f64> = samples(body)?
        .into_iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    match found[..] {
        [] => Ok(None),
        [v] => Ok(Some(v)),
        _ => bail!("{} series of {name} match {labels:?}", found.len()),
    }
}

/// `# TYPE` of every metric family in `body`.
fn declared_types(body: &str) -> HashMap<&str, &str> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect()
}

/// Send a request with an API key no Kafka version defines; the broker counts it
/// in `brook_request_errors_total{api="unknown"}` and closes the connection.
fn send_unknown_api(addr: SocketAddr) -> Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut frame = Vec::new();
    frame.extend_from_slice(&10i32.to_be_bytes()); // size of what follows
    frame.extend_from_slice(&9999i16.to_be_bytes()); // api key
    frame.extend_from_slice(&0i16.to_be_bytes()); // api version
    frame.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    s.write_all(&frame)?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .context("waiting for the broker to close the connection")?;
    ensure!(
        rest.is_empty(),
        "broker answered an unknown API key with {rest:?}"
    );
    Ok(())
}

#[test]
fn every_registered_metric_is_exported_with_its_type_and_topic_counters_add_up() -> Result<()> {
    let broker = start_broker(1)?;
    let topic = "metrics-flow";
    let group = "metrics-flow-group";
    let n = 2_000usize;
    produce(&broker, topic, 0, n)?;

    let body = http_get(broker.admin_addr(), "/metrics")?;
    let t = [("topic", topic)];
    let records_in = series(&body, "brook_topic_records_in_total", &t)?;
    ensure!(
        records_in == Some(n as f64),
        "records in = {records_in:?}, produced {n}"
    );
    let bytes_in = series(&body, "brook_topic_bytes_in_total", &t)?
        .ok_or_else(|| anyhow!("brook_topic_bytes_in_total{{topic={topic}}} missing"))?;
    let payload = (n * VALUE_LEN) as f64;
    ensure!(
        bytes_in > payload,
        "bytes in = {bytes_in}, not above the {payload} payload bytes (batches have headers)"
    );

    // One full read with an assign-based consumer: whole batches, each exactly once.
    let c = consumer(&broker.bootstrap(), &[])?;
    let got: usize = consume_all(&c, topic, &[0])?.values().map(Vec::len).sum();
    ensure!(got == n, "assign consumer read {got} of {n}");
    drop(c);
    let body = http_get(broker.admin_addr(), "/metrics")?;
    let records_out = series(&body, "brook_topic_records_out_total", &t)?;
    let bytes_out = series(&body, "brook_topic_bytes_out_total", &t)?;
    ensure!(
        records_out == Some(n as f64) && bytes_out == Some(bytes_in),
        "after one full read: records out {records_out:?} (want {n}), bytes out {bytes_out:?} \
         (want the {bytes_in} bytes in)"
    );

    // A second full read by a subscribed group member that commits.
    let member = group_member(&broker, group, topic)?;
    let want = BTreeMap::from([(0, n as i64)]);
    let next = poll_counts(&member, &want)?;
    commit(&member, topic, &next)?;
    let body = http_get(broker.admin_addr(), "/metrics")?;
    let records_out = series(&body, "brook_topic_records_out_total", &t)?;
    let bytes_out = series(&body, "brook_topic_bytes_out_total", &t)?;
    ensure!(
        records_out == Some(2.0 * n as f64) && bytes_out == Some(2.0 * bytes_in),
        "after two full reads: records out {records_out:?} (want {}), bytes out {bytes_out:?} \
         (want {})",
        2 * n,
        2.0 * bytes_in
    );

    send_unknown_api(broker.kafka_addr())?;

    let lag = [("group", group), ("topic", topic), ("partition", "0")];
    wait_until("the group's lag series", WAIT, || {
        let body = http_get(broker.admin_addr(), "/metrics")?;
        Ok(series(&body, "brook_group_lag_records", &lag)? == Some(0.0))
    })?;

    compact_and_view(&broker)?;

    let body = http_get(broker.admin_addr(), "/metrics")?;
    let errors = series(
        &body,
        "brook_request_errors_total",
        &[("api", "unknown"), ("error", "INVALID_REQUEST")],
    )?;
    ensure!(
        errors == Some(1.0),
        "one unknown-API request counted as {errors:?}"
    );
    let types = declared_types(&body);
    let all = samples(&body)?;
    let mut problems = Vec::new();
    for def in brook_broker::metrics::all() {
        let kind = def.kind.name();
        if types.get(def.name) != Some(&kind) {
            problems.push(format!(
                "{}: # TYPE is {:?}, registry says {kind}",
                def.name,
                types.get(def.name)
            ));
        }
        let want: BTreeSet<&str> = def.labels.iter().copied().collect();
        let parts: &[(&str, bool)] = match def.kind {
            Kind::Histogram => &[("_bucket", true), ("_sum", false), ("_count", false)],
            Kind::Counter | Kind::Gauge => &[("", false)],
        };
        for &(suffix, has_le) in parts {
            let name = format!("{}{suffix}", def.name);
            let of_name: Vec<&Sample> = all.iter().filter(|s| s.name == name).collect();
            if of_name.is_empty() {
                problems.push(format!("{name}: no samples"));
            }
            for s in of_name {
                let mut got: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
                if has_le && !got.remove("le") {
                    problems.push(format!("{name}: a bucket without le: {:?}", s.labels));
                }
                if got != want {
                    problems.push(format!("{name}: labels {got:?}, registry says {want:?}"));
                }
            }
        }
    }
    ensure!(
        problems.is_empty(),
        "/metrics disagrees with the registry:\n{}\n--- /metrics ---\n{body}",
        problems.join("\n")
    );
    Ok(())
}

/// (lag, committed offset) of `topic`/`partition` in a JSON array of lag rows.
fn lag_row(rows: &Value, topic: &str, partition: i32, committed: &str) -> Option<LagRow> {
    rows.as_array()?
        .iter()
        .find(|x| x["topic"] == topic && x["partition"] == partition)
        .map(|x| (x["lag"].as_i64(), x[committed].as_i64()))
}

type LagRow = (Option<i64>, Option<i64>);

const LAG: &str = "brook_group_lag_records";

/// Regression (issue 13 review): request latency stopped at dispatch, so a
/// long-polling Fetch counted as instant. A Fetch that waits `fetch.wait.max.ms`
/// on an empty partition must be recorded with that wait.
#[test]
fn request_latency_includes_the_long_poll_wait() -> Result<()> {
    let broker = start_broker(1)?;
    let topic = "idle-topic";
    produce(&broker, topic, 0, 1)?;
    let c = consumer(&broker.bootstrap(), &[("fetch.wait.max.ms", "400")])?;
    // Read the one record, then keep polling an empty partition: every further
    // Fetch waits the full 400 ms.
    consume_all(&c, topic, &[0])?;
    let fetches = |body: &str| -> Result<(f64, f64)> {
        let fast = series(
            body,
            "brook_request_latency_seconds_bucket",
            &[("api", "Fetch"), ("le", "0.25")],
        )?
        .unwrap_or(0.0);
        let all = series(
            body,
            "brook_request_latency_seconds_count",
            &[("api", "Fetch")],
        )?
        .unwrap_or(0.0);
        Ok((fast, all))
    };
    let (fast0, all0) = fetches(&http_get(broker.admin_addr(), "/metrics")?)?;
    wait_until("three long-polled fetches", WAIT, || {
        let _ = c.poll(std::time::Duration::from_millis(100));
        let (_, all) = fetches(&http_get(broker.admin_addr(), "/metrics")?)?;
        Ok(all >= all0 + 3.0)
    })?;
    let (fast1, all1) = fetches(&http_get(broker.admin_addr(), "/metrics")?)?;
    ensure!(
        all1 - all0 > fast1 - fast0,
        "every new Fetch was recorded under 250 ms although each long-polled 400 ms \
         (fast {fast0} → {fast1}, all {all0} → {all1})"
    );
    Ok(())
}

#[test]
fn group_lag_agrees_across_gauge_admin_api_and_cli() -> Result<()> {
    let broker = start_broker(2)?;
    let topic = "lagging";
    let group = "lagging-group";
    // Different counts per partition so a label mix-up cannot pass.
    let consumed = BTreeMap::from([(0, 120i64), (1, 45i64)]);
    let later = BTreeMap::from([(0, 30i64), (1, 77i64)]);
    for (&p, &k) in &consumed {
        produce(&broker, topic, p, usize::try_from(k)?)?;
    }
    let member = group_member(&broker, group, topic)?;
    let next = poll_counts(&member, &consumed)?;
    commit(&member, topic, &next)?;
    // The member now stops polling but stays in the group (librdkafka heartbeats
    // from its own thread) while more records arrive.
    for (&p, &k) in &later {
        produce(&broker, topic, p, usize::try_from(k)?)?;
    }

    let bin = brook_binary()?;
    let bootstrap = broker.bootstrap();
    let mut last = String::new();
    let agreed = wait_until("lag to agree everywhere", WAIT, || {
        let body = http_get(broker.admin_addr(), "/metrics")?;
        let admin: Value = serde_json::from_str(&http_get(
            broker.admin_addr(),
            &format!("/v1/groups/{group}"),
        )?)?;
        let out = Command::new(&bin)
            .args(["group", "--bootstrap", &bootstrap, "--json"])
            .args(["describe", group])
            .output()
            .context("running brook group describe")?;
        ensure!(
            out.status.success(),
            "brook group describe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cli: Value = serde_json::from_slice(&out.stdout)?;
        let mut ok = admin["members"].as_array().map(Vec::len) == Some(1);
        let mut seen = Vec::new();
        for (&p, &want) in &later {
            let part = p.to_string();
            let labels = [("group", group), ("topic", topic), ("partition", &*part)];
            let g = series(&body, LAG, &labels)?;
            let a = lag_row(&admin["partitions"], topic, p, "committed_offset");
            let c = lag_row(&cli["offsets"], topic, p, "committed");
            let committed = Some(consumed[&p]);
            ok &= g == Some(want as f64)
                && a == Some((Some(want), committed))
                && c == Some((Some(want), committed));
            seen.push(format!(
                "p{p}: gauge {g:?}, /v1/groups (lag, committed) {a:?}, cli {c:?}; want lag {want}"
            ));
        }
        last = format!("{}\nmembers: {}", seen.join("\n"), admin["members"]);
        Ok(ok)
    });
    agreed.with_context(|| format!("last seen:\n{last}"))?;
    drop(member);
    Ok(())
}

/// A Prometheus server child process scraping one target every second.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Locate the binary: `None` means skip (printed), an error means required but missing.
    fn binary() -> Result<Option<PathBuf>> {
        match which("prometheus") {
            Some(p) => Ok(Some(p)),
            None if require_clients() => bail!(
                "prometheus is not installed (BROOK_REQUIRE_CLIENTS=1); \
                 run scripts/install-test-deps.sh"
            ),
            None => {
                eprintln!(
                    "SKIPPED: prometheus is not installed; scripts/install-test-deps.sh installs it"
                );
                Ok(None)
            }
        }
    }

    fn start(bin: &Path, target: SocketAddr) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("brook-prom-").tempdir()?;
        let config = dir.path().join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: brook\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )?;
        // The port is free now; another process could take it before Prometheus
        // binds, which shows up below as an early exit with the reason in the log.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let mut prom = Self { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(prom.addr, "/-/ready").is_err() {
            if let Some(status) = prom.child.try_wait()? {
                bail!("prometheus exited with {status}\n{}", prom.log());
            }
            ensure!(
                Instant::now() < deadline,
                "prometheus not ready within 60s\n{}",
                prom.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(prom)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Instant query; the value of each series of the result vector (may be NaN).
    fn query(&self, q: &str) -> Result<Vec<f64>> {
        let body = http_get(self.addr, &format!("/api/v1/query?query={}", url_encode(q)))?;
        let v: Value = serde_json::from_str(&body)?;
        ensure!(v["status"] == "success", "query {q:?} answered {body}");
        let result = v["data"]["result"]
            .as_array()
            .ok_or_else(|| anyhow!("query {q:?}: no result vector in {body}"))?;
        result
            .iter()
            .map(|r| {
                r["value"][1]
                    .as_str()
                    .ok_or_else(|| anyhow!("query {q:?}: sample without value in {body}"))?
                    .parse::<f64>()
                    .with_context(|| format!("query {q:?}: {body}"))
            })
            .collect()
    }

    /// Poll `q` until `ok` holds for its result; the error names the last result.
    fn wait_for(&self, what: &str, q: &str, ok: impl Fn(&[f64]) -> bool) -> Result<()> {
        let mut last = Vec::new();
        let res = wait_until(what, WAIT, || {
            last = self.query(q)?;
            Ok(ok(&last))
        });
        res.with_context(|| format!("{q} last returned {last:?}\n{}", self.log()))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encode everything but unreserved characters (RFC 3986).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_brook() -> Result<()> {
    let Some(bin) = Prometheus::binary()? else {
        return Ok(());
    };
    let broker = start_broker(1)?;
    let prom = Prometheus::start(&bin, broker.admin_addr())?;
    prom.wait_for("the brook target to be up", "up{job=\"brook\"}", |v| {
        v == [1.0]
    })?;

    let topic = "scraped";
    let group = "scraped-group";
    let (first, second) = (300usize, 200usize);
    produce(&broker, topic, 0, first)?;
    let member = group_member(&broker, group, topic)?;
    let next = poll_counts(&member, &BTreeMap::from([(0, first as i64)]))?;
    commit(&member, topic, &next)?;

    let records_in = format!("brook_topic_records_in_total{{topic=\"{topic}\"}}");
    prom.wait_for("the first burst's count", &records_in, |v| {
        v == [first as f64]
    })?;
    produce(&broker, topic, 0, second)?;
    let total = (first + second) as f64;
    prom.wait_for("the count to rise by the second burst", &records_in, |v| {
        v == [total]
    })?;
    prom.wait_for(
        "a positive produce request rate",
        "rate(brook_requests_total{api=\"Produce\"}[10s])",
        |v| v.len() == 1 && v[0] > 0.0,
    )?;
    prom.wait_for(
        "a p99 produce latency",
        "histogram_quantile(0.99, sum by (le) \
         (rate(brook_request_latency_seconds_bucket{api=\"Produce\"}[30s])))",
        |v| v.len() == 1 && v[0].is_finite() && v[0] > 0.0,
    )?;
    prom.wait_for(
        "the group's lag to show the second burst",
        &format!("brook_group_lag_records{{group=\"{group}\",topic=\"{topic}\",partition=\"0\"}}"),
        |v| v == [second as f64],
    )?;
    drop(member);
    Ok(())
}

#[test]
fn sample_lines_parse_with_escaped_labels() -> Result<()> {
    let s = parse_sample(r#"m_bucket{a="x\"y",le="+Inf"} 3 1700000000"#)?;
    assert_eq!(s.name, "m_bucket");
    assert_eq!(s.labels["a"], "x\"y");
    assert_eq!(s.labels["le"], "+Inf");
    assert_eq!(s.value, 3.0);
    let s = parse_sample("plain 1.5e3")?;
    assert!(s.labels.is_empty() && s.value == 1500.0);
    assert!(parse_sample("broken{a=\"x} 1").is_err());
    assert_eq!(
        url_encode("a{b=\"c\"} [1s]"),
        "a%7Bb%3D%22c%22%7D%20%5B1s%5D"
    );
    Ok(())
}
