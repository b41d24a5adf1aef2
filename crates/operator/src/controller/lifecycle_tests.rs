//! A stack's life against the mock API server: created (Secrets generated, every
//! child applied, progress reported), reconciled again with nothing to do, rolled
//! out on a TTL change, and a component switched off.

use http::Method;
use serde_json::{Value, json};

use super::tests::*;
use super::*;
use crate::fixtures::Recorded;
use crate::fixtures::scripted::*;

#[tokio::test]
async fn create_generates_secrets_applies_everything_and_reports_progress() {
    let cm = cacheme("demo", json!({}));
    let mut script = vec![
        call(
            Method::GET,
            core("secrets", "demo-api-credentials"),
            not_found(),
        ),
        call(
            Method::POST,
            format!("/api/v1/namespaces/{NS}/secrets"),
            Reply::Echo,
        ),
        event(),
        call(
            Method::GET,
            core("secrets", "demo-postgres-credentials"),
            not_found(),
        ),
        call(
            Method::POST,
            format!("/api/v1/namespaces/{NS}/secrets"),
            Reply::Echo,
        ),
        event(),
        call(
            Method::GET,
            core("secrets", "demo-redis-credentials"),
            not_found(),
        ),
        call(
            Method::POST,
            format!("/api/v1/namespaces/{NS}/secrets"),
            Reply::Echo,
        ),
        event(),
    ];
    script.extend(default_stack_calls(Reply::Echo));
    script.extend(default_absent_calls());
    script.push(pods_list(Vec::new()));
    script.push(status_patch("demo"));
    script.push(event());

    let (result, recorded, _) = run(cm, script).await;
    assert_eq!(
        result.expect("reconcile succeeds"),
        Action::requeue(PROGRESS_REQUEUE)
    );

    // Every apply is a server-side apply under the one field manager.
    for r in recorded.iter().filter(|r| r.method == Method::PATCH) {
        assert!(
            r.query.contains("fieldManager=cacheme-operator") && r.query.contains("force=true"),
            "{} {}",
            r.path,
            r.query
        );
        assert!(r.body["apiVersion"].is_string() && r.body["kind"].is_string());
    }
    // Secrets are created with a generated, non-empty password.
    let secrets: Vec<&Recorded> = recorded
        .iter()
        .filter(|r| r.method == Method::POST && r.path.ends_with("/secrets"))
        .collect();
    assert_eq!(secrets.len(), 3);
    for s in &secrets {
        assert_eq!(s.body["type"], "kubernetes.io/basic-auth");
        assert_eq!(s.body["immutable"], true);
        let password = s.body["data"]["password"].as_str().unwrap_or_default();
        assert!(password.len() >= 40, "base64 of 32 chars: {password}");
    }
    assert_ne!(
        secrets[0].body["data"]["password"],
        secrets[1].body["data"]["password"]
    );
    // Status: Progressing while the Deployments roll out.
    let status = &find(
        &recorded,
        Method::PATCH,
        &group("cacheme.dev/v1alpha1", "cachemes", "demo/status"),
    )
    .body["status"];
    assert_eq!(status["phase"], "Progressing");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["readyReplicas"], 0);
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert_eq!(condition(status, "Progressing")["status"], "True");
    assert_eq!(condition(status, "Degraded")["status"], "False");
    assert_eq!(
        status["endpoints"]["api"],
        "http://demo-api.cacheme.svc:8000/"
    );
    // Events: three secrets created (admin token, PostgreSQL, Redis), then Progressing.
    let reasons: Vec<&Value> = recorded
        .iter()
        .filter(|r| r.path.ends_with("/events"))
        .map(|r| &r.body["reason"])
        .collect();
    assert_eq!(
        reasons,
        [
            "SecretCreated",
            "SecretCreated",
            "SecretCreated",
            "Progressing"
        ]
    );
}

#[tokio::test]
async fn reconcile_of_a_ready_stack_changes_nothing() {
    let mut cm = cacheme("demo", json!({}));
    cm.status = Some(ready_status(&cm));
    let mut script = existing_secrets();
    script.extend(default_stack_calls(Reply::EchoReady));
    script.extend(default_absent_calls());
    // No secret created, no status write, no event.

    let (result, recorded, _) = run(cm, script).await;
    assert_eq!(
        result.expect("reconcile succeeds"),
        Action::requeue(READY_REQUEUE)
    );
    assert!(recorded.iter().all(|r| r.method != Method::POST));
    assert!(!recorded.iter().any(|r| r.path.ends_with("/status")));
}

#[tokio::test]
async fn ttl_change_rolls_the_api_out() {
    let api_path = group("apps/v1", "deployments", "demo-api");
    let applied_api = |recorded: &[Recorded]| find(recorded, Method::PATCH, &api_path).body.clone();
    let hash = |api: &Value| {
        api["spec"]["template"]["metadata"]["annotations"]["cacheme.dev/config-hash"].clone()
    };
    let ttl_env = |api: &Value| {
        api["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .and_then(|env| env.iter().find(|e| e["name"] == "CACHE_TTL_SECONDS"))
            .map(|e| e["value"].clone())
    };

    let mut before = cacheme("demo", json!({"ttlSeconds": 3600}));
    before.status = Some(ready_status(&before));
    let mut script = existing_secrets();
    script.extend(default_stack_calls(Reply::EchoReady));
    script.extend(default_absent_calls());
    let (_, first, _) = run(before.clone(), script).await;

    let mut after = before.clone();
    after.spec.ttl_seconds = 60;
    after.metadata.generation = Some(2);
    let mut script = existing_secrets();
    // The API Deployment's new generation is not rolled out yet.
    script.extend(default_stack_calls(Reply::Echo));
    script.extend(default_absent_calls());
    script.push(pods_list(Vec::new()));
    script.push(status_patch("demo"));
    script.push(event());
    let (result, second, _) = run(after, script).await;
    assert!(result.is_ok());

    let (old, new) = (applied_api(&first), applied_api(&second));
    assert_ne!(hash(&old), hash(&new), "the pod template must change");
    assert_eq!(ttl_env(&old), Some(json!("3600")));
    assert_eq!(ttl_env(&new), Some(json!("60")));
    let status = &find(
        &second,
        Method::PATCH,
        &group("cacheme.dev/v1alpha1", "cachemes", "demo/status"),
    )
    .body["status"];
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(status["phase"], "Progressing");
}

#[tokio::test]
async fn switching_a_component_off_deletes_its_objects() {
    let mut cm = cacheme("demo", json!({"frontend": {"enabled": false}}));
    cm.status = Some(ready_status(&cm));
    let mut script = existing_secrets();
    let mut applies = vec![call(
        Method::PATCH,
        core("persistentvolumeclaims", "demo-postgres-data"),
        Reply::Echo,
    )];
    for svc in ["demo-api", "demo-postgres", "demo-redis"] {
        applies.push(call(Method::PATCH, core("services", svc), Reply::Echo));
    }
    for deploy in ["demo-api", "demo-postgres", "demo-redis"] {
        applies.push(call(
            Method::PATCH,
            group("apps/v1", "deployments", deploy),
            Reply::EchoReady,
        ));
    }
    for np in ["demo-api", "demo-postgres", "demo-redis"] {
        applies.push(call(
            Method::PATCH,
            group("networking.k8s.io/v1", "networkpolicies", np),
            Reply::Echo,
        ));
    }
    script.extend(any_order(applies));
    let mut absent = default_absent_calls();
    // The page's Deployment and Service exist and are deleted, each with an event.
    absent.splice(
        2..2,
        [
            call(
                Method::DELETE,
                group("apps/v1", "deployments", "demo-frontend"),
                deleted(),
            ),
            event(),
            call(Method::DELETE, core("services", "demo-frontend"), deleted()),
            event(),
        ],
    );
    script.extend(absent);
    // Fewer deployments: the Ready message changes, so the status is written.
    script.push(status_patch("demo"));

    let (result, recorded, _) = run(cm, script).await;
    assert!(result.is_ok());
    let notes: Vec<&Value> = recorded
        .iter()
        .filter(|r| r.path.ends_with("/events"))
        .map(|r| &r.body["note"])
        .collect();
    assert_eq!(
        notes,
        [
            "Deleted Deployment demo-frontend: its component is off",
            "Deleted Service demo-frontend: its component is off"
        ]
    );
    let deletes: Vec<&Recorded> = recorded
        .iter()
        .filter(|r| r.method == Method::DELETE)
        .collect();
    assert!(
        deletes.iter().all(|r| r.query.contains("propagationPolicy")
            || r.body["propagationPolicy"] == "Background")
    );
    let status = &find(
        &recorded,
        Method::PATCH,
        &group("cacheme.dev/v1alpha1", "cachemes", "demo/status"),
    )
    .body["status"];
    assert_eq!(status["phase"], "Ready");
    assert!(status["endpoints"].get("page").is_none());
}
