//! What every CacheMe harness shares: running processes, the prerequisites check, the
//! stores (PostgreSQL and Redis found or started), the Go-built Kubernetes tools, content
//! hashes of inputs, the page's npm steps, one blocking HTTP client and the environment
//! the harnesses start `cacheme-api` with.
//!
//! `cargo xtask` (crates/xtask) is a dispatcher over the harness crates beside this one;
//! each harness is a binary of its own, built only when its task runs.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::Stores;

pub mod api_env;
pub mod files;
pub mod frontend;
pub mod go_build;
pub mod http;
pub mod kube_tools;
pub mod prereqs;

/// The repository's root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `cargo`, as the one running us, in the workspace's root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs `cmd`, echoing it first, and fails loudly when it fails.
pub fn run(step: &str, mut cmd: Command) -> anyhow::Result<()> {
    eprintln!("==> {step}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start: {step}"))?;
    if !status.success() {
        bail!("step failed ({status}): {step}");
    }
    Ok(())
}

/// The virtual environment of the pinned Python tools (target/tools/venv).
pub fn venv_dir(root: &Path) -> PathBuf {
    root.join("target").join("tools").join("venv")
}

/// PostgreSQL and Redis: `DATABASE_URL`/`REDIS_URL` when set, the standard local ports
/// when something answers there, else throwaway servers on free ports. Says which.
pub fn find_stores() -> anyhow::Result<Stores> {
    let stores = Stores::find_or_start()?;
    let origin = |started: bool| {
        if started {
            "started on a free port"
        } else {
            "found"
        }
    };
    eprintln!(
        "==> PostgreSQL: {} ({})\n==> Redis: {} ({})",
        stores.postgres_admin_url,
        origin(stores.started_postgres.is_some()),
        stores.redis_url,
        origin(stores.started_redis.is_some()),
    );
    Ok(stores)
}

/// A harness binary's exit: the error, with its causes, after the task's name.
pub fn exit(task: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{task}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
