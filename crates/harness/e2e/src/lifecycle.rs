//! Scenario: the release's life. `helm upgrade` (after the README's CRD step) changes the
//! chart's CacheMe and the operator rolls it; a CacheMe with `postgres.retainPolicy:
//! Delete` takes its claim and password with it; `helm uninstall` deletes the release's
//! CacheMe and the real garbage collector (kube-controller-manager) removes every child
//! except the PostgreSQL claim and password, which the default `Retain` keeps.

use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context as _, bail, ensure};
use serde_json::json;

use super::kubectl::{Kubectl, capture};
use super::scenario::{RELEASE, RELEASE_NAMESPACE};
use super::stack::{Alive, Stack, env_value};

/// The README's upgrade: CRDs first (Helm never upgrades `crds/`), then `helm upgrade`.
pub fn upgrade(helm: Command, root: &Path, stack: &Stack, alive: Alive) -> anyhow::Result<()> {
    let chart = root.join("charts").join("cacheme");
    stack.kubectl.run(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &chart.join("crds").display().to_string(),
    ])?;
    let before = stack.get()?["metadata"]["generation"]
        .as_i64()
        .context("no generation")?;
    let mut helm = helm;
    helm.args(["upgrade", RELEASE])
        .arg(&chart)
        .args(["--namespace", RELEASE_NAMESPACE, "--reuse-values"])
        .args(["--set", "instance.ttlSeconds=120", "--timeout", "2m"])
        .arg("--kubeconfig")
        .arg(stack.kubectl.kubeconfig())
        .env_remove("KUBECONFIG");
    capture("helm upgrade cacheme charts/cacheme", helm, None)?;
    let generation = stack.get()?["metadata"]["generation"]
        .as_i64()
        .context("no generation")?;
    ensure!(
        generation > before,
        "helm upgrade --set instance.ttlSeconds=120 did not change the CacheMe"
    );
    stack.wait_ready(generation, alive)?;
    let api = stack.deployment("api")?;
    ensure!(
        env_value(&api, "CACHE_TTL_SECONDS") == Some("120"),
        "helm upgrade: the API has CACHE_TTL_SECONDS {:?}",
        env_value(&api, "CACHE_TTL_SECONDS")
    );
    eprintln!("    CRDs applied server-side, helm upgrade: ttlSeconds 120 rolled out");
    Ok(())
}

/// A CacheMe with `retainPolicy: Delete` in `namespace`: Ready, then deleted, then its
/// claim and password are gone like every other child.
pub fn delete_policy(
    kubectl: &Kubectl,
    namespace: &str,
    timeout: Duration,
    alive: Alive,
) -> anyhow::Result<()> {
    let name = "throwaway";
    let manifest = json!({
        "apiVersion": "cacheme.dev/v1alpha1",
        "kind": "CacheMe",
        "metadata": {"name": name},
        "spec": {"postgres": {"retainPolicy": "Delete"}, "frontend": {"enabled": false}},
    });
    kubectl.apply(&manifest.to_string(), Some(namespace))?;
    let stack = Stack {
        kubectl,
        namespace,
        name,
        timeout,
    };
    stack.wait_ready(1, alive)?;
    ensure!(
        stack
            .child("persistentvolumeclaim", "postgres-data")?
            .is_some(),
        "retainPolicy Delete: no claim {name}-postgres-data"
    );
    let refused = kubectl.run(&[
        "patch",
        "cacheme",
        name,
        "--namespace",
        namespace,
        "--type=merge",
        "--patch",
        r#"{"spec":{"postgres":{"retainPolicy":"Retain"}}}"#,
    ]);
    match refused {
        Err(e) if format!("{e:#}").contains("cannot change after creation") => {}
        other => bail!("retainPolicy Delete -> Retain was not refused at admission: {other:?}"),
    }
    kubectl.run(&[
        "delete",
        "cacheme",
        name,
        "--namespace",
        namespace,
        "--wait=true",
    ])?;
    wait_gone(kubectl, namespace, name, timeout, &[])?;
    eprintln!(
        "    retainPolicy Delete: a change to Retain refused; the claim and password went with the CacheMe"
    );
    Ok(())
}

/// `helm uninstall`: the release's CacheMe goes, garbage collection removes its children,
/// and the PostgreSQL claim and password stay (`Retain`, the default).
pub fn uninstall(helm: Command, kubectl: &Kubectl, timeout: Duration) -> anyhow::Result<()> {
    let mut helm = helm;
    helm.args([
        "uninstall",
        RELEASE,
        "--namespace",
        RELEASE_NAMESPACE,
        "--wait",
    ])
    .arg("--kubeconfig")
    .arg(kubectl.kubeconfig())
    .env_remove("KUBECONFIG");
    capture("helm uninstall cacheme", helm, None)?;
    let kept = [
        format!("persistentvolumeclaim/{RELEASE}-postgres-data"),
        format!("secret/{RELEASE}-postgres-credentials"),
    ];
    wait_gone(kubectl, RELEASE_NAMESPACE, RELEASE, timeout, &kept)?;
    for object in &kept {
        // A claim being deleted still answers GET (pvc-protection holds it): kept means
        // no deletion under way and no owner left to take it.
        let found = kubectl
            .json(&["get", object, "--namespace", RELEASE_NAMESPACE])
            .with_context(|| {
                format!("helm uninstall: {object} was not kept (retainPolicy Retain)")
            })?;
        let meta = &found["metadata"];
        ensure!(
            meta["deletionTimestamp"].is_null() && meta["ownerReferences"].is_null(),
            "helm uninstall: {object} is not kept: deletionTimestamp {}, ownerReferences {}",
            meta["deletionTimestamp"],
            meta["ownerReferences"]
        );
    }
    eprintln!(
        "    helm uninstall: children garbage-collected, {} kept",
        kept.join(" and ")
    );
    Ok(())
}

/// Waits until nothing labelled `app.kubernetes.io/instance=<name>` is left in
/// `namespace` but `kept` (as `kubectl get -o name` prints them: `secret/x`).
fn wait_gone(
    kubectl: &Kubectl,
    namespace: &str,
    name: &str,
    timeout: Duration,
    kept: &[String],
) -> anyhow::Result<()> {
    let kinds = "deployments,replicasets,pods,services,configmaps,secrets,persistentvolumeclaims,networkpolicies,poddisruptionbudgets,ingresses,horizontalpodautoscalers";
    let selector = format!("app.kubernetes.io/instance={name}");
    let what = format!("the children of {namespace}/{name} to be garbage-collected");
    Kubectl::wait_for(&what, timeout, Duration::from_secs(1), || {
        let left = kubectl.run(&[
            "get",
            kinds,
            "--namespace",
            namespace,
            "--selector",
            &selector,
            "--output",
            "name",
        ])?;
        let left: Vec<&str> = left
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .filter(|l| !kept.iter().any(|k| k == l))
            .collect();
        if left.is_empty() {
            Ok(Ok(()))
        } else {
            Ok(Err(format!("still there: {}", left.join(", "))))
        }
    })
}
