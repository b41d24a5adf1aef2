//! Reconciles of a CacheMe with and without `gateway`, against the mock API server: the
//! HTTPRoute is applied (after the Ingress) when set and deleted when not; an API server
//! without the Gateway API (a plain-text 404 on HTTPRoutes) turns a CacheMe with
//! `gateway` Degraded with reason `GatewayAPIMissing`, and changes nothing for one
//! without.

use http::Method;
use serde_json::json;

use super::tests::{
    assert_degraded_and_warned, cacheme, condition, default_absent_calls, default_stack_calls,
    existing_secrets, find, ready_status, run, written_status,
};
use super::*;
use crate::fixtures::scripted::*;

fn route_path() -> String {
    group("gateway.networking.k8s.io/v1", "httproutes", "demo")
}

fn gateway_cacheme() -> CacheMe {
    cacheme(
        "demo",
        json!({"gateway": {
            "parentRefs": [{"name": "traefik-gateway", "namespace": "traefik"}],
            "hostnames": ["demo.example.com"],
        }}),
    )
}

/// The default stack's deletes, with `route` as the answer to the HTTPRoute's
/// (followed by `then`), or without it when `route` is `None` (the route is applied).
fn absent_calls(route: Option<Reply>, then: Option<Call>) -> Vec<Call> {
    let path = route_path();
    let mut calls = Vec::new();
    for c in default_absent_calls() {
        if c.path != path {
            calls.push(c);
            continue;
        }
        if let Some(reply) = route.clone() {
            calls.push(call(Method::DELETE, path.clone(), reply));
            calls.extend(then.clone());
        }
    }
    calls
}

/// The applies of the default stack (every Deployment ready), then the HTTPRoute's.
fn stack_with_route(route: Reply) -> Vec<Call> {
    let mut calls = existing_secrets();
    calls.extend(default_stack_calls(Reply::EchoReady));
    calls.push(call(Method::PATCH, route_path(), route));
    calls.extend(absent_calls(None, None));
    calls
}

#[tokio::test]
async fn the_route_is_applied_when_gateway_is_set() {
    let mut calls = stack_with_route(Reply::Echo);
    calls.push(status_patch("demo"));
    calls.push(event());

    let (result, recorded, _) = run(gateway_cacheme(), calls).await;
    assert_eq!(
        result.expect("reconcile succeeds"),
        Action::requeue(READY_REQUEUE)
    );
    let applied = find(&recorded, Method::PATCH, &route_path());
    assert!(
        applied.query.contains("fieldManager=cacheme-operator")
            && applied.query.contains("force=true"),
        "{}",
        applied.query
    );
    let route = &applied.body;
    assert_eq!(
        (&route["apiVersion"], &route["kind"]),
        (&json!("gateway.networking.k8s.io/v1"), &json!("HTTPRoute"))
    );
    assert_eq!(route["metadata"]["ownerReferences"][0]["name"], "demo");
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"name": "traefik-gateway", "namespace": "traefik"}])
    );
    assert_eq!(route["spec"]["hostnames"], json!(["demo.example.com"]));
    assert_eq!(
        route["spec"]["rules"][1]["backendRefs"],
        json!([{"name": "demo-frontend", "port": 80}])
    );
    // The route's host name is where the page and the API are.
    let status = written_status(&recorded);
    assert_eq!(status["phase"], "Ready");
    assert_eq!(status["endpoints"]["page"], "http://demo.example.com/");
    assert_eq!(
        status["endpoints"]["api"],
        "http://demo.example.com/products"
    );
}

#[tokio::test]
async fn the_route_is_deleted_when_gateway_is_removed() {
    let mut cm = cacheme("demo", json!({}));
    cm.status = Some(ready_status(&cm));
    let mut calls = existing_secrets();
    calls.extend(default_stack_calls(Reply::EchoReady));
    calls.extend(absent_calls(Some(deleted()), Some(event())));

    let (result, recorded, _) = run(cm, calls).await;
    assert_eq!(
        result.expect("reconcile succeeds"),
        Action::requeue(READY_REQUEUE)
    );
    assert!(
        !recorded
            .iter()
            .any(|r| r.method == Method::PATCH && r.path == route_path())
    );
    let note = &find(
        &recorded,
        Method::POST,
        &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
    )
    .body;
    assert_eq!(note["note"], "Deleted HTTPRoute demo: its component is off");
    assert_eq!(
        (&note["related"]["apiVersion"], &note["related"]["kind"]),
        (&json!("gateway.networking.k8s.io/v1"), &json!("HTTPRoute"))
    );
}

#[tokio::test]
async fn without_the_gateway_api_a_cacheme_with_gateway_is_degraded() {
    // The API server has no httproutes.gateway.networking.k8s.io: the apply answers a
    // plain-text 404. Every other child is still applied, then the failure is reported.
    let mut calls = stack_with_route(Reply::PageNotFound);
    calls.push(event());
    calls.push(status_patch("demo"));

    let (result, recorded, _) = run(gateway_cacheme(), calls).await;
    let error = result.expect_err("reconcile fails");
    assert!(matches!(error, Error::GatewayApiMissing), "{error:?}");
    assert_eq!(error.metric_label(), "gateway_api_missing");
    find(
        &recorded,
        Method::PATCH,
        &group("apps/v1", "deployments", "demo-api"),
    );

    assert_eq!(
        condition(&written_status(&recorded), "Ready")["status"],
        "False"
    );
    assert_degraded_and_warned(
        &recorded,
        "GatewayAPIMissing",
        &[
            "httproutes.gateway.networking.k8s.io",
            "standard-install.yaml",
        ],
    );
}

#[tokio::test]
async fn without_the_gateway_api_a_cacheme_without_gateway_is_fine() {
    // Deleting the route of a kind the API server does not serve answers a plain-text
    // 404: nothing to delete, no failure, no event, no status change.
    let mut cm = cacheme("demo", json!({}));
    cm.status = Some(ready_status(&cm));
    let mut calls = existing_secrets();
    calls.extend(default_stack_calls(Reply::EchoReady));
    calls.extend(absent_calls(Some(Reply::PageNotFound), None));

    let (result, recorded, _) = run(cm, calls).await;
    assert_eq!(
        result.expect("reconcile succeeds"),
        Action::requeue(READY_REQUEUE)
    );
    assert!(!recorded.iter().any(|r| r.path.ends_with("/status")));
    assert!(!recorded.iter().any(|r| r.path.ends_with("/events")));
}
