//! The steps of a reconcile, in the order `apply_all` runs them: the generated Secrets,
//! every child applied, the children of switched-off components deleted, the rollouts
//! observed, the status written.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use tracing::{info, warn};

use super::{Context, events, now, patch_status, publish};
use crate::apply::{apply_child, apply_cloudnativepg, delete_absent, hand_replicas_to_autoscaler};
use crate::crd::{CacheMe, Phase};
use crate::resources::{APP_NAME, ChildKind, Component, Desired, SecretPlan, Stack};
use crate::status::{self, Rollout};
use crate::{Error, Result};

/// What the applies answered: the Deployments and the CloudNativePG Cluster as the API
/// server now has them.
pub(super) struct Applied {
    deployments: Vec<Deployment>,
    cloudnativepg: Option<DynamicObject>,
}

/// Creates the generated Secrets that do not exist yet (never overwrites one).
pub(super) async fn ensure_secrets(
    ctx: &Context,
    cm: &CacheMe,
    namespace: &str,
    desired: &Desired,
) -> Result<()> {
    for plan in &desired.secrets {
        if ensure_secret(&ctx.client, namespace, plan).await? {
            info!(secret = %plan.name, "created generated credentials");
            publish(ctx, cm, events::secret_created(namespace, &plan.name)).await;
        }
    }
    Ok(())
}

/// Applies every child, in dependency order, collecting failures instead of stopping.
pub(super) async fn apply_children(
    ctx: &Context,
    cm: &CacheMe,
    stack: &Stack<'_>,
    namespace: &str,
    desired: &Desired,
    f: &mut Vec<Error>,
) -> Applied {
    let client = &ctx.client;
    // First, so a missing CloudNativePG is the failure the condition reports.
    let cloudnativepg = match &desired.cloudnativepg {
        Some(cluster) => match apply_cloudnativepg(client, namespace, cluster).await {
            Ok(applied) => Some(applied),
            Err(e) => {
                f.push(e);
                None
            }
        },
        None => None,
    };
    let mut deployments = Vec::new();
    let mut handed_off = false;
    for child in &desired.children {
        let kind = child.kind();
        // The replicas go to a second field manager just before the API Deployment is
        // applied without them (see `hand_replicas_to_autoscaler`).
        if kind == ChildKind::Deployment && !handed_off {
            handed_off = true;
            if let Some(autoscaling) = &cm.spec.autoscaling {
                let api = stack.child_name(Component::Api);
                let bounds = (autoscaling.min_replicas, autoscaling.max_replicas);
                if let Err(e) = hand_replicas_to_autoscaler(client, namespace, &api, bounds).await {
                    f.push(e);
                }
            }
        }
        // Without the Gateway API CRDs an HTTPRoute fails with `GatewayApiMissing`; the
        // other children are still applied.
        match apply_child(client, namespace, child).await {
            // The rollouts are read from what the API server answered.
            Ok(applied) if kind == ChildKind::Deployment => {
                match serde_json::to_value(applied).and_then(serde_json::from_value::<Deployment>) {
                    Ok(deployment) => deployments.push(deployment),
                    Err(e) => f.push(e.into()),
                }
            }
            Ok(_) => {}
            Err(e) => f.push(e),
        }
    }
    Applied {
        deployments,
        cloudnativepg,
    }
}

/// Deletes the children of components switched off, collecting failures.
pub(super) async fn delete_switched_off(
    ctx: &Context,
    cm: &CacheMe,
    namespace: &str,
    desired: &Desired,
    failures: &mut Vec<Error>,
) {
    for absent in &desired.absent {
        let deleted = match delete_absent(&ctx.client, namespace, absent).await {
            Ok(deleted) => deleted,
            Err(e) => {
                failures.push(e);
                false
            }
        };
        if deleted {
            info!(kind = absent.kind.as_str(), name = %absent.name, "deleted");
            publish(ctx, cm, events::deleted(namespace, absent)).await;
        }
    }
}

/// Each Deployment's rollout (and the database's, under CloudNativePG). Pods are read
/// only while something rolls out, to tell "wait" from "stuck".
pub(super) async fn observe_rollouts(
    client: &Client,
    stack: &Stack<'_>,
    namespace: &str,
    applied: &Applied,
) -> Vec<Rollout> {
    let pods = if applied.deployments.iter().all(|d| Rollout::of(d).complete) {
        Vec::new()
    } else {
        stack_pods(client, namespace, &stack.name).await
    };
    let mut rollouts: Vec<Rollout> = applied
        .deployments
        .iter()
        .map(|d| Rollout::with_pods(d, &pods))
        .collect();
    rollouts.extend(
        applied
            .cloudnativepg
            .as_ref()
            .map(Rollout::of_cloudnativepg),
    );
    rollouts
}

/// Writes the status if it changed, and records an Event when the phase did; returns
/// the phase.
pub(super) async fn write_status(
    ctx: &Context,
    cm: &CacheMe,
    stack: &Stack<'_>,
    rollouts: &[Rollout],
) -> Result<Phase> {
    let api_name = stack.child_name(Component::Api);
    let api = rollouts.iter().find(|r| r.name == api_name);
    let mut new_status = status::reconciled(cm, api, rollouts, stack.endpoints(), &now());
    new_status.selector = Some(stack.api_selector());
    let old_phase = cm.status.as_ref().and_then(|s| s.phase);
    let phase = new_status.phase.unwrap_or_default();
    if cm.status.as_ref() != Some(&new_status) {
        patch_status(ctx, cm, &new_status).await?;
    }
    if old_phase != Some(phase) {
        let stuck: Vec<&str> = rollouts.iter().filter_map(|r| r.stuck.as_deref()).collect();
        publish(ctx, cm, events::phase_changed(phase, &stuck)).await;
    }
    Ok(phase)
}

/// The pods of the stack `name`. A failed list is logged and read as "no pods":
/// the status then rests on the Deployments' own conditions.
async fn stack_pods(client: &Client, namespace: &str, name: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("app.kubernetes.io/name={APP_NAME},app.kubernetes.io/instance={name}");
    match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(e) => {
            warn!(error = %e, "cannot list the stack's pods");
            Vec::new()
        }
    }
}

/// Creates a generated Secret unless it exists. Only its metadata is read, so
/// existing credentials never enter the operator; it is never updated.
async fn ensure_secret(client: &Client, namespace: &str, plan: &SecretPlan) -> Result<bool> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let err = |e| Error::Secret {
        name: plan.name.clone(),
        source: Box::new(e),
    };
    if api
        .get_metadata_opt(&plan.name)
        .await
        .map_err(err)?
        .is_some()
    {
        return Ok(false);
    }
    let secret = plan.build(crate::secrets::generate_password()?);
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(true),
        // Another writer won the race: keep theirs.
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
        Err(e) => Err(err(e)),
    }
}
