//! `cargo xtask kind`: CacheMe on a real Kubernetes node (kubelet, containerd, runc), as
//! the README tells users to run it on kind.
//!
//! - [`tools`]: kind and the node's runtime, built from the Go module proxy.
//! - [`node_image`]: kind's node image made here, cached in Docker by a hash of its inputs.
//! - [`cluster`]: one cluster, created and deleted (with a `docker` shim where `--privileged`
//!   cannot work).
//! - [`scenario`]: `helm install` and what a user does next; [`load`]: requests counted
//!   from inside the cluster while pods roll, die and restart.

pub mod cluster;
mod load;
pub mod node_image;
mod scenario;
pub mod tools;

use std::path::Path;

use anyhow::Context as _;

use crate::containers::{
    self,
    bases::{self, BaseSource},
    build,
    engine::Docker,
};
use crate::e2e;

/// `cargo xtask kind`.
#[derive(Debug, clap::Args)]
pub struct KindArgs {
    /// Keep the cluster when the run ends (KUBECONFIG is printed), pass or fail.
    #[arg(long)]
    pub keep: bool,
    /// Only build (or find) the node image.
    #[arg(long)]
    pub node_image_only: bool,
    /// The cluster's name.
    #[arg(long, default_value = "cacheme")]
    pub name: String,
}

pub fn kind(args: &KindArgs) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    crate::prereqs::check(&root, "kind", crate::prereqs::KIND)?;
    let (docker, tools) = containers::docker(&root)?;
    let node_image = ensure_node_image(&docker, &root)?;
    if args.node_image_only {
        return Ok(());
    }
    let bases = containers::bases(&docker, &root, BaseSource::Auto)?;
    build::build_images(&docker, &root, &bases)?;
    run(
        &docker,
        &root,
        &tools,
        &node_image,
        bases.local,
        &args.name,
        args.keep,
    )
}

/// The suite's part (the images were built by the containers' part).
pub fn test(root: &Path) -> anyhow::Result<()> {
    let (docker, tools) = containers::docker(root)?;
    let node_image = ensure_node_image(&docker, root)?;
    let local = bases::choose(&docker, BaseSource::Auto)?;
    let name = format!("cacheme-test-{}", std::process::id());
    run(&docker, root, &tools, &node_image, local, &name, false)
}

/// The node image's tag, built when Docker does not have it.
pub fn ensure_node_image(docker: &Docker, root: &Path) -> anyhow::Result<String> {
    tools::kind()?;
    let go_mod = root.join("crates/xtask/e2e-tools/kubernetes/go.mod");
    let version = e2e::tools::pinned_version(&go_mod, "k8s.io/kubernetes")?;
    let tag = node_image::tag(root, version.trim_start_matches('v'), &tools::planned()?)?;
    if docker.has_image(&tag) {
        eprintln!("==> kind node image {tag} (cached)");
        return Ok(tag);
    }
    eprintln!("==> kind node image {tag}: building (cold: about 30 minutes on 2 cores)");
    let (kube, node_bins) = e2e::tools::ensure_node(root)?;
    let node_tools = tools::ensure(root)?;
    node_image::build(docker, root, &tag, &kube, &node_bins, &node_tools)?;
    Ok(tag)
}

fn run(
    docker: &Docker,
    root: &Path,
    tools: &crate::packaging::Tools,
    node_image: &str,
    local_bases: bool,
    name: &str,
    keep: bool,
) -> anyhow::Result<()> {
    let kube = e2e::tools::ensure(root)?;
    // Stand-ins when no registry answers; else the operator's defaults, which the node
    // pulls itself.
    let services = if local_bases {
        Some(bases::local_services(docker, root)?)
    } else {
        None
    };
    let images = scenario::ChartImages {
        api: build::api_image(),
        operator: build::operator_image(),
        frontend: build::frontend_image(),
        services,
    };
    // The load client: kind's root file system has bash and curl.
    let client = node_image::rootfs(docker)?;
    let work = root.join("target/kind").join(name);
    let started = std::time::Instant::now();
    let cluster = cluster::Cluster::create(
        &tools::kind()?,
        &kube.kubectl,
        &work,
        name,
        node_image,
        &[],
        keep,
    )?;
    let mut load: Vec<&str> = vec![&images.api, &images.operator, &images.frontend, &client];
    if let Some(s) = &images.services {
        load.extend([
            s.postgres.as_str(),
            &s.redis,
            &s.pgadmin,
            &s.redis_commander,
        ]);
    }
    cluster
        .load(&load)
        .context("loading the images into the node")?;
    eprintln!(
        "    cluster up and images loaded in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    scenario::run(&cluster, root, tools, &images, &client)?;
    eprintln!(
        "==> kind: every check passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
