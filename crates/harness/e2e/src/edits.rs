//! Scenario 2, edits: spec edits of a Ready CacheMe as the real API server and controllers
//! see them. TTL and inline seed data roll the API Deployment (new pod template, revision
//! and ReplicaSet); replicas scale it; pgAdmin, Redis Commander and Redis storage switch on
//! and off with no request refused; a PVC edit the API server refuses is reported as
//! Degraded with the reason and does not keep the other children from being applied.

use std::path::Path;

use anyhow::{Context as _, ensure};
use serde_json::json;

use super::{
    scenario::check_no_refusals,
    stack::{Alive, Stack, ensure_rolled, env_value, revision},
};

/// TTL, replicas and inline seed data; the CacheMe is Ready after each.
pub fn api_edits(stack: &Stack, alive: Alive) -> anyhow::Result<()> {
    // TTL: the env var (and the config hash) change, so the API rolls out.
    let before = stack.deployment("api")?;
    let hashes = stack.template_hashes("api")?;
    let generation = stack.patch(&json!({"spec": {"ttlSeconds": 120}}))?;
    stack.wait_ready(generation, alive)?;
    let after = stack.deployment("api")?;
    ensure!(
        env_value(&after, "CACHE_TTL_SECONDS") == Some("120"),
        "ttlSeconds 120: the API Deployment has CACHE_TTL_SECONDS {:?}",
        env_value(&after, "CACHE_TTL_SECONDS")
    );
    ensure_rolled(
        &before,
        &after,
        &hashes,
        &stack.template_hashes("api")?,
        "ttlSeconds 3600 -> 120",
    )?;

    // Replicas: a scale, not a rollout (same template and revision), plus a PDB.
    let before = after;
    let generation = stack.patch(&json!({"spec": {"replicas": 2}}))?;
    let cacheme = stack.wait_ready(generation, alive)?;
    let after = stack.deployment("api")?;
    ensure!(
        after["spec"]["replicas"] == 2 && after["status"]["readyReplicas"] == 2,
        "replicas 2: the API Deployment has spec.replicas {} and {} ready",
        after["spec"]["replicas"],
        after["status"]["readyReplicas"]
    );
    ensure!(
        before["spec"]["template"] == after["spec"]["template"]
            && revision(&before)? == revision(&after)?,
        "replicas 2: scaling changed the API pod template (an unneeded rollout)"
    );
    ensure!(
        cacheme["status"]["readyReplicas"] == 2,
        "replicas 2: status.readyReplicas {}",
        cacheme["status"]["readyReplicas"]
    );
    stack
        .child("poddisruptionbudget", "api")?
        .context("replicas 2: no PodDisruptionBudget for the API")?;
    eprintln!("    replicas 1 -> 2: the API scaled, same revision, PDB created");

    // Inline seed data: the seed ConfigMap's content hash is in the pod template.
    let hashes = stack.template_hashes("api")?;
    let seed = json!({"products": [
        {"id": 1000, "name": "E2E seeded product", "price": 9.5, "category": "e2e"}
    ]});
    let generation = stack.patch(&json!({"spec": {"seedData": seed}}))?;
    stack.wait_ready(generation, alive)?;
    let seeded = stack.deployment("api")?;
    ensure_rolled(
        &after,
        &seeded,
        &hashes,
        &stack.template_hashes("api")?,
        "inline seed data",
    )?;
    let config_map = stack
        .child("configmap", "seed")?
        .context("inline seed data: no seed ConfigMap")?;
    let data = config_map["data"].to_string();
    ensure!(
        data.contains("E2E seeded product"),
        "inline seed data: the seed ConfigMap does not carry the product: {data}"
    );
    Ok(())
}

/// The API's security settings: the NetworkPolicy exists by default (port 8000, the page
/// and the default namespaces as peers); CORS origins and an own admin token Secret reach
/// the API's environment; turning the policy off deletes it.
pub fn security_settings(stack: &Stack, alive: Alive) -> anyhow::Result<()> {
    let policy = stack
        .child("networkpolicy", "api")?
        .context("default CacheMe: no NetworkPolicy for the API")?;
    let rule = &policy["spec"]["ingress"][0];
    ensure!(
        rule["ports"][0]["port"] == 8000 && rule["from"].as_array().map(Vec::len) == Some(2),
        "the API's NetworkPolicy does not allow port 8000 from the page and the default namespaces: {rule}"
    );

    let secret = format!("{}-own-token", stack.name);
    stack.kubectl.run(&[
        "create",
        "secret",
        "generic",
        &secret,
        "--namespace",
        stack.namespace,
        "--from-literal=token=e2e-token",
    ])?;
    let generation = stack.patch(&json!({"spec": {"api": {
        "corsAllowedOrigins": ["https://shop.example.com"],
        "adminTokenSecretRef": {"name": secret},
        "networkPolicy": {"enabled": false},
    }}}))?;
    stack.wait_ready(generation, alive)?;
    let api = stack.deployment("api")?;
    ensure!(
        env_value(&api, "CORS_ALLOWED_ORIGINS") == Some("https://shop.example.com"),
        "corsAllowedOrigins: the API has CORS_ALLOWED_ORIGINS {:?}",
        env_value(&api, "CORS_ALLOWED_ORIGINS")
    );
    let token = api["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .and_then(|vars| vars.iter().find(|v| v["name"] == "ADMIN_TOKEN"))
        .map(|v| v["valueFrom"]["secretKeyRef"].clone())
        .unwrap_or_default();
    ensure!(
        token["name"] == secret.as_str() && token["key"] == "token",
        "adminTokenSecretRef: ADMIN_TOKEN comes from {token}"
    );
    ensure!(
        stack.child("networkpolicy", "api")?.is_none(),
        "networkPolicy.enabled false: the API's NetworkPolicy is still there"
    );
    eprintln!(
        "    API NetworkPolicy by default; CORS origins, own token Secret, policy off: applied"
    );
    Ok(())
}

/// pgAdmin on then off, Redis Commander on then off, Redis storage on then off; after
/// each, the CacheMe is Ready and the audit log shows no refused request of `user`.
pub fn toggles(stack: &Stack, alive: Alive, audit: &Path, user: &str) -> anyhow::Result<()> {
    for (field, component) in [
        ("pgAdmin", "pgadmin"),
        ("redisCommander", "redis-commander"),
    ] {
        let generation = stack.patch(&json!({"spec": {field: {"enabled": true}}}))?;
        stack.wait_ready(generation, alive)?;
        let deployment = stack.deployment(component)?;
        ensure!(
            deployment["status"]["readyReplicas"] == 1,
            "{field} on: Deployment {component} has {} ready replicas",
            deployment["status"]["readyReplicas"]
        );
        stack
            .child("service", component)?
            .with_context(|| format!("{field} on: no Service {component}"))?;
        let generation = stack.patch(&json!({"spec": {field: {"enabled": false}}}))?;
        stack.wait_ready(generation, alive)?;
        for kind in ["deployment", "service"] {
            ensure!(
                stack.child(kind, component)?.is_none(),
                "{field} off: the {kind} {component} is still there"
            );
        }
        check_no_refusals(audit, user).with_context(|| format!("{field} on then off"))?;
        eprintln!("    {field} on (Deployment ready) then off (Deployment and Service gone)");
    }

    // Redis storage: a claim plus the Recreate strategy; the Deployment was created with
    // the defaulted RollingUpdate, whose rollingUpdate block must go.
    let generation = stack.patch(&json!({"spec": {"redis": {"storage": {"size": "1Gi"}}}}))?;
    stack
        .wait_ready(generation, alive)
        .context("redis.storage on")?;
    let redis = stack.deployment("redis")?;
    ensure!(
        redis["spec"]["strategy"]["type"] == "Recreate",
        "redis.storage on: strategy {}",
        redis["spec"]["strategy"]
    );
    let claim = stack
        .child("persistentvolumeclaim", "redis-data")?
        .context("redis.storage on: no claim redis-data")?;
    ensure!(
        claim["status"]["phase"] == "Bound",
        "redis.storage on: claim phase {}",
        claim["status"]["phase"]
    );
    check_no_refusals(audit, user).context("redis.storage on")?;
    let generation = stack.patch(&json!({"spec": {"redis": {"storage": null}}}))?;
    stack
        .wait_ready(generation, alive)
        .context("redis.storage off")?;
    let redis = stack.deployment("redis")?;
    ensure!(
        redis["spec"]["strategy"]["type"] == "RollingUpdate",
        "redis.storage off: strategy {}",
        redis["spec"]["strategy"]
    );
    check_no_refusals(audit, user).context("redis.storage off")?;
    eprintln!("    redis.storage on (Recreate, claim Bound) then off (RollingUpdate)");
    Ok(())
}

/// Shrinking `postgres.storage.size` is refused by the API server (a bound claim cannot
/// shrink). Edited together with the TTL, the CacheMe must turn Degraded naming the claim
/// while the API Deployment still gets the new TTL; reverting the size makes it Ready.
pub fn refused_claim_edit(stack: &Stack, alive: Alive) -> anyhow::Result<()> {
    let generation = stack.patch(&json!({"spec": {
        "ttlSeconds": 90,
        "postgres": {"storage": {"size": "512Mi"}},
    }}))?;
    let degraded = stack.wait_degraded(generation, alive)?;
    let message = degraded["message"].as_str().unwrap_or("");
    let claim = format!("{}-postgres-data", stack.name);
    ensure!(
        message.contains("PersistentVolumeClaim") && message.contains(&claim),
        "a refused claim edit: the Degraded message does not name claim {claim}: {degraded}"
    );
    eprintln!(
        "    postgres.storage.size 1Gi -> 512Mi: Degraded ({}): {message}",
        degraded["reason"].as_str().unwrap_or("?")
    );
    // Not blocked: the Deployments were applied after the refused claim.
    super::kubectl::Kubectl::wait_for(
        "the API Deployment to get ttlSeconds 90 despite the refused claim",
        stack.timeout,
        std::time::Duration::from_secs(1),
        || {
            alive()?;
            let api = stack.deployment("api")?;
            Ok(match env_value(&api, "CACHE_TTL_SECONDS") {
                Some("90") => Ok(()),
                other => Err(format!("CACHE_TTL_SECONDS {other:?}")),
            })
        },
    )?;
    eprintln!("    ... and the TTL edit made with it reached the API Deployment");
    let generation = stack.patch(&json!({"spec": {"postgres": {"storage": {"size": "1Gi"}}}}))?;
    stack
        .wait_ready(generation, alive)
        .context("postgres.storage.size back to 1Gi")?;
    eprintln!("    postgres.storage.size back to 1Gi: Ready");
    Ok(())
}

/// Every refusal of `user` in the audit log is a patch of a PersistentVolumeClaim (the one
/// `refused_claim_edit` provokes), and there is at least one.
pub fn only_claim_refusals(audit: &Path, user: &str) -> anyhow::Result<()> {
    let (_, refused) = super::audit::refusals(audit, user)?;
    ensure!(
        !refused.is_empty(),
        "the audit log shows no refused claim patch of {user}"
    );
    let others: Vec<String> = refused
        .keys()
        .filter(|r| !(r.verb == "patch" && r.resource.starts_with("persistentvolumeclaims ")))
        .map(ToString::to_string)
        .collect();
    ensure!(
        others.is_empty(),
        "the API server refused other requests of {user}:\n  {}",
        others.join("\n  ")
    );
    Ok(())
}
