//! [`Cluster`]: N `brook serve` processes that form one controller quorum, every
//! node a combined broker + controller voter.
//!
//! Unlike [`crate::Broker`], listeners use fixed ports: the voters string in
//! every node's config must name the others' controller listeners before any of
//! them runs. Node `i` (1-based) of a cluster with base port `B` listens on
//! `B + 10*i` (Kafka), `B + 10*i + 1` (controller) and `B + 10*i + 2` (admin
//! HTTP), so each test takes its own base port (ports below the kernel's
//! ephemeral range, 32768+) and nextest can run them in parallel.
//!
//! A node only writes its ready file once a controller is elected and it is
//! registered and unfenced, which needs a majority of voters up: the nodes are
//! spawned together and then waited for together.
//!
//! Crash behaviour: one [`tempfile::TempDir`] holds every node's data dir,
//! config and `brook.log`; the children are SIGKILLed on drop (a SIGSTOPped one
//! too). Set `BROOK_TEST_KEEP=1` to keep the directory for post-mortems.

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::broker::{
    log_tail, parse_ready, remove_ready_file, spawn_brook_in, toml_string, READY_TIMEOUT,
    SHUTDOWN_TIMEOUT,
};
use crate::{http_get, wait_until, POLL_INTERVAL};

mod netns;
mod observe;

use netns::Netns;

/// Lines of each node's log quoted in a failure.
const LOG_TAIL_LINES: usize = 60;

/// Options for [`Cluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// How many of them (the last ones) are brokers only: not controller
    /// voters, they follow the metadata log as learners.
    pub broker_only: usize,
    /// How many of them (the first ones) are controllers only: voters that
    /// serve no Kafka clients and host no partitions.
    pub controller_only: usize,
    /// First port of this cluster's range (see the module doc).
    pub base_port: u16,
    /// `broker.session.timeout.ms`.
    pub session_timeout_ms: u32,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u32,
    /// `num.partitions` (partitions of auto-created topics).
    pub num_partitions: i32,
    /// Extra config lines for every node, `(key, TOML value literal)`.
    pub extra: Vec<(String, String)>,
    /// Run each node in its own network namespace (needs root and `ip`),
    /// joined by a bridge that the test process reaches too, so that
    /// [`Cluster::isolate`] can cut a node off from the other nodes while
    /// clients still reach it. Node `i` gets 10.200.`k`.`i`, where `k`
    /// derives from the base port; the test side of the bridge is .254.
    pub netns: bool,
    /// Give node `i` `broker.rack = "rack-<i>"`.
    pub racks: bool,
    /// The nodes' log filter (`BROOK_LOG`); `None`: the test process's
    /// `BROOK_LOG`, else info without openraft's chatter.
    pub log_filter: Option<String>,
    /// A second log directory for one node: `(node id, directory)`.
    pub extra_log_dir: Option<(i32, PathBuf)>,
}

impl ClusterOptions {
    /// Three nodes on `base_port`, 3 s broker sessions with 500 ms heartbeats
    /// (which also caps the controller election timeout at 1 s).
    pub fn three(base_port: u16) -> Self {
        Self {
            nodes: 3,
            broker_only: 0,
            controller_only: 0,
            base_port,
            session_timeout_ms: 3000,
            heartbeat_interval_ms: 500,
            num_partitions: 1,
            extra: Vec::new(),
            netns: false,
            racks: false,
            log_filter: None,
            extra_log_dir: None,
        }
    }

    /// The configured broker session timeout.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.session_timeout_ms))
    }
}

/// A node's process state as the harness left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running and not stopped.
    Running,
    /// SIGSTOPped: alive but answering nothing.
    Paused,
    /// Killed or exited.
    Down,
}

#[derive(Debug)]
struct Node {
    id: i32,
    root: PathBuf,
    kafka: SocketAddr,
    controller: SocketAddr,
    admin: SocketAddr,
    child: Option<Child>,
    paused: bool,
    starts: u32,
}

impl Node {
    fn state(&self) -> NodeState {
        match (&self.child, self.paused) {
            (None, _) => NodeState::Down,
            (Some(_), true) => NodeState::Paused,
            (Some(_), false) => NodeState::Running,
        }
    }

    fn ready_file(&self) -> PathBuf {
        self.root.join("ready.json")
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("brook.log")
    }

    fn pid(&self) -> Result<Pid> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("node {} is not running", self.id))?;
        Ok(Pid::from_raw(i32::try_from(child.id())?))
    }
}

/// N brook nodes forming one quorum; see the module doc.
pub struct Cluster {
    opts: ClusterOptions,
    dir: Option<tempfile::TempDir>,
    nodes: Vec<Node>,
    net: Option<Netns>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Cluster {
    /// Write every node's config, spawn all nodes at once and wait until each
    /// has written its ready file.
    ///
    /// # Errors
    /// A port of the range is taken, the binary is missing, a node exits early
    /// or is not ready within [`READY_TIMEOUT`]; the error carries every log.
    pub fn start(opts: ClusterOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("brook-cluster-")
            .tempdir()
            .context("creating cluster temp dir")?;
        let net = if opts.netns {
            Some(Netns::create(opts.base_port, opts.nodes)?)
        } else {
            None
        };
        let mut nodes = Vec::new();
        for i in 1..=opts.nodes {
            let id = i32::try_from(i)?;
            let port = |k: u16| -> Result<u16> {
                let off = u16::try_from(10 * i)? + k;
                opts.base_port
                    .checked_add(off)
                    .ok_or_else(|| anyhow!("base port {} too high", opts.base_port))
            };
            let root = dir.path().join(format!("node-{id}"));
            fs::create_dir_all(root.join("data"))?;
            let addr = |port: u16| match &net {
                Some(net) => SocketAddr::from((net.node_ip(id), port)),
                None => loopback(port),
            };
            nodes.push(Node {
                id,
                root,
                kafka: addr(port(0)?),
                controller: addr(port(1)?),
                admin: addr(port(2)?),
                child: None,
                paused: false,
                starts: 0,
            });
        }
        // A taken port would otherwise show up as a confusing startup failure
        // (inside namespaces every port is free).
        for n in nodes.iter().filter(|_| net.is_none()) {
            for addr in [n.kafka, n.controller, n.admin] {
                TcpListener::bind(addr)
                    .with_context(|| format!("port {addr} (node {}) is already in use", n.id))?;
            }
        }
        let mut cluster = Self {
            opts,
            dir: Some(dir),
            nodes,
            net,
        };
        for i in 0..cluster.nodes.len() {
            cluster.write_config(i)?;
        }
        let ids = cluster.node_ids();
        for &id in &ids {
            cluster.spawn(id)?;
        }
        let r = cluster.wait_ready(&ids);
        cluster.with_logs(r)?;
        Ok(cluster)
    }

    fn is_voter(&self, index: usize) -> bool {
        index < self.opts.nodes - self.opts.broker_only
    }

    fn voters(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.is_voter(*i))
            .map(|(_, n)| format!("{}@{}", n.id, n.controller))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn write_config(&self, index: usize) -> Result<()> {
        let n = &self.nodes[index];
        let mut data = toml_string(&n.root.join("data").to_string_lossy());
        if let Some((_, extra)) = self
            .opts
            .extra_log_dir
            .as_ref()
            .filter(|(id, _)| *id == n.id)
        {
            data = format!("{data}, {}", toml_string(&extra.to_string_lossy()));
        }
        let (roles, listeners) = if index < self.opts.controller_only {
            ("controller", format!("CONTROLLER://{}", n.controller))
        } else if self.is_voter(index) {
            (
                "broker,controller",
                format!("PLAINTEXT://{},CONTROLLER://{}", n.kafka, n.controller),
            )
        } else {
            ("broker", format!("PLAINTEXT://{}", n.kafka))
        };
        let mut text = format!(
            "node.id = {}\nprocess.roles = \"{roles}\"\n\
             listeners = \"{listeners}\"\n\
             controller.quorum.voters = \"{}\"\nlog.dirs = [{data}]\n\
             admin.listener = \"{}\"\nnum.partitions = {}\n\
             broker.session.timeout.ms = {}\nbroker.heartbeat.interval.ms = {}\n",
            n.id,
            self.voters(),
            n.admin,
            self.opts.num_partitions,
            self.opts.session_timeout_ms,
            self.opts.heartbeat_interval_ms,
        );
        if self.opts.racks {
            text.push_str(&format!("broker.rack = \"rack-{}\"\n", n.id));
        }
        for (k, v) in &self.opts.extra {
            text.push_str(&format!("{k} = {v}\n"));
        }
        fs::write(n.root.join("brook.toml"), text).context("writing node config")
    }

    fn node(&self, id: i32) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| anyhow!("no node {id} in this cluster"))
    }

    fn node_mut(&mut self, id: i32) -> Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| anyhow!("no node {id} in this cluster"))
    }

    fn spawn(&mut self, id: i32) -> Result<()> {
        let n = self.node_mut(id)?;
        if n.child.is_some() {
            bail!("node {id} is already running");
        }
        remove_ready_file(&n.ready_file())?;
        n.starts += 1;
        // openraft logs every vote at info; keep the tails quoted in failures
        // about brook. An explicit BROOK_LOG (brook's log filter) wins.
        let filter = self.opts.log_filter.clone().unwrap_or_else(|| {
            std::env::var("BROOK_LOG").unwrap_or_else(|_| "info,openraft=warn".to_owned())
        });
        let env = [
            ("NO_COLOR".to_owned(), "1".to_owned()),
            ("BROOK_LOG".to_owned(), filter),
        ];
        let ns = self.net.as_ref().map(|net| net.ns_name(id));
        let n = self.node_mut(id)?;
        let child = spawn_brook_in(
            ns.as_deref(),
            &n.root.join("brook.toml"),
            &n.ready_file(),
            &n.log_path(),
            n.starts,
            &env,
        )?;
        n.child = Some(child);
        n.paused = false;
        Ok(())
    }

    /// Wait until every node of `ids` has written its ready file naming its
    /// own pid and fixed addresses.
    fn wait_ready(&mut self, ids: &[i32]) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pending: Vec<i32> = ids.to_vec();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for &id in &pending {
                let n = self.node_mut(id)?;
                let ready = n.ready_file();
                if ready.exists() {
                    let text = fs::read_to_string(&ready).context("reading ready file")?;
                    let info = parse_ready(&text)
                        .with_context(|| format!("parsing ready file {text:?}"))?;
                    let pid = n.pid()?.as_raw();
                    // A controller-only node reports no Kafka listener.
                    let kafka_ok = info.kafka == n.kafka || info.kafka.port() == 0;
                    if i64::from(info.pid) != i64::from(pid) || !kafka_ok || info.admin != n.admin {
                        bail!(
                            "node {id}: ready file {text:?} does not match pid {pid}, {} and {}",
                            n.kafka,
                            n.admin
                        );
                    }
                    continue;
                }
                if let Some(child) = n.child.as_mut() {
                    if let Some(status) = child.try_wait()? {
                        n.child = None;
                        bail!("node {id} exited with {status} before becoming ready");
                    }
                } else {
                    bail!("node {id} is not running");
                }
                still.push(id);
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!("nodes {pending:?} did not write their ready file within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// The cluster's options.
    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// Every node id, ascending.
    pub fn node_ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Nodes that are running and not paused.
    pub fn live(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.state() == NodeState::Running)
            .map(|n| n.id)
            .collect()
    }

    /// What the harness did to node `id` last.
    ///
    /// # Errors
    /// No such node.
    pub fn state(&self, id: i32) -> Result<NodeState> {
        Ok(self.node(id)?.state())
    }

    /// Node `id`'s Kafka listener.
    ///
    /// # Errors
    /// No such node.
    pub fn kafka_addr(&self, id: i32) -> Result<SocketAddr> {
        Ok(self.node(id)?.kafka)
    }

    /// Node `id`'s admin listener.
    ///
    /// # Errors
    /// No such node.
    pub fn admin_addr(&self, id: i32) -> Result<SocketAddr> {
        Ok(self.node(id)?.admin)
    }

    /// `bootstrap.servers` naming node `id` only.
    ///
    /// # Errors
    /// No such node.
    pub fn bootstrap_of(&self, id: i32) -> Result<String> {
        Ok(self.kafka_addr(id)?.to_string())
    }

    /// `bootstrap.servers` naming every live node.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| *i >= self.opts.controller_only && n.state() == NodeState::Running)
            .map(|(_, n)| n.kafka.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `id`'s data dir (`log.dirs`).
    ///
    /// # Errors
    /// No such node.
    pub fn data_dir(&self, id: i32) -> Result<PathBuf> {
        Ok(self.node(id)?.root.join("data"))
    }

    /// `kill -9` node `id` and reap it (works on a paused node too).
    ///
    /// # Errors
    /// The node was not running.
    pub fn kill9(&mut self, id: i32) -> Result<()> {
        let n = self.node_mut(id)?;
        let mut child = n
            .child
            .take()
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        n.paused = false;
        child.kill().context("SIGKILL")?;
        child.wait().context("reaping killed node")?;
        Ok(())
    }

    /// SIGTERM node `id` and wait (bounded) for a clean exit.
    ///
    /// # Errors
    /// The node was not running, did not exit within [`SHUTDOWN_TIMEOUT`] (it is
    /// then killed) or exited with a failure status.
    pub fn stop(&mut self, id: i32) -> Result<()> {
        let n = self.node_mut(id)?;
        let pid = n.pid()?;
        if n.paused {
            bail!("node {id} is paused; SIGCONT it before stopping it");
        }
        kill(pid, Signal::SIGTERM).context("SIGTERM")?;
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        let mut child = n
            .child
            .take()
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("node {id} exited with {status} after SIGTERM");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {id} did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGSTOP node `id`: it keeps its sockets but answers nothing.
    ///
    /// # Errors
    /// The node was not running or already paused.
    pub fn sigstop(&mut self, id: i32) -> Result<()> {
        let n = self.node_mut(id)?;
        if n.paused {
            bail!("node {id} is already paused");
        }
        kill(n.pid()?, Signal::SIGSTOP).context("SIGSTOP")?;
        n.paused = true;
        Ok(())
    }

    /// SIGCONT a node paused with [`Cluster::sigstop`].
    ///
    /// # Errors
    /// The node was not paused.
    pub fn sigcont(&mut self, id: i32) -> Result<()> {
        let n = self.node_mut(id)?;
        if !n.paused {
            bail!("node {id} is not paused");
        }
        kill(n.pid()?, Signal::SIGCONT).context("SIGCONT")?;
        n.paused = false;
        Ok(())
    }

    /// Start node `id` again on its data dir and ports and wait until it is
    /// ready (registered and unfenced). A running node is stopped with
    /// SIGTERM first.
    ///
    /// # Errors
    /// As [`Cluster::start`] for one node.
    pub fn restart(&mut self, id: i32) -> Result<()> {
        if self.node(id)?.child.is_some() {
            self.stop(id)?;
        }
        self.spawn(id)?;
        self.wait_ready(&[id])
    }

    /// Cut node `id` off from every other node (both ways) while the test
    /// process still reaches it ([`ClusterOptions::netns`] clusters only).
    ///
    /// # Errors
    /// Not a netns cluster, or `ip` failed.
    pub fn isolate(&mut self, id: i32) -> Result<()> {
        self.set_isolated(id, true)
    }

    /// Undo [`Cluster::isolate`].
    ///
    /// # Errors
    /// As [`Cluster::isolate`].
    pub fn heal(&mut self, id: i32) -> Result<()> {
        self.set_isolated(id, false)
    }

    fn set_isolated(&mut self, id: i32, cut: bool) -> Result<()> {
        let net = self
            .net
            .as_ref()
            .ok_or_else(|| anyhow!("isolating a node needs ClusterOptions::netns"))?;
        for other in self.nodes.iter().map(|n| n.id).filter(|o| *o != id) {
            net.route(id, other, cut)?;
        }
        Ok(())
    }

    /// Start several stopped nodes at once and wait until all are ready
    /// (after a whole-cluster crash no single node can become ready alone:
    /// the controller quorum needs a majority).
    ///
    /// # Errors
    /// A node is still running, or as [`Cluster::start`].
    pub fn start_nodes(&mut self, ids: &[i32]) -> Result<()> {
        for id in ids {
            if self.node(*id)?.child.is_some() {
                bail!("node {id} is still running");
            }
            self.spawn(*id)?;
        }
        self.wait_ready(ids)
    }

    /// The tail of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "=== node {} ({:?}) ===\n{}",
                    n.id,
                    n.state(),
                    log_tail(&n.log_path(), LOG_TAIL_LINES)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Attach every node's log tail to an error.
    ///
    /// # Errors
    /// `r`'s error, with the logs as context.
    pub fn with_logs<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| e.context(format!("cluster logs:\n{}", self.logs())))
    }

    /// Lines of node `id`'s log (all runs) containing `needle`.
    ///
    /// # Errors
    /// No such node.
    pub fn log_lines(&self, id: i32, needle: &str) -> Result<Vec<String>> {
        let text = fs::read_to_string(self.node(id)?.log_path()).unwrap_or_default();
        Ok(text
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect())
    }

    /// Where the cluster's files live.
    pub fn root(&self) -> Option<&Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }
}

/// The state a `/v1/cluster` answer gives broker `broker`.
pub fn broker_state_in(status: &Value, broker: i32) -> Option<String> {
    status["brokers"]
        .as_array()?
        .iter()
        .find(|b| b["node_id"].as_i64() == Some(i64::from(broker)))
        .and_then(|b| b["state"].as_str())
        .map(str::to_owned)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // After the children: a namespace goes when its last process does.
        self.net.take();
        if std::env::var_os("BROOK_TEST_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("BROOK_TEST_KEEP: cluster files kept in {}", kept.display());
            }
        }
    }
}
