//! One kind cluster: created from the node image, deleted when dropped.
//!
//! On hosts whose root lacks `CAP_SYS_RESOURCE` in its capability bounding set (these
//! machines: `CapBnd 0x1fffeffffff`), dockerd 20.10 gives a `--privileged` container every
//! capability it knows and runc fails with `unable to apply caps: operation not
//! permitted`. kind always starts its nodes `--privileged`, so then kind runs with a
//! `docker` shim first in its `PATH` that turns `--privileged` into its explicit
//! equivalent minus that capability. Elsewhere kind runs unchanged.

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::containers::engine::timed;

/// `k8s/kind-config.yaml` with each `hostPort: <from>` replaced by `hostPort: <to>`
/// (free ports, so a run never needs 80 and 443, nor collides with another).
pub fn config(text: &str, host_ports: &[(u16, u16)]) -> anyhow::Result<String> {
    let mut out = text.to_owned();
    for (from, to) in host_ports {
        let needle = format!("hostPort: {from}\n");
        if !out.contains(&needle) {
            bail!("k8s/kind-config.yaml maps no hostPort {from}");
        }
        out = out.replace(&needle, &format!("hostPort: {to}\n"));
    }
    Ok(out)
}

/// Whether this process's capability bounding set lacks `CAP_SYS_RESOURCE` (24).
pub fn lacks_sys_resource(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) == 0)
}

const SHIM: &str = r#"#!/bin/bash
# Written by cargo xtask kind (crates/harness/deploy/src/kind/cluster.rs): kind's `docker` on a host
# whose root lacks CAP_SYS_RESOURCE. `run/create --privileged` becomes its explicit
# equivalent minus that capability; `exec --privileged` a plain exec (it inherits the
# container's capabilities). Everything else goes to the real docker unchanged.
REAL=@REAL@
PRIV=()
for c in CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP \
  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER \
  SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_TIME \
  SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG \
  WAKE_ALARM BLOCK_SUSPEND AUDIT_READ; do PRIV+=("--cap-add=$c"); done
PRIV+=(--security-opt seccomp=unconfined --security-opt apparmor=unconfined
       --security-opt systempaths=unconfined "--device-cgroup-rule=a *:* rwm")
[ -e /dev/kmsg ] && PRIV+=(--device /dev/kmsg)   # the kubelet's OOM watcher reads it
case "${1:-}" in
  run|create)
    args=(); for a in "$@"; do
      if [ "$a" = "--privileged" ]; then args+=("${PRIV[@]}"); else args+=("$a"); fi
    done
    exec "$REAL" "${args[@]}" ;;
  exec)
    args=(); for a in "$@"; do [ "$a" = "--privileged" ] || args+=("$a"); done
    exec "$REAL" "${args[@]}" ;;
  *) exec "$REAL" "$@" ;;
esac
"#;

/// The `PATH` kind runs with: the shim's folder first when this host needs it.
pub fn kind_path(work: &Path) -> anyhow::Result<OsString> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !lacks_sys_resource(&status) {
        return Ok(path);
    }
    let real = std::env::split_paths(&path)
        .map(|dir| dir.join("docker"))
        .find(|p| p.is_file())
        .context("no docker on the PATH")?;
    let dir = work.join("shim");
    fs::create_dir_all(&dir)?;
    let shim = dir.join("docker");
    fs::write(
        &shim,
        SHIM.replace("@REAL@", &format!("'{}'", real.display())),
    )?;
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&shim, fs::Permissions::from_mode(0o755))?;
    let mut dirs = vec![dir];
    dirs.extend(std::env::split_paths(&path));
    Ok(std::env::join_paths(dirs)?)
}

/// A running cluster and how to reach it.
#[derive(Debug)]
pub struct Cluster {
    pub name: String,
    pub kubeconfig: PathBuf,
    kind: PathBuf,
    kubectl: PathBuf,
    path: OsString,
    keep: bool,
}

impl Cluster {
    /// `kind create cluster` (the node Ready, or the error with kind's output).
    pub fn create(
        kind: &Path,
        kubectl: &Path,
        work: &Path,
        name: &str,
        node_image: &str,
        config_text: &str,
        keep: bool,
    ) -> anyhow::Result<Self> {
        fs::create_dir_all(work)?;
        let path = kind_path(work)?;
        let config = work.join("kind-config.yaml");
        fs::write(&config, config_text)?;
        let kubeconfig = work.join("kubeconfig");
        let cluster = Self {
            name: name.to_owned(),
            kubeconfig,
            kind: kind.to_path_buf(),
            kubectl: kubectl.to_path_buf(),
            path,
            keep,
        };
        // A cluster of this name left by an interrupted run of ours (its work folder holds
        // a kubeconfig) goes first; anyone else's is left alone.
        let existing = cluster
            .kind_cmd()
            .args(["get", "clusters"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == name)
            })
            .unwrap_or(false);
        if existing {
            if !cluster.kubeconfig.is_file() {
                bail!(
                    "a kind cluster named {name} exists and was not made by cargo xtask kind: \
                     choose another --name, or delete it with: kind delete cluster --name {name}"
                );
            }
            eprintln!("==> deleting the cluster {name} a previous run left");
            let _ = cluster
                .kind_cmd()
                .args(["delete", "cluster", "--name", name])
                .stdout(Stdio::null())
                .status();
        }
        let mut create = cluster.kind_cmd();
        create
            .args(["create", "cluster", "--name", name, "--image", node_image])
            .arg("--config")
            .arg(&config)
            .args(["--wait", "5m"]);
        timed(&format!("kind create cluster --name {name}"), create)?;
        Ok(cluster)
    }

    fn kind_cmd(&self) -> Command {
        let mut cmd = Command::new(&self.kind);
        cmd.env("PATH", &self.path)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null());
        cmd
    }

    /// `kind load docker-image` of images already in Docker.
    pub fn load(&self, images: &[&str]) -> anyhow::Result<()> {
        let mut cmd = self.kind_cmd();
        cmd.args(["load", "docker-image", "--name", &self.name])
            .args(images);
        timed(&format!("kind load docker-image {}", images.join(" ")), cmd)
    }

    /// `kubectl` against this cluster.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig).stdin(Stdio::null());
        cmd
    }

    /// `kubectl <args>`'s stdout, or an error with its stderr.
    pub fn kubectl_output(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .kubectl()
            .args(args)
            .output()
            .context("cannot start kubectl")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl <args>` until it succeeds, or the last error after `timeout`.
    pub fn kubectl_until(&self, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let started = Instant::now();
        loop {
            match self.kubectl_output(args) {
                Ok(out) => return Ok(out),
                Err(e) if started.elapsed() > timeout => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_secs(2)),
            }
        }
    }

    /// Waits until `kubectl <args>` fails (the object is gone); after `timeout`, fails
    /// with "`outlived` by N s".
    pub fn wait_gone(
        &self,
        args: &[&str],
        timeout: Duration,
        outlived: &str,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        while self.kubectl_output(args).is_ok() {
            anyhow::ensure!(
                started.elapsed() < timeout,
                "{outlived} by {} s",
                timeout.as_secs()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(())
    }

    /// What a failed run needs to be understood: every pod, the events, the node's state.
    pub fn dump(&self) {
        for args in [
            &["get", "pods", "-A", "-o", "wide"][..],
            &["get", "events", "-A", "--sort-by=.lastTimestamp"][..],
            &["get", "cachemes", "-A", "-o", "yaml"][..],
        ] {
            match self.kubectl_output(args) {
                Ok(out) => eprintln!("--- kubectl {}\n{out}", args.join(" ")),
                Err(e) => eprintln!("--- {e}"),
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "==> kept the cluster {} (KUBECONFIG={}); remove it with: kind delete cluster --name {}",
                self.name,
                self.kubeconfig.display(),
                self.name
            );
            return;
        }
        let deleted = self
            .kind_cmd()
            .args(["delete", "cluster", "--name", &self.name])
            .status()
            .is_ok_and(|s| s.success());
        if deleted && let Some(work) = self.kubeconfig.parent() {
            let _ = fs::remove_dir_all(work);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounding_set_is_read_for_cap_sys_resource() {
        // These machines: every capability but 24.
        assert!(lacks_sys_resource("Name:\tx\nCapBnd:\t000001fffeffffff\n"));
        assert!(!lacks_sys_resource("CapBnd:\t000001ffffffffff\n"));
        // Unreadable: assume a normal host.
        assert!(!lacks_sys_resource("nothing here"));
    }

    #[test]
    fn the_users_config_is_used_with_free_host_ports_on_loopback() -> anyhow::Result<()> {
        let file =
            fs::read_to_string(cacheme_harness::workspace_root().join("k8s/kind-config.yaml"))?;
        let text = config(&file, &[(80, 18080), (443, 18443)])?;
        assert!(text.contains("failCgroupV1: false"), "{text}");
        assert!(text.contains("hostPort: 18080\n") && text.contains("hostPort: 18443\n"));
        assert!(!text.contains("hostPort: 80\n") && !text.contains("hostPort: 443\n"));
        assert_eq!(
            text.matches("hostPort:").count(),
            text.matches("listenAddress: \"127.0.0.1\"").count()
        );
        assert!(config(&file, &[(8080, 1)]).is_err());
        Ok(())
    }
}
