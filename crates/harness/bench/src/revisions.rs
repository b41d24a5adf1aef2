//! The other revision of `--compare`: resolved by git, exported with `git archive` and
//! built in a target directory of its own, the binary kept by commit.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use cacheme_harness::run;

use crate::common::step;

/// The commit `rev` names.
pub fn resolve(root: &Path, rev: &str) -> anyhow::Result<String> {
    let output = Command::new("git")
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
        .current_dir(root)
        .output()
        .context("cannot run git")?;
    let commit = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || commit.is_empty() {
        bail!("--compare {rev:?}: not a commit in this repository (git rev-parse found nothing)");
    }
    Ok(commit)
}

/// The other revision's release `cacheme-api`, built once per commit.
pub fn build_revision(root: &Path, out: &Path, commit: &str) -> anyhow::Result<PathBuf> {
    let base = out.join("compare");
    let cached = base.join("bin").join(format!("cacheme-api-{commit}"));
    if cached.is_file() {
        eprintln!("==> {commit}: cached binary {}", cached.display());
        return Ok(cached);
    }
    let src = base.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("cannot clear {}", src.display()))?;
    }
    std::fs::create_dir_all(&src)?;
    step(&format!("exporting {commit} to {}", src.display()));
    let archive = Command::new("sh")
        .arg("-c")
        .arg(r#"git archive --format=tar "$1" | tar -x -C "$2""#)
        .arg("sh")
        .arg(commit)
        .arg(&src)
        .current_dir(root)
        .status()
        .context("cannot run git archive")?;
    anyhow::ensure!(archive.success(), "git archive {commit} failed ({archive})");

    let target = base.join("target");
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build
        .args([
            "build",
            "--release",
            "--package",
            "cacheme-api",
            "--bin",
            "cacheme-api",
        ])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target);
    run(
        &format!("cargo build --release --package cacheme-api (at {commit}, own target dir)"),
        build,
    )?;
    std::fs::create_dir_all(base.join("bin"))?;
    std::fs::copy(target.join("release").join("cacheme-api"), &cached)
        .with_context(|| format!("cannot keep the binary as {}", cached.display()))?;
    Ok(cached)
}
