use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, ensure};

pub(super) use cacheme_harness::files::copy_dir;

use super::{
    check_operator_manifest,
    tools::{HELPER_FILES, HELPER_PACKAGE, Tools, run_tool},
};

mod chart;
mod docker;
mod local_cluster;

type TestResult = anyhow::Result<()>;

fn root() -> PathBuf {
    cacheme_harness::workspace_root()
}

fn tools() -> anyhow::Result<Tools> {
    Tools::ensure(&root())
}

/// A fresh directory for one test.
fn scratch(name: &str) -> anyhow::Result<PathBuf> {
    let dir = root()
        .join("target")
        .join("tmp")
        .join("packaging-tests")
        .join(format!("{name}-{}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Copies `file` (relative to the repository) into `dir`, replacing `from` by `to`
/// (which must occur), and returns the copy's path.
fn broken_copy(dir: &Path, file: &str, from: &str, to: &str) -> anyhow::Result<PathBuf> {
    let text = fs::read_to_string(root().join(file))?;
    ensure!(text.contains(from), "{file} no longer contains {from:?}");
    let copy = dir.join(Path::new(file).file_name().unwrap_or_default());
    fs::write(&copy, text.replacen(from, to, 1))?;
    Ok(copy)
}

/// `result` must be an error whose text contains `needle`.
fn expect_failure(result: anyhow::Result<()>, needle: &str) -> TestResult {
    match result {
        Ok(()) => bail!("the check passed, but should have failed with {needle:?}"),
        Err(e) => {
            let text = format!("{e:#}");
            ensure!(
                text.contains(needle),
                "the check failed, but not with {needle:?}:\n{text}"
            );
            Ok(())
        }
    }
}

/// Every module of the helper package is embedded (a new one needs a line in
/// `HELPER_FILES`).
#[test]
fn every_python_helper_module_is_embedded() -> TestResult {
    let dir = root().join("crates/harness/python").join(HELPER_PACKAGE);
    let mut on_disk: Vec<String> = fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".py"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<&str> = HELPER_FILES.iter().map(|(name, _)| *name).collect();
    embedded.sort_unstable();
    ensure!(
        on_disk == embedded,
        "{} holds {on_disk:?}, HELPER_FILES embeds {embedded:?}",
        dir.display()
    );
    Ok(())
}

/// The helper package is formatted and linted with the pinned ruff, and its unit tests
/// pass.
#[test]
fn python_helper_is_formatted_linted_and_its_tests_pass() -> TestResult {
    let tools = tools()?;
    let dir = root().join("crates/harness/python");
    let ruff = tools.python.with_file_name("ruff");
    for args in [
        &["format", "--check", "--no-cache", "."][..],
        &["check", "--no-cache", "."],
    ] {
        run_tool(
            &format!("ruff {}", args.join(" ")),
            Command::new(&ruff).args(args).current_dir(&dir),
            None,
        )?;
    }
    run_tool(
        "python -m unittest (crates/harness/python/tests)",
        Command::new(&tools.python)
            .args(["-m", "unittest", "discover", "-s", "tests", "-t", "."])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(&dir),
        None,
    )?;
    Ok(())
}

#[test]
fn the_plain_operator_install_matches_the_chart_and_drift_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("operator-manifest")?);
    let chart = root().join("charts/cacheme");
    check_operator_manifest(&tools, &chart, &root().join("k8s/operator.yaml"))?;
    let copy = broken_copy(&dir, "k8s/operator.yaml", "replicas: 1", "replicas: 3")?;
    expect_failure(
        check_operator_manifest(&tools, &chart, &copy),
        "run `cargo xtask generate`",
    )
}
