//! What every child is called and labelled: the constants of the contract, the
//! components, and the names, labels and metadata a `Stack` gives its children.

use super::*;

/// `app.kubernetes.io/name` of every child.
pub const APP_NAME: &str = "cacheme";
/// Pod-template annotation holding the hash of the API's configuration and seed data.
pub const CONFIG_HASH_ANNOTATION: &str = "cacheme.dev/config-hash";
/// Label selecting the objects managed by this operator.
pub const MANAGED_BY: &str = "cacheme-operator";
/// Port of the API container.
pub const API_PORT: i32 = 8000;
/// Port of the page container.
pub const FRONTEND_PORT: i32 = 8080;
/// Port of Redis.
pub const REDIS_PORT: i32 = 6379;
/// Port of PostgreSQL.
pub const POSTGRES_PORT: i32 = 5432;
/// Port of pgAdmin (non-root, so not 80).
pub const PGADMIN_PORT: i32 = 5050;
/// Port of Redis Commander.
pub const REDIS_COMMANDER_PORT: i32 = 8081;
/// Database name and user of the managed PostgreSQL.
pub const POSTGRES_DB: &str = "cacheme";
/// Where the seed products are mounted in the API container.
pub const SEED_MOUNT_DIR: &str = "/etc/cacheme/seed";
/// File name of the seed products in the API container.
pub const SEED_FILE_NAME: &str = "products.json";

/// A component of the stack; each has its own deterministic object names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Api,
    Frontend,
    Redis,
    Postgres,
    PgAdmin,
    RedisCommander,
}

impl Component {
    /// Value of `app.kubernetes.io/component` and suffix of object names.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Api => "api",
            Component::Frontend => "frontend",
            Component::Redis => "redis",
            Component::Postgres => "postgres",
            Component::PgAdmin => "pgadmin",
            Component::RedisCommander => "redis-commander",
        }
    }
}

impl Stack<'_> {
    /// The API's key prefix in an external Redis: `cacheme.<namespace>.<name>`, unique
    /// per instance (namespaces hold no dot, so the first dot after `cacheme.` ends the
    /// namespace); `cacheme.<hash>` when that is over the API's 64 characters.
    pub fn default_key_prefix(&self) -> String {
        let readable = format!("cacheme.{}.{}", self.namespace, self.name);
        if readable.len() <= 64 {
            readable
        } else {
            format!(
                "cacheme.{}",
                short_hash(format!("{}/{}", self.namespace, self.name).as_bytes())
            )
        }
    }

    /// Name of a component's objects: `<cacheme>-<component>`.
    pub fn child_name(&self, component: Component) -> String {
        format!("{}-{}", self.name, component.as_str())
    }

    /// Name of the operator's seed ConfigMap.
    pub fn seed_config_map_name(&self) -> String {
        format!("{}-seed", self.name)
    }

    /// Name of a generated Secret.
    pub fn secret_name(&self, component: Component) -> String {
        format!("{}-{}-credentials", self.name, component.as_str())
    }

    /// Name of a component's data volume claim.
    pub fn pvc_name(&self, component: Component) -> String {
        format!("{}-{}-data", self.name, component.as_str())
    }

    /// Labels of every child of a component.
    pub fn labels(&self, component: Component) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels(component);
        labels.insert(
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        );
        labels.insert(
            "app.kubernetes.io/part-of".to_string(),
            APP_NAME.to_string(),
        );
        labels
    }

    /// Labels selecting a component's pods.
    pub fn selector_labels(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
            ("app.kubernetes.io/instance".to_string(), self.name.clone()),
            (
                "app.kubernetes.io/component".to_string(),
                component.as_str().to_string(),
            ),
        ])
    }

    /// Metadata of a child: name, namespace, labels, owner reference.
    pub fn meta(&self, name: String, component: Component) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// Metadata of a child that outlives the CacheMe under `RetainPolicy::Retain`:
    /// no owner reference, so garbage collection leaves it; the labels stay, so a
    /// CacheMe of the same name applies to it again.
    pub fn retained_meta(&self, name: String, component: Component) -> ObjectMeta {
        let mut meta = self.meta(name, component);
        if self.cm.spec.postgres.retain_policy == RetainPolicy::Retain {
            meta.owner_references = None;
        }
        meta
    }
}
