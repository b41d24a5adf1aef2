//! One CacheMe of the e2e cluster and its children: merge-patch its spec, wait until the
//! operator has caught up with a generation, read its Deployments, claims and ReplicaSets.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use super::{
    kubectl::Kubectl,
    scenario::{condition, summary},
};

/// The operator is checked on every poll (it must not have exited).
pub type Alive<'a> = &'a mut dyn FnMut() -> anyhow::Result<()>;

/// How many polls in a row a Degraded condition at the awaited generation may last before
/// a wait for Ready gives up early (a refused apply is retried with backoff, never fixed).
const DEGRADED_POLLS: u32 = 8;

pub struct Stack<'a> {
    pub kubectl: &'a Kubectl,
    pub namespace: &'a str,
    pub name: &'a str,
    pub timeout: Duration,
}

impl Stack<'_> {
    pub fn get(&self) -> anyhow::Result<Value> {
        self.kubectl
            .json(&["get", "cacheme", self.name, "--namespace", self.namespace])
    }

    /// `kubectl patch --type merge` of the CacheMe; returns its new generation.
    pub fn patch(&self, patch: &Value) -> anyhow::Result<i64> {
        let text = patch.to_string();
        let patched = self.kubectl.json(&[
            "patch",
            "cacheme",
            self.name,
            "--namespace",
            self.namespace,
            "--type",
            "merge",
            "--patch",
            &text,
        ])?;
        patched["metadata"]["generation"]
            .as_i64()
            .with_context(|| format!("patched CacheMe {} has no generation", self.name))
    }

    /// Waits until the CacheMe is Ready with `status.observedGeneration == generation`,
    /// then checks its status (see `scenario::check_status`).
    pub fn wait_ready(&self, generation: i64, alive: Alive) -> anyhow::Result<Value> {
        let what = format!(
            "CacheMe {}/{} to be Ready at generation {generation}",
            self.namespace, self.name
        );
        let mut degraded_polls = 0;
        let cacheme = Kubectl::wait_for(&what, self.timeout, Duration::from_secs(1), || {
            alive()?;
            let cacheme = match self.get() {
                Ok(c) => c,
                Err(e) => return Ok(Err(format!("{e:#}"))),
            };
            let at = |c: &Value| c["observedGeneration"].as_i64() == Some(generation);
            if condition(&cacheme, "Degraded").is_some_and(|c| c["status"] == "True" && at(c)) {
                degraded_polls += 1;
                if degraded_polls >= DEGRADED_POLLS {
                    bail!(
                        "CacheMe {} stays Degraded: {}",
                        self.name,
                        summary(&cacheme)
                    );
                }
            } else {
                degraded_polls = 0;
            }
            let ready = condition(&cacheme, "Ready").is_some_and(|c| c["status"] == "True");
            if ready && cacheme["status"]["observedGeneration"].as_i64() == Some(generation) {
                Ok(Ok(cacheme))
            } else {
                Ok(Err(summary(&cacheme)))
            }
        })?;
        super::scenario::check_status(&cacheme)?;
        Ok(cacheme)
    }

    /// Waits until the CacheMe's Degraded condition is True at `generation`; returns it.
    pub fn wait_degraded(&self, generation: i64, alive: Alive) -> anyhow::Result<Value> {
        let what = format!(
            "CacheMe {}/{} to be Degraded at generation {generation}",
            self.namespace, self.name
        );
        Kubectl::wait_for(&what, self.timeout, Duration::from_secs(1), || {
            alive()?;
            let cacheme = match self.get() {
                Ok(c) => c,
                Err(e) => return Ok(Err(format!("{e:#}"))),
            };
            match condition(&cacheme, "Degraded") {
                Some(c)
                    if c["status"] == "True"
                        && c["observedGeneration"].as_i64() == Some(generation) =>
                {
                    Ok(Ok(c.clone()))
                }
                _ => Ok(Err(summary(&cacheme))),
            }
        })
    }

    /// The child `<name>-<suffix>` of `kind`, `None` when it does not exist.
    pub fn child(&self, kind: &str, suffix: &str) -> anyhow::Result<Option<Value>> {
        let name = format!("{}-{suffix}", self.name);
        let found = self.kubectl.json(&[
            "get",
            kind,
            &name,
            "--namespace",
            self.namespace,
            "--ignore-not-found",
        ]);
        match found {
            Ok(object) => Ok(Some(object)),
            // --ignore-not-found prints nothing, which is not JSON.
            Err(e) if format!("{e:#}").contains("not JSON") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The Deployment `<name>-<component>`, which must exist.
    pub fn deployment(&self, component: &str) -> anyhow::Result<Value> {
        self.child("deployment", component)?
            .with_context(|| format!("no Deployment {}-{component}", self.name))
    }

    /// `pod-template-hash` labels of the ReplicaSets owned by Deployment `<name>-<component>`.
    pub fn template_hashes(&self, component: &str) -> anyhow::Result<BTreeSet<String>> {
        let owner = format!("{}-{component}", self.name);
        let list = self
            .kubectl
            .json(&["get", "replicasets", "--namespace", self.namespace])?;
        Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|rs| {
                rs["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|o| o["name"] == owner.as_str()))
            })
            .filter_map(|rs| {
                rs["metadata"]["labels"]["pod-template-hash"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect())
    }
}

/// The Deployment's `deployment.kubernetes.io/revision`.
pub fn revision(deployment: &Value) -> anyhow::Result<u64> {
    deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .with_context(|| {
            format!(
                "Deployment {} has no revision annotation",
                deployment["metadata"]["name"]
            )
        })
}

/// The value of env var `name` in the first container of a Deployment's pod template.
pub fn env_value<'a>(deployment: &'a Value, name: &str) -> Option<&'a str> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)?["value"]
        .as_str()
}

/// `after` is a new rollout of `before`: another pod template, a higher revision, a new
/// ReplicaSet (`hashes_after` has a hash `hashes_before` lacks), every replica updated.
pub fn ensure_rolled(
    before: &Value,
    after: &Value,
    hashes_before: &BTreeSet<String>,
    hashes_after: &BTreeSet<String>,
    edit: &str,
) -> anyhow::Result<()> {
    let name = after["metadata"]["name"].as_str().unwrap_or("?");
    ensure!(
        before["spec"]["template"] != after["spec"]["template"],
        "{edit}: the pod template of Deployment {name} did not change"
    );
    let (rev_before, rev_after) = (revision(before)?, revision(after)?);
    ensure!(
        rev_after > rev_before,
        "{edit}: Deployment {name} revision {rev_before} -> {rev_after}, want a new revision"
    );
    let new: Vec<&String> = hashes_after.difference(hashes_before).collect();
    ensure!(
        !new.is_empty(),
        "{edit}: no new ReplicaSet of Deployment {name} (pod-template-hash {hashes_after:?})"
    );
    let spec = &after["spec"]["replicas"];
    ensure!(
        &after["status"]["updatedReplicas"] == spec && &after["status"]["readyReplicas"] == spec,
        "{edit}: Deployment {name} has {} updated and {} ready replicas, want {spec}",
        after["status"]["updatedReplicas"],
        after["status"]["readyReplicas"]
    );
    eprintln!(
        "    {edit}: Deployment {name} rolled to revision {rev_after} (new ReplicaSet {})",
        new.iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
