//! The managed Redis and PostgreSQL.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;

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
