//! The stack's life: its admin tools, scale, `helm upgrade`, `helm uninstall` and a
//! reinstall.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;

use super::{
    NAMESPACE, PortForward, RELEASE,
    disruptions::{api_pods, deployment_generation, wait_generation_above},
    front_door::{front_door_serves, only_host_is_served},
    helm_install_cmd, install, secret, wait_ready,
};
use crate::containers::{
    admin_tools::{self, PgAdminLogin},
    http::Request,
};
use crate::kind::cluster::Cluster;
use cacheme_packaging::Tools;

pub(super) fn admin_tools(cluster: &Cluster) -> anyhow::Result<()> {
    let pgadmin = PortForward::start(cluster, "svc/cacheme-pgadmin", 80)?;
    let login = PgAdminLogin {
        email: secret(cluster, "cacheme-pgadmin-credentials", "username")?,
        password: secret(cluster, "cacheme-pgadmin-credentials", "password")?,
        server: "CacheMe cacheme".to_owned(),
        postgres_password: secret(cluster, "cacheme-postgres-credentials", "password")?,
    };
    let jar = std::env::temp_dir().join(format!("cacheme-kind-pgadmin-{}", std::process::id()));
    let result = admin_tools::pgadmin_connects(&pgadmin.url(), &jar, &login);
    let _ = std::fs::remove_file(&jar);
    result?;
    let commander = PortForward::start(cluster, "svc/cacheme-redis-commander", 80)?;
    admin_tools::redis_commander_lists_keys(&commander.url(), "R:cacheme-redis:6379:0")
}

/// `kubectl scale` of the CacheMe: the operator follows it.
pub(super) fn scale(cluster: &Cluster) -> anyhow::Result<()> {
    for replicas in [3, 2] {
        cluster.kubectl_output(&[
            "-n",
            NAMESPACE,
            "scale",
            "cacheme/cacheme",
            &format!("--replicas={replicas}"),
        ])?;
        let started = Instant::now();
        while ready_api_replicas(cluster)? != replicas
            || api_pods(cluster)?.len() != replicas as usize
        {
            ensure!(
                started.elapsed() < Duration::from_secs(180),
                "kubectl scale --replicas={replicas}: {} ready API pods after 180 s",
                ready_api_replicas(cluster)?
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    eprintln!("    ok: kubectl scale cacheme/cacheme to 3 then 2 API pods");
    Ok(())
}

pub(super) fn ready_api_replicas(cluster: &Cluster) -> anyhow::Result<i64> {
    let out = cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "deployment",
        "cacheme-api",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ])?;
    Ok(out.trim().parse().unwrap_or(0))
}

pub(super) fn api_env(cluster: &Cluster, var: &str) -> anyhow::Result<String> {
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "deployment",
        "cacheme-api",
        "-o",
        &format!("jsonpath={{.spec.template.spec.containers[0].env[?(@.name==\"{var}\")].value}}"),
    ])
}

/// A new TTL, and the front door moved from the HTTPRoute to an Ingress (the chart's,
/// class-agnostic: the cluster's default class, Traefik's).
pub(super) fn helm_upgrade(
    cluster: &Cluster,
    root: &Path,
    tools: &Tools,
    values: &[String],
    front: &str,
) -> anyhow::Result<()> {
    let before = deployment_generation(cluster, "cacheme-api")?;
    let mut upgraded = values.to_vec();
    upgraded.extend(
        [
            "instance.ttlSeconds=900",
            "instance.gateway.enabled=false",
            "instance.ingress.enabled=true",
            "instance.ingress.host=ingress.localtest.me",
        ]
        .map(String::from),
    );
    cacheme_harness::run(
        "helm upgrade cacheme charts/cacheme --set instance.ttlSeconds=900 \
         --set instance.gateway.enabled=false --set instance.ingress.enabled=true \
         --set instance.ingress.host=ingress.localtest.me",
        helm_install_cmd(root, tools, cluster, "upgrade", &upgraded),
    )?;
    wait_generation_above(cluster, "cacheme-api", before)?;
    wait_ready(cluster)?;
    let ttl = api_env(cluster, "CACHE_TTL_SECONDS")?;
    ensure!(
        ttl.trim() == "900",
        "after helm upgrade the API's TTL is {ttl:?}"
    );
    // The operator deletes its HTTPRoute once it reconciles the CacheMe without gateway
    // (in the reconcile that rolled the API out; a moment's grace for the deletion).
    cluster.wait_gone(
        &["-n", NAMESPACE, "get", "httproute", "cacheme"],
        Duration::from_secs(60),
        "the HTTPRoute outlived instance.gateway.enabled=false",
    )?;
    cluster.kubectl_until(
        &["-n", NAMESPACE, "get", "ingress", "cacheme"],
        Duration::from_secs(60),
    )?;
    // The Ingress answers for its host only, so an answer for it is the Ingress's.
    only_host_is_served(front, "elsewhere.localtest.me")?;
    front_door_serves(
        front,
        Some("ingress.localtest.me"),
        "the Ingress (Traefik, the default IngressClass)",
    )?;
    eprintln!(
        "    ok: helm upgrade rolled the API to the new TTL and moved the front door to an Ingress"
    );
    Ok(())
}

pub(super) fn uninstall_keeps_data(
    cluster: &Cluster,
    root: &Path,
    tools: &Tools,
    values: &[String],
) -> anyhow::Result<()> {
    let mut uninstall = tools.helm_cmd();
    uninstall.env("KUBECONFIG", &cluster.kubeconfig).args([
        "uninstall",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "--wait",
    ]);
    cacheme_harness::run("helm uninstall cacheme", uninstall)?;
    // The operator removes what it owns; the data claim and its password stay.
    cluster.wait_gone(
        &["-n", NAMESPACE, "get", "deployment", "cacheme-api"],
        Duration::from_secs(120),
        "the API outlived helm uninstall",
    )?;
    cluster.kubectl_output(&["-n", NAMESPACE, "get", "pvc", "cacheme-postgres-data"])?;
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "secret",
        "cacheme-postgres-credentials",
    ])?;
    install(cluster, root, tools, values)?;
    let page = PortForward::start(cluster, "svc/cacheme-frontend", 80)?;
    let (status, body) = Request::get(format!("{}/products/3", page.url()))
        .until(Duration::from_secs(60), |s, _| s == 200)?;
    ensure!(
        status == 200 && body.contains("kind-edited"),
        "after helm uninstall and install, product 3 is {body}"
    );
    eprintln!(
        "    ok: helm uninstall kept the data claim and its password; a reinstall found the edit"
    );
    Ok(())
}
