//! Deployments of every component.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, HTTPGetAction, KeyToPath, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::{
    API_PORT, CONFIG_HASH_ANNOTATION, Component, FRONTEND_PORT, PGADMIN_PORT, POSTGRES_DB,
    POSTGRES_PORT, REDIS_COMMANDER_PORT, REDIS_PORT, SEED_FILE_NAME, SEED_MOUNT_DIR, SeedSource,
    Stack, short_hash,
};
use crate::Result;
use crate::crd::{
    DEFAULT_API_IMAGE, DEFAULT_FRONTEND_IMAGE, DEFAULT_PGADMIN_IMAGE, DEFAULT_POSTGRES_IMAGE,
    DEFAULT_REDIS_COMMANDER_IMAGE, DEFAULT_REDIS_IMAGE, DEFAULT_TOKEN_KEY, DEFAULT_URL_KEY,
    ExternalSpec,
};

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

fn env_external(name: &str, external: &ExternalSpec) -> EnvVar {
    let r = &external.url_secret_ref;
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

    /// Hash of everything that must roll the API out when it changes but is
    /// not (only) in the pod template: the seed data, and the settings.
    pub fn api_config_hash(&self) -> Result<String> {
        let spec = &self.cm.spec;
        let seed = match &self.seed {
            SeedSource::None => json!(null),
            SeedSource::Inline(products) => json!({ "inline": short_hash(products.as_bytes()) }),
            SeedSource::ConfigMap { name, key, digest } => {
                json!({ "configMap": name, "key": key, "digest": digest })
            }
        };
        let config = json!({
            "ttlSeconds": spec.ttl_seconds,
            "simulatedDbLatencyMs": spec.api.simulated_db_latency_ms,
            "telemetry": spec.telemetry,
            "postgres": spec.postgres.external,
            "redis": spec.redis.external,
            "seed": seed,
        });
        Ok(short_hash(serde_json::to_string(&config)?.as_bytes()))
    }

    /// The product API.
    pub fn api_deployment(&self) -> Result<Deployment> {
        let spec = &self.cm.spec;
        let mut env_vars = vec![
            env("BIND_ADDR", format!("0.0.0.0:{API_PORT}")),
            env("LOG_FORMAT", "json"),
            env("CACHE_TTL_SECONDS", spec.ttl_seconds.to_string()),
            env("DB_STARTUP_TIMEOUT_SECONDS", "300"),
            // Writes and cache clears need this bearer token; read it back with
            // `kubectl get secret <name>-api-credentials -o jsonpath='{.data.password}' | base64 -d`.
            match &spec.api.admin_token_secret_ref {
                Some(r) => env_secret(
                    "ADMIN_TOKEN",
                    &r.name,
                    r.key.as_deref().unwrap_or(DEFAULT_TOKEN_KEY),
                ),
                None => env_secret("ADMIN_TOKEN", &self.secret_name(Component::Api), "password"),
            },
        ];
        if !spec.api.cors_allowed_origins.is_empty() {
            env_vars.push(env(
                "CORS_ALLOWED_ORIGINS",
                spec.api.cors_allowed_origins.join(","),
            ));
        }
        if let Some(ms) = spec.api.simulated_db_latency_ms {
            env_vars.push(env("SIMULATED_DB_LATENCY_MS", ms.to_string()));
        }
        match &spec.postgres.external {
            Some(external) => env_vars.push(env_external("DATABASE_URL", external)),
            None => {
                let secret = self.secret_name(Component::Postgres);
                env_vars.push(env_secret("POSTGRES_USER", &secret, "username"));
                env_vars.push(env_secret("POSTGRES_PASSWORD", &secret, "password"));
                env_vars.push(env(
                    "DATABASE_URL",
                    format!(
                        "postgres://$(POSTGRES_USER):$(POSTGRES_PASSWORD)@{}:{POSTGRES_PORT}/{POSTGRES_DB}",
                        self.child_name(Component::Postgres)
                    ),
                ));
            }
        }
        match &spec.redis.external {
            Some(external) => env_vars.push(env_external("REDIS_URL", external)),
            None => {
                let secret = self.secret_name(Component::Redis);
                env_vars.push(env_secret("REDIS_PASSWORD", &secret, "password"));
                env_vars.push(env(
                    "REDIS_URL",
                    format!(
                        "redis://:$(REDIS_PASSWORD)@{}:{REDIS_PORT}",
                        self.child_name(Component::Redis)
                    ),
                ));
            }
        }
        let telemetry = spec.telemetry.clone().unwrap_or_default();
        env_vars.push(env("OTEL_SERVICE_NAME", API_SERVICE_NAME));
        if let Some(endpoint) = &telemetry.otlp_endpoint {
            env_vars.push(env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()));
        }
        env_vars.push(env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"));
        env_vars.push(env(
            "OTEL_TRACES_SAMPLER_ARG",
            telemetry.sampling_ratio.to_string(),
        ));

        let mut volumes = vec![empty_dir("tmp")];
        let mut mounts = vec![mount("tmp", "/tmp", false)];
        let seed_volume = match &self.seed {
            SeedSource::None => None,
            SeedSource::Inline(_) => Some(config_map_volume(
                "seed",
                self.seed_config_map_name(),
                SEED_FILE_NAME,
                SEED_FILE_NAME,
            )),
            SeedSource::ConfigMap { name, key, .. } => {
                Some(config_map_volume("seed", name.clone(), key, SEED_FILE_NAME))
            }
        };
        if let Some(volume) = seed_volume {
            volumes.push(volume);
            mounts.push(mount("seed", SEED_MOUNT_DIR, true));
            env_vars.push(env(
                "SEED_FILE",
                format!("{SEED_MOUNT_DIR}/{SEED_FILE_NAME}"),
            ));
        }

        let annotations = BTreeMap::from([
            (CONFIG_HASH_ANNOTATION.to_string(), self.api_config_hash()?),
            ("prometheus.io/scrape".to_string(), "true".to_string()),
            ("prometheus.io/port".to_string(), API_PORT.to_string()),
            ("prometheus.io/path".to_string(), "/metrics".to_string()),
        ]);
        Ok(self.deployment(Workload {
            component: Component::Api,
            // Not applied at all under an autoscaler, so server-side apply leaves the
            // field to it instead of fighting over it.
            replicas: spec.autoscaling.is_none().then_some(spec.replicas),
            recreate: false,
            uid: NON_ROOT_UID,
            gid: NON_ROOT_UID,
            annotations,
            container: Container {
                image: self.image(&spec.api.container.image, DEFAULT_API_IMAGE),
                ports: port("http", API_PORT),
                env: Some(env_vars),
                resources: self.resources(&spec.api.container.resources),
                // The API waits for PostgreSQL at start (DB_STARTUP_TIMEOUT_SECONDS,
                // raised below so a first install's image pull and initdb do not
                // crash-loop it); the startup probe holds liveness off meanwhile.
                startup_probe: http_probe("/livez", 5, 60),
                readiness_probe: http_probe("/readyz", 5, 3),
                liveness_probe: http_probe("/livez", 10, 6),
                security_context: container_security(true),
                volume_mounts: Some(mounts),
                ..Container::default()
            },
            volumes,
        }))
    }

    /// The static page (serves on 8080 as non-root).
    pub fn frontend_deployment(&self) -> Deployment {
        let spec = &self.cm.spec.frontend;
        self.deployment(Workload {
            component: Component::Frontend,
            replicas: Some(1),
            recreate: false,
            uid: NON_ROOT_UID,
            gid: NON_ROOT_UID,
            annotations: BTreeMap::new(),
            container: Container {
                image: self.image(&spec.container.image, DEFAULT_FRONTEND_IMAGE),
                // The page's web server proxies the API paths here, so a port-forwarded
                // page works without an Ingress.
                env: Some(vec![env(
                    "CACHEME_API_URL",
                    format!("http://{}:{API_PORT}", self.child_name(Component::Api)),
                )]),
                ports: port("http", FRONTEND_PORT),
                resources: self.resources(&spec.container.resources),
                readiness_probe: http_probe("/", 5, 3),
                liveness_probe: http_probe("/", 10, 6),
                security_context: container_security(true),
                volume_mounts: Some(vec![mount("tmp", "/tmp", false)]),
                ..Container::default()
            },
            volumes: vec![empty_dir("tmp")],
        })
    }

    /// The managed Redis, password-protected, optionally persistent.
    pub fn redis_deployment(&self) -> Deployment {
        let spec = &self.cm.spec.redis;
        let persistent = spec.storage.is_some();
        let secret = self.secret_name(Component::Redis);
        let data = if persistent {
            pvc_volume("data", self.pvc_name(Component::Redis))
        } else {
            empty_dir("data")
        };
        self.deployment(Workload {
            component: Component::Redis,
            replicas: Some(1),
            recreate: persistent,
            uid: 999,
            gid: 999,
            annotations: BTreeMap::new(),
            container: Container {
                image: self.image(&spec.container.image, DEFAULT_REDIS_IMAGE),
                command: Some(vec!["redis-server".to_string()]),
                args: Some(
                    [
                        "--requirepass",
                        "$(REDIS_PASSWORD)",
                        "--dir",
                        "/data",
                        "--appendonly",
                        if persistent { "yes" } else { "no" },
                        "--save",
                        "",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                ),
                env: Some(vec![
                    env_secret("REDIS_PASSWORD", &secret, "password"),
                    // Read by redis-cli in the probes, so no password in the spec.
                    env_secret("REDISCLI_AUTH", &secret, "password"),
                ]),
                ports: port("redis", REDIS_PORT),
                resources: self.resources(&spec.container.resources),
                readiness_probe: exec_probe(&["redis-cli", "ping"], 5, 3),
                liveness_probe: exec_probe(&["redis-cli", "ping"], 10, 6),
                security_context: container_security(true),
                volume_mounts: Some(vec![mount("data", "/data", false)]),
                ..Container::default()
            },
            volumes: vec![data],
        })
    }

    /// The managed PostgreSQL: one replica, data on a claim, Recreate strategy.
    pub fn postgres_deployment(&self) -> Deployment {
        let spec = &self.cm.spec.postgres;
        let secret = self.secret_name(Component::Postgres);
        let ready = [
            "pg_isready",
            "-h",
            "127.0.0.1",
            "-U",
            POSTGRES_DB,
            "-d",
            POSTGRES_DB,
        ];
        self.deployment(Workload {
            component: Component::Postgres,
            replicas: Some(1),
            recreate: true,
            // The postgres user of the Alpine images.
            uid: 70,
            gid: 70,
            annotations: BTreeMap::new(),
            container: Container {
                image: self.image(&spec.container.image, DEFAULT_POSTGRES_IMAGE),
                env: Some(vec![
                    env_secret("POSTGRES_USER", &secret, "username"),
                    env_secret("POSTGRES_PASSWORD", &secret, "password"),
                    env("POSTGRES_DB", POSTGRES_DB),
                    env("PGDATA", "/var/lib/postgresql/data/pgdata"),
                ]),
                ports: port("postgres", POSTGRES_PORT),
                resources: self.resources(&spec.container.resources),
                // The first boot runs initdb with a server on no TCP socket: the startup
                // probe gives it five minutes before liveness may restart it.
                startup_probe: exec_probe(&ready, 5, 60),
                readiness_probe: exec_probe(&ready, 5, 3),
                liveness_probe: exec_probe(&ready, 10, 6),
                security_context: container_security(true),
                volume_mounts: Some(vec![
                    mount("data", "/var/lib/postgresql/data", false),
                    mount("run", "/var/run/postgresql", false),
                    mount("tmp", "/tmp", false),
                ]),
                ..Container::default()
            },
            volumes: vec![
                pvc_volume("data", self.pvc_name(Component::Postgres)),
                empty_dir("run"),
                empty_dir("tmp"),
            ],
        })
    }

    /// pgAdmin with the managed PostgreSQL pre-registered.
    pub fn pgadmin_deployment(&self) -> Deployment {
        let spec = &self.cm.spec.pg_admin;
        let secret = self.secret_name(Component::PgAdmin);
        self.deployment(Workload {
            component: Component::PgAdmin,
            replicas: Some(1),
            recreate: false,
            // The pgadmin user of the official image.
            uid: 5050,
            gid: 5050,
            annotations: BTreeMap::new(),
            container: Container {
                image: self.image(&spec.container.image, DEFAULT_PGADMIN_IMAGE),
                env: Some(vec![
                    env_secret("PGADMIN_DEFAULT_EMAIL", &secret, "username"),
                    env_secret("PGADMIN_DEFAULT_PASSWORD", &secret, "password"),
                    env("PGADMIN_LISTEN_PORT", PGADMIN_PORT.to_string()),
                    env("PGADMIN_SERVER_JSON_FILE", "/pgadmin4/config/servers.json"),
                    env("PGADMIN_CONFIG_UPGRADE_CHECK_ENABLED", "False"),
                    // No mail server in the pod (and no root to start one).
                    env("PGADMIN_DISABLE_POSTFIX", "true"),
                ]),
                ports: port("http", PGADMIN_PORT),
                resources: self.resources(&spec.container.resources),
                readiness_probe: http_probe("/misc/ping", 10, 3),
                liveness_probe: http_probe("/misc/ping", 20, 6),
                // pgAdmin writes below its install directory at start. Its python has
                // the file capability NET_BIND_SERVICE: with every capability dropped
                // the kernel refuses to exec it ("Operation not permitted"), so that
                // one is kept (the restricted profile allows it).
                security_context: container_security(false).map(|mut security| {
                    security.capabilities = Some(Capabilities {
                        drop: Some(vec!["ALL".to_string()]),
                        add: Some(vec!["NET_BIND_SERVICE".to_string()]),
                    });
                    security
                }),
                volume_mounts: Some(vec![
                    mount("data", "/var/lib/pgadmin", false),
                    mount("servers", "/pgadmin4/config", true),
                ]),
                ..Container::default()
            },
            volumes: vec![
                empty_dir("data"),
                config_map_volume(
                    "servers",
                    self.child_name(Component::PgAdmin),
                    "servers.json",
                    "servers.json",
                ),
            ],
        })
    }

    /// Redis Commander on the managed Redis.
    pub fn redis_commander_deployment(&self) -> Deployment {
        let spec = &self.cm.spec.redis_commander;
        let mut env_vars = vec![env("PORT", REDIS_COMMANDER_PORT.to_string())];
        if self.redis_managed() {
            env_vars.push(env("REDIS_HOST", self.child_name(Component::Redis)));
            env_vars.push(env("REDIS_PORT", REDIS_PORT.to_string()));
            env_vars.push(env_secret(
                "REDIS_PASSWORD",
                &self.secret_name(Component::Redis),
                "password",
            ));
        }
        self.deployment(Workload {
            component: Component::RedisCommander,
            replicas: Some(1),
            recreate: false,
            // The image's user (10000) with group root: its config files are
            // `ug+r,o-rwx`, owned by 10000:0, so any other uid/gid gets EACCES.
            uid: 10000,
            gid: 0,
            annotations: BTreeMap::new(),
            container: Container {
                image: self.image(&spec.container.image, DEFAULT_REDIS_COMMANDER_IMAGE),
                env: Some(env_vars),
                ports: port("http", REDIS_COMMANDER_PORT),
                resources: self.resources(&spec.container.resources),
                readiness_probe: tcp_probe(10, 3),
                liveness_probe: tcp_probe(20, 6),
                // Redis Commander writes its config file at start.
                security_context: container_security(false),
                ..Container::default()
            },
            volumes: Vec::new(),
        })
    }
}
