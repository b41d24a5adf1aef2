//! Reconciles of a CacheMe whose PostgreSQL CloudNativePG runs, against the mock API
//! server: the Cluster is applied (first) instead of the operator's own PostgreSQL, its
//! `readyInstances` decides Ready, and an API server without CloudNativePG (404 on the
//! Cluster) turns the CacheMe Degraded with reason `CloudNativePGMissing`.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::json;

use super::tests::{assert_degraded_and_warned, cacheme, condition, find, run, written_status};
use super::*;
use crate::fixtures::scripted::*;

const CLUSTER: &str = "/apis/postgresql.cnpg.io/v1/namespaces/cacheme/clusters/demo-postgres";

/// The Cluster as the API server answers an apply once CloudNativePG reported
/// `ready` of `instances` instances.
fn cluster_reply(instances: i64, ready: i64) -> Reply {
    Reply::Json(json!({
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": "demo-postgres", "namespace": NS, "generation": 1},
        "spec": {"instances": instances},
        "status": {"instances": instances, "readyInstances": ready, "phase": "Setting up primary"},
    }))
}

/// Every request of a reconcile of `demo` with `postgres.cloudNativePG`, the Cluster
/// answered with `cluster`: no PostgreSQL Deployment, Service, claim or password.
fn script(cluster: Reply) -> Vec<Call> {
    let mut calls = any_order(vec![
        call(
            Method::GET,
            core("secrets", "demo-api-credentials"),
            secret_exists("demo-api-credentials"),
        ),
        call(
            Method::GET,
            core("secrets", "demo-redis-credentials"),
            secret_exists("demo-redis-credentials"),
        ),
    ]);
    calls.push(call(Method::PATCH, CLUSTER, cluster));
    let mut children = Vec::new();
    for svc in ["demo-api", "demo-frontend", "demo-redis"] {
        children.push(call(Method::PATCH, core("services", svc), Reply::Echo));
    }
    for deploy in ["demo-api", "demo-frontend", "demo-redis"] {
        children.push(call(
            Method::PATCH,
            group("apps/v1", "deployments", deploy),
            Reply::EchoReady,
        ));
    }
    for np in ["demo-api", "demo-redis"] {
        children.push(call(
            Method::PATCH,
            group("networking.k8s.io/v1", "networkpolicies", np),
            Reply::Echo,
        ));
    }
    calls.extend(any_order(children));
    let gone = |path: String| call(Method::DELETE, path, not_found());
    calls.extend(any_order(vec![
        gone(group("policy/v1", "poddisruptionbudgets", "demo-api")),
        gone(core("configmaps", "demo-seed")),
        // The managed PostgreSQL's, had the CacheMe one before.
        gone(group("apps/v1", "deployments", "demo-postgres")),
        gone(core("services", "demo-postgres")),
        gone(group(
            "networking.k8s.io/v1",
            "networkpolicies",
            "demo-postgres",
        )),
        gone(group("apps/v1", "deployments", "demo-pgadmin")),
        gone(core("services", "demo-pgadmin")),
        gone(core("configmaps", "demo-pgadmin")),
        gone(group("apps/v1", "deployments", "demo-redis-commander")),
        gone(core("services", "demo-redis-commander")),
        gone(group("networking.k8s.io/v1", "ingresses", "demo")),
        gone(group("gateway.networking.k8s.io/v1", "httproutes", "demo")),
        gone(group(
            "autoscaling/v2",
            "horizontalpodautoscalers",
            "demo-api",
        )),
    ]));
    calls
}

fn cnpg_cacheme() -> CacheMe {
    cacheme("demo", json!({"postgres": {"cloudNativePG": {}}}))
}

#[tokio::test]
async fn the_cluster_is_applied_instead_of_a_postgres_deployment_and_awaited() {
    let mut calls = script(cluster_reply(1, 0));
    calls.push(status_patch("demo"));
    calls.push(event());

    let (result, recorded, _) = run(cnpg_cacheme(), calls).await;
    // Clusters are not watched: their status is polled.
    assert_eq!(
        result.expect("reconcile succeeds"),
        Action::requeue(CLOUDNATIVEPG_REQUEUE)
    );
    let applied = find(&recorded, Method::PATCH, CLUSTER);
    assert!(
        applied.query.contains("fieldManager=cacheme-operator")
            && applied.query.contains("force=true"),
        "{}",
        applied.query
    );
    assert_eq!(applied.body["kind"], "Cluster");
    assert_eq!(applied.body["spec"]["instances"], 1);
    assert_eq!(
        applied.body["spec"]["bootstrap"]["initdb"],
        json!({"database": "cacheme", "owner": "cacheme"})
    );
    // retainPolicy Retain (the default): no owner reference, the data outlives the CacheMe.
    assert!(applied.body["metadata"]["ownerReferences"].is_null());
    let api = &find(
        &recorded,
        Method::PATCH,
        &group("apps/v1", "deployments", "demo-api"),
    )
    .body;
    let database = api["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == "DATABASE_URL"))
        .map(|e| e["valueFrom"]["secretKeyRef"].clone())
        .unwrap_or_default();
    assert_eq!(
        (&database["name"], &database["key"]),
        (&json!("demo-postgres-app"), &json!("uri"))
    );

    let status = written_status(&recorded);
    assert_eq!(status["phase"], "Progressing");
    let progressing = condition(&status, "Progressing");
    assert_eq!(progressing["status"], "True");
    let message = progressing["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("CloudNativePG cluster demo-postgres: 0/1 instances ready"),
        "{message}"
    );
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(condition(&status, "Degraded")["status"], "False");
}

#[tokio::test]
async fn a_cluster_with_every_instance_ready_makes_the_cacheme_ready() {
    let mut calls = script(cluster_reply(1, 1));
    calls.push(status_patch("demo"));
    calls.push(event());

    let (result, recorded, _) = run(cnpg_cacheme(), calls).await;
    assert_eq!(
        result.expect("reconcile succeeds"),
        Action::requeue(READY_REQUEUE)
    );
    let status = written_status(&recorded);
    assert_eq!(status["phase"], "Ready");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "True");
    assert_eq!(
        ready["message"],
        "3 deployments available, CloudNativePG cluster demo-postgres ready (1/1 instances)"
    );
    assert_eq!(condition(&status, "Progressing")["status"], "False");
}

#[tokio::test]
async fn without_cloudnativepg_installed_the_cacheme_is_degraded_and_backs_off() {
    // The API server has no clusters.postgresql.cnpg.io: the apply answers a plain-text
    // 404 (no Status, as the real one does). Every other child is still applied, then
    // the failure is reported.
    let mut calls = script(Reply::PageNotFound);
    calls.push(event());
    calls.push(status_patch("demo"));

    let cm = cnpg_cacheme();
    let (result, recorded, ctx) = run(cm.clone(), calls).await;
    let error = result.expect_err("reconcile fails");
    assert!(matches!(error, Error::CloudNativePgMissing), "{error:?}");
    assert_eq!(error.metric_label(), "cloudnativepg_missing");
    find(
        &recorded,
        Method::PATCH,
        &group("apps/v1", "deployments", "demo-api"),
    );

    assert_degraded_and_warned(
        &recorded,
        "CloudNativePGMissing",
        &[
            "clusters.postgresql.cnpg.io",
            "kubectl apply --server-side -f",
        ],
    );
    // The normal per-object backoff, not a hot loop.
    let cm = Arc::new(cm);
    assert_eq!(
        error_policy(Arc::clone(&cm), &error, Arc::clone(&ctx)),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(cm, &error, ctx),
        Action::requeue(Duration::from_secs(10))
    );
}
