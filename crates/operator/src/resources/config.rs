//! ConfigMaps, generated Secrets and volume claims.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::json;

use super::{
    Component, POSTGRES_DB, POSTGRES_PORT, PostgresMode, SEED_FILE_NAME, SeedSource, Stack,
};
use crate::Result;
use crate::crd::StorageSpec;

/// Login e-mail of pgAdmin (the password is generated).
pub const PGADMIN_EMAIL: &str = "admin@cacheme.dev";
/// Secret type of the generated credentials.
pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";

/// A Secret the operator creates once with generated values and never
/// overwrites. The plan holds only names and fixed values; the random
/// passwords are drawn in [`SecretPlan::build`], at creation time.
#[derive(Clone, PartialEq)]
pub struct SecretPlan {
    pub name: String,
    pub component: Component,
    /// `username` of the basic-auth Secret.
    pub username: String,
    meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
}

impl std::fmt::Debug for SecretPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretPlan")
            .field("name", &self.name)
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

impl SecretPlan {
    /// The Secret with a password from `password` (a CSPRNG in the operator,
    /// a fixed string in tests). Never log the result.
    pub fn build(&self, password: cacheme_runtime::Secret) -> Secret {
        Secret {
            metadata: self.meta.clone(),
            type_: Some(BASIC_AUTH.to_string()),
            data: Some(BTreeMap::from([
                (
                    "username".to_string(),
                    ByteString(self.username.clone().into_bytes()),
                ),
                (
                    "password".to_string(),
                    ByteString(password.into_exposed().into_bytes()),
                ),
            ])),
            immutable: Some(true),
            ..Secret::default()
        }
    }
}

impl Stack<'_> {
    /// The generated credentials of a component.
    pub fn secret_plan(&self, component: Component) -> SecretPlan {
        let name = self.secret_name(component);
        let username = match component {
            Component::PgAdmin => PGADMIN_EMAIL.to_string(),
            Component::Redis => "default".to_string(),
            // The password is the API's bearer token for writes.
            Component::Api => "admin".to_string(),
            _ => POSTGRES_DB.to_string(),
        };
        // PostgreSQL's password must live as long as its data directory.
        let meta = match component {
            Component::Postgres => self.retained_meta(name.clone(), component),
            _ => self.meta(name.clone(), component),
        };
        SecretPlan {
            meta,
            name,
            component,
            username,
        }
    }

    /// The ConfigMap with the inline seed products, if any.
    pub fn seed_config_map(&self) -> Option<ConfigMap> {
        let SeedSource::Inline(products) = &self.seed else {
            return None;
        };
        Some(ConfigMap {
            metadata: self.meta(self.seed_config_map_name(), Component::Api),
            data: Some(BTreeMap::from([(
                SEED_FILE_NAME.to_string(),
                products.clone(),
            )])),
            ..ConfigMap::default()
        })
    }

    /// pgAdmin's pre-configured server entry (the managed PostgreSQL).
    pub fn pgadmin_config_map(&self) -> Result<ConfigMap> {
        // The managed PostgreSQL's Service, or CloudNativePG's read-write one.
        let host = match self.postgres_mode() {
            PostgresMode::Managed => Some(self.child_name(Component::Postgres)),
            PostgresMode::CloudNativePg(_) => {
                Some(format!("{}-rw", self.child_name(Component::Postgres)))
            }
            PostgresMode::External(_) => None,
        };
        let servers = match host {
            Some(host) => json!({
                "Servers": {
                    "1": {
                        "Name": format!("CacheMe {}", self.name),
                        "Group": "CacheMe",
                        "Host": host,
                        "Port": POSTGRES_PORT,
                        "MaintenanceDB": POSTGRES_DB,
                        "Username": POSTGRES_DB,
                        "SSLMode": "prefer",
                    }
                }
            }),
            None => json!({ "Servers": {} }),
        };
        Ok(ConfigMap {
            metadata: self.meta(self.child_name(Component::PgAdmin), Component::PgAdmin),
            data: Some(BTreeMap::from([(
                "servers.json".to_string(),
                serde_json::to_string_pretty(&servers)?,
            )])),
            ..ConfigMap::default()
        })
    }

    /// The data volume claim of a managed store: always for PostgreSQL, for
    /// Redis only when persistence is asked for.
    pub fn pvc(&self, component: Component) -> Option<PersistentVolumeClaim> {
        let storage = match component {
            Component::Postgres => Some(self.cm.spec.postgres.storage.clone().unwrap_or_default()),
            Component::Redis => self.cm.spec.redis.storage.clone(),
            _ => None,
        }?;
        let StorageSpec {
            size,
            storage_class_name,
        } = storage;
        let metadata = match component {
            Component::Postgres => self.retained_meta(self.pvc_name(component), component),
            _ => self.meta(self.pvc_name(component), component),
        };
        Some(PersistentVolumeClaim {
            metadata,
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                storage_class_name,
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        })
    }
}
