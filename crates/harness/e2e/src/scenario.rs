//! Scenario 1, install: `helm install` of the chart (operator Deployment scaled to 0), the
//! CRD established, the operator running locally as the chart's ServiceAccount, the sample
//! `k8s/samples/minimal.yaml` and the chart's own CacheMe both Ready, printer columns and
//! `observedGeneration` right, and no request of the operator refused by the API server.

use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use super::kubectl::{Kubectl, capture};

pub const RELEASE: &str = "cacheme";
pub const RELEASE_NAMESPACE: &str = "cacheme";
pub const SAMPLE_NAMESPACE: &str = "e2e-minimal";
const CRD: &str = "cachemes.cacheme.dev";

/// Creates `namespace` with the Pod Security Standard `restricted` enforced, so the real
/// PodSecurity admission checks every pod the Deployments create (a refused pod leaves its
/// Deployment unready and the scenario fails).
pub fn restricted_namespace(kubectl: &Kubectl, namespace: &str) -> anyhow::Result<()> {
    kubectl.run(&["create", "namespace", namespace])?;
    kubectl.run(&[
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    ])?;
    Ok(())
}

/// `helm install` of `charts/cacheme` with the real Helm, default values except the
/// operator Deployment (0 replicas: the operator runs as a local process instead), into
/// a namespace that enforces the `restricted` Pod Security Standard.
pub fn helm_install(helm: Command, root: &Path, kubectl: &Kubectl) -> anyhow::Result<()> {
    restricted_namespace(kubectl, RELEASE_NAMESPACE)?;
    let mut helm = helm;
    helm.args(["install", RELEASE])
        .arg(root.join("charts").join("cacheme"))
        .args(["--namespace", RELEASE_NAMESPACE, "--create-namespace"])
        .arg("--kubeconfig")
        .arg(kubectl.kubeconfig())
        .args(["--set", "operator.replicas=0", "--timeout", "2m"])
        .env_remove("KUBECONFIG");
    capture("helm install cacheme charts/cacheme", helm, None)?;
    kubectl.wait_established(CRD)?;
    eprintln!("    CRD {CRD} established");
    Ok(())
}

/// Creates the sample namespace (restricted, like the release's) and applies `k8s/samples/minimal.yaml` into it.
pub fn apply_minimal_sample(root: &Path, kubectl: &Kubectl) -> anyhow::Result<String> {
    let file = root.join("k8s").join("samples").join("minimal.yaml");
    let yaml = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    restricted_namespace(kubectl, SAMPLE_NAMESPACE)?;
    kubectl.apply(&yaml, Some(SAMPLE_NAMESPACE))?;
    let name = kubectl.json(&[
        "get",
        "-f",
        &file.display().to_string(),
        "--namespace",
        SAMPLE_NAMESPACE,
    ])?["metadata"]["name"]
        .as_str()
        .context("the sample has no name")?
        .to_owned();
    Ok(name)
}

/// The condition of `type_` in a CacheMe's status.
pub fn condition<'a>(cacheme: &'a Value, type_: &str) -> Option<&'a Value> {
    cacheme["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// One line about a CacheMe's status, for progress and for failures.
pub fn summary(cacheme: &Value) -> String {
    let status = &cacheme["status"];
    let conditions: Vec<String> = status["conditions"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    format!(
                        "{}={} ({}: {})",
                        c["type"].as_str().unwrap_or("?"),
                        c["status"].as_str().unwrap_or("?"),
                        c["reason"].as_str().unwrap_or(""),
                        c["message"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "phase {}, generation {} observed {}, conditions [{}]",
        status["phase"].as_str().unwrap_or("none"),
        cacheme["metadata"]["generation"],
        status["observedGeneration"],
        conditions.join("; ")
    )
}

/// Waits until the CacheMe `namespace/name` is Ready; `alive` is checked on every poll
/// (the operator must not have exited).
pub fn wait_ready(
    kubectl: &Kubectl,
    namespace: &str,
    name: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Value> {
    let what = format!("CacheMe {namespace}/{name} to be Ready");
    Kubectl::wait_for(&what, timeout, Duration::from_secs(1), || {
        alive()?;
        let cacheme = match kubectl.json(&["get", "cacheme", name, "--namespace", namespace]) {
            Ok(cacheme) => cacheme,
            Err(e) => return Ok(Err(format!("{e:#}"))),
        };
        let ready = condition(&cacheme, "Ready").is_some_and(|c| c["status"] == "True");
        if ready {
            Ok(Ok(cacheme))
        } else {
            Ok(Err(format!(
                "{}; pods: {}",
                summary(&cacheme),
                pods(kubectl, namespace)
            )))
        }
    })
}

/// `name phase ready` of every pod in `namespace`, for failure messages.
fn pods(kubectl: &Kubectl, namespace: &str) -> String {
    let Ok(list) = kubectl.json(&["get", "pods", "--namespace", namespace]) else {
        return "(cannot list)".to_owned();
    };
    let items: Vec<String> = list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|p| {
                    let ready = p["status"]["conditions"]
                        .as_array()
                        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                        .map_or("?", |c| c["status"].as_str().unwrap_or("?"));
                    format!(
                        "{} {} ready={ready}",
                        p["metadata"]["name"].as_str().unwrap_or("?"),
                        p["status"]["phase"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// The status of a Ready CacheMe follows the conventions: observedGeneration equals
/// metadata.generation (on the status and on each condition), Ready True with Progressing
/// and Degraded False, phase Ready, every desired API replica ready.
pub fn check_status(cacheme: &Value) -> anyhow::Result<()> {
    let name = cacheme["metadata"]["name"].as_str().unwrap_or("?");
    let generation = cacheme["metadata"]["generation"]
        .as_i64()
        .context("no metadata.generation")?;
    let status = &cacheme["status"];
    ensure!(
        status["observedGeneration"].as_i64() == Some(generation),
        "{name}: status.observedGeneration {} != metadata.generation {generation}",
        status["observedGeneration"]
    );
    for (type_, want) in [
        ("Ready", "True"),
        ("Progressing", "False"),
        ("Degraded", "False"),
    ] {
        let c = condition(cacheme, type_)
            .with_context(|| format!("{name}: no {type_} condition: {}", summary(cacheme)))?;
        ensure!(
            c["status"] == want,
            "{name}: condition {type_} is {} (want {want}): {}",
            c["status"],
            summary(cacheme)
        );
        ensure!(
            c["observedGeneration"].as_i64() == Some(generation),
            "{name}: condition {type_} observedGeneration {} != {generation}",
            c["observedGeneration"]
        );
        ensure!(
            c["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{name}: condition {type_} has no reason"
        );
    }
    ensure!(
        status["phase"] == "Ready",
        "{name}: phase {}",
        status["phase"]
    );
    // Under an autoscaler the HPA decides how many; otherwise spec.replicas does.
    let expected = if cacheme["spec"]["autoscaling"].is_object() {
        &status["replicas"]
    } else {
        &cacheme["spec"]["replicas"]
    };
    ensure!(
        &status["readyReplicas"] == expected,
        "{name}: readyReplicas {} != {expected} (spec.replicas, or status.replicas under autoscaling)",
        status["readyReplicas"],
    );
    Ok(())
}

/// `kubectl get cachemes` prints the CRD's printer columns (Desired only with -o wide),
/// with the values of the object.
pub fn check_printer_columns(kubectl: &Kubectl, cacheme: &Value) -> anyhow::Result<String> {
    let namespace = cacheme["metadata"]["namespace"]
        .as_str()
        .context("no namespace")?;
    let name = cacheme["metadata"]["name"].as_str().context("no name")?;
    let table = kubectl.run(&["get", "cachemes", "--namespace", namespace])?;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    ensure!(
        header == ["NAME", "READY", "PHASE", "REPLICAS", "TTL", "AGE"],
        "kubectl get cachemes header is {header:?}:\n{table}"
    );
    let row: Vec<&str> = lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .with_context(|| format!("no row for {name}:\n{table}"))?
        .split_whitespace()
        .collect();
    let want = [
        name.to_owned(),
        "True".to_owned(),
        "Ready".to_owned(),
        cacheme["status"]["readyReplicas"].to_string(),
        cacheme["spec"]["ttlSeconds"].to_string(),
    ];
    ensure!(
        row.len() == 6 && row[..5] == want,
        "kubectl get cachemes row is {row:?}, want {want:?} then an age:\n{table}"
    );
    let wide = kubectl.run(&["get", "cachemes", "--namespace", namespace, "-o", "wide"])?;
    ensure!(
        wide.lines()
            .next()
            .is_some_and(|h| h.split_whitespace().any(|c| c == "DESIRED")),
        "kubectl get cachemes -o wide has no DESIRED column:\n{wide}"
    );
    Ok(table)
}

/// Fails when the API server refused any request of `user` (see `audit`).
pub fn check_no_refusals(audit_log: &Path, user: &str) -> anyhow::Result<()> {
    let (requests, refused) = super::audit::refusals(audit_log, user)?;
    // An audit log without the user's requests would make this check vacuous.
    ensure!(
        requests > 0,
        "the audit log {} has no request of {user}: is auditing on?",
        audit_log.display()
    );
    if refused.is_empty() {
        eprintln!(
            "    the API server refused none of the {requests} requests of {user} (audit log)"
        );
        return Ok(());
    }
    let list: Vec<String> = refused
        .iter()
        .map(|(r, n)| format!("  {n:>4} x {r}"))
        .collect();
    bail!(
        "the API server refused requests of {user} (audit log {}):\n{}",
        audit_log.display(),
        list.join("\n")
    )
}
