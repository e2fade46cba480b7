//! The network namespaces of a [`super::ClusterOptions::netns`] cluster.

use anyhow::{bail, Context, Result};

/// The network namespaces of a [`super::ClusterOptions::netns`] cluster: one per
/// node, each with a veth into one bridge. Removed on drop.
#[derive(Debug)]
pub(super) struct Netns {
    base: u16,
    subnet: u8,
    nodes: usize,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Netns {
    pub(super) fn create(base: u16, nodes: usize) -> Result<Self> {
        // Base ports are 200 apart: one /24 per test.
        let subnet = u8::try_from((base / 200) % 250)?;
        let net = Self {
            base,
            subnet,
            nodes,
        };
        net.remove();
        let br = net.bridge();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("10.200.{subnet}.254/24"),
            "dev",
            &br,
        ])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 1..=nodes {
            let id = i32::try_from(i)?;
            let (ns, host, peer) = (net.ns_name(id), net.veth(id), format!("bp{base}n{i}"));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", &peer, "netns", &ns])?;
            ip(&["link", "set", &host, "master", &br])?;
            ip(&["link", "set", &host, "up"])?;
            let inside = |args: &[&str]| {
                let mut a = vec!["netns", "exec", &ns, "ip"];
                a.extend_from_slice(args);
                ip(&a)
            };
            inside(&["link", "set", "lo", "up"])?;
            inside(&["link", "set", &peer, "name", "eth0"])?;
            inside(&[
                "addr",
                "add",
                &format!("10.200.{subnet}.{i}/24"),
                "dev",
                "eth0",
            ])?;
            inside(&["link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    pub(super) fn bridge(&self) -> String {
        format!("bbr{}", self.base)
    }

    pub(super) fn veth(&self, id: i32) -> String {
        format!("bv{}n{id}", self.base)
    }

    pub(super) fn ns_name(&self, id: i32) -> String {
        format!("brook-{}-{id}", self.base)
    }

    pub(super) fn node_ip(&self, id: i32) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(10, 200, self.subnet, u8::try_from(id).unwrap_or(0))
    }

    /// Drop (`cut`) or restore traffic between node `a` and node `b`, both
    /// ways, with blackhole routes inside their namespaces.
    pub(super) fn route(&self, a: i32, b: i32, cut: bool) -> Result<()> {
        for (from, to) in [(a, b), (b, a)] {
            let ns = self.ns_name(from);
            let dst = format!("{}/32", self.node_ip(to));
            let verb = if cut { "add" } else { "del" };
            ip(&["netns", "exec", &ns, "ip", "route", verb, "blackhole", &dst])?;
        }
        Ok(())
    }

    pub(super) fn remove(&self) {
        for i in 1..=self.nodes {
            let id = i32::try_from(i).unwrap_or(0);
            let _ = ip(&["netns", "del", &self.ns_name(id)]);
            let _ = ip(&["link", "del", &self.veth(id)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}
