//! `cargo xtask kind`: CacheMe on a real Kubernetes node (kubelet, containerd, runc), as
//! docs/deploy.md tells users to run it on kind.
//!
//! - [`tools`]: kind and the node's runtime, built from the Go module proxy.
//! - [`node_image`]: kind's node image made here, cached in Docker by a hash of its inputs.
//! - [`cluster`]: one cluster, created and deleted (with a `docker` shim where `--privileged`
//!   cannot work).
//! - [`gateway`]: the front door, Traefik on the Gateway API's CRDs (`k8s/traefik.yaml`).
//! - [`addons`]: kube-router enforcing NetworkPolicies, metrics-server for the autoscaler.
//! - [`scenario`]: `helm install` and what a user does next; [`load`]: requests counted
//!   from inside the cluster while pods roll, die and restart.

mod addons;
pub mod cluster;
mod gateway;
mod load;
pub mod node_image;
mod release;
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
use cacheme_harness::kube_tools;

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
    let root = cacheme_harness::workspace_root();
    only_on_x86_64()?;
    cacheme_harness::prereqs::check(&root, "kind", cacheme_harness::prereqs::KIND)?;
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
    only_on_x86_64()?;
    let (docker, tools) = containers::docker(root)?;
    let node_image = ensure_node_image(&docker, root)?;
    let local = bases::choose(&docker, BaseSource::Auto)?;
    // One name: a run that was killed leaves its cluster, which the next run deletes.
    let name = "cacheme-test";
    run(&docker, root, &tools, &node_image, local, name, false)
}

/// The node image's pieces (static binaries, libseccomp's multiarch path) are x86_64's.
fn only_on_x86_64() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::consts::ARCH == "x86_64",
        "cargo xtask kind builds an x86_64 node image; this host is {}",
        std::env::consts::ARCH
    );
    Ok(())
}

/// Docker's free space a cluster takes: the node's unpacked copy of every loaded image,
/// the saved archives `kind load` streams, the node's own writes.
const KIND_NEEDS_GIB: u64 = 8;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The node image's tag, built when Docker does not have it.
pub fn ensure_node_image(docker: &Docker, root: &Path) -> anyhow::Result<String> {
    tools::kind()?;
    let go_mod = root.join("crates/harness/go-tools/kubernetes/go.mod");
    let version = kube_tools::pinned_version(&go_mod, "k8s.io/kubernetes")?;
    let tag = node_image::tag(root, version.trim_start_matches('v'), &tools::planned()?)?;
    if docker.has_image(&tag) {
        eprintln!("==> kind node image {tag} (cached)");
        return Ok(tag);
    }
    eprintln!("==> kind node image {tag}: building (cold: about 30 minutes on 2 cores)");
    let (kube, node_bins) = kube_tools::ensure_node(root)?;
    let node_tools = tools::ensure(root)?;
    node_image::build(docker, root, &tag, &kube, &node_bins, &node_tools)?;
    containers::disk::remove_superseded(docker, &tag);
    Ok(tag)
}

fn run(
    docker: &Docker,
    root: &Path,
    tools: &cacheme_packaging::Tools,
    node_image: &str,
    local_bases: bool,
    name: &str,
    keep: bool,
) -> anyhow::Result<()> {
    let kube = kube_tools::ensure(root)?;
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
    // Traefik: upstream's image when registries answer, else built here on that file system.
    let traefik = if local_bases {
        Some(gateway::traefik_image(docker, root, &client)?)
    } else {
        None
    };
    let addon_images = addons::images(docker, root)?;
    let work = root.join("target/kind").join(name);
    // A copy of every loaded image inside the node, unpacked: measured below.
    containers::disk::ensure_room(
        docker,
        KIND_NEEDS_GIB,
        "a kind cluster with CacheMe's images",
    )?;
    // The README's k8s/kind-config.yaml, its host ports 80 and 443 swapped for free ones.
    let users_config = std::fs::read_to_string(root.join("k8s/kind-config.yaml"))?;
    let front_door = free_port()?;
    let config = cluster::config(&users_config, &[(80, front_door), (443, free_port()?)])?;
    let started = std::time::Instant::now();
    let cluster = cluster::Cluster::create(
        &tools::kind()?,
        &kube.kubectl,
        &work,
        name,
        node_image,
        &config,
        keep,
    )?;
    let mut load: Vec<&str> = vec![&images.api, &images.operator, &images.frontend, &client];
    load.extend(traefik.as_deref());
    load.extend(addon_images.all());
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
    if let Err(e) = gateway::install(&cluster, root, traefik.as_deref()) {
        cluster.dump();
        if let Ok(logs) = cluster.kubectl_output(&["-n", "traefik", "logs", "deployment/traefik"]) {
            eprintln!("--- kubectl -n traefik logs deployment/traefik\n{logs}");
        }
        return Err(e.context(
            "Traefik did not come up (a missing Gateway API CRD or RBAC rule leaves it waiting; \
             an image the node lacks shows as ErrImagePull above)",
        ));
    }
    if let Err(e) = addons::install(&cluster, root, &addon_images) {
        cluster.dump();
        return Err(e.context("kube-router or metrics-server did not come up"));
    }
    scenario::run(&cluster, root, tools, &images, &client, front_door)?;
    eprintln!(
        "==> kind: every check passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
