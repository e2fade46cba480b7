//! [`Broker`]: one `brook serve` child process with its own temporary data dir.
//!
//! The config is written as TOML with Kafka key names; listeners use port 0 and the
//! real addresses come from the ready file brook writes (tmp + rename) once serving,
//! so ports change on every (re)start. stdout/stderr of every run are appended to
//! `brook.log` in the temp dir and quoted in startup/shutdown errors.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{brook_binary, http_get, metric_value, POLL_INTERVAL};

/// How long a broker may take from spawn to writing its ready file.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for [`Broker::start`].
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// `node.id`.
    pub node_id: i32,
    /// `num.partitions` (partitions of auto-created topics).
    pub num_partitions: i32,
    /// Extra config lines, `(key, TOML value literal)`, e.g. `("segment.bytes", "1048576")`.
    pub extra: Vec<(String, String)>,
    /// Extra environment variables for the broker process (e.g. `BROOK_LOG_DIRS`, `RUST_LOG`).
    pub env: Vec<(String, String)>,
    /// More `log.dirs` after the broker's own data dir.
    pub extra_log_dirs: Vec<PathBuf>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            node_id: 1,
            num_partitions: 1,
            extra: Vec::new(),
            env: Vec::new(),
            extra_log_dirs: Vec::new(),
        }
    }
}

impl BrokerOptions {
    /// Set `num.partitions`.
    #[must_use]
    pub fn partitions(mut self, n: i32) -> Self {
        self.num_partitions = n;
        self
    }

    /// Add a config line; `value` is a TOML literal (strings need their quotes).
    #[must_use]
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// What brook writes to its ready file.
#[derive(Debug, Clone)]
pub struct ReadyInfo {
    /// Kafka listener address.
    pub kafka: SocketAddr,
    /// Admin HTTP listener address.
    pub admin: SocketAddr,
    /// Process id brook reports for itself.
    pub pid: u32,
}

/// A `brook serve` child process with its own temporary data dir.
pub struct Broker {
    opts: BrokerOptions,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    child: Option<Child>,
    ready: ReadyInfo,
    starts: u32,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("root", &self.root)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Start a broker with default options (one partition per auto-created topic).
    ///
    /// # Errors
    /// See [`Broker::start`].
    pub fn start_default() -> Result<Self> {
        Self::start(BrokerOptions::default())
    }

    /// Spawn `brook serve` on free loopback ports and wait until it is ready.
    ///
    /// # Errors
    /// The binary is missing, the process exits early, or the ready file does not
    /// appear within [`READY_TIMEOUT`]; the error carries the tail of the broker log.
    pub fn start(opts: BrokerOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("brook-test-")
            .tempdir()
            .context("creating broker temp dir")?;
        let root = dir.path().to_path_buf();
        fs::create_dir_all(root.join("data"))?;
        let mut broker = Self {
            opts,
            dir: Some(dir),
            root,
            child: None,
            ready: ReadyInfo {
                kafka: SocketAddr::from(([127, 0, 0, 1], 0)),
                admin: SocketAddr::from(([127, 0, 0, 1], 0)),
                pid: 0,
            },
            starts: 0,
        };
        broker.spawn()?;
        Ok(broker)
    }

    fn config_text(&self) -> String {
        let mut data = toml_string(&self.data_dir().to_string_lossy());
        for d in &self.opts.extra_log_dirs {
            data.push_str(", ");
            data.push_str(&toml_string(&d.to_string_lossy()));
        }
        let mut text = format!(
            "node.id = {}\nlog.dirs = [{data}]\nlisteners = \"127.0.0.1:0\"\n\
             admin.listener = \"127.0.0.1:0\"\nnum.partitions = {}\n",
            self.opts.node_id, self.opts.num_partitions
        );
        for (k, v) in &self.opts.extra {
            text.push_str(&format!("{k} = {v}\n"));
        }
        text
    }

    fn spawn(&mut self) -> Result<()> {
        let config = self.root.join("brook.toml");
        fs::write(&config, self.config_text()).context("writing broker config")?;
        let ready_file = self.root.join("ready.json");
        // A stale ready file from the previous run must not count as "ready".
        remove_ready_file(&ready_file)?;
        self.starts += 1;
        let child = spawn_brook(
            &config,
            &ready_file,
            &self.log_path(),
            self.starts,
            &self.opts.env,
        )?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready_file.exists() {
                break;
            }
            if let Some(status) = self.child_mut()?.try_wait()? {
                self.child = None;
                bail!(
                    "brook exited with {status} before becoming ready\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "brook did not write {} within {READY_TIMEOUT:?}\n{}",
                    ready_file.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        let text = fs::read_to_string(&ready_file).context("reading ready file")?;
        self.ready = parse_ready(&text)
            .with_context(|| format!("parsing ready file {text:?}\n{}", self.log_tail()))?;
        let child_pid = self.child_mut()?.id();
        if self.ready.pid != child_pid {
            bail!(
                "ready file names pid {} but the spawned child is {child_pid}",
                self.ready.pid
            );
        }
        Ok(())
    }

    fn child_mut(&mut self) -> Result<&mut Child> {
        self.child
            .as_mut()
            .ok_or_else(|| anyhow!("broker is not running"))
    }

    /// `host:port` of the Kafka listener, for `bootstrap.servers`.
    /// Changes on every (re)start because ports are picked by the OS.
    pub fn bootstrap(&self) -> String {
        self.ready.kafka.to_string()
    }

    /// Kafka listener address.
    pub fn kafka_addr(&self) -> SocketAddr {
        self.ready.kafka
    }

    /// `http://host:port` of the admin listener.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.ready.admin)
    }

    /// Admin listener address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.ready.admin
    }

    /// Process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.ready.pid
    }

    /// The broker's `log.dirs` entry.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Combined stdout/stderr of every run of this broker.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("brook.log")
    }

    /// Last lines of the broker log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), 40)
    }

    /// Whether the child is still running.
    ///
    /// # Errors
    /// `waitpid` failed.
    pub fn is_running(&mut self) -> Result<bool> {
        match self.child.as_mut() {
            None => Ok(false),
            Some(c) => Ok(c.try_wait()?.is_none()),
        }
    }

    /// `kill -9` the broker and reap it.
    ///
    /// # Errors
    /// The broker was not running or could not be signalled.
    pub fn kill9(&mut self) -> Result<()> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("broker is not running"))?;
        child.kill().context("SIGKILL")?;
        child.wait().context("reaping killed broker")?;
        Ok(())
    }

    /// SIGTERM the broker and wait (bounded) for it to exit; returns its status.
    ///
    /// # Errors
    /// The broker was not running, or did not exit within [`SHUTDOWN_TIMEOUT`]
    /// (it is then killed).
    pub fn sigterm(&mut self) -> Result<ExitStatus> {
        self.signal_and_wait(Signal::SIGTERM)
    }

    /// Send `signal` (SIGTERM, SIGINT, …) and wait (bounded) for the broker to exit.
    ///
    /// # Errors
    /// The broker was not running, or did not exit within [`SHUTDOWN_TIMEOUT`]
    /// (it is then killed).
    pub fn signal_and_wait(&mut self, signal: Signal) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("broker is not running"))?;
        let pid = Pid::from_raw(i32::try_from(child.id())?);
        kill(pid, signal).with_context(|| format!("sending {signal}"))?;
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "brook did not exit within {SHUTDOWN_TIMEOUT:?} of {signal}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGTERM and require a clean (status 0) exit.
    ///
    /// # Errors
    /// As [`Broker::sigterm`], or a non-zero exit status.
    pub fn stop(&mut self) -> Result<()> {
        let status = self.sigterm()?;
        if !status.success() {
            bail!(
                "brook exited with {status} after SIGTERM\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Start the broker again on the same data dir and config (new ports). A running
    /// broker is stopped with SIGTERM first.
    ///
    /// # Errors
    /// As [`Broker::start`].
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.stop()?;
        }
        self.spawn()
    }

    /// Resident set size of the broker process, from `/proc/PID/status` (VmRSS).
    ///
    /// # Errors
    /// The process is gone or the file has no VmRSS line.
    pub fn rss_bytes(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.ready.pid);
        let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_vm_rss(&status).ok_or_else(|| anyhow!("no VmRSS line in {path}"))
    }

    /// Scrape `GET /metrics` and return the sum of every series of `name`
    /// (all label combinations), or `None` if the metric is absent.
    ///
    /// # Errors
    /// The HTTP request failed.
    pub fn metric(&self, name: &str) -> Result<Option<f64>> {
        let body = http_get(self.ready.admin, "/metrics")?;
        Ok(metric_value(&body, name))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::env::var_os("BROOK_TEST_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("BROOK_TEST_KEEP: broker files kept in {}", kept.display());
            }
        }
    }
}

/// Spawn `brook serve --config CONFIG --ready-file READY` with stdout/stderr
/// appended to `log` (after a `===== brook start #N =====` marker). Every
/// `BROOK_*` variable of the test's own environment is removed (brook treats
/// them as config overrides); only `env` reaches the child.
pub(crate) fn spawn_brook(
    config: &Path,
    ready_file: &Path,
    log_path: &Path,
    start_no: u32,
    env: &[(String, String)],
) -> Result<Child> {
    spawn_brook_in(None, config, ready_file, log_path, start_no, env)
}

/// [`spawn_brook`] inside network namespace `netns` (`ip netns exec`, which
/// execs brook in place: the child's pid is brook's).
pub(crate) fn spawn_brook_in(
    netns: Option<&str>,
    config: &Path,
    ready_file: &Path,
    log_path: &Path,
    start_no: u32,
    env: &[(String, String)],
) -> Result<Child> {
    let bin = brook_binary()?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    writeln!(&log, "===== brook start #{start_no} =====")?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--ready-file")
        .arg(ready_file)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    // brook treats every BROOK_* variable as a config override and refuses
    // unknown ones; the test suite's own switches (BROOK_REQUIRE_CLIENTS,
    // BROOK_TEST_KEEP, …) must not reach it. Only `env` does.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("BROOK_") {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .with_context(|| format!("spawning {}", bin.display()))
}

/// The last `lines` lines of a broker log, headed by its path.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    format!(
        "--- last lines of {} ---\n{}",
        path.display(),
        all[from..].join("\n")
    )
}

/// Remove a stale ready file so that it does not count as "ready" again.
pub(crate) fn remove_ready_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("removing stale ready file"),
    }
}

pub(crate) fn parse_ready(text: &str) -> Result<ReadyInfo> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let addr = |key: &str| -> Result<SocketAddr> {
        let s = v
            .get(key)
            .and_then(|x| x.as_str())
            .ok_or_else(|| anyhow!("missing string field {key:?}"))?;
        s.to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("{key:?} = {s:?} resolves to nothing"))
    };
    let pid = v
        .get("pid")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| anyhow!("missing numeric field \"pid\""))?;
    // A controller-only node has no Kafka listener: `"kafka": null`.
    let kafka = if v.get("kafka").is_some_and(serde_json::Value::is_null) {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        addr("kafka")?
    };
    Ok(ReadyInfo {
        kafka,
        admin: addr("admin")?,
        pid: u32::try_from(pid)?,
    })
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_parsed_in_bytes() {
        let status = "Name:\tbrook\nVmPeak:\t  999 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn ready_file_is_parsed() -> Result<()> {
        let r = parse_ready(r#"{"kafka":"127.0.0.1:9092","admin":"127.0.0.1:9644","pid":42}"#)?;
        assert_eq!(r.kafka.port(), 9092);
        assert_eq!(r.admin.port(), 9644);
        assert_eq!(r.pid, 42);
        assert!(parse_ready(r#"{"kafka":"127.0.0.1:9092"}"#).is_err());
        Ok(())
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
