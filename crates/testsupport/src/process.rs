//! Ports, binaries, signals and the watchdog that stops a throwaway server when the
//! process that started it dies without dropping its handle.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

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

pub(crate) fn wait_for_port(
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

pub(crate) fn unique_suffix() -> String {
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

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Stops `pid` (and removes `dir`) once process `owner` is gone, in case nobody drops the handle.
pub(crate) fn spawn_watchdog(owner: u32, pid: u32, dir: &Path) {
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

pub(crate) fn spawn_watchdog_script(script: String) {
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
