//! What the suite's cluster gets besides the chart and the front door, so that two things
//! the chart makes are enforced and acted on as they would be on a real cluster:
//!
//! - kube-router's NetworkPolicy controller (`crates/harness/deploy/kind/addons/kube-router.yaml`):
//!   the node's minimal CNI enforces no policy, and kindnetd's engine needs the nftables
//!   `queue` rule this kernel lacks (`nft add rule inet t c queue num 100 bypass` → `No
//!   such file or directory`). kube-router's is iptables and ipset, both in this kernel.
//! - metrics-server (`crates/harness/deploy/kind/addons/metrics-server.yaml`), so the API's
//!   HorizontalPodAutoscaler has CPU figures.
//!
//! Both are built from their Go modules and put on Debian root file systems; their
//! manifests name a placeholder image, replaced with the local tag.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;

use super::{cluster::Cluster, node_image, tools};
use crate::containers::{disk, engine::Docker, files::Fnv};
use cacheme_harness::go_build::module_dir;

#[derive(Debug, Clone)]
pub struct AddonImages {
    pub kube_router: String,
    pub metrics_server: String,
}

impl AddonImages {
    pub fn all(&self) -> [&str; 2] {
        [&self.kube_router, &self.metrics_server]
    }
}

/// Both add-ons' images, built when their inputs changed (cold: the two Go builds).
pub fn images(docker: &Docker, root: &Path) -> anyhow::Result<AddonImages> {
    let bin = tools::addons()?;
    let (module, version) = tools::KUBE_ROUTER_MODULE;
    // Upstream's image picks iptables' legacy or nft backend the way the kubelet did.
    let wrapper =
        module_dir(module, version)?.join("build/image-assets/iptables-wrapper-installer.sh");
    let netpol_base = node_image::debian_image(docker, "netpol-base", "iptables,ipset")?;
    let kube_router = binary_image(
        docker,
        root,
        "kube-router",
        &netpol_base,
        &[bin.join("kube-router"), wrapper],
        "RUN sh /usr/local/bin/iptables-wrapper-installer.sh --no-sanity-check\n\
         ENTRYPOINT [\"/usr/local/bin/kube-router\"]\n",
    )?;
    // A static Go binary: kind's root file system (the load client's) serves as its base.
    let client = node_image::rootfs(docker)?;
    let metrics_server = binary_image(
        docker,
        root,
        "metrics-server",
        &client,
        &[bin.join("metrics-server")],
        "USER 1000:1000\nENTRYPOINT [\"/usr/local/bin/metrics-server\"]\n",
    )?;
    Ok(AddonImages {
        kube_router,
        metrics_server,
    })
}

/// `files` copied into `/usr/local/bin/` of `base`, then `tail`, as
/// `localhost/cacheme-kind/<name>:<hash of it all>`.
fn binary_image(
    docker: &Docker,
    root: &Path,
    name: &str,
    base: &str,
    files: &[PathBuf],
    tail: &str,
) -> anyhow::Result<String> {
    let mut dockerfile = "ARG BASE\nFROM ${BASE}\n".to_owned();
    let mut hash = Fnv::default();
    hash.add(base.as_bytes());
    for file in files {
        let file_name = file
            .file_name()
            .with_context(|| format!("{} has no file name", file.display()))?
            .to_string_lossy()
            .into_owned();
        dockerfile.push_str(&format!("COPY {file_name} /usr/local/bin/{file_name}\n"));
        hash.add(file_name.as_bytes());
        hash.add(&fs::read(file).with_context(|| format!("cannot read {}", file.display()))?);
    }
    dockerfile.push_str(tail);
    hash.add(dockerfile.as_bytes());
    let tag = format!("localhost/cacheme-kind/{name}:{}", hash.hex());
    if docker.has_image(&tag) {
        return Ok(tag);
    }
    let context = root.join("target/kind/images").join(name);
    let _ = fs::remove_dir_all(&context);
    fs::create_dir_all(&context)?;
    for file in files {
        if let Some(file_name) = file.file_name() {
            fs::copy(file, context.join(file_name))?;
        }
    }
    fs::write(context.join("Dockerfile"), dockerfile)?;
    docker.build_classic(&context, &tag, &[("BASE", base)])?;
    disk::remove_superseded(docker, &tag);
    Ok(tag)
}

/// `manifest` with its placeholder image replaced; fails when the placeholder is missing
/// (the file and this code went apart).
pub fn render(manifest: &str, placeholder: &str, image: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        manifest.contains(&format!("image: {placeholder}")),
        "the manifest names no image {placeholder}"
    );
    Ok(manifest.replace(placeholder, image))
}

/// Applies both manifests and waits until kube-router runs on every node and the metrics
/// API is served.
pub fn install(cluster: &Cluster, root: &Path, images: &AddonImages) -> anyhow::Result<()> {
    let sources = root.join("crates/harness/deploy/kind/addons");
    let rendered = root.join("target/kind/addons");
    fs::create_dir_all(&rendered)?;
    for (file, placeholder, image) in [
        ("kube-router.yaml", "KUBE_ROUTER_IMAGE", &images.kube_router),
        (
            "metrics-server.yaml",
            "METRICS_SERVER_IMAGE",
            &images.metrics_server,
        ),
    ] {
        let text = fs::read_to_string(sources.join(file))
            .with_context(|| format!("cannot read crates/harness/deploy/kind/addons/{file}"))?;
        let out = rendered.join(file);
        fs::write(&out, render(&text, placeholder, image)?)?;
        cluster.kubectl_output(&["apply", "-f", &out.display().to_string()])?;
    }
    cluster.kubectl_output(&[
        "-n",
        "kube-system",
        "rollout",
        "status",
        "daemonset/kube-router",
        "--timeout=120s",
    ])?;
    cluster.kubectl_output(&[
        "wait",
        "--for=condition=Available",
        "apiservice/v1beta1.metrics.k8s.io",
        "--timeout=180s",
    ])?;
    // The first figures come one scrape (15 s) after the API is served.
    cluster
        .kubectl_until(&["top", "nodes", "--no-headers"], Duration::from_secs(120))
        .context("metrics-server serves no node figures (kubectl top nodes)")?;
    eprintln!("    kube-router enforces NetworkPolicies; metrics-server serves CPU figures");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_becomes_the_image_and_a_missing_one_is_an_error() {
        let text = "containers:\n  - image: KUBE_ROUTER_IMAGE\n";
        assert_eq!(
            render(text, "KUBE_ROUTER_IMAGE", "localhost/k:1").expect("rendered"),
            "containers:\n  - image: localhost/k:1\n"
        );
        assert!(render(text, "METRICS_SERVER_IMAGE", "x").is_err());
    }

    #[test]
    fn the_checked_in_manifests_name_their_placeholders() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kind/addons");
        for (file, placeholder) in [
            ("kube-router.yaml", "KUBE_ROUTER_IMAGE"),
            ("metrics-server.yaml", "METRICS_SERVER_IMAGE"),
        ] {
            let text = fs::read_to_string(dir.join(file)).expect("the manifest is checked in");
            assert!(render(&text, placeholder, "x").is_ok(), "{file}");
        }
    }
}
