//! Deployments of every component: the pieces they share here, one file per group of
//! components (`api` with the page, `stores`, `tools`).

mod api;
mod stores;
mod tools;

pub use stores::{CNPG_API_VERSION, CNPG_CLUSTERS, CNPG_URI_KEY, cloudnativepg_resource};

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, SleepAction,
    TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CONFIG_HASH_ANNOTATION, Component, Stack};
use crate::crd::{DEFAULT_URL_KEY, SecretKeyRef};

/// The user id containers run as when the image does not fix one.
pub const NON_ROOT_UID: i64 = 65532;
/// Service name the API reports to OpenTelemetry.
pub const API_SERVICE_NAME: &str = "cacheme-api";

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn env_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn env_external(name: &str, r: &SecretKeyRef) -> EnvVar {
    env_secret(name, &r.name, r.key.as_deref().unwrap_or(DEFAULT_URL_KEY))
}

fn port(name: &str, port: i32) -> Option<Vec<ContainerPort>> {
    Some(vec![ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }])
}

fn http_probe(path: &str, period: i32, failures: i32) -> Option<Probe> {
    Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    })
}

fn exec_probe(command: &[&str], period: i32, failures: i32) -> Option<Probe> {
    Some(Probe {
        exec: Some(ExecAction {
            command: Some(command.iter().map(|s| s.to_string()).collect()),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Probe::default()
    })
}

fn tcp_probe(period: i32, failures: i32) -> Option<Probe> {
    Some(Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("http".to_string()),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    })
}

/// Seconds a stopping API or page pod keeps serving before it is sent SIGTERM.
///
/// Deleting a pod removes it from the Service's endpoints and signals it at the same
/// moment; kube-proxy (and any ingress) stops sending it new connections only after it
/// has seen the endpoint change, so a pod that stopped at once refused them (seen on kind:
/// 6 of 718 requests failed during a TTL rollout, connection refused and 502). Meanwhile
/// it still answers. Kubernetes' own sleep action, not a `sleep` binary: the images have
/// no shell. Needs Kubernetes 1.30 (the chart's `kubeVersion`).
pub const DRAIN_SECONDS: i64 = 5;

fn drain_before_stop() -> Option<Lifecycle> {
    Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            sleep: Some(SleepAction {
                seconds: DRAIN_SECONDS,
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    })
}

/// Restricted-profile container security: non-root, no privilege escalation,
/// no capabilities, read-only root filesystem where the image allows it.
fn container_security(read_only_root: bool) -> Option<SecurityContext> {
    Some(SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(read_only_root),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    })
}

fn pod_security(uid: i64, gid: i64) -> Option<PodSecurityContext> {
    Some(PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(gid),
        fs_group: Some(gid),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    })
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn pvc_volume(name: &str, claim: String) -> Volume {
    Volume {
        name: name.to_string(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim,
            read_only: Some(false),
        }),
        ..Volume::default()
    }
}

fn config_map_volume(name: &str, config_map: String, key: &str, path: &str) -> Volume {
    Volume {
        name: name.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map,
            items: Some(vec![KeyToPath {
                key: key.to_string(),
                path: path.to_string(),
                ..KeyToPath::default()
            }]),
            optional: Some(false),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// The strategy, always explicit. With the RollingUpdate defaults spelled out, server-side
/// apply makes the operator own `rollingUpdate`, so switching to `Recreate` (Redis storage
/// on) drops it; left to the API server's defaulting, it stays and `Recreate` is refused
/// with 422 ("may not be specified when strategy `type` is 'Recreate'").
fn strategy(recreate: bool) -> DeploymentStrategy {
    if recreate {
        DeploymentStrategy {
            type_: Some("Recreate".to_string()),
            rolling_update: None,
        }
    } else {
        DeploymentStrategy {
            type_: Some("RollingUpdate".to_string()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::String("25%".to_string())),
                max_unavailable: Some(IntOrString::String("25%".to_string())),
            }),
        }
    }
}

/// What differs between the Deployments.
struct Workload {
    component: Component,
    /// `None` leaves `replicas` to someone else (the HorizontalPodAutoscaler).
    replicas: Option<i32>,
    recreate: bool,
    uid: i64,
    /// Primary group and fsGroup; the uid's own group unless the image needs another.
    gid: i64,
    annotations: BTreeMap<String, String>,
    container: Container,
    volumes: Vec<Volume>,
}

impl Stack<'_> {
    fn deployment(&self, w: Workload) -> Deployment {
        let name = self.child_name(w.component);
        let mut container = w.container;
        container.name = w.component.as_str().to_string();
        container.image_pull_policy = Some("IfNotPresent".to_string());
        Deployment {
            metadata: self.meta(name, w.component),
            spec: DeploymentSpec {
                replicas: w.replicas,
                revision_history_limit: Some(3),
                selector: LabelSelector {
                    match_labels: Some(self.selector_labels(w.component)),
                    ..LabelSelector::default()
                },
                strategy: Some(strategy(w.recreate)),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.labels(w.component)),
                        annotations: (!w.annotations.is_empty()).then_some(w.annotations),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        automount_service_account_token: Some(false),
                        enable_service_links: Some(false),
                        security_context: pod_security(w.uid, w.gid),
                        containers: vec![container],
                        volumes: (!w.volumes.is_empty()).then_some(w.volumes),
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }

    fn image(&self, image: &Option<String>, default: &str) -> Option<String> {
        Some(image.clone().unwrap_or_else(|| default.to_string()))
    }

    fn resources(&self, resources: &Option<ResourceRequirements>) -> Option<ResourceRequirements> {
        resources.clone()
    }
}
