//! The managed Redis and PostgreSQL, and the CloudNativePG `Cluster` that replaces the
//! latter when `postgres.cloudNativePG` is set.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use kube::core::{ApiResource, DynamicObject};
use serde_json::json;

use super::*;
use crate::crd::{DEFAULT_POSTGRES_IMAGE, DEFAULT_REDIS_IMAGE};
use crate::resources::{Component, POSTGRES_DB, POSTGRES_PORT, REDIS_PORT, Stack};

impl Stack<'_> {
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
}

/// API group and version of CloudNativePG's `Cluster`.
pub const CNPG_API_VERSION: &str = "postgresql.cnpg.io/v1";
/// The resource whose absence means CloudNativePG is not installed.
pub const CNPG_CLUSTERS: &str = "clusters.postgresql.cnpg.io";
/// Key of the connection URI in CloudNativePG's application Secret `<cluster>-app`.
pub const CNPG_URI_KEY: &str = "uri";

/// CloudNativePG's `Cluster` kind, for the dynamic API (no Rust type: CloudNativePG is
/// optional, and only the fields below are ever written or read).
pub fn cloudnativepg_resource() -> ApiResource {
    ApiResource {
        group: "postgresql.cnpg.io".to_string(),
        version: "v1".to_string(),
        api_version: CNPG_API_VERSION.to_string(),
        kind: "Cluster".to_string(),
        plural: "clusters".to_string(),
    }
}

impl Stack<'_> {
    /// Name of CloudNativePG's application Secret (`<cluster>-app`; keys `username`,
    /// `password`, `host`, `dbname`, `uri`, ...), generated by CloudNativePG.
    pub fn cloudnativepg_app_secret(&self) -> String {
        format!("{}-app", self.child_name(Component::Postgres))
    }

    /// The CloudNativePG `Cluster` `<name>-postgres`, when `postgres.cloudNativePG` is set:
    /// the database and owner the managed PostgreSQL has (`cacheme`), so the API's
    /// migrations run the same. Owned by the CacheMe only under `retainPolicy: Delete`.
    pub fn cloudnativepg_cluster(&self) -> Option<DynamicObject> {
        let spec = self.cm.spec.postgres.cloud_native_pg.as_ref()?;
        let mut storage = json!({ "size": spec.storage.size });
        if let Some(class) = &spec.storage.storage_class_name {
            storage["storageClass"] = json!(class);
        }
        let mut cluster = json!({
            "instances": spec.instances,
            "storage": storage,
            "bootstrap": {"initdb": {"database": POSTGRES_DB, "owner": POSTGRES_DB}},
        });
        if let Some(image) = &spec.image_name {
            cluster["imageName"] = json!(image);
        }
        let name = self.child_name(Component::Postgres);
        let mut object =
            DynamicObject::new(&name, &cloudnativepg_resource()).data(json!({ "spec": cluster }));
        object.metadata = self.retained_meta(name, Component::Postgres);
        Some(object)
    }
}
