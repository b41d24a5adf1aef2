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
//!   [`super::shim`]): the entrypoint remounts the read-only cgroup v1 hierarchies
//!   read-write, and containerd must not try to lower `oom_score_adj`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::tools::{self, KIND_VERSION, NodeTools};
use crate::containers::{
    engine::{Docker, timed},
    files::{Fnv, copy_dir, hash_dir},
};
use crate::e2e::tools::{KubeTools, NodeBinaries};

/// kind's base image package list (images/base/Dockerfile), on bookworm: the node's
/// runtime libraries match the host's glibc, and bookworm is what these machines mirror.
const ROOTFS_PACKAGES: &str = "systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,\
mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,iputils-ping,\
dnsutils,netcat-openbsd";
const ROOTFS_SUITE: &str = "bookworm";

/// The images kubeadm 1.36 and kind v0.33.0 look for, besides the four control-plane
/// archives. Versions differ slightly where the proxy does not serve kind's (etcd 3.6.10
/// is tagged as the 3.6.8-0 kubeadm asks for).
const ETCD_TAG: &str = "registry.k8s.io/etcd:3.6.8-0";
const COREDNS_TAG: &str = "registry.k8s.io/coredns/coredns:v1.14.2";
const PAUSE_TAGS: [&str; 2] = ["registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10.2"];
const KINDNETD_TAG: &str = "docker.io/kindest/kindnetd:v20260820-69b56db7";
const LOCAL_PATH_TAG: &str = "docker.io/kindest/local-path-provisioner:v20260820-69b56db7";
const LOCAL_PATH_HELPER_TAG: &str = "docker.io/kindest/local-path-helper:v20260131-7181c60a";

/// The node image's tag: the Kubernetes version and a hash of every input.
pub fn tag(root: &Path, kube_version: &str, planned: &NodeTools) -> anyhow::Result<String> {
    let mut hash = Fnv::default();
    let sources = root.join("crates/xtask/kind");
    hash_dir(&mut hash, &sources, &sources)?;
    for part in [
        KIND_VERSION,
        kube_version,
        ROOTFS_PACKAGES,
        ROOTFS_SUITE,
        &planned.recipes(),
        PATCHES_VERSION,
    ] {
        hash.add(part.as_bytes());
    }
    // The Kubernetes and etcd binaries' recipes (version stamps, flags, pins).
    let modules = root.join("crates/xtask/e2e-tools");
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
    Ok(())
}

/// kind's package list on Debian, as an image (about 90 s cold).
pub fn rootfs(docker: &Docker) -> anyhow::Result<String> {
    let mut hash = Fnv::default();
    hash.add(ROOTFS_PACKAGES.as_bytes());
    let tag = format!(
        "localhost/cacheme-kind/rootfs:{ROOTFS_SUITE}-{}",
        hash.hex()
    );
    if docker.has_image(&tag) {
        return Ok(tag);
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(format!(
        "set -euo pipefail; mmdebstrap --quiet --variant=minbase --include={ROOTFS_PACKAGES} \
         {ROOTFS_SUITE} - | docker import - {tag}"
    ));
    timed(
        &format!("mmdebstrap {ROOTFS_SUITE} (kind's packages) -> {tag}"),
        cmd,
    )
    .context("cannot make the node's root file system (apt-get install mmdebstrap)")?;
    Ok(tag)
}

/// The directory of kind's module (its base-image files), downloaded when missing.
fn kind_module_dir() -> anyhow::Result<PathBuf> {
    let out = Command::new("go")
        .args(["mod", "download", "-json"])
        .arg(format!("sigs.k8s.io/kind@{KIND_VERSION}"))
        .env("GOTOOLCHAIN", "local")
        .output()
        .context("go mod download sigs.k8s.io/kind")?;
    if !out.status.success() {
        bail!(
            "go mod download sigs.k8s.io/kind@{KIND_VERSION} failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    info["Dir"]
        .as_str()
        .map(PathBuf::from)
        .context("go mod download gave no Dir")
}

/// Bumped whenever [`patch_base_files`] changes (part of the image's hash).
const PATCHES_VERSION: &str = "patches-1";

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
    copy_dir(&root.join("crates/xtask/kind/base"), &context)?;
    let files = context.join("files");
    copy_dir(&kind_module_dir()?.join("images/base/files"), &files)?;
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

fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

/// One binary on the root file system as an image.
fn binary_image(
    docker: &Docker,
    work: &Path,
    rootfs: &str,
    tag: &str,
    binaries: &[&Path],
    entrypoint: Option<&str>,
) -> anyhow::Result<()> {
    let name = tag.replace(['/', ':', '.'], "_");
    let context = work.join("images").join(name);
    fs::create_dir_all(&context)?;
    let mut dockerfile = "ARG ROOTFS\nFROM ${ROOTFS}\n".to_owned();
    for binary in binaries {
        let file = binary
            .file_name()
            .context("a binary without a name")?
            .to_string_lossy()
            .into_owned();
        copy_file(binary, &context.join(&file))?;
        dockerfile.push_str(&format!("COPY {file} /usr/local/bin/{file}\n"));
    }
    if let Some(entrypoint) = entrypoint {
        dockerfile.push_str(&format!("ENTRYPOINT [\"/usr/local/bin/{entrypoint}\"]\n"));
    }
    fs::write(context.join("Dockerfile"), dockerfile)?;
    docker.build_classic(&context, tag, &[("ROOTFS", rootfs)])
}

/// `kubernetes-server-linux-amd64.tar.gz` laid out as `kind build node-image --type file`
/// reads it.
fn release_tarball(
    docker: &Docker,
    root: &Path,
    work: &Path,
    rootfs: &str,
    kube: &KubeTools,
    node_bins: &NodeBinaries,
    node_tools: &NodeTools,
) -> anyhow::Result<PathBuf> {
    let version = format!("v{}", kube.kube_version);
    let components = [
        ("kube-apiserver", &kube.kube_apiserver),
        ("kube-controller-manager", &kube.kube_controller_manager),
        ("kube-scheduler", &kube.kube_scheduler),
        ("kube-proxy", &node_bins.kube_proxy),
    ];
    for (name, binary) in components {
        let tag = format!("registry.k8s.io/{name}:{version}");
        binary_image(docker, work, rootfs, &tag, &[binary.as_path()], None)?;
    }
    binary_image(docker, work, rootfs, ETCD_TAG, &[kube.etcd.as_path()], None)?;
    let coredns = node_tools.bin("coredns");
    binary_image(
        docker,
        work,
        rootfs,
        COREDNS_TAG,
        &[&coredns],
        Some("coredns"),
    )?;
    let kindnetd = root.join("crates/xtask/kind/kindnetd/mini-kindnetd.sh");
    binary_image(
        docker,
        work,
        rootfs,
        KINDNETD_TAG,
        &[&kindnetd],
        Some("mini-kindnetd.sh"),
    )?;
    let local_path = node_tools.bin("local-path-provisioner");
    binary_image(
        docker,
        work,
        rootfs,
        LOCAL_PATH_TAG,
        &[&local_path],
        Some("local-path-provisioner"),
    )?;
    // The helper needs only sh, mkdir and rm.
    docker.output(&["tag", rootfs, LOCAL_PATH_HELPER_TAG])?;
    let pause = work.join("pause");
    copy_dir(&root.join("crates/xtask/kind/pause"), &pause)?;
    copy_file(&node_tools.bin("pause"), &pause.join("pause"))?;
    docker.build_classic(&pause, PAUSE_TAGS[0], &[])?;
    docker.output(&["tag", PAUSE_TAGS[0], PAUSE_TAGS[1]])?;

    let tree = work.join("tarball/kubernetes");
    let bin = tree.join("server/bin");
    fs::create_dir_all(&bin)?;
    fs::write(tree.join("version"), format!("{version}\n"))?;
    copy_file(&node_bins.kubeadm, &bin.join("kubeadm"))?;
    copy_file(&node_bins.kubelet, &bin.join("kubelet"))?;
    copy_file(&kube.kubectl, &bin.join("kubectl"))?;
    for name in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let archive = bin.join(format!("{name}.tar"));
        docker.output(&[
            "save",
            "-o",
            &archive.display().to_string(),
            &format!("registry.k8s.io/{name}:{version}"),
        ])?;
        fs::write(
            bin.join(format!("{name}.docker_tag")),
            format!("{version}\n"),
        )?;
    }
    let proxy_tag = format!("registry.k8s.io/kube-proxy:{version}");
    let mut extra = vec![
        proxy_tag.as_str(),
        ETCD_TAG,
        COREDNS_TAG,
        KINDNETD_TAG,
        LOCAL_PATH_TAG,
        LOCAL_PATH_HELPER_TAG,
    ];
    extra.extend(PAUSE_TAGS);
    let unpacked = work.join("kube-proxy-archive");
    fs::create_dir_all(&unpacked)?;
    let archive = unpacked.join("saved.tar");
    let mut save = vec!["save", "-o"];
    let archive_arg = archive.display().to_string();
    save.push(&archive_arg);
    save.extend(extra);
    docker.output(&save)?;
    run_tar(&["-C", &unpacked.display().to_string(), "-xf", &archive_arg])?;
    fs::remove_file(&archive)?;
    let repositories = unpacked.join("repositories");
    let text = fs::read_to_string(&repositories)?;
    fs::write(&repositories, qualified_repositories(&text)?)?;
    // `repositories` first: kind reads whichever of it and manifest.json comes first.
    let mut members = vec!["repositories".to_owned()];
    for entry in fs::read_dir(&unpacked)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "repositories" {
            members.push(name);
        }
    }
    let mut args = vec![
        "-C".to_owned(),
        unpacked.display().to_string(),
        "-cf".to_owned(),
        bin.join("kube-proxy.tar").display().to_string(),
    ];
    args.extend(members);
    run_tar(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    fs::remove_dir_all(&unpacked)?;
    fs::write(bin.join("kube-proxy.docker_tag"), format!("{version}\n"))?;
    let tarball = work.join("kubernetes-server-linux-amd64.tar.gz");
    run_tar(&[
        "-C",
        &work.join("tarball").display().to_string(),
        "-I",
        "gzip -1",
        "-cf",
        &tarball.display().to_string(),
        "kubernetes",
    ])?;
    Ok(tarball)
}

fn run_tar(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("tar")
        .args(args)
        .status()
        .context("cannot start tar")?;
    if !status.success() {
        bail!("tar {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Docker writes Docker Hub names short (`kindest/kindnetd`); kind compares them with
/// `docker.io/kindest/kindnetd`: spell every repository out.
pub fn qualified_repositories(text: &str) -> anyhow::Result<String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).context("docker save wrote an unreadable `repositories`")?;
    let qualified: serde_json::Map<String, serde_json::Value> = map
        .into_iter()
        .map(|(name, tags)| {
            let first = name.split('/').next().unwrap_or_default();
            let has_registry = name.contains('/')
                && (first.contains('.') || first.contains(':') || first == "localhost");
            let name = if has_registry {
                name
            } else if name.contains('/') {
                format!("docker.io/{name}")
            } else {
                format!("docker.io/library/{name}")
            };
            (name, tags)
        })
        .collect();
    Ok(serde_json::to_string(&qualified)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_spelled_out_in_full() -> anyhow::Result<()> {
        let text = r#"{"kindest/kindnetd":{"v1":"a"},"registry.k8s.io/pause":{"3.10":"b"},"busybox":{"1":"c"}}"#;
        let out: serde_json::Value = serde_json::from_str(&qualified_repositories(text)?)?;
        assert!(out.get("docker.io/kindest/kindnetd").is_some(), "{out}");
        assert!(out.get("registry.k8s.io/pause").is_some(), "{out}");
        assert!(out.get("docker.io/library/busybox").is_some(), "{out}");
        assert_eq!(out.as_object().map(|o| o.len()), Some(3));
        Ok(())
    }

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
