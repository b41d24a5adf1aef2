//! Unit tests of the pure status computation.

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

#[test]
fn a_cloudnativepg_cluster_is_complete_when_every_instance_is_ready()
-> Result<(), Box<dyn std::error::Error>> {
    let cluster = |data: serde_json::Value| -> Result<DynamicObject, serde_json::Error> {
        let mut object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": "demo-postgres"},
        }))?;
        object.data = data;
        Ok(object)
    };
    // Just created: CloudNativePG has written no status yet.
    let new = Rollout::of_cloudnativepg(&cluster(serde_json::json!({"spec": {"instances": 3}}))?);
    assert_eq!((new.ready, new.desired, new.complete), (0, 3, false));
    assert_eq!(
        new.waiting(),
        "CloudNativePG cluster demo-postgres: 0/3 instances ready"
    );
    let partial = Rollout::of_cloudnativepg(&cluster(serde_json::json!({
        "spec": {"instances": 3}, "status": {"instances": 3, "readyInstances": 2},
    }))?);
    assert!(!partial.complete);
    let done = Rollout::of_cloudnativepg(&cluster(serde_json::json!({
        "spec": {"instances": 3}, "status": {"instances": 3, "readyInstances": 3},
    }))?);
    assert!(done.complete && done.stuck.is_none());
    assert_eq!(done.workload, Workload::CloudNativePg);
    Ok(())
}
