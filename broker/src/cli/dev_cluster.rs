//! `brook dev-cluster`: a multi-node cluster on one machine in one command.
//!
//! Writes one config per node (`<dir>/node-<id>/brook.toml`: every node a
//! broker and a controller voter, as Kafka's combined mode) and, unless
//! `--write-only`, starts one `brook serve` process per node, waits until all
//! are serving, prints how to reach them, and stops them all (SIGTERM,
//! controlled shutdown) on Ctrl-C. The same config files run the cluster
//! across machines once the addresses are changed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

#[derive(Debug, Args)]
pub struct DevClusterArgs {
    /// Number of nodes (each a broker and a controller quorum voter).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
    /// Directory for the nodes' configs, data and logs.
    #[arg(long, default_value = "./brook-dev-cluster")]
    dir: PathBuf,
    /// Node N listens for Kafka clients on base + 10·(N−1), for the controller
    /// quorum on the next port and for HTTP admin on the one after.
    #[arg(long, default_value_t = 19092)]
    base_port: u16,
    /// Only write the config files and print how to start each node.
    #[arg(long)]
    write_only: bool,
}

/// How long the nodes may take to elect a controller and register.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

struct Node {
    id: u16,
    dir: PathBuf,
    kafka: u16,
    admin: u16,
}

pub(super) fn run(args: DevClusterArgs) -> anyhow::Result<()> {
    let last = u32::from(args.base_port) + 10 * u32::from(args.nodes) + 2;
    if last > u32::from(u16::MAX) || args.base_port == 0 {
        bail!(
            "--base-port {} leaves no room for {} nodes (ports up to {last} are needed)",
            args.base_port,
            args.nodes
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let root = args
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", args.dir.display()))?;
    let nodes: Vec<Node> = (1..=args.nodes)
        .map(|id| {
            let kafka = args.base_port + 10 * (id - 1);
            Node {
                id,
                dir: root.join(format!("node-{id}")),
                kafka,
                admin: kafka + 2,
            }
        })
        .collect();
    let voters = nodes
        .iter()
        .map(|n| format!("{}@127.0.0.1:{}", n.id, n.kafka + 1))
        .collect::<Vec<_>>()
        .join(",");
    for n in &nodes {
        std::fs::create_dir_all(n.dir.join("data"))?;
        let config = config_text(n, &voters);
        std::fs::write(n.dir.join("brook.toml"), config)
            .with_context(|| format!("writing {}", n.dir.join("brook.toml").display()))?;
    }
    let bootstrap = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.kafka))
        .collect::<Vec<_>>()
        .join(",");
    if args.write_only {
        println!(
            "wrote {} node configs under {}",
            nodes.len(),
            root.display()
        );
        for n in &nodes {
            println!(
                "  brook serve --config {}",
                n.dir.join("brook.toml").display()
            );
        }
        println!("bootstrap.servers={bootstrap}");
        return Ok(());
    }
    let mut children = Vec::new();
    for n in &nodes {
        match spawn(n) {
            Ok(c) => children.push(c),
            Err(e) => {
                stop(&mut children);
                return Err(e);
            }
        }
    }
    if let Err(e) = wait_ready(&nodes, &mut children) {
        stop(&mut children);
        return Err(e);
    }
    println!("brook dev cluster: {} nodes serving", nodes.len());
    for n in &nodes {
        println!(
            "  node {}: kafka 127.0.0.1:{}  controller 127.0.0.1:{}  admin http://127.0.0.1:{}  log {}",
            n.id,
            n.kafka,
            n.kafka + 1,
            n.admin,
            n.dir.join("brook.log").display()
        );
    }
    println!("bootstrap.servers={bootstrap}");
    println!(
        "try: brook cluster status --admin 127.0.0.1:{}",
        nodes[0].admin
    );
    println!("Ctrl-C stops every node (controlled shutdown).");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    stop(&mut children);
    Ok(())
}

fn config_text(n: &Node, voters: &str) -> String {
    let data = n.dir.join("data");
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# brook dev-cluster node {} (broker and controller)",
        n.id
    );
    let _ = writeln!(t, "node.id = {}", n.id);
    let _ = writeln!(t, "process.roles = \"broker,controller\"");
    let _ = writeln!(
        t,
        "listeners = \"PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}\"",
        n.kafka,
        n.kafka + 1
    );
    let _ = writeln!(t, "controller.listener.names = \"CONTROLLER\"");
    let _ = writeln!(t, "controller.quorum.voters = \"{voters}\"");
    let _ = writeln!(t, "admin.listener = \"127.0.0.1:{}\"", n.admin);
    let _ = writeln!(t, "log.dirs = [{:?}]", data.to_string_lossy());
    t
}

fn spawn(n: &Node) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding the brook executable")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(n.dir.join("brook.log"))?;
    let ready = n.dir.join("ready.json");
    let _ = std::fs::remove_file(&ready);
    Command::new(exe)
        .arg("serve")
        .arg("--config")
        .arg(n.dir.join("brook.toml"))
        .arg("--ready-file")
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting node {}", n.id))
}

fn wait_ready(nodes: &[Node], children: &mut [Child]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if nodes.iter().all(|n| n.dir.join("ready.json").exists()) {
            return Ok(());
        }
        for (n, c) in nodes.iter().zip(children.iter_mut()) {
            if let Some(status) = c.try_wait()? {
                bail!(
                    "node {} exited ({status}) before serving; its log:\n{}",
                    n.id,
                    tail(&n.dir.join("brook.log"))
                );
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the nodes were not serving within {} s; node 1's log:\n{}",
                READY_TIMEOUT.as_secs(),
                tail(&nodes[0].dir.join("brook.log"))
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// SIGTERM every node (controlled shutdown), then wait for them.
fn stop(children: &mut [Child]) {
    for c in children.iter() {
        if let Ok(pid) = i32::try_from(c.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for c in children.iter_mut() {
        let _ = c.wait();
    }
}
