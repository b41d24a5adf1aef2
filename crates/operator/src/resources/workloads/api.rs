//! The product API's Deployment and the page's.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use serde_json::json;

use super::stores::CNPG_URI_KEY;
use super::*;
use crate::Result;
use crate::crd::{DEFAULT_API_IMAGE, DEFAULT_FRONTEND_IMAGE, DEFAULT_TOKEN_KEY, RedisMode};
use crate::resources::{
    API_PORT, Component, FRONTEND_PORT, POSTGRES_DB, POSTGRES_PORT, PostgresMode, REDIS_PORT,
    SEED_FILE_NAME, SEED_MOUNT_DIR, SeedSource, Stack, short_hash,
};

impl Stack<'_> {
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
        match self.postgres_mode() {
            PostgresMode::External(external) => {
                env_vars.push(env_external("DATABASE_URL", &external.url_secret_ref));
            }
            // CloudNativePG's application Secret: its `uri` points at `<cluster>-rw`.
            PostgresMode::CloudNativePg(_) => env_vars.push(env_secret(
                "DATABASE_URL",
                &self.cloudnativepg_app_secret(),
                CNPG_URI_KEY,
            )),
            PostgresMode::Managed => {
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
            Some(external) => {
                env_vars.push(env_external("REDIS_URL", &external.url_secret_ref));
                // Single is the API's default: only a cluster is spelled out.
                if external.mode == RedisMode::Cluster {
                    env_vars.push(env("REDIS_MODE", external.mode.as_str()));
                }
                // A managed Redis serves one instance; an external one may serve several.
                env_vars.push(env(
                    "CACHE_KEY_PREFIX",
                    external
                        .key_prefix
                        .clone()
                        .unwrap_or_else(|| self.default_key_prefix()),
                ));
            }
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
        // Not parent-based: the API faces anonymous clients, and a trusted sampled flag
        // would let any of them force a trace (and flood the collector).
        env_vars.push(env("OTEL_TRACES_SAMPLER", "traceidratio"));
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
                lifecycle: drain_before_stop(),
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
                lifecycle: drain_before_stop(),
                security_context: container_security(true),
                volume_mounts: Some(vec![mount("tmp", "/tmp", false)]),
                ..Container::default()
            },
            volumes: vec![empty_dir("tmp")],
        })
    }
}
