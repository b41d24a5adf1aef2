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

use super::proxy::FaultProxy;
use cacheme_harness::{api_env::api_command, http::get_status};

pub const DATABASE: &str = "cacheme_chaos";
pub const KEY_PREFIX: &str = "chaos";

/// Settings every replica gets beyond DATABASE_URL, REDIS_URL and BIND_ADDR.
pub const API_ENV: &[(&str, &str)] = &[
    ("CACHE_KEY_PREFIX", KEY_PREFIX),
    ("L1_ENABLED", "true"),
    ("SIMULATED_DB_LATENCY_MS", "2"),
    ("REDIS_TIMEOUT_MS", "50"),
    ("DB_MAX_CONNECTIONS", "4"),
    // Entries age within a run (issue #22, C3). A fill is fresh for 2–6 s (4 s ± 50 %),
    // then served for 1 s while one refresh runs, then only when PostgreSQL fails (until
    // 30 s). A replica looks an entry up in Redis when its L1 copy (5 s) expires: by the
    // jitter, a quarter of the entries are still fresh then, a quarter in the refresh
    // window and half past it, so both stale paths run, and a PostgreSQL fault meets
    // entries that only stale-if-error may serve. (A longer refresh window would answer
    // most reads during a short fault itself.)
    ("CACHE_TTL_SECONDS", "4"),
    ("CACHE_TTL_JITTER_PERCENT", "50"),
    ("CACHE_STALE_WHILE_REVALIDATE_SECONDS", "1"),
    ("CACHE_STALE_IF_ERROR_SECONDS", "30"),
    // An indeterminate write must commit or fail within the writers' quarantine (4 s):
    // at most 1 s waiting for a connection, then a statement bounded at 1.5 s (plus the
    // API's 1 s client-side deadline).
    ("DB_ACQUIRE_TIMEOUT_MS", "1000"),
    ("DB_STATEMENT_TIMEOUT_MS", "1500"),
    ("MIGRATE_ON_START", "true"),
    ("RUST_LOG", "warn"),
    // The writers carry no token: a throwaway cluster on loopback.
    ("ALLOW_ANONYMOUS_WRITES", "true"),
];

/// `--shipped-defaults`: only what the harness needs; every cache, pool and timeout
/// setting as the API ships it.
pub const SHIPPED_ENV: &[(&str, &str)] = &[
    ("CACHE_KEY_PREFIX", KEY_PREFIX),
    ("MIGRATE_ON_START", "true"),
    ("RUST_LOG", "warn"),
    ("ALLOW_ANONYMOUS_WRITES", "true"),
];

/// Where a replica listens: its own port, set when it starts.
const BIND_ADDR: &str = "BIND_ADDR";

/// What a replica's variables depend on.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaEnv<'a> {
    pub shipped_defaults: bool,
    pub database_url: &'a str,
    /// One Redis's URL, or a cluster's nodes joined by commas.
    pub redis_url: &'a str,
    pub redis_cluster: bool,
    pub mutation: Option<&'a str>,
    pub unsafe_skip_fill_check: bool,
}

impl ReplicaEnv<'_> {
    /// Every variable a replica gets but [`BIND_ADDR`]; the one place that names them
    /// (the tests hold each against the ones the API reads).
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = api_env(self.shipped_defaults)
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.push(("DATABASE_URL".into(), self.database_url.to_owned()));
        env.push(("REDIS_URL".into(), self.redis_url.to_owned()));
        if self.redis_cluster {
            env.push(("REDIS_MODE".into(), "cluster".into()));
        }
        if let Some(mutation) = self.mutation {
            env.push(("CACHEME_MUTATION".into(), mutation.into()));
        }
        if self.unsafe_skip_fill_check {
            env.push(("UNSAFE_SKIP_FILL_CHECK".into(), "true".into()));
        }
        env
    }
}

/// The settings replicas run with (beyond the stores' URLs and BIND_ADDR).
pub fn api_env(shipped_defaults: bool) -> &'static [(&'static str, &'static str)] {
    if shipped_defaults {
        SHIPPED_ENV
    } else {
        API_ENV
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use cacheme_harness::api_env::unknown_names;

    /// A misspelt name would run the replicas on the API's default for it, unnoticed.
    #[test]
    fn every_variable_a_replica_gets_is_one_the_api_reads() {
        let known = cacheme_api::env_names();
        for shipped_defaults in [false, true] {
            for redis_cluster in [false, true] {
                let env = ReplicaEnv {
                    shipped_defaults,
                    database_url: "postgres://x",
                    redis_url: "redis://x",
                    redis_cluster,
                    mutation: Some("listener-ignores-messages"),
                    unsafe_skip_fill_check: true,
                }
                .vars();
                let names = env.iter().map(|(name, _)| name.as_str()).chain([BIND_ADDR]);
                assert_eq!(unknown_names(names, &known), [""; 0]);
            }
        }
    }
}
