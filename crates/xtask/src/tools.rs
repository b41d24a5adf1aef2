//! Pinned tools the tests need that cargo does not bring: installed by the project itself
//! into `target/tools/`, from the registries this project may use (PyPI here).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

/// Python packages, pinned; the operator's tests run `kubernetes-validate` on every object.
pub const PYTHON_PACKAGES: &[&str] = &["kubernetes-validate==1.37.0"];

/// The project's Python virtual environment, created and filled when missing or outdated.
pub fn python_venv(root: &Path) -> anyhow::Result<PathBuf> {
    let venv = root.join("target").join("tools").join("venv");
    let stamp = venv.join(".cacheme-packages");
    let wanted = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|have| have == wanted) {
        return Ok(venv);
    }
    eprintln!(
        "==> installing Python tools into {}: {}",
        venv.display(),
        PYTHON_PACKAGES.join(" ")
    );
    if !venv.join("bin").join("pip").is_file() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("cannot run python3 (Debian packages python3 and python3-venv)")?;
        anyhow::ensure!(
            status.success(),
            "python3 -m venv failed: install the Debian package python3-venv"
        );
    }
    let status = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PYTHON_PACKAGES)
        .status()
        .context("cannot run pip")?;
    anyhow::ensure!(
        status.success(),
        "pip install {} failed",
        PYTHON_PACKAGES.join(" ")
    );
    std::fs::write(&stamp, wanted)?;
    Ok(venv)
}

/// `kubernetes-validate`, installed if needed.
pub fn kubernetes_validate(root: &Path) -> anyhow::Result<PathBuf> {
    let path = python_venv(root)?.join("bin").join("kubernetes-validate");
    anyhow::ensure!(
        path.is_file(),
        "{} is missing after installation",
        path.display()
    );
    Ok(path)
}
