//! The system under test: our own PostgreSQL and Redis, and N `cacheme-api` replicas.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::{
    PostgresServer, RedisCluster, RedisServer, free_port, require_binary, stop_with_this_process,
    with_database,
};

use super::{
    proxy::FaultProxy,
    replica_env::{BIND_ADDR, ReplicaEnv},
};
use cacheme_harness::{api_env::api_command, http::get_status};

pub const DATABASE: &str = "cacheme_chaos";

/// One `cacheme-api` process, restartable on the same port.
#[derive(Debug)]
pub struct Replica {
    pub index: usize,
    pub port: u16,
    log: PathBuf,
    env: Vec<(String, String)>,
    bin: PathBuf,
    child: Option<Child>,
    pub starts: u32,
}

impl Replica {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let mut cmd = api_command(&self.bin, &self.env);
        cmd.env(BIND_ADDR, format!("127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        stop_with_this_process(child.id());
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// Waits for `GET /readyz` to answer 200.
    pub fn wait_ready(&mut self, patience: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if let Some((200, _)) = get_status(self.port, "/readyz") {
                return Ok(start.elapsed());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "replica {} exited with {status} (log: {})",
                    self.index,
                    self.log.display()
                );
            }
            if start.elapsed() > patience {
                bail!(
                    "replica {} not ready within {patience:?} (log: {})",
                    self.index,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = cacheme_testsupport::signal(child.id(), "CONT");
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// `kill -SIG` the process (`STOP`, `CONT`).
    pub fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("the replica is not running")?;
        cacheme_testsupport::signal(child.id(), sig)
    }

    /// Starts it again on the same port and waits until it is ready.
    pub fn restart(&mut self) -> anyhow::Result<Duration> {
        self.kill()?;
        self.spawn()?;
        self.wait_ready(Duration::from_secs(30))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            cacheme_testsupport::terminate(&mut child, Duration::from_secs(3));
        }
    }
}

/// Everything a run starts. Fields drop in order: replicas first, then the proxies, Redis,
/// PostgreSQL.
#[derive(Debug)]
pub struct Cluster {
    pub replicas: Vec<Replica>,
    /// Replica 0 reaches Redis through this (single Redis only: a cluster's clients
    /// follow the addresses its nodes announce) ...
    pub redis_proxy: Option<FaultProxy>,
    /// ... and PostgreSQL through this, so one replica's links can fail alone.
    pub pg_proxy: FaultProxy,
    /// The single Redis, or `None` in a run against a cluster.
    pub redis: Option<RedisServer>,
    pub redis_cluster: Option<RedisCluster>,
    pub postgres: PostgresServer,
    pub psql: PathBuf,
    pub database_url: String,
}

impl Cluster {
    pub fn start(
        bin: &Path,
        replicas: usize,
        unsafe_skip_fill_check: bool,
        mutation: Option<&str>,
        redis_cluster: bool,
        shipped_defaults: bool,
        out: &Path,
    ) -> anyhow::Result<Self> {
        let psql = require_binary("psql", "postgresql-client")?;
        let postgres = PostgresServer::start()?;
        // Persistence on, as the operator's persistent Redis runs: a restart reloads
        // the append-only file (issue #22, D1).
        let (redis, redis_cluster) = if redis_cluster {
            (None, Some(RedisCluster::start(3, 1)?))
        } else {
            (Some(RedisServer::start_persistent()?), None)
        };
        let pg_proxy = FaultProxy::start(postgres.port())?;
        let redis_proxy = redis
            .as_ref()
            .map(|r| FaultProxy::start(r.port()))
            .transpose()?;
        let database_url = with_database(&postgres.admin_url(), DATABASE);
        let redis_url = match (&redis, &redis_cluster) {
            (Some(redis), _) => redis.url(),
            (None, Some(nodes)) => nodes.urls().join(","),
            (None, None) => bail!("no Redis"),
        };
        let env = ReplicaEnv {
            shipped_defaults,
            database_url: &database_url,
            redis_url: &redis_url,
            redis_cluster: redis_cluster.is_some(),
            mutation,
            unsafe_skip_fill_check,
        }
        .vars();
        // Replica 0's own view of the stores: through the proxies.
        let mut proxied = env.clone();
        for (key, value) in &mut proxied {
            match key.as_str() {
                "DATABASE_URL" => {
                    *value = database_url.replace(
                        &format!(":{}/", postgres.port()),
                        &format!(":{}/", pg_proxy.port()),
                    )
                }
                "REDIS_URL" => {
                    if let Some(proxy) = &redis_proxy {
                        *value = format!("redis://127.0.0.1:{}", proxy.port());
                    }
                }
                _ => {}
            }
        }
        let mut cluster = Self {
            replicas: Vec::new(),
            redis_proxy,
            pg_proxy,
            redis,
            redis_cluster,
            postgres,
            psql,
            database_url,
        };
        for index in 0..replicas {
            let log = out.join(format!("replica-{index}.log"));
            let _ = std::fs::remove_file(&log);
            let mut replica = Replica {
                index,
                port: free_port()?,
                log,
                env: if index == 0 {
                    proxied.clone()
                } else {
                    env.clone()
                },
                bin: bin.to_owned(),
                child: None,
                starts: 0,
            };
            replica.spawn()?;
            cluster.replicas.push(replica);
            // The first one creates and migrates the database; wait for it alone.
            if index == 0 {
                cluster.replicas[0].wait_ready(Duration::from_secs(60))?;
            }
        }
        for replica in &mut cluster.replicas[1..] {
            replica.wait_ready(Duration::from_secs(60))?;
        }
        Ok(cluster)
    }

    pub fn ports(&self) -> Vec<u16> {
        self.replicas.iter().map(|r| r.port).collect()
    }

    /// One Redis command over RESP; the first line of the reply (errors included).
    pub fn redis(&self, args: &[&str]) -> anyhow::Result<String> {
        let redis = self
            .redis
            .as_ref()
            .context("a single-Redis fault in a cluster run")?;
        redis_command(redis.port(), args)
    }

    pub fn single_redis(&mut self) -> anyhow::Result<&mut RedisServer> {
        self.redis
            .as_mut()
            .context("a single-Redis fault in a cluster run")
    }

    pub fn redis_cluster(&mut self) -> anyhow::Result<&mut RedisCluster> {
        self.redis_cluster
            .as_mut()
            .context("a Redis Cluster fault in a single-Redis run")
    }

    /// `psql -c sql` against the chaos database, as a child (for long-running sessions).
    pub fn psql(&self, sql: &str) -> anyhow::Result<Child> {
        Command::new(&self.psql)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.database_url,
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start psql")
    }

    /// `psql -c sql`, waited for; its error output when it fails.
    pub fn psql_wait(&self, sql: &str) -> anyhow::Result<()> {
        let output = self.psql(sql)?.wait_with_output()?;
        anyhow::ensure!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(())
    }
}

pub fn redis_command(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let line = line.trim_end().to_owned();
    if let Some(err) = line.strip_prefix('-') {
        bail!("redis {:?}: {err}", args.first().unwrap_or(&""));
    }
    Ok(line)
}
