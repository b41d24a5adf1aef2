//! Reconcile against a mock API server (kube-rs' tower-test pattern): each
//! test lists the exact requests the operator must make, in order, and what
//! the fake API server answers.
//!
//! This module holds what the test modules share (`run` and the scripts of the
//! default stack); the mock server is in `crate::fixtures`. The tests: a stack's
//! life in `lifecycle_tests`, failures in `failure_tests`, the seed ConfigMap's
//! watch in `seed_users_tests`, and the optional components in
//! `cloudnativepg_tests` and `gateway_tests`.

use std::sync::Arc;
use std::time::Duration;

use crate::status::Rollout;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::*;
use crate::crd::CacheMeSpec;
use crate::fixtures::Recorded;
use crate::fixtures::scripted::*;

/// Runs one reconcile against `script`. An unexpected extra request leaves
/// the reconcile waiting for an answer, which fails the test by timeout.
pub(super) async fn run(
    cm: CacheMe,
    script: Vec<Call>,
) -> (Result<Action>, Vec<Recorded>, Arc<Context>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ctx = Arc::new(Context::new(
        Client::new(service, "default"),
        Some("test".to_string()),
    ));
    let expected = script.len();
    let server = tokio::spawn(serve(handle, script));
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        reconcile(Arc::new(cm), Arc::clone(&ctx)),
    )
    .await;
    if server.is_finished() && result.is_err() {
        match server.await {
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            _ => panic!("reconcile did not finish"),
        }
    }
    let result = result.expect("reconcile did not finish: it waits for an answer");
    let (recorded, _handle) = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the operator made fewer requests than the script expects")
        .expect("the mock API server panicked");
    assert_eq!(recorded.len(), expected);
    assert_applied_in_dependency_order(&recorded);
    (result, recorded, ctx)
}

/// The scripts list a phase's applies in any order; this holds every scripted reconcile
/// to the order the child table declares (what a child refers to is applied first), so
/// a change of that order is checked in one place instead of rewriting every script.
fn assert_applied_in_dependency_order(recorded: &[Recorded]) {
    use crate::resources::ChildKind;
    let rank = |path: &str| {
        let plural = path.rsplit('/').nth(1)?;
        ChildKind::ALL
            .iter()
            .position(|k| k.resource().plural == plural)
    };
    let applies: Vec<(usize, &str)> = recorded
        .iter()
        .filter(|r| r.method == Method::PATCH)
        .filter_map(|r| rank(&r.path).map(|k| (k, r.path.as_str())))
        .collect();
    for pair in applies.windows(2) {
        assert!(
            pair[0].0 <= pair[1].0,
            "{} was applied after {}, against the order of ChildKind",
            pair[1].1,
            pair[0].1
        );
    }
}

pub(super) fn cacheme(name: &str, spec: Value) -> CacheMe {
    let spec: CacheMeSpec = serde_json::from_value(spec).expect("valid spec");
    let mut cm = CacheMe::new(name, spec);
    cm.metadata.namespace = Some(NS.to_string());
    cm.metadata.uid = Some("8d6b9a4e-0000-4000-8000-000000000001".to_string());
    cm.metadata.generation = Some(1);
    cm
}

/// The applies of the default stack `demo`, independent of each other: in any order.
pub(super) fn default_stack_calls(deployments: Reply) -> Vec<Call> {
    let mut calls = vec![call(
        Method::PATCH,
        core("persistentvolumeclaims", "demo-postgres-data"),
        Reply::Echo,
    )];
    for svc in ["demo-api", "demo-frontend", "demo-postgres", "demo-redis"] {
        calls.push(call(Method::PATCH, core("services", svc), Reply::Echo));
    }
    for deploy in ["demo-api", "demo-frontend", "demo-postgres", "demo-redis"] {
        calls.push(call(
            Method::PATCH,
            group("apps/v1", "deployments", deploy),
            deployments.clone(),
        ));
    }
    for np in ["demo-api", "demo-postgres", "demo-redis"] {
        calls.push(call(
            Method::PATCH,
            group("networking.k8s.io/v1", "networkpolicies", np),
            Reply::Echo,
        ));
    }
    any_order(calls)
}

/// Deletes of what is off in the default stack (all already gone), in any order.
pub(super) fn default_absent_calls() -> Vec<Call> {
    any_order(vec![
        call(
            Method::DELETE,
            group("policy/v1", "poddisruptionbudgets", "demo-api"),
            not_found(),
        ),
        call(Method::DELETE, core("configmaps", "demo-seed"), not_found()),
        call(
            Method::DELETE,
            group("apps/v1", "deployments", "demo-pgadmin"),
            not_found(),
        ),
        call(
            Method::DELETE,
            core("services", "demo-pgadmin"),
            not_found(),
        ),
        call(
            Method::DELETE,
            core("configmaps", "demo-pgadmin"),
            not_found(),
        ),
        call(
            Method::DELETE,
            group("apps/v1", "deployments", "demo-redis-commander"),
            not_found(),
        ),
        call(
            Method::DELETE,
            core("services", "demo-redis-commander"),
            not_found(),
        ),
        call(
            Method::DELETE,
            group("networking.k8s.io/v1", "ingresses", "demo"),
            not_found(),
        ),
        call(
            Method::DELETE,
            group("gateway.networking.k8s.io/v1", "httproutes", "demo"),
            not_found(),
        ),
        call(
            Method::DELETE,
            group("autoscaling/v2", "horizontalpodautoscalers", "demo-api"),
            not_found(),
        ),
    ])
}

/// The reads of the generated Secrets, which exist, in any order.
pub(super) fn existing_secrets() -> Vec<Call> {
    any_order(
        [
            "demo-api-credentials",
            "demo-postgres-credentials",
            "demo-redis-credentials",
        ]
        .into_iter()
        .map(|s| call(Method::GET, core("secrets", s), secret_exists(s)))
        .collect(),
    )
}

pub(super) fn find<'a>(recorded: &'a [Recorded], method: Method, path: &str) -> &'a Recorded {
    recorded
        .iter()
        .find(|r| r.method == method && r.path == path)
        .unwrap_or_else(|| panic!("no {method} {path}"))
}

/// The status the reconcile of the CacheMe `demo` wrote.
pub(super) fn written_status(recorded: &[Recorded]) -> Value {
    find(
        recorded,
        Method::PATCH,
        &group("cacheme.dev/v1alpha1", "cachemes", "demo/status"),
    )
    .body["status"]
        .clone()
}

/// The written status is Degraded for `reason`, its message names each of `mentions`,
/// and a Warning event with the same reason was posted.
pub(super) fn assert_degraded_and_warned(recorded: &[Recorded], reason: &str, mentions: &[&str]) {
    let status = written_status(recorded);
    assert_eq!(status["phase"], "Degraded");
    let degraded = condition(&status, "Degraded");
    assert_eq!(
        (&degraded["status"], &degraded["reason"]),
        (&json!("True"), &json!(reason))
    );
    let message = degraded["message"].as_str().unwrap_or_default();
    assert!(mentions.iter().all(|m| message.contains(m)), "{message}");
    let warning = &find(
        recorded,
        Method::POST,
        &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
    )
    .body;
    assert_eq!(
        (&warning["type"], &warning["reason"]),
        (&json!("Warning"), &json!(reason))
    );
}

pub(super) fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

/// The status a successful reconcile of the default stack writes when every
/// Deployment is ready.
pub(super) fn ready_status(cm: &CacheMe) -> CacheMeStatus {
    let stack = Stack::new(cm, None).expect("stack");
    let rollouts: Vec<Rollout> = ["demo-api", "demo-frontend", "demo-postgres", "demo-redis"]
        .iter()
        .map(|name| Rollout {
            name: name.to_string(),
            workload: status::Workload::Deployment,
            desired: 1,
            replicas: 1,
            ready: 1,
            complete: true,
            stuck: None,
        })
        .collect();
    let mut status = status::reconciled(cm, rollouts.first(), &rollouts, stack.endpoints(), &now());
    status.selector = Some(stack.api_selector());
    status
}
