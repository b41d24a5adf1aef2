//! `lead_and_reconcile` against a fake Kubernetes API server listening on
//! 127.0.0.1: leader election through a coordination.k8s.io/v1 Lease (what
//! kube-lease-manager sends: GET, POST when missing, server-side apply and
//! strategic-merge PATCHes), the controller's LISTs and WATCHes, graceful
//! shutdown, and a Lease held by another replica.
//!
//! Waits poll a condition; their time limit only guards against a hang.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::Method;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::*;
use crate::fixtures::Recorded;
use crate::fixtures::fake_server::{CLIENT_NS, FakeApi, serve};

const LEASE_NAME: &str = "cacheme-operator-test";
const IDENTITY: &str = "cacheme-operator-0";
const OTHER_IDENTITY: &str = "cacheme-operator-1";
/// Short, so that waiting for a renewal or an expiry takes seconds.
const LEASE_SECONDS: u64 = 3;
/// Upper bound of every wait: a guard against hangs, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// Every kind the controller lists and watches, by collection path (all namespaces).
const WATCHED: [&str; 10] = [
    "/apis/cacheme.dev/v1alpha1/cachemes",
    "/api/v1/pods",
    "/apis/autoscaling/v2/horizontalpodautoscalers",
    "/apis/apps/v1/deployments",
    "/api/v1/services",
    "/api/v1/configmaps",
    "/api/v1/persistentvolumeclaims",
    "/apis/networking.k8s.io/v1/networkpolicies",
    "/apis/policy/v1/poddisruptionbudgets",
    "/apis/networking.k8s.io/v1/ingresses",
];

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
    let releases: Vec<Recorded> = api
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
    let api = Arc::new(FakeApi::held_by_another_replica(
        LEASE_NAME,
        OTHER_IDENTITY,
        LEASE_SECONDS,
    ));
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
