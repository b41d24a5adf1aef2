//! A Redis Cluster of our own, for the cache's cluster mode: `masters` masters with
//! `replicas` replicas each, from Debian's `redis-server` on free ports, joined by
//! `redis-cli --cluster create` (Debian `redis-tools`). Nothing is kept on disk but
//! each node's cluster configuration, in a temporary directory removed on drop.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::{
    process::{free_port, require_binary, spawn_watchdog, unique_suffix, wait_for_port},
    redis_server::redis_server_command,
};

/// How long a node may be unreachable before the cluster fails it over (ms). Short, so
/// that failover tests take seconds.
pub const NODE_TIMEOUT_MS: u64 = 2000;

#[derive(Debug)]
struct Node {
    port: u16,
    child: Option<Child>,
}

/// A running Redis Cluster; every node stops when it is dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts `masters × (1 + replicas)` nodes and creates the cluster; returns once every
    /// node reports `cluster_state:ok`.
    pub fn start(masters: usize, replicas: usize) -> anyhow::Result<Self> {
        ensure!(masters >= 3, "Redis Cluster needs at least 3 masters");
        let dir = std::env::temp_dir().join(format!("cacheme-redis-cluster-{}", unique_suffix()));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..masters * (1 + replicas) {
            let port = cluster_node_port()?;
            cluster.nodes.push(Node { port, child: None });
        }
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        let cli = require_binary("redis-cli", "redis-tools")?;
        let output = Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run redis-cli --cluster create")?;
        ensure!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_ok(Duration::from_secs(30))?;
        // Roles spread by gossip: a replica may still look like a master for a moment.
        let started = Instant::now();
        while cluster.masters()?.len() != masters {
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "the Redis Cluster has masters {:?}, not {masters}",
                    cluster.masters()?
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        // A replica that has not synced yet refuses to take over (its data is too old).
        for port in cluster.ports() {
            let started = Instant::now();
            loop {
                let info = cluster.cli(port, &["info", "replication"])?;
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                if started.elapsed() > Duration::from_secs(30) {
                    bail!("replica {port} never synced: {info}");
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let port = self.nodes[i].port;
        let mut child = redis_server_command(port, &self.dir, false)?
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            // A `SAVE` of one node must be what that node, and only it, restarts from.
            .args(["--dbfilename", &format!("dump-{port}.rdb")])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .spawn()
            .context("cannot start redis-server in cluster mode")?;
        wait_for_port(port, Duration::from_secs(10), &mut child, "redis-server")?;
        spawn_watchdog(std::process::id(), child.id(), &self.dir);
        self.nodes[i].child = Some(child);
        Ok(())
    }

    /// `redis://127.0.0.1:<port>` of every node (seeds for a cluster client).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The ports of the nodes, in creation order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis-cli -p <port> <args>` on node `port`; its output.
    pub fn cli(&self, port: u16, args: &[&str]) -> anyhow::Result<String> {
        let cli = require_binary("redis-cli", "redis-tools")?;
        let output = Command::new(cli)
            .args(["-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run redis-cli")?;
        ensure!(
            output.status.success(),
            "redis-cli -p {port} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Ports of the nodes that are masters now (after failovers too), from a live node.
    pub fn masters(&self) -> anyhow::Result<Vec<u16>> {
        let live = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .context("no node is running")?;
        let nodes = self.cli(live.port, &["cluster", "nodes"])?;
        Ok(masters_of(&nodes))
    }

    /// Waits until every running node reports `cluster_state:ok`.
    pub fn wait_ok(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let mut last = String::new();
            let all_ok = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                match self.cli(n.port, &["cluster", "info"]) {
                    Ok(info) if info.contains("cluster_state:ok") => true,
                    Ok(info) => {
                        last = format!("node {}: {}", n.port, first_line(&info));
                        false
                    }
                    Err(e) => {
                        last = format!("node {}: {e:#}", n.port);
                        false
                    }
                }
            });
            if all_ok {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("the Redis Cluster is not ok after {timeout:?}: {last}");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the node on `port` (SIGKILL): its replica takes over after the node timeout.
    pub fn kill(&mut self, port: u16) -> anyhow::Result<()> {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .with_context(|| format!("no node on port {port}"))?;
        if let Some(mut child) = node.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the node on `port` again (it rejoins with its configuration file).
    pub fn restart(&mut self, port: u16) -> anyhow::Result<()> {
        self.kill(port)?;
        let i = self
            .nodes
            .iter()
            .position(|n| n.port == port)
            .with_context(|| format!("no node on port {port}"))?;
        self.spawn(i)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port a cluster node can take: Redis puts its cluster bus 10 000 above it and
/// refuses to start above 55 535 ("Redis port number too high"), and Linux hands out
/// free ports up to 60 999, so about one node in five failed to start.
fn cluster_node_port() -> anyhow::Result<u16> {
    for _ in 0..1000 {
        let port = free_port()?;
        if port <= 55_535 && !crate::port_open(port + 10_000) {
            return Ok(port);
        }
    }
    bail!("no free port at or below 55535 (with its bus port +10000 free) in 1000 tries")
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Ports of the healthy masters in a `CLUSTER NODES` answer. Pure.
fn masters_of(cluster_nodes: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = cluster_nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, flags) = (fields.get(1)?, fields.get(2)?);
            let is_master = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| f == "fail" || f == "fail?");
            is_master.then_some(())?;
            // `127.0.0.1:7000@17000`
            address.split(['@', ':']).nth(1)?.parse().ok()
        })
        .collect();
    ports.sort_unstable();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 127.0.0.1:7004@17004 master - 0 0 4 connected 10923-16383
";
        assert_eq!(masters_of(nodes), vec![7000, 7001, 7004]);
    }

    /// The harness itself: 3 masters and 3 replicas form a cluster that covers every slot,
    /// and killing a master lets its replica take over.
    #[test]
    fn a_cluster_forms_and_fails_over() -> anyhow::Result<()> {
        let mut cluster = RedisCluster::start(3, 1)?;
        let ports = cluster.ports();
        let info = cluster.cli(ports[0], &["cluster", "info"])?;
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        assert!(info.contains("cluster_known_nodes:6"), "{info}");
        let masters = cluster.masters()?;
        assert_eq!(masters.len(), 3, "{masters:?}");

        let victim = masters[0];
        cluster.kill(victim)?;
        let started = Instant::now();
        let promoted = loop {
            let now = cluster.masters()?;
            if now.len() == 3 && !now.contains(&victim) {
                break now;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no replica took over from {victim}: masters {now:?}"
            );
            thread::sleep(Duration::from_millis(200));
        };
        cluster.wait_ok(Duration::from_secs(30))?;
        assert!(!promoted.contains(&victim));
        Ok(())
    }
}
