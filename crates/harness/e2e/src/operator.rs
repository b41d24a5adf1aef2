//! The operator as a local process, authenticated as a ServiceAccount with a token from
//! the TokenRequest API, so the API server enforces the chart's RBAC on every request.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::kubectl::Kubectl;

/// How the chart runs the operator, read back from its Deployment.
#[derive(Debug, Clone)]
pub struct ChartOperator {
    pub namespace: String,
    pub service_account: String,
    /// Plain `value` env vars of the operator container (LEASE_NAME, RUST_LOG, ...).
    pub env: Vec<(String, String)>,
}

impl ChartOperator {
    /// Reads the operator Deployment of the release in `namespace`.
    pub fn read(kubectl: &Kubectl, namespace: &str) -> anyhow::Result<Self> {
        let list = kubectl.json(&[
            "get",
            "deployments",
            "--namespace",
            namespace,
            "--selector",
            "app.kubernetes.io/component=operator",
        ])?;
        let deployment = list["items"]
            .as_array()
            .and_then(|items| items.first())
            .with_context(|| format!("the chart created no operator Deployment in {namespace}"))?;
        let pod = &deployment["spec"]["template"]["spec"];
        let service_account = pod["serviceAccountName"]
            .as_str()
            .context("the operator Deployment names no serviceAccountName")?
            .to_owned();
        let env = pod["containers"][0]["env"]
            .as_array()
            .map(|vars| {
                vars.iter()
                    .filter_map(|v| {
                        Some((
                            v["name"].as_str()?.to_owned(),
                            v["value"].as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            namespace: namespace.to_owned(),
            service_account,
            env,
        })
    }
}

/// Writes a kubeconfig for `service_account` in `namespace`: the admin kubeconfig's
/// server and CA, and a fresh token from the TokenRequest API (`kubectl create token`).
pub fn service_account_kubeconfig(
    kubectl: &Kubectl,
    namespace: &str,
    service_account: &str,
    file: &Path,
) -> anyhow::Result<()> {
    let token = kubectl
        .run(&[
            "create",
            "token",
            service_account,
            "--namespace",
            namespace,
            "--duration=2h",
        ])?
        .trim()
        .to_owned();
    let admin = kubectl.json(&["config", "view", "--raw", "--minify"])?;
    let cluster = admin["clusters"][0]["cluster"].clone();
    if cluster["server"].as_str().is_none() {
        bail!("the admin kubeconfig has no server: {admin}");
    }
    let config: Value = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{
            "name": "operator",
            "context": {"cluster": "e2e", "user": service_account, "namespace": namespace},
        }],
        "current-context": "operator",
    });
    fs::write(file, serde_json::to_string_pretty(&config)?)
        .with_context(|| format!("cannot write {}", file.display()))
}

/// A running `cacheme-operator run`; SIGTERM (then SIGKILL) when dropped.
#[derive(Debug)]
pub struct OperatorProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl OperatorProcess {
    pub fn start(
        bin: &Path,
        chart: &ChartOperator,
        kubeconfig: &Path,
        identity: &str,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let port = cacheme_testsupport::free_port()?;
        let out =
            fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .envs(chart.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // What the chart takes from the pod (fieldRef) or sets for a cluster.
            .env("KUBECONFIG", kubeconfig)
            .env("LEASE_NAMESPACE", &chart.namespace)
            .env("POD_NAME", identity)
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        cacheme_testsupport::stop_with_this_process(child.id());
        eprintln!(
            "==> operator running (pid {}, log {})",
            child.id(),
            log.display()
        );
        Ok(Self {
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Fails when the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!("the operator exited ({status})");
        }
        Ok(())
    }

    /// SIGKILL: a crash, the lease is not released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, up to 10 s for a graceful stop (the lease is released), then SIGKILL.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("    the operator ignored SIGTERM for 10 s: SIGKILL");
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
