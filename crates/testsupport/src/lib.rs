//! Finds or starts the PostgreSQL and Redis servers that CacheMe's tests and
//! `cargo xtask dev` need, using only the standard library and the servers'
//! own binaries (Debian packages `postgresql` and `redis-server`).
//!
//! Order of preference: the URL in the environment (`DATABASE_URL`,
//! `REDIS_URL`), then a server on the standard local port, then a throwaway
//! server on a free port. Throwaway servers stop when their handle is dropped,
//! and a watchdog stops them if this process dies without dropping them.
//!
//! One file over 400 lines: PostgreSQL and Redis are found or started the same way,
//! and their shared process handling (ports, watchdog, stop) is read best with them.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub mod generated_docs;
mod redis_cluster;
pub use redis_cluster::RedisCluster;

/// Standard local addresses tried before starting a throwaway server.
pub const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// What the API's integration tests print when `CACHEME_MUTATION` switched a mechanism
/// off in their process; `cargo xtask chaos --mutations` requires it in the output of a
/// test it expects to fail, so a failure for another reason cannot pass for a catch.
pub const MUTATION_ON_MARKER: &str = "cacheme test process: mutation switched on: ";

/// A free TCP port on the loopback interface.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a free port")?;
    Ok(listener.local_addr()?.port())
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

fn wait_for_port(
    port: u16,
    patience: Duration,
    child: &mut Child,
    what: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if port_open(port) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited with {status} before listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not listen on port {port} within {patience:?}")
}

/// Looks `name` up on PATH, then in PostgreSQL's versioned Debian folders.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        versions.sort();
        versions.reverse();
        candidates.extend(versions.into_iter().map(|v| v.join("bin").join(name)));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// The binary, or an error naming the Debian package that provides it.
pub fn require_binary(name: &str, debian_package: &str) -> anyhow::Result<PathBuf> {
    find_binary(name).with_context(|| {
        format!("`{name}` was not found; install it with `apt-get install {debian_package}` (Debian package {debian_package})")
    })
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `redis-server` on `port` (loopback only, files in `dir`), quiet; nothing persisted
/// unless `append_only` (then an append-only file, fsynced every second, as the operator's
/// persistent Redis); callers add their own options before spawning it.
fn redis_server_command(port: u16, dir: &Path, append_only: bool) -> anyhow::Result<Command> {
    let binary = require_binary("redis-server", "redis-server")?;
    let mut cmd = Command::new(binary);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            if append_only { "yes" } else { "no" },
        ])
        .args(["--appendfsync", "everysec"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Ok(cmd)
}

/// Stops `pid` (and removes `dir`) once process `owner` is gone, in case nobody drops the handle.
fn spawn_watchdog(owner: u32, pid: u32, dir: &Path) {
    spawn_watchdog_script(format!(
        "while kill -0 {owner} 2>/dev/null; do sleep 1; done; kill -INT {pid} 2>/dev/null; sleep 2; kill -KILL {pid} 2>/dev/null; rm -rf '{}'",
        dir.display()
    ));
}

/// Kills `pid` (SIGTERM, then SIGKILL 2 s later) once this process is gone, in case the
/// handle owning it is never dropped (Ctrl-C, a panic that aborts).
pub fn stop_with_this_process(pid: u32) {
    let owner = std::process::id();
    spawn_watchdog_script(format!(
        "while kill -0 {owner} 2>/dev/null; do sleep 1; done; kill -TERM {pid} 2>/dev/null; sleep 2; kill -KILL {pid} 2>/dev/null"
    ));
}

fn spawn_watchdog_script(script: String) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// `kill -SIG pid`.
pub fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}

/// A `redis-server` of our own on a free port, with nothing kept on disk unless started
/// with [`RedisServer::start_persistent`].
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    append_only: bool,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(false)
    }

    /// With an append-only file (fsynced every second) in its own directory, as the
    /// operator's persistent Redis: a restart reloads what it had.
    pub fn start_persistent() -> anyhow::Result<Self> {
        Self::start_with(true)
    }

    fn start_with(append_only: bool) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("cacheme-redis-{}", unique_suffix()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            port,
            dir,
            append_only,
            child: None,
        };
        server.spawn(append_only)?;
        Ok(server)
    }

    fn spawn(&mut self, append_only: bool) -> anyhow::Result<()> {
        let mut child = redis_server_command(self.port, &self.dir, append_only)?
            .spawn()
            .context("cannot start redis-server")?;
        wait_for_port(
            self.port,
            Duration::from_secs(10),
            &mut child,
            "redis-server",
        )?;
        spawn_watchdog(std::process::id(), child.id(), &self.dir);
        self.child = Some(child);
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .context("redis-server is not running")
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = signal(child.id(), "CONT");
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) -> anyhow::Result<()> {
        signal(self.pid()?, "STOP")
    }

    /// Undoes [`RedisServer::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        signal(self.pid()?, "CONT")
    }

    /// Starts it again on the same port after [`RedisServer::kill`] (from its append-only
    /// file, if it keeps one).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.spawn(self.append_only)
    }

    /// Kills it and starts it again from its last RDB snapshot (`SAVE`), older than its
    /// append-only file: a Redis restored from a backup. The append-only file is not
    /// switched back on: `CONFIG SET appendonly yes` does that (rewriting it from the
    /// snapshot's data).
    pub fn restart_from_snapshot(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.spawn(false)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A throwaway PostgreSQL cluster on a free port, trust auth, superuser `postgres`.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    as_root: bool,
    child: Option<Child>,
}

impl PostgresServer {
    /// `initdb` then `postgres`; as root they run as the `postgres` user, since PostgreSQL refuses root.
    pub fn start() -> anyhow::Result<Self> {
        let initdb = require_binary("initdb", "postgresql")?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("cacheme-pg-{}", unique_suffix()));
        std::fs::create_dir_all(&dir)?;
        let as_root = is_root();
        if as_root {
            let status = Command::new("chown").arg("postgres:").arg(&dir).status()?;
            anyhow::ensure!(
                status.success(),
                "cannot hand {} to the postgres user",
                dir.display()
            );
        }
        let mut server = Self {
            port,
            dir,
            as_root,
            child: None,
        };
        let output = server
            .command(&initdb)
            .arg("-D")
            .arg(server.data_dir())
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .context("cannot run initdb")?;
        anyhow::ensure!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        server.spawn()?;
        Ok(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, binary: &Path) -> Command {
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(binary);
            c
        } else {
            Command::new(binary)
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Starts `postgres` on the cluster's port and waits until it listens.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let postgres = require_binary("postgres", "postgresql")?;
        let mut child = self
            .command(&postgres)
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start postgres")?;
        let waited = wait_for_port(self.port, Duration::from_secs(30), &mut child, "postgres");
        self.child = Some(child);
        waited?;
        let postmaster = self.pid()?;
        spawn_watchdog(std::process::id(), postmaster, &self.dir);
        Ok(())
    }

    /// The postmaster's own pid (under runuser, the child we spawned is runuser, which
    /// does not pass signals on).
    pub fn pid(&self) -> anyhow::Result<u32> {
        let pid_file = self.data_dir().join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("cannot read {}", pid_file.display()))?;
        text.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .with_context(|| format!("no pid in {}", pid_file.display()))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of the `postgres` maintenance database, for creating others.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Fast shutdown (SIGINT: open transactions are rolled back, clients disconnected);
    /// SIGKILL after 10 s. The data directory is kept, for [`PostgresServer::start_again`].
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Ok(pid) = self.pid() {
            let _ = signal(pid, "INT");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait()?;
        bail!("postgres did not stop within 10 s of a fast shutdown; killed")
    }

    /// Starts the cluster again on the same port and data directory after [`PostgresServer::stop`].
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "postgres is already running");
        self.spawn()
    }

    /// [`PostgresServer::stop`] then [`PostgresServer::start_again`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.start_again()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the stores are, and the throwaway servers (if any) that must live as long as this value.
#[derive(Debug)]
pub struct Stores {
    /// A URL to a database with the right to create databases (the `postgres` database).
    pub postgres_admin_url: String,
    pub redis_url: String,
    pub started_postgres: Option<PostgresServer>,
    pub started_redis: Option<RedisServer>,
}

/// Drops `database` on the server of `admin_url` (psql, forcing out its sessions); a
/// failure is ignored, since a leftover test database is harmless.
pub fn drop_database(admin_url: &str, database: &str) {
    let _ = std::process::Command::new("psql")
        .arg(admin_url)
        .args([
            "-qc",
            &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// The database URL with its path replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (without_query, query) = match url.split_once('?') {
        Some((base, q)) => (base, Some(q)),
        None => (url, None),
    };
    let scheme_end = without_query.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match without_query[scheme_end..].find('/') {
        Some(slash) => &without_query[..scheme_end + slash],
        None => without_query,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

impl Stores {
    /// Environment first, then standard local ports, then throwaway servers.
    ///
    /// `DATABASE_URL`, when set, names the server: the database in it is replaced by
    /// `postgres` for administration, since tests create a database each.
    pub fn find_or_start() -> anyhow::Result<Self> {
        let (postgres_admin_url, started_postgres) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => (with_database(&url, "postgres"), None),
            _ if port_open(5432) => (DEFAULT_POSTGRES_ADMIN_URL.to_owned(), None),
            _ => {
                let server = PostgresServer::start()
                    .context("no PostgreSQL on 127.0.0.1:5432 and none could be started")?;
                (server.admin_url(), Some(server))
            }
        };
        let (redis_url, started_redis) = match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => (url, None),
            _ if port_open(6379) => (DEFAULT_REDIS_URL.to_owned(), None),
            _ => {
                let server = RedisServer::start()
                    .context("no Redis on 127.0.0.1:6379 and none could be started")?;
                (server.url(), Some(server))
            }
        };
        Ok(Self {
            postgres_admin_url,
            redis_url,
            started_postgres,
            started_redis,
        })
    }
}

/// Stops a child: SIGTERM, up to `grace` for it to exit, then SIGKILL; reaps it either way.
pub fn terminate(child: &mut Child, grace: Duration) {
    let _ = signal(child.id(), "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_swapped_in_urls() {
        assert_eq!(
            with_database("postgres://u:p@h:1/app", "postgres"),
            "postgres://u:p@h:1/postgres"
        );
        assert_eq!(
            with_database("postgres://h/app?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:5", "x"), "postgres://h:5/x");
    }

    #[test]
    fn own_redis_can_be_killed_and_restarted() -> anyhow::Result<()> {
        let mut server = RedisServer::start()?;
        assert!(port_open(server.port()));
        server.kill()?;
        assert!(!port_open(server.port()));
        server.restart()?;
        assert!(port_open(server.port()));
        Ok(())
    }

    #[test]
    fn throwaway_postgres_starts_and_stops() -> anyhow::Result<()> {
        let server = PostgresServer::start()?;
        let port = server.port;
        assert!(port_open(port));
        assert!(server.admin_url().ends_with(&format!(":{port}/postgres")));
        drop(server);
        assert!(!port_open(port), "postgres still listens after drop");
        Ok(())
    }

    #[test]
    fn throwaway_postgres_restarts_on_the_same_port() -> anyhow::Result<()> {
        let mut server = PostgresServer::start()?;
        let port = server.port();
        let first = server.pid()?;
        server.stop()?;
        assert!(!port_open(port), "postgres still listens after stop");
        server.start_again()?;
        assert!(port_open(port));
        assert_ne!(server.pid()?, first);
        server.restart()?;
        assert!(port_open(port));
        Ok(())
    }

    #[test]
    fn missing_binaries_name_their_debian_package() {
        let err = require_binary("surely-not-a-real-binary", "some-package").expect_err("missing");
        assert!(err.to_string().contains("apt-get install some-package"));
    }
}
