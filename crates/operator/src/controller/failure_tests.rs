//! Failures against the mock API server: a crash-looping pod, an apply the API
//! server refuses, a missing seed ConfigMap. Each turns the CacheMe Degraded with its
//! reason, posts a Warning event, and backs off where retrying helps.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::json;

use super::tests::*;
use super::*;
use crate::fixtures::scripted::*;

#[tokio::test]
async fn a_crash_looping_pod_turns_the_stack_degraded_with_its_reason() {
    let mut cm = cacheme("demo", json!({}));
    cm.status = Some(ready_status(&cm));
    let crashing = json!({
        "metadata": {"name": "demo-api-7d9f-x2x", "labels": {
            "app.kubernetes.io/name": "cacheme",
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/component": "api",
        }},
        "status": {"containerStatuses": [{
            "name": "api", "image": "localhost/cacheme/api:0.1.0", "imageID": "", "ready": false,
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=api"}},
        }]},
    });
    let mut script = existing_secrets();
    script.extend(default_stack_calls(Reply::Echo));
    script.extend(default_absent_calls());
    script.push(pods_list(vec![crashing]));
    script.push(status_patch("demo"));
    script.push(event());

    let (result, recorded, _) = run(cm, script).await;
    assert!(result.is_ok(), "{result:?}");
    let status = &find(
        &recorded,
        Method::PATCH,
        &group("cacheme.dev/v1alpha1", "cachemes", "demo/status"),
    )
    .body["status"];
    assert_eq!(status["phase"], "Degraded");
    let degraded = condition(status, "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "ComponentFailing");
    let message = degraded["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("demo-api-7d9f-x2x container api: CrashLoopBackOff"),
        "{message}"
    );
    let event = recorded
        .iter()
        .rfind(|r| r.path.ends_with("/events"))
        .map(|r| r.body.clone())
        .unwrap_or_default();
    assert_eq!(
        (&event["type"], &event["reason"]),
        (&json!("Warning"), &json!("Degraded"))
    );
}

#[tokio::test]
async fn apply_error_sets_degraded_records_an_event_and_backs_off() {
    let mut cm = cacheme("demo", json!({}));
    cm.status = Some(ready_status(&cm));
    let mut script = existing_secrets();
    // The API server refuses the claim (an immutable field): every later child is still
    // applied and every switched-off one still deleted, then the failure is reported.
    let mut children = default_stack_calls(Reply::Echo);
    children[0].reply = Reply::Fail(422, "Invalid");
    script.extend(children);
    script.extend(default_absent_calls());
    script.push(event());
    script.push(status_patch("demo"));

    let (result, recorded, ctx) = run(cm.clone(), script).await;
    let error = result.expect_err("reconcile fails");
    assert!(
        matches!(error, Error::Apply { ref kind, ref name, .. } if kind == "PersistentVolumeClaim" && name == "demo-postgres-data")
    );
    assert_eq!(error.metric_label(), "apply");
    for deploy in ["demo-api", "demo-frontend", "demo-postgres", "demo-redis"] {
        find(
            &recorded,
            Method::PATCH,
            &group("apps/v1", "deployments", deploy),
        );
    }

    let warning = &find(
        &recorded,
        Method::POST,
        &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
    )
    .body;
    assert_eq!(warning["type"], "Warning");
    assert_eq!(warning["reason"], "ApplyFailed");
    assert_eq!(warning["regarding"]["name"], "demo");
    assert!(
        warning["note"]
            .as_str()
            .is_some_and(|n| n.contains("PersistentVolumeClaim demo-postgres-data")),
        "{warning}"
    );

    let status = &find(
        &recorded,
        Method::PATCH,
        &group("cacheme.dev/v1alpha1", "cachemes", "demo/status"),
    )
    .body["status"];
    assert_eq!(status["phase"], "Degraded");
    let degraded = condition(status, "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "ApplyFailed");

    // Per-object exponential backoff: 5 s, 10 s, 20 s ... then reset on success.
    let cm = Arc::new(cm);
    assert_eq!(
        error_policy(Arc::clone(&cm), &error, Arc::clone(&ctx)),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(Arc::clone(&cm), &error, Arc::clone(&ctx)),
        Action::requeue(Duration::from_secs(10))
    );
    let other = Arc::new(cacheme("other", json!({})));
    assert_eq!(
        error_policy(other, &error, Arc::clone(&ctx)),
        Action::requeue(Duration::from_secs(5)),
        "backoff is per object"
    );
    ctx.backoffs.succeeded(&key(&cm));
    assert_eq!(
        error_policy(cm, &error, ctx),
        Action::requeue(Duration::from_secs(5))
    );
}

#[tokio::test]
async fn missing_seed_config_map_is_reported_as_degraded() {
    let cm = cacheme(
        "demo",
        json!({"seedData": {"configMapRef": {"name": "my-products"}}}),
    );
    let script = vec![
        call(Method::GET, core("configmaps", "my-products"), not_found()),
        event(),
        status_patch("demo"),
    ];
    let (result, recorded, _) = run(cm, script).await;
    assert!(matches!(result, Err(Error::Seed { .. })));
    let status = &recorded[2].body["status"];
    assert_eq!(condition(status, "Degraded")["reason"], "SeedUnavailable");
    assert_eq!(condition(status, "Ready")["status"], "False");
}
