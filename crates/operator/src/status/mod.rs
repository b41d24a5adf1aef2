//! Pure computation of a `CacheMe` status from what the cluster reported (unit tests
//! in `status/tests.rs`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::DynamicObject;

use crate::crd::{CacheMe, CacheMeStatus, Endpoints, Phase};

/// Condition types.
pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// What a [`Rollout`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workload {
    /// A Deployment of the stack.
    #[default]
    Deployment,
    /// The CloudNativePG `Cluster` (its instances are counted as replicas).
    CloudNativePg,
}

/// Rollout state of one Deployment (or the CloudNativePG Cluster), read from its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub name: String,
    pub workload: Workload,
    pub desired: i32,
    /// Pods the Deployment has now (`status.replicas`).
    pub replicas: i32,
    pub ready: i32,
    /// The Deployment controller has seen the latest spec and every replica is updated and available.
    pub complete: bool,
    /// Why it will not complete by waiting (see [`stuck::stuck`]).
    pub stuck: Option<String>,
}

impl Rollout {
    /// Reads a Deployment as returned by the API server, and the pods of the
    /// stack when it is not complete.
    pub fn with_pods(deployment: &Deployment, pods: &[Pod]) -> Self {
        let mut rollout = Self::of(deployment);
        if !rollout.complete {
            rollout.stuck = stuck::stuck(deployment, pods);
        }
        rollout
    }

    /// Reads a Deployment as returned by the API server.
    pub fn of(deployment: &Deployment) -> Self {
        let desired = deployment.spec.replicas.unwrap_or(1);
        let generation = deployment.metadata.generation.unwrap_or(0);
        let status = deployment.status.clone().unwrap_or_default();
        let ready = status.ready_replicas.unwrap_or(0);
        let complete = status.observed_generation.unwrap_or(0) >= generation
            && status.updated_replicas.unwrap_or(0) >= desired
            && status.available_replicas.unwrap_or(0) >= desired
            && status.replicas.unwrap_or(0) <= desired;
        Self {
            name: deployment.metadata.name.clone().unwrap_or_default(),
            workload: Workload::Deployment,
            desired,
            replicas: status.replicas.unwrap_or(0),
            ready,
            complete,
            stuck: None,
        }
    }
}

impl Rollout {
    /// Reads a CloudNativePG `Cluster` as returned by the API server: complete once
    /// `status.readyInstances` reaches `spec.instances`. Nothing is known about why
    /// an instance is not ready (CloudNativePG's own status says), so never stuck.
    pub fn of_cloudnativepg(cluster: &DynamicObject) -> Self {
        let int = |value: &serde_json::Value| {
            value
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n >= 0)
        };
        let desired = int(&cluster.data["spec"]["instances"]).unwrap_or(1);
        let status = &cluster.data["status"];
        let ready = int(&status["readyInstances"]).unwrap_or(0);
        Self {
            name: cluster.metadata.name.clone().unwrap_or_default(),
            workload: Workload::CloudNativePg,
            desired,
            replicas: int(&status["instances"]).unwrap_or(0),
            ready,
            complete: ready >= desired,
            stuck: None,
        }
    }

    /// What it waits for, for the Ready and Progressing messages.
    fn waiting(&self) -> String {
        match self.workload {
            Workload::Deployment => {
                format!("{} ({}/{} ready)", self.name, self.ready, self.desired)
            }
            Workload::CloudNativePg => format!(
                "CloudNativePG cluster {}: {}/{} instances ready",
                self.name, self.ready, self.desired
            ),
        }
    }
}

/// Why a condition has its status. Each reason belongs to one condition type
/// and one status, so a condition is built from its reason alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Ready=True.
    AllComponentsAvailable,
    /// Ready=False.
    ComponentsNotReady,
    /// Progressing=False.
    RolloutComplete,
    /// Progressing=True.
    RollingOut,
    /// Degraded=False.
    ReconcileSucceeded,
    /// Degraded=True: applied, but a component will not become available by waiting.
    ComponentFailing,
    /// Degraded=True (or Ready=False when there was no Ready yet): the reconcile
    /// failed with the error of this reason (see [`crate::Error::reason`]).
    ReconcileFailed(&'static str),
}

impl Reason {
    /// `(type, status, reason)` as written in the condition.
    fn parts(self) -> (&'static str, bool, &'static str) {
        match self {
            Reason::AllComponentsAvailable => (READY, true, "AllComponentsAvailable"),
            Reason::ComponentsNotReady => (READY, false, "ComponentsNotReady"),
            Reason::RolloutComplete => (PROGRESSING, false, "RolloutComplete"),
            Reason::RollingOut => (PROGRESSING, true, "RollingOut"),
            Reason::ReconcileSucceeded => (DEGRADED, false, "ReconcileSucceeded"),
            Reason::ComponentFailing => (DEGRADED, true, "ComponentFailing"),
            Reason::ReconcileFailed(reason) => (DEGRADED, true, reason),
        }
    }
}

/// What the conditions of one status write share: the previous conditions (for
/// `lastTransitionTime`), the generation they describe, and the time.
#[derive(Debug)]
pub struct Conditions<'a> {
    pub previous: &'a [Condition],
    pub generation: Option<i64>,
    pub now: &'a Time,
}

impl Conditions<'_> {
    /// The condition `reason` implies, keeping the previous `lastTransitionTime`
    /// unless the status flips.
    pub fn of(&self, reason: Reason, message: String) -> Condition {
        let (type_, status, reason) = reason.parts();
        self.build(type_, status, reason, message)
    }

    fn build(&self, type_: &str, status: bool, reason: &str, message: String) -> Condition {
        let status = if status { "True" } else { "False" };
        let last_transition_time = self
            .previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| self.now.clone());
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation: self.generation,
            last_transition_time,
        }
    }
}

/// Status after a successful reconcile. `api` is the API Deployment's
/// rollout, `rollouts` every Deployment of the stack (including the API).
pub fn reconciled(
    cm: &CacheMe,
    api: Option<&Rollout>,
    rollouts: &[Rollout],
    endpoints: Endpoints,
    now: &Time,
) -> CacheMeStatus {
    let generation = cm.metadata.generation;
    let conditions = Conditions {
        previous: cm
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default(),
        generation,
        now,
    };
    let waiting: Vec<String> = rollouts
        .iter()
        .filter(|r| !r.complete)
        .map(Rollout::waiting)
        .collect();
    let ready = waiting.is_empty();
    let stuck: Vec<&str> = rollouts.iter().filter_map(|r| r.stuck.as_deref()).collect();
    let conditions = vec![
        if ready {
            conditions.of(Reason::AllComponentsAvailable, available(rollouts))
        } else {
            conditions.of(
                Reason::ComponentsNotReady,
                format!("waiting for {}", waiting.join(", ")),
            )
        },
        if ready {
            conditions.of(
                Reason::RolloutComplete,
                "every deployment is up to date".to_string(),
            )
        } else {
            conditions.of(
                Reason::RollingOut,
                format!("rolling out {}", waiting.join(", ")),
            )
        },
        if stuck.is_empty() {
            conditions.of(
                Reason::ReconcileSucceeded,
                "every object applied".to_string(),
            )
        } else {
            conditions.of(Reason::ComponentFailing, stuck.join("; "))
        },
    ];
    CacheMeStatus {
        observed_generation: generation,
        phase: Some(if ready {
            Phase::Ready
        } else if stuck.is_empty() {
            Phase::Progressing
        } else {
            Phase::Degraded
        }),
        conditions,
        replicas: Some(api.map(|r| r.replicas).unwrap_or(0)),
        selector: None,
        ready_replicas: Some(api.map(|r| r.ready).unwrap_or(0)),
        endpoints: Some(endpoints),
    }
}

/// "3 deployments available", and the CloudNativePG cluster when there is one.
fn available(rollouts: &[Rollout]) -> String {
    let deployments = rollouts
        .iter()
        .filter(|r| r.workload == Workload::Deployment)
        .count();
    let mut message = format!("{deployments} deployments available");
    for cluster in rollouts
        .iter()
        .filter(|r| r.workload == Workload::CloudNativePg)
    {
        message.push_str(&format!(
            ", CloudNativePG cluster {} ready ({}/{} instances)",
            cluster.name, cluster.ready, cluster.desired
        ));
    }
    message
}

/// Status after a failed reconcile: `Degraded` with the error's reason; the
/// other conditions and fields keep their last known values.
pub fn degraded(cm: &CacheMe, reason: &'static str, message: String, now: &Time) -> CacheMeStatus {
    let mut status = cm.status.clone().unwrap_or_default();
    let conditions = Conditions {
        previous: &status.conditions,
        generation: cm.metadata.generation,
        now,
    };
    let degraded = conditions.of(Reason::ReconcileFailed(reason), message);
    let first_ready = conditions.build(
        READY,
        false,
        reason,
        "the last reconcile failed".to_string(),
    );
    status.conditions.retain(|c| c.type_ != DEGRADED);
    if !status.conditions.iter().any(|c| c.type_ == READY) {
        status.conditions.push(first_ready);
    }
    status.conditions.push(degraded);
    status.phase = Some(Phase::Degraded);
    status
}

pub mod stuck;

#[cfg(test)]
mod tests;
