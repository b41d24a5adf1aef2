//! `go` as the tool builds use it: the local toolchain only (never one fetched behind our
//! back), cgo off unless asked, progress every 30 s, and the likely cause when it fails.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Oldest Go that builds every module here (their go.mod files say `go 1.26.0`).
pub const GO_MINOR_NEEDED: u32 = 26;

/// `go` on the PATH, new enough, never fetching another toolchain behind our back.
pub fn check_go() -> anyhow::Result<()> {
    let out = Command::new("go")
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output()
        .context("`go` is not on the PATH: install Go 1.26 or newer (https://go.dev/dl)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let minor = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("go1."))
        .and_then(|rest| rest.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if m >= GO_MINOR_NEEDED => Ok(()),
        _ => bail!(
            "Go 1.{GO_MINOR_NEEDED} or newer is needed to build the control plane, found {:?}",
            text.trim()
        ),
    }
}

/// Runs `go <args>` in `cwd` (never another toolchain, cgo off unless `env` says), its
/// output into `log`, saying every 30 s that it still runs; on failure, the log's tail and
/// the likely cause. The log is removed when it succeeds.
pub fn run_go(
    what: &str,
    cwd: &Path,
    args: &[String],
    env: &[(&str, &str)],
    log: &Path,
) -> anyhow::Result<()> {
    let command = format!("cd {} && go {}", cwd.display(), args.join(" "));
    let started = Instant::now();
    let log_file =
        fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut child = Command::new("go");
    child
        .args(args)
        .current_dir(cwd)
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0");
    for (key, value) in env {
        child.env(key, value);
    }
    let mut child = child
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start: {command}"))?;
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let name = what.to_owned();
    let ticker = std::thread::spawn(move || {
        while done_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            eprintln!(
                "    ... still building {name} ({}s)",
                started.elapsed().as_secs()
            );
        }
    });
    let status = child.wait();
    let _ = done_tx.send(());
    let _ = ticker.join();
    let status = status.with_context(|| format!("waiting for: {command}"))?;
    if !status.success() {
        let output = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = output.lines().rev().take(40).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        let cause = if output.contains("404 Not Found") || output.contains("410 Gone") {
            "a module is not served by the Go module proxy"
        } else if output.contains("dial tcp") || output.contains("i/o timeout") {
            "the Go module proxy cannot be reached"
        } else {
            "build error"
        };
        bail!(
            "building {what} failed ({status}, {cause}) after {}s\n  command: {command}\n  log: {}\n{tail}",
            started.elapsed().as_secs(),
            log.display()
        );
    }
    let _ = fs::remove_file(log);
    Ok(())
}

/// The folder of `module@version` in Go's module cache, downloaded when missing.
pub fn module_dir(module: &str, version: &str) -> anyhow::Result<std::path::PathBuf> {
    check_go()?;
    let out = Command::new("go")
        .args(["mod", "download", "-json"])
        .arg(format!("{module}@{version}"))
        .env("GOTOOLCHAIN", "local")
        .output()
        .with_context(|| format!("cannot start go mod download {module}@{version}"))?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    if !out.status.success() || info["Dir"].as_str().is_none() {
        bail!(
            "go mod download {module}@{version} failed ({}): {} {}",
            out.status,
            info["Error"].as_str().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(std::path::PathBuf::from(
        info["Dir"].as_str().unwrap_or_default(),
    ))
}
