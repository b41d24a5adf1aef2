//! The reconcile loop: read the `CacheMe`, compute every child, apply each
//! with server-side apply under one field manager, delete what a switched-off
//! component left, write the status, and record Events. `apply_all` shows the order
//! of the steps (each in `steps`); `events` builds the Events, `backoff` the
//! per-object retry delays, `wiring` the watches and the loop that calls `reconcile`.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use tracing::{instrument, warn};

use crate::apply::collected;
use crate::crd::{CacheMe, CacheMeStatus, DEFAULT_SEED_KEY, Phase};
use crate::resources::Stack;
use crate::status::{self, Workload};
use crate::{Error, FIELD_MANAGER, Result, metrics};

/// Requeue period once everything is ready (drift correction).
pub const READY_REQUEUE: Duration = Duration::from_secs(300);
/// Requeue period while a rollout is in progress.
pub const PROGRESS_REQUEUE: Duration = Duration::from_secs(30);
/// Requeue period while the CloudNativePG Cluster is not ready. Clusters are not
/// watched: CloudNativePG is optional, and a watch on a kind the API server does not
/// have fails on every retry (a warning loop in every operator without CloudNativePG),
/// so the Cluster's status is polled, a little faster than a rollout.
pub const CLOUDNATIVEPG_REQUEUE: Duration = Duration::from_secs(10);
/// What `reconcile` needs.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub backoffs: Arc<Backoffs>,
}

impl Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// A context reporting events as `cacheme-operator` from `instance`.
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            backoffs: Arc::default(),
        }
    }
}

fn key(cm: &CacheMe) -> String {
    format!("{}/{}", cm.namespace().unwrap_or_default(), cm.name_any())
}

/// Reconciles one `CacheMe`; failures also become a `Degraded` condition and
/// a Warning event.
#[instrument(skip_all, fields(cacheme = %key(&cm)))]
pub async fn reconcile(cm: Arc<CacheMe>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    metrics::reconcile_started();
    let result = apply_all(&cm, &ctx).await;
    metrics::reconcile_duration(started.elapsed());
    match result {
        Ok(action) => {
            ctx.backoffs.succeeded(&key(&cm));
            Ok(action)
        }
        Err(error) => {
            metrics::reconcile_failed(&error);
            warn!(error = %error, reason = error.reason(), "reconcile failed");
            report_failure(&cm, &ctx, &error).await;
            Err(error)
        }
    }
}

/// Retry with exponential backoff per object.
pub fn error_policy(cm: Arc<CacheMe>, _error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.backoffs.failed(&key(&cm));
    Action::requeue(backoff_delay(failures))
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// Records an Event on the CacheMe (its `secondary` names the child it is about:
/// distinct children make distinct events rather than one series).
async fn publish(ctx: &Context, cm: &CacheMe, event: Event) {
    if let Err(e) = ctx.recorder.publish(&event, &cm.object_ref(&())).await {
        warn!(error = %e, reason = %event.reason, "cannot publish event");
    }
}

async fn report_failure(cm: &CacheMe, ctx: &Context, error: &Error) {
    publish(ctx, cm, events::failed(error)).await;
    let status = status::degraded(cm, error.reason(), error.to_string(), &now());
    if let Err(e) = patch_status(ctx, cm, &status).await {
        warn!(error = %e, "cannot write the Degraded status");
    }
}

async fn patch_status(ctx: &Context, cm: &CacheMe, status: &CacheMeStatus) -> Result<()> {
    let namespace = cm.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<CacheMe> = Api::namespaced(ctx.client.clone(), &namespace);
    let body = serde_json::json!({
        "apiVersion": CacheMe::api_version(&()),
        "kind": CacheMe::kind(&()),
        "status": status,
    });
    api.patch_status(
        &cm.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| Error::Status(Box::new(e)))?;
    Ok(())
}

/// Name of the user's ConfigMap the seed data of `cm` comes from, if any.
fn seed_config_map_ref(cm: &CacheMe) -> Option<&str> {
    cm.spec
        .seed_data
        .as_ref()
        .and_then(|s| s.config_map_ref.as_ref())
        .map(|r| r.name.as_str())
}

/// The CacheMes to reconcile when `config_map` changes: those of its namespace
/// whose `spec.seedData.configMapRef` names it. Their reconcile reads it again,
/// and its content is part of the API's pod-template hash, so a change rolls
/// the API out. Generic so that it takes a ConfigMap or only its metadata.
pub fn seed_config_map_users<C: Resource>(
    cachemes: &Store<CacheMe>,
    config_map: &C,
) -> Vec<ObjectRef<CacheMe>> {
    let meta = config_map.meta();
    let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return Vec::new();
    };
    cachemes
        .state()
        .iter()
        .filter(|cm| {
            cm.metadata.namespace.as_deref() == Some(namespace)
                && seed_config_map_ref(cm) == Some(name)
        })
        .map(|cm| ObjectRef::from_obj(cm.as_ref()))
        .collect()
}

/// Content of the user's seed ConfigMap key, when the spec references one.
async fn referenced_seed(client: &Client, cm: &CacheMe, namespace: &str) -> Result<Option<String>> {
    let Some(reference) = cm
        .spec
        .seed_data
        .as_ref()
        .and_then(|s| s.config_map_ref.as_ref())
    else {
        return Ok(None);
    };
    let key = reference.key.as_deref().unwrap_or(DEFAULT_SEED_KEY);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let seed_error = |reason: String| Error::Seed {
        name: reference.name.clone(),
        reason,
    };
    let config_map = api
        .get_opt(&reference.name)
        .await
        .map_err(|e| Error::Kube(Box::new(e)))?
        .ok_or_else(|| seed_error("not found".to_string()))?;
    let data = config_map
        .data
        .and_then(|mut d| d.remove(key))
        .ok_or_else(|| seed_error(format!("has no key {key:?}")))?;
    Ok(Some(data))
}

async fn apply_all(cm: &CacheMe, ctx: &Context) -> Result<Action> {
    let client = &ctx.client;
    let namespace = cm.namespace().ok_or(Error::MissingNamespace)?;
    let seed = referenced_seed(client, cm, &namespace).await?;
    let stack = Stack::new(cm, seed.as_deref())?;
    let desired = stack.desired()?;

    ensure_secrets(ctx, cm, &namespace, &desired).await?;
    // A refused child (an immutable claim field, say) must not block the others: each
    // is tried, and the failures are reported together afterwards.
    let mut failures = Vec::new();
    let applied = apply_children(ctx, cm, &stack, &namespace, &desired, &mut failures).await;
    delete_switched_off(ctx, cm, &namespace, &desired, &mut failures).await;
    collected(failures)?;

    let rollouts = observe_rollouts(client, &stack, &namespace, &applied).await;
    let phase = write_status(ctx, cm, &stack, &rollouts).await?;
    let database = rollouts
        .iter()
        .find(|r| r.workload == Workload::CloudNativePg);
    Ok(Action::requeue(if phase == Phase::Ready {
        READY_REQUEUE
    } else if database.is_some_and(|d| !d.complete) {
        CLOUDNATIVEPG_REQUEUE
    } else {
        PROGRESS_REQUEUE
    }))
}

mod backoff;
mod events;
mod steps;
pub mod wiring;
pub use backoff::{BACKOFF_BASE, BACKOFF_MAX, Backoffs, FORGET_AFTER, backoff_delay};
use steps::{apply_children, delete_switched_off, ensure_secrets, observe_rollouts, write_status};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod lifecycle_tests;

#[cfg(test)]
mod failure_tests;

#[cfg(test)]
mod seed_users_tests;

#[cfg(test)]
mod cloudnativepg_tests;

#[cfg(test)]
mod gateway_tests;
