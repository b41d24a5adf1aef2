//! What a user does with CacheMe on a kind cluster, in docs/deploy.md's words, checked.
//!
//! The chart is installed into a namespace that enforces the `restricted` Pod Security
//! level (a pod that breaks it is refused by the API server, so Ready means every pod
//! passed), then: the page and the API through the page's Service, a TTL edit rolled out
//! and an API pod killed while a client in another namespace sends requests (none may
//! fail), PostgreSQL's pod deleted with the data kept, pgAdmin and Redis Commander through
//! their Services, `kubectl scale`, `helm upgrade`, and `helm uninstall` keeping the data
//! for a reinstall. kube-router enforces the NetworkPolicies throughout (a probe from
//! another namespace is refused where the policies say so), and the autoscaler scales the
//! API out under load on metrics-server's figures.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};

mod access;
mod disruptions;
mod enforcement;
mod front_door;
mod lifecycle;

use access::{PortForward, secret};
use disruptions::{
    killed_api_pod_without_failures, operator_failover, postgres_restart_keeps_data,
    ttl_edit_rolls_out_without_failures,
};
use enforcement::{autoscaler_scales_out_under_load, network_policies_are_enforced};
use front_door::{front_door_serves, page_and_api, route_accepted};
use lifecycle::{admin_tools, helm_upgrade, scale, uninstall_keeps_data};

use super::{cluster::Cluster, load};
use crate::containers::bases::ServiceImages;
use cacheme_packaging::Tools;

pub const NAMESPACE: &str = "cacheme";
const RELEASE: &str = "cacheme";

/// Images the chart is installed with (already loaded into the node).
#[derive(Debug, Clone)]
pub struct ChartImages {
    pub api: String,
    pub operator: String,
    pub frontend: String,
    /// Stand-ins for PostgreSQL, Redis, pgAdmin and Redis Commander; `None`: the
    /// operator's defaults.
    pub services: Option<ServiceImages>,
}

/// `--set` flags: the images, two API replicas, the admin tools on.
pub fn helm_values(images: &ChartImages) -> Vec<String> {
    let repo = |image: &str| -> (String, String) {
        match image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_owned(), t.to_owned()),
            _ => (image.to_owned(), "latest".to_owned()),
        }
    };
    let mut values = Vec::new();
    for (key, image) in [
        ("operator.image", &images.operator),
        ("instance.api.image", &images.api),
        ("instance.frontend.image", &images.frontend),
    ] {
        let (r, t) = repo(image);
        values.push(format!("{key}.repository={r}"));
        values.push(format!("{key}.tag={t}"));
    }
    if let Some(s) = &images.services {
        for (key, image) in [
            ("instance.postgres.image", &s.postgres),
            ("instance.redis.image", &s.redis),
            ("instance.pgAdmin.image", &s.pgadmin),
            ("instance.redisCommander.image", &s.redis_commander),
        ] {
            values.push(format!("{key}={image}"));
        }
    }
    values.extend(
        [
            "instance.replicas=2",
            "operator.replicas=2",
            // The front door: the operator's HTTPRoute (spec.gateway) on k8s/traefik.yaml's Gateway.
            "instance.gateway.enabled=true",
            "instance.gateway.parentRefs[0].name=traefik-gateway",
            "instance.gateway.parentRefs[0].namespace=traefik",
            "instance.pgAdmin.enabled=true",
            "instance.redisCommander.enabled=true",
        ]
        .map(String::from),
    );
    values
}

/// Runs the scenario; the cluster's state is printed when it fails.
pub fn run(
    cluster: &Cluster,
    root: &Path,
    tools: &Tools,
    images: &ChartImages,
    client_image: &str,
    front_door: u16,
) -> anyhow::Result<()> {
    let result = steps(cluster, root, tools, images, client_image, front_door);
    if result.is_err() {
        cluster.dump();
    }
    result
}

fn steps(
    cluster: &Cluster,
    root: &Path,
    tools: &Tools,
    images: &ChartImages,
    client_image: &str,
    front_door: u16,
) -> anyhow::Result<()> {
    cluster.kubectl_output(&["create", "namespace", NAMESPACE])?;
    cluster.kubectl_output(&[
        "label",
        "namespace",
        NAMESPACE,
        "pod-security.kubernetes.io/enforce=restricted",
    ])?;
    let values = helm_values(images);
    install(cluster, root, tools, &values)?;
    every_pod_runs(cluster)?;
    route_accepted(cluster)?;
    let token = secret(cluster, "cacheme-api-credentials", "password")?;
    let front = format!("http://127.0.0.1:{front_door}");
    page_and_api(&front, &token, "the Gateway")?;
    // The README's way in without a front door.
    let page = PortForward::start(cluster, "svc/cacheme-frontend", 80)?;
    front_door_serves(
        &page.url(),
        None,
        "kubectl port-forward svc/cacheme-frontend",
    )?;

    load::start_client(cluster, client_image)?;
    let urls = vec![
        format!("http://cacheme-api.{NAMESPACE}.svc.cluster.local:8000/products/1"),
        format!("http://cacheme-frontend.{NAMESPACE}.svc.cluster.local/products/2"),
        // Through Traefik, which follows the API's endpoints itself.
        "http://traefik.traefik.svc.cluster.local/products/5".to_owned(),
    ];
    network_policies_are_enforced(cluster, client_image)?;
    ttl_edit_rolls_out_without_failures(cluster, &urls)?;
    killed_api_pod_without_failures(cluster, &urls)?;
    postgres_restart_keeps_data(cluster, &page.url(), &token)?;
    drop(page);
    admin_tools(cluster)?;
    operator_failover(cluster)?;
    autoscaler_scales_out_under_load(cluster, &urls)?;
    scale(cluster)?;
    helm_upgrade(cluster, root, tools, &values, &front)?;
    uninstall_keeps_data(cluster, root, tools, &values)?;
    Ok(())
}

fn helm_install_cmd(
    root: &Path,
    tools: &Tools,
    cluster: &Cluster,
    verb: &str,
    values: &[String],
) -> std::process::Command {
    let mut cmd = tools.helm_cmd();
    cmd.env("KUBECONFIG", &cluster.kubeconfig)
        .args([verb, RELEASE])
        .arg(root.join("charts/cacheme"))
        .args(["--namespace", NAMESPACE]);
    for value in values {
        cmd.arg("--set").arg(value);
    }
    cmd
}

fn install(cluster: &Cluster, root: &Path, tools: &Tools, values: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    cacheme_harness::run(
        "helm install cacheme charts/cacheme",
        helm_install_cmd(root, tools, cluster, "install", values),
    )?;
    wait_ready(cluster)?;
    eprintln!(
        "    ok: helm install to CacheMe Ready in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn wait_ready(cluster: &Cluster) -> anyhow::Result<()> {
    // The CacheMe exists once helm returns; Ready is the operator's verdict.
    cluster.kubectl_until(
        &[
            "-n",
            NAMESPACE,
            "wait",
            "cacheme/cacheme",
            "--for=condition=Ready",
            "--timeout=30s",
        ],
        Duration::from_secs(300),
    )?;
    Ok(())
}

/// Every pod of the release Running with every container ready, under `restricted`.
fn every_pod_runs(cluster: &Cluster) -> anyhow::Result<()> {
    let text = cluster.kubectl_until(
        &[
            "-n",
            NAMESPACE,
            "wait",
            "pods",
            "--all",
            "--for=condition=Ready",
            "--timeout=30s",
        ],
        Duration::from_secs(180),
    )?;
    let pods: serde_json::Value = serde_json::from_str(
        &cluster.kubectl_output(&["-n", NAMESPACE, "get", "pods", "-o", "json"])?,
    )?;
    let items = pods["items"].as_array().context("no pod list")?;
    let mut components = Vec::new();
    for pod in items {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        ensure!(
            pod["status"]["phase"] == "Running",
            "pod {name} is {}",
            pod["status"]["phase"]
        );
        ensure!(
            pod["spec"]["securityContext"]["runAsNonRoot"] == true,
            "pod {name} does not set runAsNonRoot"
        );
        if let Some(c) = pod["metadata"]["labels"]["app.kubernetes.io/component"].as_str() {
            components.push(c.to_owned());
        }
    }
    components.sort();
    components.dedup();
    for needed in [
        "api",
        "frontend",
        "postgres",
        "redis",
        "pgadmin",
        "redis-commander",
    ] {
        ensure!(
            components.iter().any(|c| c == needed),
            "no {needed} pod running (components: {components:?}; {})",
            text.trim()
        );
    }
    eprintln!(
        "    ok: {} pods Running under the restricted Pod Security level: {}",
        items.len(),
        components.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_become_the_charts_values() {
        let images = ChartImages {
            api: "localhost/cacheme/api:0.1.0".into(),
            operator: "localhost/cacheme/operator:0.1.0".into(),
            frontend: "localhost:5000/cacheme/frontend".into(),
            services: Some(ServiceImages {
                postgres: "localhost/cacheme-base/postgres:abc".into(),
                redis: "r".into(),
                pgadmin: "p".into(),
                redis_commander: "c".into(),
                jaeger: "j".into(),
            }),
        };
        let values = helm_values(&images);
        assert!(values.contains(&"instance.api.image.repository=localhost/cacheme/api".to_owned()));
        assert!(values.contains(&"instance.api.image.tag=0.1.0".to_owned()));
        // A registry port is not a tag.
        assert!(values.contains(
            &"instance.frontend.image.repository=localhost:5000/cacheme/frontend".to_owned()
        ));
        assert!(
            values.contains(
                &"instance.postgres.image=localhost/cacheme-base/postgres:abc".to_owned()
            )
        );
        let upstream = helm_values(&ChartImages {
            services: None,
            ..images
        });
        assert!(
            !upstream
                .iter()
                .any(|v| v.starts_with("instance.postgres.image"))
        );
    }
}
