//! A throwaway PostgreSQL (`initdb` then `postgres`) on a free port, and the database
//! URL helpers.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::process::*;

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
