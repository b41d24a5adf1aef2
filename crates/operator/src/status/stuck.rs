//! Why a Deployment will not become available by waiting. Pure: reads the
//! Deployment's conditions and its pods' container states.
//!
//! Without this a pod that crash-loops or cannot pull its image leaves the
//! CacheMe `Progressing` forever; with it the CacheMe turns `Degraded` with
//! the kubelet's own reason and message.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;

/// Container waiting reasons that need a fix (image, command, configuration),
/// as the kubelet reports them. `ContainerCreating` and `PodInitializing` are
/// not here: they pass by themselves.
pub const STUCK_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Restarts of a container that is not ready after which it counts as crash-looping
/// even while it runs between two back-offs.
pub const RESTARTS_STUCK: i32 = 3;

/// The first reason `deployment` is stuck, as `"<what>: <reason>: <message>"`,
/// or `None` while it may still converge by itself. `pods` may hold pods of
/// other Deployments: only those its selector matches are read.
pub fn stuck(deployment: &Deployment, pods: &[Pod]) -> Option<String> {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let conditions = deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    // Pods refused at creation (PodSecurity, quota, a missing ServiceAccount).
    if let Some(c) = conditions.iter().find(|c| {
        c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
    }) {
        let reason = c.reason.as_deref().unwrap_or("ReplicaFailure");
        let message = c.message.as_deref().unwrap_or_default();
        return Some(format!("deployment {name}: {reason}: {message}"));
    }
    let selector = deployment.spec.selector.match_labels.as_ref();
    let selected = |pod: &&Pod| match (selector, pod.metadata.labels.as_ref()) {
        (Some(selector), Some(labels)) => selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        _ => false,
    };
    for pod in pods.iter().filter(selected) {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let containers = pod.status.iter().flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        });
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        for container in containers {
            if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                let reason = waiting.reason.as_deref().unwrap_or_default();
                if STUCK_REASONS.contains(&reason) {
                    let message = waiting.message.as_deref().unwrap_or_default();
                    return Some(format!(
                        "pod {pod_name} container {}: {reason}: {message}",
                        container.name
                    ));
                }
            }
            // Between two back-offs a crash-looping container runs for a moment: without
            // this its CacheMe would flip between Degraded and Progressing on every restart.
            let last_exit = container
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref());
            if let Some(exit) = last_exit
                && !container.ready
                && container.restart_count >= RESTARTS_STUCK
            {
                return Some(format!(
                    "pod {pod_name} container {}: restarted {} times, last exit {} (code {})",
                    container.name,
                    container.restart_count,
                    exit.reason.as_deref().unwrap_or("unknown"),
                    exit.exit_code
                ));
            }
        }
    }
    // The Deployment controller's own verdict, after progressDeadlineSeconds.
    conditions
        .iter()
        .find(|c| {
            c.type_.as_deref() == Some("Progressing")
                && c.status.as_deref() == Some("False")
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
        .map(|c| {
            format!(
                "deployment {name}: ProgressDeadlineExceeded: {}",
                c.message.as_deref().unwrap_or_default()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(conditions: serde_json::Value) -> Result<Deployment, serde_json::Error> {
        serde_json::from_value(json!({
            "metadata": {"name": "demo-api"},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/component": "api"}},
                "template": {},
            },
            "status": {"conditions": conditions},
        }))
    }

    fn pod(component: &str, waiting: Option<&str>) -> Result<Pod, serde_json::Error> {
        let state = match waiting {
            Some(reason) => json!({"waiting": {"reason": reason, "message": "back-off 10s"}}),
            None => json!({"running": {}}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": format!("demo-{component}-1"), "labels": {"app.kubernetes.io/component": component}},
            "status": {"containerStatuses": [{
                "name": component, "image": "x", "imageID": "", "ready": false,
                "restartCount": 3, "state": state,
            }]},
        }))
    }

    #[test]
    fn a_crash_looping_pod_is_stuck_with_the_kubelets_reason() -> Result<(), serde_json::Error> {
        let d = deployment(json!([]))?;
        let message = stuck(&d, &[pod("api", Some("CrashLoopBackOff"))?]);
        assert_eq!(
            message.as_deref(),
            Some("pod demo-api-1 container api: CrashLoopBackOff: back-off 10s")
        );
        assert!(stuck(&d, &[pod("api", Some("ImagePullBackOff"))?]).is_some());
        assert!(stuck(&d, &[pod("api", Some("CreateContainerConfigError"))?]).is_some());
        Ok(())
    }

    #[test]
    fn a_container_running_between_back_offs_is_still_stuck() -> Result<(), serde_json::Error> {
        let d = deployment(json!([]))?;
        let running_again = |restarts: i32| -> Result<Pod, serde_json::Error> {
            serde_json::from_value(json!({
                "metadata": {"name": "demo-api-1", "labels": {"app.kubernetes.io/component": "api"}},
                "status": {"containerStatuses": [{
                    "name": "api", "image": "x", "imageID": "", "ready": false,
                    "restartCount": restarts, "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
                }]},
            }))
        };
        let message = stuck(&d, &[running_again(4)?]).unwrap_or_default();
        assert!(
            message.contains("restarted 4 times, last exit OOMKilled (code 137)"),
            "{message}"
        );
        // One restart while the database starts is recovery, not a crash loop.
        assert_eq!(stuck(&d, &[running_again(1)?]), None);
        Ok(())
    }

    #[test]
    fn pods_that_will_get_there_by_themselves_are_not_stuck() -> Result<(), serde_json::Error> {
        let d = deployment(json!([]))?;
        assert_eq!(stuck(&d, &[pod("api", Some("ContainerCreating"))?]), None);
        assert_eq!(stuck(&d, &[pod("api", None)?]), None);
        assert_eq!(stuck(&d, &[]), None);
        Ok(())
    }

    #[test]
    fn other_deployments_pods_are_not_read() -> Result<(), serde_json::Error> {
        let d = deployment(json!([]))?;
        assert_eq!(
            stuck(&d, &[pod("frontend", Some("CrashLoopBackOff"))?]),
            None
        );
        Ok(())
    }

    #[test]
    fn refused_pods_and_an_exceeded_deadline_are_stuck() -> Result<(), serde_json::Error> {
        let refused = deployment(json!([{
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": "pods \"demo-api-1\" is forbidden: violates PodSecurity",
        }]))?;
        let message = stuck(&refused, &[]).unwrap_or_default();
        assert!(
            message.starts_with("deployment demo-api: FailedCreate: pods"),
            "{message}"
        );
        let late = deployment(json!([{
            "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": "ReplicaSet has timed out progressing.",
        }]))?;
        assert!(stuck(&late, &[]).is_some());
        let fine = deployment(json!([{
            "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
        }]))?;
        assert_eq!(stuck(&fine, &[]), None);
        Ok(())
    }
}
