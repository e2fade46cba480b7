//! brook-tests: the harness that runs `brook` as a real process for end-to-end tests.
//!
//! # Layout
//! - [`Broker`]: spawn `target/debug/brook serve` with a temporary data dir and a
//!   generated TOML config, wait for its ready file, signal it (`kill -9`, SIGTERM),
//!   restart it on the same data dir, read its RSS; the child is killed on drop.
//! - [`wait_until`]: poll a condition with a deadline (the only sanctioned way to wait).
//! - [`http_get`], [`metric_value`]: scrape the admin listener's Prometheus text.
//! - [`kcat_path`], [`venv_python`], [`require_clients`]: locate the external clients
//!   that `scripts/test.sh` installs.
//!
//! The tests themselves live in `tests/tests/*.rs`, one file per subsystem or client.
//!
//! Crash behaviour: every broker owns a fresh [`tempfile::TempDir`]; nothing outside
//! it is written, so a test that dies leaves at most a temp dir behind. Set
//! `BROOK_TEST_KEEP=1` to keep data dirs and broker logs for post-mortems.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::kill;
pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// How long a broker may take from spawn to writing its ready file.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval for condition waits.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

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
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            node_id: 1,
            num_partitions: 1,
            extra: Vec::new(),
            env: Vec::new(),
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
        let data = toml_string(&self.data_dir().to_string_lossy());
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
        let bin = brook_binary()?;
        let config = self.root.join("brook.toml");
        fs::write(&config, self.config_text()).context("writing broker config")?;
        let ready_file = self.root.join("ready.json");
        // A stale ready file from the previous run must not count as "ready".
        match fs::remove_file(&ready_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("removing stale ready file"),
        }
        self.starts += 1;
        let log_path = self.log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        writeln!(&log, "===== brook start #{} =====", self.starts)?;
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--ready-file")
            .arg(&ready_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
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
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- last lines of {} ---\n{}",
            self.log_path().display(),
            lines[from..].join("\n")
        )
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

fn parse_ready(text: &str) -> Result<ReadyInfo> {
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
    Ok(ReadyInfo {
        kafka: addr("kafka")?,
        admin: addr("admin")?,
        pid: u32::try_from(pid)?,
    })
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn toml_string(s: &str) -> String {
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

/// Root of the cargo workspace (parent of this crate's manifest dir).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Path of the `brook` binary: `$BROOK_BIN`, else `<target dir>/debug/brook` where the
/// target dir is `$CARGO_TARGET_DIR` or found from the running test executable
/// (`target/debug/deps/<test>` → `target/debug/brook`).
///
/// # Errors
/// The binary does not exist; the message says how to build it.
pub fn brook_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("BROOK_BIN") {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        bail!("BROOK_BIN={} does not exist", bin.display());
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_relative() {
            workspace_root().join(dir)
        } else {
            dir
        };
        candidates.push(dir.join("debug").join("brook"));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/deps/<test-binary>: two levels up is the profile dir.
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join("brook"));
        }
    }
    candidates.push(workspace_root().join("target").join("debug").join("brook"));
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    bail!(
        "the brook binary was not found (looked at {candidates:?}); build it first with \
         `cargo build -p brook-broker --bin brook` (scripts/test.sh does this)"
    )
}

/// Poll `cond` every few milliseconds until it returns `Ok(true)`, or fail after
/// `timeout` naming `what`. Errors from `cond` are remembered and reported on timeout,
/// not returned at once, so transient failures (a broker still starting) are tolerated.
///
/// # Errors
/// The deadline passed.
pub fn wait_until<F>(what: &str, timeout: Duration, mut cond: F) -> Result<()>
where
    F: FnMut() -> Result<bool>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match cond() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            return match last_err {
                Some(e) => {
                    Err(e.context(format!("timed out after {timeout:?} waiting for {what}")))
                }
                None => Err(anyhow!("timed out after {timeout:?} waiting for {what}")),
            };
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Minimal HTTP/1.0 GET over a std `TcpStream`; returns the body of a 200 response.
///
/// # Errors
/// Connection failure, timeout, or a non-200 status.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to admin listener {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\nAccept: text/plain\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading GET {path} response"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response to GET {path}: {text:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET {path} answered {status:?}");
    }
    Ok(body.to_owned())
}

/// Sum of all samples of metric `name` in Prometheus text `body` (any labels).
/// `None` if no sample line names it.
pub fn metric_value(body: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in body.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // Only `name value` or `name{labels} value`; not `name_suffix …`.
        let value = if let Some(labelled) = rest.strip_prefix('{') {
            labelled.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()) {
            if let Ok(x) = v.parse::<f64>() {
                *total.get_or_insert(0.0) += x;
            }
        }
    }
    total
}

/// Whether missing external clients (kcat, the Python venv) are a failure rather
/// than a skip. `scripts/test.sh` sets `BROOK_REQUIRE_CLIENTS=1` because it installs them.
pub fn require_clients() -> bool {
    std::env::var("BROOK_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
}

/// Find an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `kcat` (or the older `kafkacat`) on `PATH`.
pub fn kcat_path() -> Option<PathBuf> {
    which("kcat").or_else(|| which("kafkacat"))
}

/// The test venv's python (`.venv-test/bin/python` in the workspace root), if present.
pub fn venv_python() -> Option<PathBuf> {
    let p = workspace_root()
        .join(".venv-test")
        .join("bin")
        .join("python");
    p.is_file().then_some(p)
}

/// Every `*.log` segment file below `dir`, sorted.
///
/// # Errors
/// A directory could not be read.
pub fn log_segments(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "log") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Read a whole file.
///
/// # Errors
/// I/O failure.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_value_sums_labelled_series_and_ignores_prefix_matches() {
        let body = "# HELP x\n# TYPE brook_a counter\nbrook_a{api=\"fetch\"} 3\n\
                    brook_a{api=\"produce\"} 4.5\nbrook_a_total 100\nbrook_b 7\n";
        assert_eq!(metric_value(body, "brook_a"), Some(7.5));
        assert_eq!(metric_value(body, "brook_b"), Some(7.0));
        assert_eq!(metric_value(body, "brook_c"), None);
    }

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
