//! The controller's wiring: which objects are watched and what each change
//! means, then the reconcile loop (the reconcile itself is in `controller`).

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams};
use kube::core::{DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

use crate::controller::{Context, error_policy, reconcile, seed_config_map_users};
use crate::crd::CacheMe;
use crate::resources::{ChildKind, MANAGED_BY};
use crate::{Error, Result};

/// The CacheMe a pod of one of our Deployments belongs to (by its labels).
fn pod_owner(pod: PartialObjectMeta<Pod>) -> Option<ObjectRef<CacheMe>> {
    let instance = pod.labels().get("app.kubernetes.io/instance")?;
    Some(ObjectRef::new(instance).within(pod.namespace()?.as_str()))
}

/// Runs the controller until `stop` resolves; in-flight reconciles finish first.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    instance: Option<String>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let cachemes: Api<CacheMe> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Fail fast, with a hint, when the CRD is missing.
    cachemes
        .list(&ListParams::default().limit(1))
        .await
        .map_err(|e| {
            warn!(error = %e, "cannot list CacheMes: is the CRD installed (k8s/crd.yaml)?");
            Error::Kube(Box::new(e))
        })?;

    fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let owned_config =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));

    let (reader, writer) = reflector::store();
    // The user's seed ConfigMaps are not owned (and not labelled): watch every
    // ConfigMap, metadata only (the reconcile reads the referenced one), and
    // map a change to the CacheMes that reference it.
    let cachemes_store = reader.clone();
    let seed_config_maps = watcher(
        scoped::<PartialObjectMeta<ConfigMap>>(&client, &namespace),
        watcher::Config::default(),
    )
    .touched_objects();
    let stack_pods_changes = watcher(
        scoped::<PartialObjectMeta<Pod>>(&client, &namespace),
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}")),
    )
    .touched_objects();
    // Only spec changes of a CacheMe (its generation) trigger; our status
    // writes do not.
    let cachemes = watcher(cachemes, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());

    let ctx = Arc::new(Context::new(client.clone(), instance));
    // Pod and HPA status changes come in bursts: one reconcile per burst.
    let mut controller = Controller::for_stream(cachemes, reader)
        .with_config(kube::runtime::controller::Config::default().debounce(Duration::from_secs(1)));
    // Every child kind that may be watched (see `ChildKind::watched`); `owns_with`, like
    // `owns`, watches their metadata only.
    // Not owned here: CloudNativePG Clusters and Gateway API HTTPRoutes, kinds the API
    // server may not serve. A Cluster's status is polled (CLOUDNATIVEPG_REQUEUE); the
    // CacheMe reads no status of an HTTPRoute, and one edited or deleted by someone else
    // is applied again by the periodic reconcile (READY_REQUEUE, 5 minutes).
    for kind in ChildKind::ALL.into_iter().filter(|k| k.watched()) {
        let resource = kind.resource();
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        controller = controller.owns_with(api, resource, owned_config.clone());
    }
    controller
        // A pod that starts crash-looping changes no Deployment status.
        .watches_stream(stack_pods_changes, pod_owner)
        .watches_stream(seed_config_maps, move |config_map| {
            seed_config_map_users(&cachemes_store, &config_map)
        })
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(cacheme = %object, "reconciled"),
                // Reconcile failures were logged (warn) and reported by `reconcile`;
                // watch and queue errors (a missing RBAC verb, a CRD that went away)
                // surface only here, so they must be visible at the default level.
                Err(e @ kube::runtime::controller::Error::ReconcilerFailed(..)) => {
                    tracing::debug!(error = %e, "reconcile error")
                }
                Err(e) => tracing::warn!(error = %e, "watch or queue error"),
            }
        })
        .await;
    Ok(())
}
