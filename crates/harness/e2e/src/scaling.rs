//! Scenario: scaling the API. `kubectl scale` works on the CacheMe itself (its scale
//! subresource); with `spec.autoscaling` the operator owns a HorizontalPodAutoscaler and
//! stops applying the Deployment's `replicas`, so the real HPA controller (in
//! kube-controller-manager) sets it; turning autoscaling off gives `replicas` back to the
//! CacheMe.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use super::kubectl::Kubectl;
use super::stack::{Alive, Stack};

/// Field manager of the operator's server-side applies.
const OPERATOR_MANAGER: &str = "cacheme-operator";

pub fn scaling(stack: &Stack, alive: Alive) -> anyhow::Result<()> {
    // The scale subresource: `kubectl scale` sets spec.replicas; the operator follows.
    stack.kubectl.run(&[
        "scale",
        "cacheme",
        stack.name,
        "--namespace",
        stack.namespace,
        "--replicas=3",
    ])?;
    let generation = stack.get()?["metadata"]["generation"]
        .as_i64()
        .context("no generation")?;
    let cacheme = stack.wait_ready(generation, alive)?;
    let api = stack.deployment("api")?;
    ensure!(
        api["spec"]["replicas"] == 3 && cacheme["status"]["replicas"] == 3,
        "kubectl scale --replicas=3: the Deployment has {} replicas, the CacheMe status {}",
        api["spec"]["replicas"],
        cacheme["status"]["replicas"]
    );
    let scale = stack.kubectl.json(&[
        "get",
        "cacheme",
        stack.name,
        "--namespace",
        stack.namespace,
        "--subresource=scale",
    ])?;
    ensure!(
        scale["status"]["replicas"] == 3
            && scale["status"]["selector"]
                .as_str()
                .is_some_and(|s| s.contains("app.kubernetes.io/component=api")),
        "the CacheMe's scale subresource: {scale}"
    );
    eprintln!(
        "    kubectl scale cacheme --replicas=3: the API has 3 replicas; scale subresource right"
    );

    // Autoscaling: the operator's HPA, and `replicas` handed over without a dip (3 is
    // inside 2..4, so it must stay 3: a Deployment that fell back to 1 would show 1, or
    // the HPA's minimum). Then a minimum above 3: only the HPA controller can make it 4,
    // and the operator must not take it back.
    let generation = stack.patch(&json!({"spec": {
        "autoscaling": {"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 70},
        "api": {"resources": {"requests": {"cpu": "100m"}}},
    }}))?;
    stack.wait_ready(generation, alive)?;
    let hpa = stack
        .child("horizontalpodautoscaler", "api")?
        .context("autoscaling on: no HorizontalPodAutoscaler for the API")?;
    ensure!(
        hpa["spec"]["minReplicas"] == 2
            && hpa["spec"]["maxReplicas"] == 6
            && hpa["spec"]["scaleTargetRef"]["name"] == format!("{}-api", stack.name).as_str(),
        "autoscaling on: HPA spec {}",
        hpa["spec"]
    );
    let api = stack.deployment("api")?;
    ensure!(
        api["spec"]["replicas"] == 3,
        "autoscaling on: the API went from 3 to {} replicas (the hand-over dipped)",
        api["spec"]["replicas"]
    );
    ensure!(
        !owns_replicas(stack, OPERATOR_MANAGER)?,
        "autoscaling on: the operator still owns spec.replicas of the API Deployment"
    );
    let generation = stack.patch(&json!({"spec": {"autoscaling": {"minReplicas": 4}}}))?;
    stack.wait_ready(generation, alive)?;
    wait_replicas(
        stack,
        4,
        "the HPA to scale the API up to its new minimum 4",
        alive,
    )?;
    ensure!(
        !owns_replicas(stack, OPERATOR_MANAGER)?,
        "autoscaling on: the operator took spec.replicas back"
    );
    let generation = stack.get()?["metadata"]["generation"]
        .as_i64()
        .context("no generation")?;
    stack.wait_ready(generation, alive)?;
    eprintln!(
        "    autoscaling 2..6: HPA applied, replicas handed over at 3 (no dip); minReplicas 4: the HPA set 4"
    );

    // Off again: the HPA goes, `replicas` is the CacheMe's (3) and the operator's again.
    let generation = stack.patch(&json!({"spec": {"autoscaling": null}}))?;
    stack.wait_ready(generation, alive)?;
    ensure!(
        stack.child("horizontalpodautoscaler", "api")?.is_none(),
        "autoscaling off: the HorizontalPodAutoscaler is still there"
    );
    wait_replicas(stack, 3, "the API back at spec.replicas 3", alive)?;
    ensure!(
        owns_replicas(stack, OPERATOR_MANAGER)?,
        "autoscaling off: the operator does not own spec.replicas again"
    );
    let generation = stack.patch(&json!({"spec": {"replicas": 1}}))?;
    stack.wait_ready(generation, alive)?;
    eprintln!("    autoscaling off: HPA deleted, replicas from the CacheMe again");
    Ok(())
}

/// Waits until the API Deployment's `spec.replicas` is `replicas`.
fn wait_replicas(stack: &Stack, replicas: i64, what: &str, alive: Alive) -> anyhow::Result<Value> {
    Kubectl::wait_for(what, stack.timeout, Duration::from_secs(1), || {
        alive()?;
        let api = stack.deployment("api")?;
        if api["spec"]["replicas"].as_i64() == Some(replicas) {
            Ok(Ok(api))
        } else {
            Ok(Err(format!("spec.replicas {}", api["spec"]["replicas"])))
        }
    })
}

/// Whether `manager` owns `spec.replicas` of the API Deployment (its managedFields,
/// which `kubectl get` hides unless asked).
fn owns_replicas(stack: &Stack, manager: &str) -> anyhow::Result<bool> {
    let api = stack.kubectl.json(&[
        "get",
        "deployment",
        &format!("{}-api", stack.name),
        "--namespace",
        stack.namespace,
        "--show-managed-fields",
    ])?;
    let entries = api["metadata"]["managedFields"]
        .as_array()
        .context("the API Deployment has no managedFields")?;
    Ok(entries
        .iter()
        .filter(|entry| entry["manager"] == manager)
        .any(|entry| !entry["fieldsV1"]["f:spec"]["f:replicas"].is_null()))
}
