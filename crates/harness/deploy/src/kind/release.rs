//! The Kubernetes "release tarball" kind's node-image builder reads
//! (`kind build node-image --type file`), made from locally built binaries.
//!
//! kind imports only the four `kube-*.tar` archives and pulls every other image it needs,
//! reading the first image of each `manifest.json` and comparing `docker.io/…` names. The
//! other images (etcd, CoreDNS, pause, kindnetd, local-path) therefore go **into
//! `kube-proxy.tar`**, with a `repositories` file first and every name spelled out.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::tools::NodeTools;
use crate::containers::{engine::Docker, files::copy_dir};
use cacheme_harness::kube_tools::{KubeTools, NodeBinaries};

/// The images kubeadm 1.36 and kind v0.33.0 look for, besides the four control-plane
/// archives. Versions differ slightly where the proxy does not serve kind's (etcd 3.6.10
/// is tagged as the 3.6.8-0 kubeadm asks for).
const ETCD_TAG: &str = "registry.k8s.io/etcd:3.6.8-0";
const COREDNS_TAG: &str = "registry.k8s.io/coredns/coredns:v1.14.2";
const PAUSE_TAGS: [&str; 2] = ["registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10.2"];
const KINDNETD_TAG: &str = "docker.io/kindest/kindnetd:v20260820-69b56db7";
const LOCAL_PATH_TAG: &str = "docker.io/kindest/local-path-provisioner:v20260820-69b56db7";
const LOCAL_PATH_HELPER_TAG: &str = "docker.io/kindest/local-path-helper:v20260131-7181c60a";

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

/// Every image the tarball is made of, by tag: inside the node image once it is built,
/// so Docker need not keep them (about 3 GB).
pub fn intermediate_images(kube_version: &str) -> Vec<String> {
    let mut tags: Vec<String> = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ]
    .iter()
    .map(|name| format!("registry.k8s.io/{name}:v{kube_version}"))
    .collect();
    tags.extend(
        [
            ETCD_TAG,
            COREDNS_TAG,
            KINDNETD_TAG,
            LOCAL_PATH_TAG,
            LOCAL_PATH_HELPER_TAG,
        ]
        .map(String::from),
    );
    tags.extend(PAUSE_TAGS.map(String::from));
    tags
}

/// `kubernetes-server-linux-amd64.tar.gz` laid out as `kind build node-image --type file`
/// reads it.
pub fn release_tarball(
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
    let kindnetd = root.join("crates/harness/deploy/kind/kindnetd/mini-kindnetd.sh");
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
    copy_dir(&root.join("crates/harness/deploy/kind/pause"), &pause)?;
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

pub(super) fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intermediate_images_are_the_tarballs_and_nothing_of_ours() {
        let tags = intermediate_images("1.36.1");
        assert!(tags.contains(&"registry.k8s.io/kube-proxy:v1.36.1".to_owned()));
        assert!(tags.iter().any(|t| t.starts_with("registry.k8s.io/pause:")));
        assert_eq!(tags.len(), 11);
        assert!(tags.iter().all(|t| !t.starts_with("localhost/")));
    }

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
}
