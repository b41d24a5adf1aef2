//! A `redis-server` of our own on a free port.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use crate::process::*;

/// `redis-server` on `port` (loopback only, files in `dir`), quiet; nothing persisted
/// unless `append_only` (then an append-only file, fsynced every second, as the operator's
/// persistent Redis); callers add their own options before spawning it.
pub(crate) fn redis_server_command(
    port: u16,
    dir: &Path,
    append_only: bool,
) -> anyhow::Result<Command> {
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
