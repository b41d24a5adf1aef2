//! A real control plane on loopback: etcd, kube-apiserver (RBAC authorization, admission
//! plugins and an audit log on), kube-controller-manager, kube-scheduler and kwok's
//! controller, started by kwokctl's binary runtime from the binaries built in `tools`.
//! kwok plays the kubelet: pods on its fake node become Running and Ready.
//!
//! Dropping the handle deletes the cluster and makes sure none of its processes is left;
//! a watchdog does the same if this process dies without dropping it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{kubectl::Kubectl, tools::KubeTools};

pub const CLUSTER_NAME: &str = "cacheme-e2e";
/// The fake node kwok manages (annotation `kwok.x-k8s.io/node: fake`).
pub const NODE_NAME: &str = "kwok-node-0";

/// Every request of a ServiceAccount, at Metadata level: the scenario reads it to find
/// requests the API server refused (403 from RBAC, 422 from validation, ...).
const AUDIT_POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: [\"system:serviceaccounts\"]
  - level: None
";

/// kwokctl's settings and the Stages kwok plays for pods and nodes (kwok-stages.yaml says
/// why they are spelled out).
const KWOKCTL_CONFIG: &str = concat!(
    "apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
",
    include_str!("kwok-stages.yaml")
);

#[derive(Debug)]
pub struct ControlPlane {
    kwokctl: PathBuf,
    workdir: PathBuf,
    cluster_dir: PathBuf,
    pub kubectl: Kubectl,
    deleted: bool,
}

impl ControlPlane {
    /// Creates the cluster under `out/kwok` (deleting a leftover one of an earlier run).
    pub fn start(tools: &KubeTools, out: &Path) -> anyhow::Result<Self> {
        let workdir = out.join("kwok");
        let cluster_dir = workdir.join("clusters").join(CLUSTER_NAME);
        if cluster_dir.exists() {
            eprintln!("==> deleting the cluster an earlier run left behind");
            let mut stale = Self {
                kwokctl: tools.kwokctl.clone(),
                workdir: workdir.clone(),
                cluster_dir: cluster_dir.clone(),
                kubectl: Kubectl::new(&tools.kubectl, &cluster_dir.join("kubeconfig.yaml")),
                deleted: false,
            };
            stale.delete();
            let _ = fs::remove_dir_all(&cluster_dir);
        }
        fs::create_dir_all(&workdir)?;
        let policy = out.join("audit-policy.yaml");
        fs::write(&policy, AUDIT_POLICY)?;
        // Our own kwokctl configuration (never ~/.kwok/kwok.yaml): every component listens
        // on loopback only (kwokctl's default is 0.0.0.0).
        let config = out.join("kwokctl.yaml");
        fs::write(&config, KWOKCTL_CONFIG)?;

        let plane = Self {
            kwokctl: tools.kwokctl.clone(),
            workdir,
            kubectl: Kubectl::new(&tools.kubectl, &cluster_dir.join("kubeconfig.yaml")),
            cluster_dir,
            deleted: false,
        };
        plane.watch_this_process()?;
        let log = out.join("kwokctl-create.log");
        let started = Instant::now();
        eprintln!(
            "==> starting Kubernetes {} on loopback (kwokctl --runtime binary; log {})",
            tools.kube_version,
            log.display()
        );
        let mut create = plane.kwokctl_cmd();
        create
            .arg("--config")
            .arg(&config)
            .args([
                "create",
                "cluster",
                "--name",
                CLUSTER_NAME,
                "--runtime",
                "binary",
            ])
            .arg(format!(
                "--kube-apiserver-binary={}",
                tools.kube_apiserver.display()
            ))
            .arg(format!(
                "--kube-controller-manager-binary={}",
                tools.kube_controller_manager.display()
            ))
            .arg(format!(
                "--kube-scheduler-binary={}",
                tools.kube_scheduler.display()
            ))
            .arg(format!("--kwok-controller-binary={}", tools.kwok.display()))
            .arg(format!("--etcd-binary={}", tools.etcd.display()))
            .arg(format!("--kube-audit-policy={}", policy.display()))
            .args([
                "--secure-port=true",
                "--kube-authorization=true",
                "--kube-admission=true",
                "--wait=90s",
                "--timeout=2m",
            ])
            // Never touch the user's ~/.kube/config: kwokctl adds its context here instead.
            .arg(format!("--kubeconfig={}", plane.contexts().display()))
            // kwokctl runs this kubectl for its own calls; nothing is downloaded.
            .env("KWOK_KUBECTL_BINARY", &tools.kubectl)
            .env("KWOK_KUBE_VERSION", &tools.kube_version);
        let log_file = fs::File::create(&log)?;
        create.stdout(log_file.try_clone()?).stderr(log_file);
        let status = create.status().context("cannot start kwokctl")?;
        if !status.success() {
            bail!(
                "kwokctl create cluster failed ({status}); its output:\n{}\ncomponent logs: {}",
                tail(&log, 40),
                plane.cluster_dir.join("logs").display()
            );
        }
        plane.wait_healthy()?;
        eprintln!(
            "    control plane ready in {:.1}s (kubeconfig {})",
            started.elapsed().as_secs_f64(),
            plane.kubectl.kubeconfig().display()
        );
        Ok(plane)
    }

    /// The kubeconfig kwokctl adds (and on delete removes) its context in.
    fn contexts(&self) -> PathBuf {
        self.workdir.join("contexts.kubeconfig")
    }

    fn kwokctl_cmd(&self) -> Command {
        let mut cmd = Command::new(&self.kwokctl);
        cmd.env("KWOK_WORKDIR", &self.workdir)
            .env_remove("KUBECONFIG");
        cmd
    }

    pub fn audit_log(&self) -> PathBuf {
        self.cluster_dir.join("logs").join("audit.log")
    }

    /// Where the components' logs and the audit log are kept after the run
    /// (`target/e2e/logs`; kwokctl deletes its own copy with the cluster).
    pub fn logs_dir(&self) -> PathBuf {
        self.workdir.with_file_name("logs")
    }

    fn keep_logs(&self) {
        let kept = self.logs_dir();
        let _ = fs::remove_dir_all(&kept);
        let Ok(entries) = fs::read_dir(self.cluster_dir.join("logs")) else {
            return;
        };
        if fs::create_dir_all(&kept).is_err() {
            return;
        }
        for entry in entries.flatten() {
            let _ = fs::copy(entry.path(), kept.join(entry.file_name()));
        }
    }

    fn wait_healthy(&self) -> anyhow::Result<()> {
        Kubectl::wait_for(
            "the API server's /readyz",
            Duration::from_secs(60),
            Duration::from_millis(500),
            || {
                Ok(self
                    .kubectl
                    .run(&["get", "--raw", "/readyz"])
                    .map_err(|e| format!("{e:#}")))
            },
        )?;
        Ok(())
    }

    /// A node kwok manages, without taints, big enough for every pod of the scenario.
    pub fn add_node(&self) -> anyhow::Result<()> {
        let node = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            },
        });
        self.kubectl.apply(&node.to_string(), None)?;
        self.kubectl.run(&[
            "wait",
            "--for=condition=Ready",
            &format!("node/{NODE_NAME}"),
            "--timeout=60s",
        ])?;
        Ok(())
    }

    /// `count` PersistentVolumes without a class, so claims bind without a provisioner
    /// (kwok runs no container, so nothing is ever written to their host path).
    pub fn add_volumes(&self, count: usize) -> anyhow::Result<()> {
        for i in 0..count {
            let pv = serde_json::json!({
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": format!("e2e-pv-{i}")},
                "spec": {
                    "capacity": {"storage": "10Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "hostPath": {"path": format!("/nonexistent/cacheme-e2e/pv-{i}")},
                },
            });
            self.kubectl.apply(&pv.to_string(), None)?;
        }
        Ok(())
    }

    /// PIDs kwokctl recorded for the components.
    fn component_pids(&self) -> Vec<u32> {
        let Ok(entries) = fs::read_dir(self.cluster_dir.join("pids")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| fs::read_to_string(e.path()).ok())
            .filter_map(|text| text.trim().parse().ok())
            .collect()
    }

    /// Deletes the cluster; kills any component kwokctl left running.
    pub fn delete(&mut self) {
        if self.deleted {
            return;
        }
        self.deleted = true;
        let pids = self.component_pids();
        self.keep_logs();
        // Deleted here: this run's watchdog has nothing left to do.
        let owner_file = self.workdir.join("owner");
        if fs::read_to_string(&owner_file).is_ok_and(|o| o == std::process::id().to_string()) {
            let _ = fs::remove_file(&owner_file);
        }
        let status = self
            .kwokctl_cmd()
            .args(["delete", "cluster", "--name", CLUSTER_NAME])
            .arg(format!("--kubeconfig={}", self.contexts().display()))
            .stdin(std::process::Stdio::null())
            .output();
        match status {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "    kwokctl delete cluster failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("    cannot run kwokctl delete cluster: {e}"),
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let alive = |pid: &u32| {
            Command::new("kill")
                .args(["-0", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let mut left: Vec<u32> = pids.clone();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left.retain(alive);
        }
        for pid in &left {
            eprintln!("    component pid {pid} survived kwokctl delete: SIGKILL");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }

    /// If this process dies without dropping the handle, delete the cluster anyway.
    /// The cluster name is fixed, so the watchdog of a finished run must not delete the
    /// cluster of the next one: each run writes its pid to `owner`, and a watchdog deletes
    /// the cluster only while its own run is still recorded there.
    fn watch_this_process(&self) -> anyhow::Result<()> {
        let owner = std::process::id();
        let owner_file = self.workdir.join("owner");
        fs::write(&owner_file, owner.to_string())
            .with_context(|| format!("cannot write {}", owner_file.display()))?;
        let script = format!(
            "while kill -0 {owner} 2>/dev/null; do sleep 1; done; \
             [ \"$(cat '{}' 2>/dev/null)\" = {owner} ] || exit 0; \
             KWOK_WORKDIR='{}' '{}' delete cluster --name {CLUSTER_NAME} --kubeconfig='{}' >/dev/null 2>&1",
            owner_file.display(),
            self.workdir.display(),
            self.kwokctl.display(),
            self.contexts().display()
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        Ok(())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let started = Instant::now();
        self.delete();
        eprintln!(
            "==> control plane deleted in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
