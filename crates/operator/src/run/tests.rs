//! `lead_and_reconcile` against a fake Kubernetes API server listening on
//! 127.0.0.1: leader election through a coordination.k8s.io/v1 Lease (what
//! kube-lease-manager sends: GET, POST when missing, server-side apply and
//! strategic-merge PATCHes), the controller's LISTs and WATCHes, graceful
//! shutdown, and a Lease held by another replica.
//!
//! Waits poll a condition; their time limit only guards against a hang.

use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::*;

/// The client's default namespace, where the Lease goes unless `--lease-namespace`.
const CLIENT_NS: &str = "cacheme-system";
const LEASE_NAME: &str = "cacheme-operator-test";
const IDENTITY: &str = "cacheme-operator-0";
const OTHER_IDENTITY: &str = "cacheme-operator-1";
/// Short, so that waiting for a renewal or an expiry takes seconds.
const LEASE_SECONDS: u64 = 3;
/// Upper bound of every wait: a guard against hangs, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// Every kind the controller lists and watches, by collection path (all namespaces).
const WATCHED: [&str; 8] = [
    "/apis/cacheme.dev/v1alpha1/cachemes",
    "/apis/apps/v1/deployments",
    "/api/v1/services",
    "/api/v1/configmaps",
    "/api/v1/persistentvolumeclaims",
    "/apis/networking.k8s.io/v1/networkpolicies",
    "/apis/policy/v1/poddisruptionbudgets",
    "/apis/networking.k8s.io/v1/ingresses",
];

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock()
}

/// A request the fake API server received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    body: Value,
}

impl Seen {
    fn is_watch(&self) -> bool {
        self.query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    }
}

/// Just enough of a Kubernetes API server: one Lease, empty lists, idle watches.
#[derive(Debug, Default)]
struct FakeApi {
    seen: Mutex<Vec<Seen>>,
    /// The only Lease of the server.
    lease: Mutex<Option<Value>>,
    /// The Lease belongs to another replica that keeps renewing it: every GET
    /// returns it with a fresh `renewTime`.
    renewed_by_other: bool,
    resource_version: AtomicU64,
}

impl FakeApi {
    /// A server whose Lease is held, and kept, by [`OTHER_IDENTITY`].
    fn held_by_another_replica() -> Self {
        let now = MicroTime(Timestamp::now());
        let api = Self {
            renewed_by_other: true,
            ..Self::default()
        };
        *lock(&api.lease) = Some(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": LEASE_NAME,
                "namespace": CLIENT_NS,
                "resourceVersion": "1",
                "uid": "5b0c4f7e-0000-4000-8000-000000000002",
            },
            "spec": {
                "holderIdentity": OTHER_IDENTITY,
                "leaseDurationSeconds": LEASE_SECONDS,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 1,
            },
        }));
        api
    }

    fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    fn lease(&self) -> Option<Value> {
        lock(&self.lease).clone()
    }

    /// Requests to `path` (exactly) matching `what`.
    fn count(&self, path: &str, what: impl Fn(&Seen) -> bool) -> usize {
        lock(&self.seen)
            .iter()
            .filter(|s| s.path == path && what(s))
            .count()
    }

    fn listed(&self, path: &str) -> bool {
        self.count(path, |s| s.method == Method::GET && !s.is_watch()) > 0
    }

    fn watched(&self, path: &str) -> bool {
        self.count(path, |s| s.method == Method::GET && s.is_watch()) > 0
    }

    /// Any request for CacheMes, in any namespace.
    fn touched_cachemes(&self) -> bool {
        lock(&self.seen)
            .iter()
            .any(|s| s.path.starts_with("/apis/cacheme.dev/") && s.path.contains("/cachemes"))
    }

    fn next_resource_version(&self) -> String {
        (self.resource_version.fetch_add(1, Ordering::Relaxed) + 2).to_string()
    }

    fn lease_request(&self, method: &Method, rest: &str, body: Value) -> Response {
        let parts: Vec<&str> = rest.split('/').collect();
        let mut stored = lock(&self.lease);
        let matches = |lease: &Value, namespace: &str, name: &str| {
            lease["metadata"]["namespace"] == namespace && lease["metadata"]["name"] == name
        };
        match (method.clone(), parts.as_slice()) {
            (Method::POST, [namespace, "leases"]) => {
                if stored.is_some() {
                    return status(StatusCode::CONFLICT, "AlreadyExists", "lease exists");
                }
                let mut lease = body;
                lease["metadata"]["namespace"] = json!(namespace);
                lease["metadata"]["uid"] = json!("5b0c4f7e-0000-4000-8000-000000000001");
                lease["metadata"]["resourceVersion"] = json!(self.next_resource_version());
                *stored = Some(lease.clone());
                (StatusCode::CREATED, Json(lease)).into_response()
            }
            (Method::GET, [namespace, "leases", name]) => match stored.as_mut() {
                Some(lease) if matches(lease, namespace, name) => {
                    if self.renewed_by_other {
                        lease["spec"]["renewTime"] = json!(MicroTime(Timestamp::now()));
                    }
                    Json(lease.clone()).into_response()
                }
                _ => status(StatusCode::NOT_FOUND, "NotFound", "lease not found"),
            },
            // Server-side apply and strategic merge patches of kube-lease-manager
            // only set or remove (null) spec fields: a JSON merge does the same.
            (Method::PATCH, [namespace, "leases", name]) => match stored.as_mut() {
                Some(lease) if matches(lease, namespace, name) => {
                    merge(lease, &body);
                    lease["metadata"]["resourceVersion"] = json!(self.next_resource_version());
                    Json(lease.clone()).into_response()
                }
                _ => status(StatusCode::NOT_FOUND, "NotFound", "lease not found"),
            },
            (Method::PUT, [namespace, "leases", name]) => match stored.as_mut() {
                Some(lease) if matches(lease, namespace, name) => {
                    *lease = body;
                    lease["metadata"]["resourceVersion"] = json!(self.next_resource_version());
                    Json(lease.clone()).into_response()
                }
                _ => status(StatusCode::NOT_FOUND, "NotFound", "lease not found"),
            },
            _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", rest),
        }
    }
}

/// RFC 7386 JSON merge: `null` removes a field.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code.as_u16(),
    });
    (code, Json(body)).into_response()
}

/// An empty list of the collection at `path`, as the API server types it.
fn empty_list(path: &str, headers: &HeaderMap) -> Response {
    let plural = path.rsplit('/').next().unwrap_or_default();
    let kind = match plural {
        "cachemes" => "CacheMe",
        "deployments" => "Deployment",
        "services" => "Service",
        "configmaps" => "ConfigMap",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        "networkpolicies" => "NetworkPolicy",
        "poddisruptionbudgets" => "PodDisruptionBudget",
        "ingresses" => "Ingress",
        _ => return status(StatusCode::NOT_FOUND, "NotFound", path),
    };
    let mut segments = path.trim_start_matches('/').split('/');
    let api_version = match (segments.next(), segments.next(), segments.next()) {
        (Some("api"), Some(version), _) => version.to_string(),
        (Some("apis"), Some(group), Some(version)) => format!("{group}/{version}"),
        _ => return status(StatusCode::NOT_FOUND, "NotFound", path),
    };
    // Metadata-only lists and watches (kube's `owns` and `metadata_watcher`).
    let metadata_only = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("as=PartialObjectMetadataList"));
    let (api_version, kind) = if metadata_only {
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
        )
    } else {
        (api_version, format!("{kind}List"))
    };
    Json(json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": "1"},
        "items": [],
    }))
    .into_response()
}

/// A watch that stays open without events, as on a quiet cluster.
fn idle_watch() -> Response {
    let events = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(events),
    )
        .into_response()
}

async fn handle(
    State(api): State<Arc<FakeApi>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method: method.clone(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    lock(&api.seen).push(seen.clone());
    if let Some(rest) = seen
        .path
        .strip_prefix("/apis/coordination.k8s.io/v1/namespaces/")
    {
        return api.lease_request(&method, rest, seen.body);
    }
    match method {
        Method::GET if seen.is_watch() => idle_watch(),
        Method::GET => empty_list(&seen.path, &headers),
        _ => status(StatusCode::NOT_FOUND, "NotFound", &seen.path),
    }
}

/// Starts the fake API server; the client's default namespace is [`CLIENT_NS`].
async fn serve(api: Arc<FakeApi>) -> (Client, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let app = Router::new().fallback(handle).with_state(api);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url: Uri = format!("http://{addr}").parse().expect("valid URL");
    let mut config = kube::Config::new(url);
    config.default_namespace = CLIENT_NS.to_string();
    let client = Client::try_from(config).expect("client of the fake API server");
    (client, server)
}

fn args() -> RunArgs {
    RunArgs {
        http_addr: "127.0.0.1:0".parse().expect("valid address"),
        watch_namespace: None,
        lease_namespace: None,
        lease_name: LEASE_NAME.to_string(),
        identity: Some(IDENTITY.to_string()),
        lease_duration_seconds: LEASE_SECONDS,
    }
}

/// `lead_and_reconcile` running in a task.
struct Operator {
    health: Arc<Health>,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    fn start(client: Client, args: RunArgs) -> Self {
        let health = Arc::new(Health::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn({
            let health = Arc::clone(&health);
            async move { lead_and_reconcile(client, &args, health, stop_rx).await }
        });
        Self { health, stop, task }
    }

    fn is_ready(&self) -> bool {
        self.health.ready.load(Ordering::Relaxed)
    }

    fn is_leader(&self) -> bool {
        self.health.leader.load(Ordering::Relaxed)
    }

    /// Requests shutdown and waits for `lead_and_reconcile` to return.
    async fn shut_down(self) -> (anyhow::Result<()>, Arc<Health>) {
        // Fails only when it has already returned (and dropped the receiver).
        let _ = self.stop.send(true);
        let result = tokio::time::timeout(HANG_GUARD, self.task)
            .await
            .expect("lead_and_reconcile returns once shutdown is requested")
            .expect("lead_and_reconcile does not panic");
        (result, self.health)
    }
}

/// Polls `condition` until it holds; panics after [`HANG_GUARD`].
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lease_path(namespace: &str) -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE_NAME}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takes_the_free_lease_then_runs_the_controller() {
    let api = Arc::new(FakeApi::default());
    let (client, _server) = serve(Arc::clone(&api)).await;
    let operator = Operator::start(client, args());

    eventually("this replica leads", || operator.is_leader()).await;
    assert!(operator.is_ready());

    // The missing Lease was created in the client's namespace, then taken.
    let collection = format!("/apis/coordination.k8s.io/v1/namespaces/{CLIENT_NS}/leases");
    assert_eq!(api.count(&collection, |s| s.method == Method::POST), 1);
    let lease = api.lease().expect("the Lease exists");
    assert_eq!(lease["metadata"]["name"], LEASE_NAME);
    assert_eq!(lease["metadata"]["namespace"], CLIENT_NS);
    assert_eq!(lease["spec"]["holderIdentity"], IDENTITY);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], LEASE_SECONDS);

    // The controller lists then watches the CacheMes and every owned kind.
    for path in WATCHED {
        eventually(&format!("a WATCH of {path}"), || api.watched(path)).await;
        assert!(api.listed(path), "no LIST of {path}");
    }
    // ConfigMaps twice: the owned ones (by label) and, for seed data
    // references, all of them.
    let config_maps = |labelled: bool| {
        api.count("/api/v1/configmaps", |s| {
            s.is_watch() && s.query.contains("labelSelector=") == labelled
        })
    };
    eventually("a WATCH of the owned ConfigMaps", || config_maps(true) > 0).await;
    eventually("a WATCH of the seed ConfigMaps", || config_maps(false) > 0).await;

    // While leading, it renews the Lease.
    let renewed_at = lease["spec"]["renewTime"].clone();
    eventually("the Lease is renewed", || {
        api.lease()
            .is_some_and(|l| l["spec"]["renewTime"] != renewed_at)
    })
    .await;
    assert!(operator.is_leader());
    assert_eq!(
        api.lease().expect("the Lease exists")["spec"]["holderIdentity"],
        IDENTITY
    );

    let (result, _) = operator.shut_down().await;
    result.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_controller_and_releases_the_lease() {
    let api = Arc::new(FakeApi::default());
    let (client, _server) = serve(Arc::clone(&api)).await;
    let args = RunArgs {
        lease_namespace: Some("leases".to_string()),
        watch_namespace: Some("shop".to_string()),
        ..args()
    };
    let operator = Operator::start(client, args);

    let cachemes = "/apis/cacheme.dev/v1alpha1/namespaces/shop/cachemes";
    eventually(
        "the controller watches the CacheMes of its namespace",
        || api.watched(cachemes),
    )
    .await;
    assert!(operator.is_leader());
    assert_eq!(
        api.lease().expect("the Lease exists")["spec"]["holderIdentity"],
        IDENTITY
    );
    let patches_before = api.count(&lease_path("leases"), |s| s.method == Method::PATCH);

    let (result, health) = operator.shut_down().await;
    result.expect("a clean stop");
    assert!(!health.leader.load(Ordering::Relaxed));

    // The Lease is given up: its holder removed with a PATCH.
    let lease = api.lease().expect("the Lease exists");
    assert!(
        lease["spec"].get("holderIdentity").is_none(),
        "still held: {lease}"
    );
    let releases: Vec<Seen> = api
        .seen()
        .into_iter()
        .filter(|s| s.method == Method::PATCH && s.path == lease_path("leases"))
        .skip(patches_before)
        .filter(|s| s.body["spec"].get("holderIdentity") == Some(&Value::Null))
        .collect();
    assert!(!releases.is_empty(), "no release PATCH: {:?}", api.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_by_another_replica_keeps_the_controller_off() {
    let api = Arc::new(FakeApi::held_by_another_replica());
    let (client, _server) = serve(Arc::clone(&api)).await;
    let operator = Operator::start(client, args());

    // At least two expiries of the other replica's lease pass: the first GET
    // is at start, then one after each period it found the lease renewed.
    let lease = lease_path(CLIENT_NS);
    eventually("two lease periods have passed", || {
        api.count(&lease, |s| s.method == Method::GET) >= 4
    })
    .await;
    assert!(operator.is_ready(), "a standby replica is ready");
    assert!(!operator.is_leader());
    assert!(
        !api.touched_cachemes(),
        "the controller ran without the lease"
    );
    assert_eq!(
        api.count(&lease, |s| s.method != Method::GET),
        0,
        "it wrote a Lease it does not hold"
    );

    let (result, health) = operator.shut_down().await;
    result.expect("a clean stop");
    assert!(!health.leader.load(Ordering::Relaxed));
    assert!(
        !api.touched_cachemes(),
        "the controller ran without the lease"
    );
    // The other replica's lease is left alone.
    assert_eq!(
        api.lease().expect("the Lease exists")["spec"]["holderIdentity"],
        OTHER_IDENTITY
    );
    assert_eq!(api.count(&lease, |s| s.method != Method::GET), 0);
}
