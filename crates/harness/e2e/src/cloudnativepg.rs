//! Scenario: the store options. A CacheMe with `postgres.cloudNativePG` applied before
//! CloudNativePG exists turns Degraded (`CloudNativePGMissing`); once the Cluster kind is
//! installed (a trimmed CRD fixture, `cnpg-cluster-crd.yaml`: no CloudNativePG operator
//! runs here) the operator applies the Cluster `<name>-postgres` and wires the API to
//! CloudNativePG's `<name>-postgres-app` Secret instead of running PostgreSQL itself, and
//! waits for it; the scenario then plays CloudNativePG by patching the Cluster's status,
//! and the CacheMe becomes Ready. A second CacheMe uses an external Redis Cluster.

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::{Value, json};

use super::kubectl::Kubectl;
use super::scenario::{condition, restricted_namespace, summary};
use super::stack::{Alive, Stack, env_value};

pub const NAMESPACE: &str = "e2e-stores";
const CRD: &str = "clusters.postgresql.cnpg.io";
/// The fixture CRD (see the file's header).
const CRD_FIXTURE: &str = include_str!("cnpg-cluster-crd.yaml");

fn cacheme(name: &str, spec: Value) -> String {
    json!({
        "apiVersion": "cacheme.dev/v1alpha1",
        "kind": "CacheMe",
        "metadata": {"name": name},
        "spec": spec,
    })
    .to_string()
}

/// The secretKeyRef `(name, key)` of env var `var` in the first container of `deployment`.
fn secret_ref(deployment: &Value, var: &str) -> Option<(String, String)> {
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array()?;
    let reference = &env.iter().find(|e| e["name"] == var)?["valueFrom"]["secretKeyRef"];
    Some((
        reference["name"].as_str()?.to_owned(),
        reference["key"].as_str()?.to_owned(),
    ))
}

pub fn stores(kubectl: &Kubectl, timeout: Duration, alive: Alive) -> anyhow::Result<()> {
    restricted_namespace(kubectl, NAMESPACE)?;
    cloudnativepg(kubectl, timeout, alive)?;
    redis_cluster(kubectl, timeout, alive)
}

fn cloudnativepg(kubectl: &Kubectl, timeout: Duration, alive: Alive) -> anyhow::Result<()> {
    let stack = Stack {
        kubectl,
        namespace: NAMESPACE,
        name: "pg",
        timeout,
    };
    ensure!(
        kubectl
            .run(&["get", "crd", CRD, "--ignore-not-found"])?
            .trim()
            .is_empty(),
        "the e2e cluster already has {CRD}: the missing-CloudNativePG case cannot run"
    );
    // (a) Before CloudNativePG exists.
    let spec = json!({
        "frontend": {"enabled": false},
        "postgres": {"cloudNativePG": {"instances": 1}},
    });
    kubectl.apply(&cacheme("pg", spec), Some(NAMESPACE))?;
    let degraded = stack.wait_degraded(1, alive)?;
    let message = degraded["message"].as_str().unwrap_or_default();
    ensure!(
        degraded["reason"] == "CloudNativePGMissing" && message.contains(CRD),
        "without CloudNativePG: Degraded is {degraded}, want reason CloudNativePGMissing naming {CRD}"
    );
    eprintln!("    without CloudNativePG: Degraded (CloudNativePGMissing): {message}");

    // (b) The Cluster kind appears; the operator retries with its backoff.
    kubectl.apply(CRD_FIXTURE, None)?;
    kubectl.wait_established(CRD)?;
    let installed = Instant::now();

    // (c) The Cluster, the API wired to CloudNativePG's Secret, no PostgreSQL of our own.
    let cluster = Kubectl::wait_for(
        "the CloudNativePG Cluster pg-postgres",
        timeout,
        Duration::from_secs(1),
        || {
            alive()?;
            Ok(match stack.child(CRD, "postgres")? {
                Some(cluster) => Ok(cluster),
                None => Err(format!("no Cluster yet; {}", summary(&stack.get()?))),
            })
        },
    )?;
    eprintln!(
        "    CRD fixture {CRD} installed: the Cluster was applied {:.1}s later",
        installed.elapsed().as_secs_f64()
    );
    ensure!(
        cluster["spec"]["instances"] == 1
            && cluster["spec"]["bootstrap"]["initdb"]
                == json!({"database": "cacheme", "owner": "cacheme"}),
        "the Cluster's spec is {}",
        cluster["spec"]
    );
    let api = stack.deployment("api")?;
    let database = secret_ref(&api, "DATABASE_URL");
    ensure!(
        database == Some(("pg-postgres-app".to_owned(), "uri".to_owned())),
        "the API's DATABASE_URL comes from {database:?}, want pg-postgres-app/uri"
    );
    for kind in ["deployment", "service"] {
        ensure!(
            stack.child(kind, "postgres")?.is_none(),
            "postgres.cloudNativePG: a {kind} pg-postgres exists"
        );
    }
    let waiting = "CloudNativePG cluster pg-postgres: 0/1 instances ready";
    Kubectl::wait_for(
        "the CacheMe to wait for the CloudNativePG cluster",
        timeout,
        Duration::from_secs(1),
        || {
            alive()?;
            let cacheme = stack.get()?;
            let progressing = condition(&cacheme, "Progressing")
                .cloned()
                .unwrap_or_default();
            let degraded = condition(&cacheme, "Degraded").cloned().unwrap_or_default();
            let on_cluster = progressing["status"] == "True"
                && progressing["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(waiting))
                && degraded["status"] == "False";
            Ok(if on_cluster {
                Ok(())
            } else {
                Err(summary(&cacheme))
            })
        },
    )?;
    eprintln!(
        "    Cluster applied, API on pg-postgres-app/uri, no PostgreSQL Deployment; Progressing: {waiting}"
    );

    // (d) Play CloudNativePG: every instance ready.
    kubectl.run(&[
        "patch",
        CRD,
        "pg-postgres",
        "--namespace",
        NAMESPACE,
        "--subresource=status",
        "--type=merge",
        "--patch",
        r#"{"status":{"instances":1,"readyInstances":1,"phase":"Cluster in healthy state"}}"#,
    ])?;
    let cacheme = stack.wait_ready(1, alive)?;
    let ready = condition(&cacheme, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        ready.contains("CloudNativePG cluster pg-postgres ready"),
        "Ready's message does not mention the Cluster: {ready}"
    );
    eprintln!("    Cluster status patched (readyInstances 1): Ready ({ready})");
    Ok(())
}

fn redis_cluster(kubectl: &Kubectl, timeout: Duration, alive: Alive) -> anyhow::Result<()> {
    let stack = Stack {
        kubectl,
        namespace: NAMESPACE,
        name: "rc",
        timeout,
    };
    // External stores only: no claim (the e2e cluster has few volumes), no store pods.
    let spec = json!({
        "frontend": {"enabled": false},
        "postgres": {"external": {"urlSecretRef": {"name": "shop-database"}}},
        "redis": {"external": {
            "urlSecretRef": {"name": "shop-redis-cluster", "key": "urls"},
            "mode": "cluster",
        }},
    });
    kubectl.apply(&cacheme("rc", spec), Some(NAMESPACE))?;
    stack.wait_ready(1, alive)?;
    let api = stack.deployment("api")?;
    ensure!(
        env_value(&api, "REDIS_MODE") == Some("cluster"),
        "redis.external.mode cluster: the API has REDIS_MODE {:?}",
        env_value(&api, "REDIS_MODE")
    );
    let redis = secret_ref(&api, "REDIS_URL");
    ensure!(
        redis == Some(("shop-redis-cluster".to_owned(), "urls".to_owned())),
        "redis.external.mode cluster: REDIS_URL comes from {redis:?}"
    );
    let stored = stack.get()?;
    let mode = &stored["spec"]["redis"]["external"]["mode"];
    ensure!(mode == "cluster", "the stored mode is {mode}");
    eprintln!("    redis.external.mode cluster: Ready, the API has REDIS_MODE=cluster");
    Ok(())
}
