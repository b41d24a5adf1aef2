//! Server-side apply of the children under the operator's field manager (also of kinds
//! that may not be installed: CloudNativePG's Cluster, the Gateway API's HTTPRoute), and
//! deletion of the children a switched-off component left. A refused child does not stop
//! the others: failures are collected and reported together once every child was tried.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use serde::Serialize;

use crate::resources::{Absent, Child, cloudnativepg_resource};
use crate::{Error, FIELD_MANAGER, Result};

/// Server-side apply of `body` (the object `name` of kind `resource`) under the
/// operator's field manager, through the dynamic API, which serves every kind alike.
/// For a kind that may not be installed, `missing` says what to install: a 404 means the
/// API server has no such kind (an apply creates a missing object, so it never answers
/// 404 otherwise).
async fn apply_object(
    client: &Client,
    namespace: &str,
    name: &str,
    body: &(impl Serialize + Debug),
    resource: &ApiResource,
    missing: Option<Error>,
) -> Result<DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(|e| {
        // The code, not `is_not_found()`: for a path it does not serve the API server
        // answers a plain-text "404 page not found", which has no NotFound reason.
        let not_served = matches!(&e, kube::Error::Api(status) if status.code == 404);
        match missing {
            Some(missing) if not_served => missing,
            _ => Error::Apply {
                kind: resource.kind.clone(),
                name: name.to_string(),
                source: Box::new(e),
            },
        }
    })
}

/// Server-side apply of one child; [`Error::GatewayApiMissing`] for an HTTPRoute when
/// the Gateway API CRDs are not installed.
pub async fn apply_child(client: &Client, namespace: &str, child: &Child) -> Result<DynamicObject> {
    let kind = child.kind();
    let body = child.to_json()?;
    apply_object(
        client,
        namespace,
        child.name(),
        &body,
        &kind.resource(),
        kind.missing(),
    )
    .await
}

/// Server-side apply of the CloudNativePG `Cluster`; [`Error::CloudNativePgMissing`] when
/// CloudNativePG is not installed.
pub async fn apply_cloudnativepg(
    client: &Client,
    namespace: &str,
    cluster: &DynamicObject,
) -> Result<DynamicObject> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    apply_object(
        client,
        namespace,
        &name,
        cluster,
        &cloudnativepg_resource(),
        Some(Error::CloudNativePgMissing),
    )
    .await
}

/// `Ok(())` without failures, the one failure, or all of them as [`Error::Children`].
pub fn collected(mut failures: Vec<Error>) -> Result<()> {
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        _ => Err(Error::Children(failures)),
    }
}

/// Deletes the child of a switched-off component; `Ok(false)` when it was already gone
/// (also the plain-text 404 of a kind the API server does not serve, the Gateway API
/// not installed: no object of it can exist).
pub async fn delete_absent(client: &Client, namespace: &str, absent: &Absent) -> Result<bool> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &absent.kind.resource());
    match api.delete(&absent.name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_not_found() || status.code == 404 => Ok(false),
        Err(e) => Err(Error::Delete {
            kind: absent.kind.as_str().to_string(),
            name: absent.name.clone(),
            source: Box::new(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_reported_together() {
        assert!(collected(Vec::new()).is_ok());
        let seed = |n: &str| Error::Seed {
            name: n.to_string(),
            reason: "missing".to_string(),
        };
        let one = collected(vec![seed("a")]).expect_err("fails");
        assert!(matches!(one, Error::Seed { .. }));
        let two = collected(vec![seed("a"), seed("b")]).expect_err("fails");
        assert_eq!(two.reason(), "SeedUnavailable");
        assert_eq!(
            two.to_string(),
            "seed ConfigMap a: missing; seed ConfigMap b: missing"
        );
    }
}

/// Field manager that holds the API Deployment's `replicas` for one moment while an
/// autoscaler takes over (see [`hand_replicas_to_autoscaler`]).
pub const HANDOFF_MANAGER: &str = "cacheme-operator-handoff";

/// Whether `manager` owns `spec.replicas` of `deployment` (its managedFields). Pure.
pub fn owns_replicas(deployment: &Deployment, manager: &str) -> bool {
    deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.manager.as_deref() == Some(manager))
        .filter_map(|entry| entry.fields_v1.as_ref())
        .any(|fields| fields.0["f:spec"].get("f:replicas").is_some())
}

/// Hands the API Deployment's `replicas` to an autoscaler without a dip. When the
/// operator stops applying a field it alone owned, server-side apply removes it and the
/// Deployment falls back to 1 replica; so, while the operator still owns it, a second
/// manager first applies the current count (clamped to the autoscaler's bounds). That
/// manager never applies again: the HPA's first scale takes the field from it.
pub async fn hand_replicas_to_autoscaler(
    client: &Client,
    namespace: &str,
    name: &str,
    bounds: (i32, i32),
) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let error = |e| Error::Apply {
        kind: "Deployment".to_string(),
        name: name.to_string(),
        source: Box::new(e),
    };
    let Some(live) = api.get_opt(name).await.map_err(error)? else {
        return Ok(());
    };
    if !owns_replicas(&live, FIELD_MANAGER) {
        return Ok(());
    }
    let replicas = live.spec.replicas.unwrap_or(1).clamp(bounds.0, bounds.1);
    let patch = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    });
    api.patch(
        name,
        &PatchParams::apply(HANDOFF_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(error)?;
    Ok(())
}

#[cfg(test)]
mod handoff_tests {
    use super::*;

    #[test]
    fn replicas_ownership_is_read_from_managed_fields() -> serde_json::Result<()> {
        let deployment: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-api", "managedFields": [
                {"manager": "cacheme-operator", "operation": "Apply", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:status": {}}},
            ]},
        }))?;
        assert!(owns_replicas(&deployment, FIELD_MANAGER));
        assert!(!owns_replicas(&deployment, "kube-controller-manager"));
        assert!(!owns_replicas(&deployment, HANDOFF_MANAGER));
        Ok(())
    }
}
