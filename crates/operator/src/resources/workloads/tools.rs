//! The admin tools: pgAdmin and Redis Commander.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Capabilities, Container};

use super::*;
use crate::crd::{DEFAULT_PGADMIN_IMAGE, DEFAULT_REDIS_COMMANDER_IMAGE};
use crate::resources::{Component, PGADMIN_PORT, REDIS_COMMANDER_PORT, REDIS_PORT, Stack};

impl Stack<'_> {
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
