//! Pure computation of a `CacheMe` status from what the cluster reported.
//!
//! About half of it is the unit tests of these pure functions.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{CacheMe, CacheMeStatus, Endpoints, Phase};

/// Condition types.
pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// Rollout state of one Deployment, read from its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub name: String,
    pub desired: i32,
    /// Pods the Deployment has now (`status.replicas`).
    pub replicas: i32,
    pub ready: i32,
    /// The Deployment controller has seen the latest spec and every replica is updated and available.
    pub complete: bool,
    /// Why it will not complete by waiting (see [`crate::failures::stuck`]).
    pub stuck: Option<String>,
}

impl Rollout {
    /// Reads a Deployment as returned by the API server, and the pods of the
    /// stack when it is not complete.
    pub fn with_pods(deployment: &Deployment, pods: &[Pod]) -> Self {
        let mut rollout = Self::of(deployment);
        if !rollout.complete {
            rollout.stuck = crate::failures::stuck(deployment, pods);
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
            desired,
            replicas: status.replicas.unwrap_or(0),
            ready,
            complete,
            stuck: None,
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
        .map(|r| format!("{} ({}/{} ready)", r.name, r.ready, r.desired))
        .collect();
    let ready = waiting.is_empty();
    let stuck: Vec<&str> = rollouts.iter().filter_map(|r| r.stuck.as_deref()).collect();
    let conditions = vec![
        if ready {
            conditions.of(
                Reason::AllComponentsAvailable,
                format!("{} deployments available", rollouts.len()),
            )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::CacheMeSpec;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;

    fn time(seconds: i64) -> Result<Time, k8s_openapi::jiff::Error> {
        Ok(Time(Timestamp::from_second(seconds)?))
    }

    fn cacheme(status: Option<CacheMeStatus>) -> Result<CacheMe, serde_json::Error> {
        let mut cm = CacheMe::new("demo", serde_json::from_str::<CacheMeSpec>("{}")?);
        cm.metadata.generation = Some(4);
        cm.status = status;
        Ok(cm)
    }

    fn deployment(replicas: i32, ready: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("demo-api".into()),
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(replicas),
                updated_replicas: Some(replicas),
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                ..DeploymentStatus::default()
            }),
        }
    }

    fn get<'a>(status: &'a CacheMeStatus, type_: &str) -> Option<&'a Condition> {
        status.conditions.iter().find(|c| c.type_ == type_)
    }

    #[test]
    fn rollout_is_complete_only_when_every_replica_is_available() {
        assert!(Rollout::of(&deployment(2, 2)).complete);
        let partial = Rollout::of(&deployment(2, 1));
        assert!(!partial.complete);
        assert_eq!((partial.ready, partial.desired), (1, 2));
        let mut stale = deployment(1, 1);
        stale.metadata.generation = Some(3);
        assert!(!Rollout::of(&stale).complete, "status of an older spec");
    }

    #[test]
    fn a_stuck_rollout_is_degraded_with_its_reason() -> Result<(), Box<dyn std::error::Error>> {
        let mut api = Rollout::of(&deployment(1, 0));
        api.stuck = Some("pod demo-api-1 container api: CrashLoopBackOff: back-off".into());
        let status = reconciled(
            &cacheme(None)?,
            Some(&api),
            std::slice::from_ref(&api),
            Endpoints::default(),
            &time(10)?,
        );
        assert_eq!(status.phase, Some(Phase::Degraded));
        let degraded = get(&status, DEGRADED).ok_or("no Degraded")?;
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "ComponentFailing")
        );
        assert!(degraded.message.contains("CrashLoopBackOff"));
        assert_eq!(
            get(&status, READY).map(|c| c.status.as_str()),
            Some("False")
        );
        Ok(())
    }

    #[test]
    fn ready_stack_has_ready_phase_and_conditions() -> Result<(), Box<dyn std::error::Error>> {
        let cm = cacheme(None)?;
        let api = Rollout::of(&deployment(1, 1));
        let status = reconciled(
            &cm,
            Some(&api),
            std::slice::from_ref(&api),
            Endpoints::default(),
            &time(10)?,
        );
        assert_eq!(status.phase, Some(Phase::Ready));
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(status.ready_replicas, Some(1));
        assert_eq!(get(&status, READY).map(|c| c.status.as_str()), Some("True"));
        assert_eq!(
            get(&status, PROGRESSING).map(|c| c.status.as_str()),
            Some("False")
        );
        assert_eq!(
            get(&status, DEGRADED).map(|c| c.status.as_str()),
            Some("False")
        );
        Ok(())
    }

    #[test]
    fn transition_time_changes_only_on_a_flip() -> Result<(), Box<dyn std::error::Error>> {
        let waiting = Rollout::of(&deployment(2, 0));
        let first = reconciled(
            &cacheme(None)?,
            Some(&waiting),
            std::slice::from_ref(&waiting),
            Endpoints::default(),
            &time(10)?,
        );
        assert_eq!(first.phase, Some(Phase::Progressing));
        // Still not ready later: Ready=False keeps its time.
        let second = reconciled(
            &cacheme(Some(first.clone()))?,
            Some(&waiting),
            std::slice::from_ref(&waiting),
            Endpoints::default(),
            &time(20)?,
        );
        assert_eq!(
            get(&second, READY).map(|c| c.last_transition_time.clone()),
            Some(time(10)?)
        );
        // Ready now: Ready flips and gets the new time; Degraded=False keeps the old one.
        let done = Rollout::of(&deployment(2, 2));
        let third = reconciled(
            &cacheme(Some(second))?,
            Some(&done),
            std::slice::from_ref(&done),
            Endpoints::default(),
            &time(30)?,
        );
        assert_eq!(
            get(&third, READY).map(|c| c.last_transition_time.clone()),
            Some(time(30)?)
        );
        assert_eq!(
            get(&third, DEGRADED).map(|c| c.last_transition_time.clone()),
            Some(time(10)?)
        );
        Ok(())
    }

    #[test]
    fn failure_sets_degraded_and_keeps_the_rest() -> Result<(), Box<dyn std::error::Error>> {
        let api = Rollout::of(&deployment(1, 1));
        let ok = reconciled(
            &cacheme(None)?,
            Some(&api),
            std::slice::from_ref(&api),
            Endpoints::default(),
            &time(10)?,
        );
        let failed = degraded(
            &cacheme(Some(ok))?,
            "ApplyFailed",
            "boom".into(),
            &time(20)?,
        );
        assert_eq!(failed.phase, Some(Phase::Degraded));
        let d = get(&failed, DEGRADED).ok_or("no Degraded")?;
        assert_eq!(
            (d.status.as_str(), d.reason.as_str(), d.message.as_str()),
            ("True", "ApplyFailed", "boom")
        );
        assert_eq!(d.last_transition_time, time(20)?);
        assert_eq!(get(&failed, READY).map(|c| c.status.as_str()), Some("True"));
        assert_eq!(failed.conditions.len(), 3);
        Ok(())
    }

    #[test]
    fn failure_before_any_status_reports_not_ready() -> Result<(), Box<dyn std::error::Error>> {
        let failed = degraded(
            &cacheme(None)?,
            "SeedUnavailable",
            "missing".into(),
            &time(5)?,
        );
        assert_eq!(
            get(&failed, READY).map(|c| c.status.as_str()),
            Some("False")
        );
        assert_eq!(
            get(&failed, DEGRADED).map(|c| c.status.as_str()),
            Some("True")
        );
        Ok(())
    }
}
