//! kind's node image, made here from Go modules and Debian packages only, and kept in
//! Docker under a tag that hashes everything it is made of.
//!
//! kind's own builder (`kind build node-image --type file`) does the work; what it is fed
//! is made here: a base image from kind v0.33.0's `images/base/files` (two patches for
//! hosts like these, below) on a Debian root file system from mmdebstrap, and a
//! Kubernetes "release tarball" whose component images are made from the binaries built
//! with the control plane's recipe. Why each step is as it is:
//!
//! - kind imports only the four `kube-*.tar` archives and pulls every other image it
//!   needs, reading the first image of each `manifest.json` and comparing `docker.io/…`
//!   names. The other images (etcd, CoreDNS, pause, kindnetd, local-path) go **into
//!   `kube-proxy.tar`** with a `repositories` file first, names spelled out in full.
//! - kindnetd is on no reachable registry nor the Go proxy: `kindnetd/mini-kindnetd.sh`,
//!   under kindnetd's image name, writes the same ptp + host-local CNI configuration.
//! - The builder `docker pull`s the base image first and ignores a failure: a
//!   `localhost/…` name keeps that pull on 127.0.0.1.
//! - Hosts whose root lacks `CAP_SYS_RESOURCE` run the node unprivileged (see
//!   [`super::cluster`]): the entrypoint remounts the read-only cgroup v1 hierarchies
//!   read-write, and containerd must not try to lower `oom_score_adj`.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, bail};

use super::release::{copy_file, release_tarball};
use super::tools::{self, KIND_VERSION, NodeTools};
use crate::containers::{
    engine::{Docker, timed},
    files::{Fnv, copy_dir, hash_dir},
};
use cacheme_harness::kube_tools::{KubeTools, NodeBinaries};

/// kind's base image package list (images/base/Dockerfile), on bookworm: the node's
/// runtime libraries match the host's glibc, and bookworm is what these machines mirror.
const ROOTFS_PACKAGES: &str = "systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,\
mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,iputils-ping,\
dnsutils,netcat-openbsd";
const ROOTFS_SUITE: &str = "bookworm";

/// The node image's tag: the Kubernetes version and a hash of every input.
pub fn tag(root: &Path, kube_version: &str, planned: &NodeTools) -> anyhow::Result<String> {
    let mut hash = Fnv::default();
    let sources = root.join("crates/harness/deploy/kind");
    hash_dir(&mut hash, &sources, &sources)?;
    for part in [
        KIND_VERSION,
        kube_version,
        ROOTFS_PACKAGES,
        ROOTFS_SUITE,
        &planned.recipes(),
        // How the image is put together: this file, and the release tarball's.
        include_str!("node_image.rs"),
        include_str!("release.rs"),
    ] {
        hash.add(part.as_bytes());
    }
    // The Kubernetes and etcd binaries' recipes (version stamps, flags, pins).
    let modules = root.join("crates/harness/go-tools");
    for module in ["kubernetes", "etcd"] {
        for file in ["go.mod", "go.sum"] {
            hash.add(&fs::read(modules.join(module).join(file))?);
        }
    }
    Ok(format!(
        "localhost/cacheme-kind/node:v{kube_version}-{}",
        hash.hex()
    ))
}

/// Builds the node image `tag` (tens of minutes cold; each step says how long it took).
pub fn build(
    docker: &Docker,
    root: &Path,
    tag: &str,
    kube: &KubeTools,
    node_bins: &NodeBinaries,
    node_tools: &NodeTools,
) -> anyhow::Result<()> {
    let work = root.join("target/kind/node-build");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let rootfs = rootfs(docker)?;
    let base = base_image(docker, root, &work, &rootfs, node_tools)?;
    let release = release_tarball(docker, root, &work, &rootfs, kube, node_bins, node_tools)?;
    let mut cmd = Command::new(tools::kind()?);
    // The builder runs a --privileged container too.
    cmd.env(
        "PATH",
        super::cluster::kind_path(&root.join("target/kind"))?,
    )
    .args(["build", "node-image", "--type", "file"])
    .arg(&release)
    .args(["--base-image", &base, "--image", tag]);
    timed(&format!("kind build node-image {tag}"), cmd)?;
    let _ = fs::remove_dir_all(&work);
    // Its inputs are in the node image now, and rebuilt whenever it is.
    let mut inputs = super::release::intermediate_images(&kube.kube_version);
    inputs.push(base);
    for input in &inputs {
        let _ = docker.output(&["rmi", input]);
    }
    Ok(())
}

/// kind's package list on Debian, as an image (about 90 s cold).
pub fn rootfs(docker: &Docker) -> anyhow::Result<String> {
    debian_image(docker, "rootfs", ROOTFS_PACKAGES)
}

/// A Debian root file system with `packages` (comma-separated), as the image
/// `localhost/cacheme-kind/<name>:<suite>-<hash of the packages>`.
pub fn debian_image(docker: &Docker, name: &str, packages: &str) -> anyhow::Result<String> {
    let mut hash = Fnv::default();
    hash.add(packages.as_bytes());
    let tag = format!(
        "localhost/cacheme-kind/{name}:{ROOTFS_SUITE}-{}",
        hash.hex()
    );
    if docker.has_image(&tag) {
        return Ok(tag);
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(format!(
        "set -euo pipefail; mmdebstrap --quiet --variant=minbase --include={packages} \
         {ROOTFS_SUITE} - | docker import - {tag}"
    ));
    timed(
        &format!("mmdebstrap {ROOTFS_SUITE} ({packages}) -> {tag}"),
        cmd,
    )
    .context("cannot make a Debian root file system (apt-get install mmdebstrap)")?;
    crate::containers::disk::remove_superseded(docker, &tag);
    Ok(tag)
}

/// kind's entrypoint and containerd configuration, for a node that may run unprivileged.
pub fn patch_base_files(entrypoint: &str, containerd: &str) -> anyhow::Result<(String, String)> {
    const FIX: &str = r#"
# --- cacheme: a node without CAP_SYS_RESOURCE ------------------------------------
# Where root lacks CAP_SYS_RESOURCE, dockerd cannot start --privileged containers and
# cargo xtask kind starts the node with the explicit equivalent minus that capability;
# docker then mounts the cgroup v1 hierarchies read-only. Make them writable, as
# --privileged would have. A no-op on a privileged node.
fix_unprivileged_cgroup_mounts() {
  local m
  for m in $(findmnt -lun -o target -t cgroup,cgroup2); do
    if findmnt -lun -o options --target "$m" | grep -qE '(^|,)ro(,|$)'; then
      log_info "remounting $m read-write (unprivileged node)"
      mount -o remount,bind,rw "$m" || log_warn "failed to remount $m rw"
    fi
  done
}
# -------------------------------------------------------------------------------------
"#;
    let marker = "# run pre-init fixups";
    if !entrypoint.contains(marker) || !entrypoint.contains("\nfix_cgroup\n") {
        bail!("kind's entrypoint changed: neither `{marker}` nor `fix_cgroup` found");
    }
    let entrypoint = entrypoint
        .replacen(marker, &format!("{FIX}\n{marker}"), 1)
        .replacen(
            "\nfix_cgroup\n",
            "\nfix_unprivileged_cgroup_mounts\nfix_cgroup\n",
            1,
        );
    let from = "restrict_oom_score_adj = false";
    if !containerd.contains(from) {
        bail!("kind's containerd config changed: `{from}` not found");
    }
    let containerd = containerd.replacen(
        from,
        "restrict_oom_score_adj = true  # cacheme: without CAP_SYS_RESOURCE it cannot be lowered",
        1,
    );
    Ok((entrypoint, containerd))
}

fn base_image(
    docker: &Docker,
    root: &Path,
    work: &Path,
    rootfs: &str,
    node_tools: &NodeTools,
) -> anyhow::Result<String> {
    let context = work.join("base");
    copy_dir(&root.join("crates/harness/deploy/kind/base"), &context)?;
    let files = context.join("files");
    copy_dir(
        &cacheme_harness::go_build::module_dir("sigs.k8s.io/kind", KIND_VERSION)?
            .join("images/base/files"),
        &files,
    )?;
    let entrypoint = files.join("usr/local/bin/entrypoint");
    let containerd = files.join("etc/containerd/config.toml");
    let (e, c) = patch_base_files(
        &fs::read_to_string(&entrypoint)?,
        &fs::read_to_string(&containerd)?,
    )?;
    fs::write(&entrypoint, e)?;
    fs::write(&containerd, c)?;
    let bin = context.join("tools-bin");
    fs::create_dir_all(bin.join("cni"))?;
    for name in [
        "containerd",
        "ctr",
        "containerd-shim-runc-v2",
        "crictl",
        "runc",
    ] {
        copy_file(&node_tools.bin(name), &bin.join(name))?;
    }
    for name in ["host-local", "loopback", "ptp", "portmap"] {
        copy_file(&node_tools.bin(name), &bin.join("cni").join(name))?;
    }
    let tag = "localhost/cacheme-kind/base:offline";
    docker.build_classic(&context, tag, &[("ROOTFS", rootfs)])?;
    Ok(tag.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patches_apply_to_kinds_files_or_say_what_changed() -> anyhow::Result<()> {
        let entrypoint = "x\n# run pre-init fixups\nfix_cgroup\nfix_mount\n";
        let containerd = "[plugins]\n  restrict_oom_score_adj = false\n";
        let (e, c) = patch_base_files(entrypoint, containerd)?;
        assert!(
            e.contains("fix_unprivileged_cgroup_mounts\nfix_cgroup\n"),
            "{e}"
        );
        assert!(e.find("fix_unprivileged_cgroup_mounts() {") < e.find("# run pre-init"));
        assert!(c.contains("restrict_oom_score_adj = true"), "{c}");
        assert!(patch_base_files("no marker", containerd).is_err());
        assert!(patch_base_files(entrypoint, "nothing").is_err());
        Ok(())
    }
}
