//! The stores of a `CacheMe`: Redis and PostgreSQL, each managed by the operator or
//! external; PostgreSQL also run by CloudNativePG. Re-exported by [`crate::crd`].

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ContainerSpec;

/// A key in a Secret of the same namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the URL (default `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// An external service, reached by a URL kept in a Secret.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSpec {
    /// The Secret key holding the connection URL.
    pub url_secret_ref: SecretKeyRef,
}

/// An external Redis: one server, or a Redis Cluster reached through seed nodes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisExternalSpec {
    /// The Secret key holding the connection URL; in `cluster` mode a comma-separated
    /// list of seed node URLs (`redis://:pw@node-0:6379,redis://:pw@node-1:6379`).
    pub url_secret_ref: SecretKeyRef,
    /// `single` (default): one Redis server (or a proxy in front of several);
    /// `cluster`: a Redis Cluster, the API follows its slot map (`REDIS_MODE=cluster`).
    // Left out when `single`, so the API's configuration hash of an external Redis
    // is what it was before this field existed (no rollout on an operator upgrade).
    #[serde(default, skip_serializing_if = "RedisMode::is_single")]
    #[schemars(extend("default" = "single"))]
    pub mode: RedisMode,
    /// What every key and channel of this instance starts with (the API's
    /// `CACHE_KEY_PREFIX`). Default `cacheme.<namespace>.<name>` (a hash when longer than
    /// 64 characters), so two CacheMe resources on one Redis never read, invalidate or
    /// clear each other's entries. Two instances given the same prefix share them.
    /// Upgrading from an operator without this field moves an external instance's keys
    /// once: during that rollout, old pods may serve an entry the new pods invalidated,
    /// until they stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub key_prefix: Option<String>,
}

/// How the API talks to an external Redis.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One server.
    #[default]
    Single,
    /// A Redis Cluster: the URL is a comma-separated list of seed nodes.
    Cluster,
}

impl RedisMode {
    /// Whether this is the default, one server.
    pub fn is_single(&self) -> bool {
        *self == RedisMode::Single
    }

    /// The value of the API's `REDIS_MODE`.
    pub fn as_str(self) -> &'static str {
        match self {
            RedisMode::Single => "single",
            RedisMode::Cluster => "cluster",
        }
    }
}

/// Persistent storage of a managed store.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, e.g. `1Gi`.
    #[serde(default = "default_storage_size")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub size: String,
    /// StorageClass; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

fn default_storage_size() -> String {
    "1Gi".to_string()
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

/// Redis: managed (password-protected; image, resources, optional persistence) or
/// external.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.external) || (!has(self.image) && !has(self.resources) && !has(self.storage))").message("redis is either external or managed: drop image, resources and storage when external is set"))]
pub struct RedisSpec {
    /// Image and compute resources of the container.
    #[serde(flatten)]
    pub container: ContainerSpec,
    /// Persistence (append-only file on a PersistentVolumeClaim); in-memory only when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Use an external Redis (one server or a Redis Cluster) instead of a managed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<RedisExternalSpec>,
}

/// PostgreSQL: managed (image, resources, storage), external, or a CloudNativePG cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.external) || (!has(self.image) && !has(self.resources) && !has(self.storage))").message("postgres is either external or managed: drop image, resources and storage when external is set"))]
#[x_kube(validation = Rule::new("!has(self.cloudNativePG) || !has(self.external)").message("postgres.cloudNativePG and postgres.external exclude each other: CloudNativePG runs the database in this cluster, external names one elsewhere"))]
#[x_kube(validation = Rule::new("!has(self.cloudNativePG) || (!has(self.image) && !has(self.resources) && !has(self.storage))").message("postgres.cloudNativePG replaces the managed PostgreSQL: drop image, resources and storage (use cloudNativePG.imageName and cloudNativePG.storage)"))]
pub struct PostgresSpec {
    /// Image and compute resources of the container.
    #[serde(flatten)]
    pub container: ContainerSpec,
    /// The data volume (default 1Gi on the default StorageClass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Use an external PostgreSQL instead of a managed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalSpec>,
    /// Let CloudNativePG run PostgreSQL: the operator applies a
    /// `postgresql.cnpg.io/v1` Cluster `<name>-postgres` instead of its own
    /// Deployment, and the API reads `DATABASE_URL` from the Secret
    /// `<name>-postgres-app` (key `uri`) CloudNativePG generates; database and owner
    /// `cacheme`. CloudNativePG itself (its CRDs and operator) must be installed first.
    #[serde(
        default,
        rename = "cloudNativePG",
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_native_pg: Option<CloudNativePgSpec>,
    /// What happens to the data claim `<name>-postgres-data` and its password
    /// `<name>-postgres-credentials` (or, with `cloudNativePG`, the Cluster
    /// `<name>-postgres`) when the CacheMe is deleted (also by `helm uninstall`):
    /// `Retain` (default) keeps them, so a CacheMe of the same name finds its
    /// products again; `Delete` lets garbage collection remove them. Fixed at creation.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("postgres.retainPolicy cannot change after creation (a manifest that leaves it out means Retain): the credentials Secret's ownership is decided when it is created"))]
    pub retain_policy: RetainPolicy,
}

/// A CloudNativePG `Cluster` run for the CacheMe.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudNativePgSpec {
    /// PostgreSQL instances: one primary, the rest streaming replicas (default 1).
    #[serde(default = "default_cnpg_instances")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: i32,
    /// Volume of each instance (default 1Gi on the default StorageClass).
    #[serde(default)]
    pub storage: StorageSpec,
    /// PostgreSQL operand image; CloudNativePG's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image_name: Option<String>,
}

fn default_cnpg_instances() -> i32 {
    1
}

impl Default for CloudNativePgSpec {
    fn default() -> Self {
        Self {
            instances: default_cnpg_instances(),
            storage: StorageSpec::default(),
            image_name: None,
        }
    }
}

/// Fate of a managed store's data when its CacheMe goes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RetainPolicy {
    /// Kept: no owner reference, so garbage collection leaves it.
    #[default]
    Retain,
    /// Owned by the CacheMe and deleted with it.
    Delete,
}
