//! Reconcile against a mock API server (kube-rs' tower-test pattern): each
//! test lists the exact requests the operator must make, in order, and what
//! the fake API server answers.
//!
//! Long because each test spells out its whole request script; the shared
//! scripts live in helpers here and the mock server in `crate::fixtures`.

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
use kube::runtime::{reflector, watcher};

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

#[test]
fn backoff_doubles_and_is_capped() {
    assert_eq!(backoff_delay(1), Duration::from_secs(5));
    assert_eq!(backoff_delay(2), Duration::from_secs(10));
    assert_eq!(backoff_delay(4), Duration::from_secs(40));
    assert_eq!(backoff_delay(7), BACKOFF_MAX);
    assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
}

/// Names (`namespace/name`) of the CacheMes a change of `config_map` reconciles.
fn seed_users_of<C: Resource>(store: &Store<CacheMe>, config_map: &C) -> Vec<String> {
    let mut names: Vec<String> = seed_config_map_users(store, config_map)
        .into_iter()
        .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
        .collect();
    names.sort();
    names
}

#[test]
fn a_seed_config_map_change_reconciles_the_cachemes_that_reference_it() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::core::PartialObjectMetaExt;

    let (store, mut writer) = reflector::store::<CacheMe>();
    let mut elsewhere = cacheme(
        "elsewhere",
        json!({"seedData": {"configMapRef": {"name": "products"}}}),
    );
    elsewhere.metadata.namespace = Some("other".to_string());
    for cm in [
        cacheme(
            "by-name",
            json!({"seedData": {"configMapRef": {"name": "products"}}}),
        ),
        cacheme(
            "with-key",
            json!({"seedData": {"configMapRef": {"name": "products", "key": "list.json"}}}),
        ),
        cacheme(
            "other-name",
            json!({"seedData": {"configMapRef": {"name": "more-products"}}}),
        ),
        cacheme(
            "inline",
            json!({"seedData": {"products": [{"id": 1, "name": "Mug", "price": 4.5}]}}),
        ),
        cacheme("no-seed", json!({})),
        elsewhere,
    ] {
        writer.apply_watcher_event(&watcher::Event::Apply(cm));
    }
    let meta = |namespace: Option<&str>, name: &str| ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        ..ObjectMeta::default()
    };
    let config_map = |namespace: Option<&str>, name: &str| ConfigMap {
        metadata: meta(namespace, name),
        ..ConfigMap::default()
    };

    // Positive: every CacheMe of the namespace naming it, whatever the key.
    assert_eq!(
        seed_users_of(&store, &config_map(Some(NS), "products")),
        ["cacheme/by-name", "cacheme/with-key"]
    );
    assert_eq!(
        seed_users_of(&store, &config_map(Some(NS), "more-products")),
        ["cacheme/other-name"]
    );
    assert_eq!(
        seed_users_of(&store, &config_map(Some("other"), "products")),
        ["other/elsewhere"]
    );
    // The watch only delivers metadata: same answer.
    assert_eq!(
        seed_users_of(
            &store,
            &meta(Some(NS), "products").into_response_partial::<ConfigMap>()
        ),
        ["cacheme/by-name", "cacheme/with-key"]
    );

    // Negative: a name no CacheMe references, the same name in a namespace
    // without a referencing CacheMe, the operator's own ConfigMap of inline
    // seed data (an owned child, reconciled through its owner reference),
    // and a ConfigMap without a namespace.
    assert!(seed_users_of(&store, &config_map(Some(NS), "unrelated")).is_empty());
    assert!(seed_users_of(&store, &config_map(Some("third"), "products")).is_empty());
    assert!(seed_users_of(&store, &config_map(Some(NS), "inline-seed")).is_empty());
    assert!(seed_users_of(&store, &config_map(None, "products")).is_empty());

    // A CacheMe that stops referencing it is no longer mapped.
    writer.apply_watcher_event(&watcher::Event::Apply(cacheme(
        "by-name",
        json!({"seedData": {"products": []}}),
    )));
    assert_eq!(
        seed_users_of(&store, &config_map(Some(NS), "products")),
        ["cacheme/with-key"]
    );
}
