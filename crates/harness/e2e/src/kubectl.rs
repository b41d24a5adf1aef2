//! `kubectl` and `helm` against the e2e cluster, with failures that say what was run.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The real `kubectl` built with the control plane, bound to one kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(bin: &Path, kubeconfig: &Path) -> Self {
        Self {
            bin: bin.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `kubectl args`, returning stdout; a failure carries the command and stderr.
    /// Waits until the CustomResourceDefinition `crd` is established (up to 60 s).
    pub fn wait_established(&self, crd: &str) -> anyhow::Result<()> {
        self.run(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{crd}"),
            "--timeout=60s",
        ])
        .map(drop)
    }

    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        capture(
            &format!("kubectl {}", args.join(" ")),
            self.command(args),
            None,
        )
    }

    /// `kubectl args -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.run(&all)?;
        serde_json::from_str(&text).with_context(|| format!("kubectl {}: not JSON", all.join(" ")))
    }

    /// `kubectl apply -f -` of `manifest` (YAML or JSON), in `namespace` when given.
    pub fn apply(&self, manifest: &str, namespace: Option<&str>) -> anyhow::Result<String> {
        let mut args = vec!["apply", "-f", "-"];
        if let Some(ns) = namespace {
            args.extend(["--namespace", ns]);
        }
        let mut cmd = self.command(&args);
        cmd.stdin(Stdio::piped());
        capture(
            &format!("kubectl {}", args.join(" ")),
            cmd,
            Some(manifest.as_bytes()),
        )
    }

    /// Polls `probe` every `every` until it returns `Ok(Ok(_))` or `timeout` passes; the
    /// error then carries `what` and the last reason (`Ok(Err(reason))`) `probe` gave. An
    /// `Err` from `probe` is fatal and ends the wait at once.
    pub fn wait_for<T>(
        what: &str,
        timeout: Duration,
        every: Duration,
        mut probe: impl FnMut() -> anyhow::Result<Result<T, String>>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let mut last;
        loop {
            match probe() {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(reason)) => last = reason,
                Err(e) => return Err(e.context(format!("while waiting for {what}"))),
            }
            if started.elapsed() >= timeout {
                bail!(
                    "timed out after {}s waiting for {what}; last state: {last}",
                    timeout.as_secs()
                );
            }
            std::thread::sleep(every);
        }
    }
}

/// Runs `cmd`, feeding `stdin`; returns stdout or an error naming `label` with stderr.
pub fn capture(label: &str, mut cmd: Command, stdin: Option<&[u8]>) -> anyhow::Result<String> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start: {label}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .with_context(|| format!("cannot write to: {label}"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for: {label}"))?;
    if !out.status.success() {
        bail!(
            "{label} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
