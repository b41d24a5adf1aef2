//! The front door on kind: the Gateway API's CRDs and Traefik (`k8s/traefik.yaml`), Traefik
//! built from its Go module when no registry serves its image.
//!
//! Traefik v3.6.12 is the newest release the Go module proxy can build (v3.7 needs a
//! nested module the proxy does not have); it cannot be `go install`ed (its go.mod has
//! `replace` lines), so `crates/harness/go-tools/traefik/` is a wrapper module with the
//! same replaces, built like the control plane. It implements Gateway API v1.4.0, whose
//! standard CRDs come from the module `sigs.k8s.io/gateway-api` (config/crd/standard).
//! Without any of them, Traefik's Gateway provider waits for ever and serves nothing.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use super::cluster::Cluster;
use crate::containers::{engine::Docker, files::Fnv};
use cacheme_harness::go_build::{check_go, module_dir, run_go};
use cacheme_harness::kube_tools::{cache_root, pinned_version};

/// The Gateway API release Traefik's pinned version implements (its go.mod's pin).
pub const GATEWAY_API_VERSION: &str = "v1.4.0";
const TRAEFIK_MODULE: &str = "github.com/traefik/traefik/v3";
/// The image k8s/traefik.yaml names; replaced by the local build when no registry answers.
pub const TRAEFIK_UPSTREAM_IMAGE: &str = "docker.io/library/traefik:v3.6.12";

fn module_dir_of_wrapper(root: &Path) -> PathBuf {
    root.join("crates/harness/go-tools/traefik")
}

/// Traefik's binary, built from the wrapper module when missing (cold: about 10 minutes).
pub fn traefik_binary(root: &Path) -> anyhow::Result<PathBuf> {
    let module = module_dir_of_wrapper(root);
    let version = pinned_version(&module.join("go.mod"), TRAEFIK_MODULE)?;
    let dir = cache_root()?.join(format!("traefik-{version}"));
    fs::create_dir_all(&dir)?;
    let target = dir.join("traefik");
    let partial = dir.join("traefik.partial");
    let args: Vec<String> = [
        "build",
        "-trimpath",
        "-ldflags=-s -w",
        "-o",
        &partial.display().to_string(),
        "github.com/traefik/traefik/v3/cmd/traefik",
    ]
    .map(String::from)
    .to_vec();
    let mut stamp_text = format!("go {}\n", args.join(" "));
    for file in ["go.mod", "go.sum"] {
        let mut hash = Fnv::default();
        hash.add(&fs::read(module.join(file))?);
        stamp_text.push_str(&format!("{file} {}\n", hash.hex()));
    }
    let stamp = dir.join("traefik.recipe");
    if target.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == stamp_text) {
        return Ok(target);
    }
    check_go()?;
    eprintln!("==> building Traefik {version} from its Go module (cold: about 10 minutes)");
    let started = std::time::Instant::now();
    run_go(
        "traefik",
        &module,
        &args,
        &[],
        &dir.join("traefik.build.log"),
    )?;
    fs::rename(&partial, &target)?;
    fs::write(&stamp, stamp_text)?;
    eprintln!("    built traefik in {}s", started.elapsed().as_secs());
    Ok(target)
}

/// Traefik's binary on `base` (an image with a root file system), as an image.
pub fn traefik_image(docker: &Docker, root: &Path, base: &str) -> anyhow::Result<String> {
    let binary = traefik_binary(root)?;
    let version = pinned_version(&module_dir_of_wrapper(root).join("go.mod"), TRAEFIK_MODULE)?;
    let mut hash = Fnv::default();
    hash.add(base.as_bytes());
    hash.add(&fs::read(&binary)?);
    let tag = format!("localhost/cacheme-kind/traefik:{version}-{}", hash.hex());
    if docker.has_image(&tag) {
        return Ok(tag);
    }
    let context = root.join("target/kind/traefik-image");
    let _ = fs::remove_dir_all(&context);
    fs::create_dir_all(&context)?;
    fs::copy(&binary, context.join("traefik"))?;
    fs::write(
        context.join("Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nCOPY traefik /usr/local/bin/traefik\nUSER 65532:65532\n\
         ENTRYPOINT [\"/usr/local/bin/traefik\"]\n",
    )?;
    docker.build_classic(&context, &tag, &[("BASE", base)])?;
    crate::containers::disk::remove_superseded(docker, &tag);
    Ok(tag)
}

/// The Gateway API's standard CRDs, from the Go module.
pub fn gateway_api_crds() -> anyhow::Result<PathBuf> {
    Ok(module_dir("sigs.k8s.io/gateway-api", GATEWAY_API_VERSION)?.join("config/crd/standard"))
}

/// The steps of docs/deploy.md: the CRDs, then k8s/traefik.yaml (with `image` in place of the
/// upstream image when given), Traefik ready and its Gateway programmed.
pub fn install(cluster: &Cluster, root: &Path, image: Option<&str>) -> anyhow::Result<()> {
    let crds = gateway_api_crds()?;
    cluster.kubectl_output(&["apply", "--server-side", "-f", &crds.display().to_string()])?;
    cluster.kubectl_output(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "--timeout=60s",
    ])?;
    let manifest = root.join("k8s/traefik.yaml");
    cluster.kubectl_output(&["apply", "-f", &manifest.display().to_string()])?;
    if let Some(image) = image {
        eprintln!("    no registry: {TRAEFIK_UPSTREAM_IMAGE} replaced by {image}, built here");
        cluster.kubectl_output(&[
            "-n",
            "traefik",
            "set",
            "image",
            "deployment/traefik",
            &format!("traefik={image}"),
        ])?;
    }
    cluster.kubectl_output(&[
        "-n",
        "traefik",
        "rollout",
        "status",
        "deployment/traefik",
        "--timeout=180s",
    ])?;
    cluster.kubectl_until(
        &[
            "-n",
            "traefik",
            "wait",
            "gateway/traefik-gateway",
            "--for=condition=Programmed",
            "--timeout=20s",
        ],
        Duration::from_secs(120),
    )?;
    eprintln!(
        "    ok: Traefik running, its Gateway programmed (Gateway API {GATEWAY_API_VERSION})"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crds_are_the_gateway_api_traefik_is_built_with() -> anyhow::Result<()> {
        let go_mod =
            cacheme_harness::workspace_root().join("crates/harness/go-tools/traefik/go.mod");
        assert_eq!(
            pinned_version(&go_mod, "sigs.k8s.io/gateway-api")?,
            GATEWAY_API_VERSION
        );
        let version = pinned_version(&go_mod, TRAEFIK_MODULE)?;
        assert!(
            TRAEFIK_UPSTREAM_IMAGE.ends_with(&format!(":{version}")),
            "{TRAEFIK_UPSTREAM_IMAGE} is not {version}"
        );
        let manifest =
            fs::read_to_string(cacheme_harness::workspace_root().join("k8s/traefik.yaml"))?;
        assert!(manifest.contains(&format!("image: {TRAEFIK_UPSTREAM_IMAGE}\n")));
        assert!(manifest.contains(&format!("/{GATEWAY_API_VERSION}/standard-install.yaml")));
        Ok(())
    }
}
