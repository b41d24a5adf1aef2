//! Pure builders of every child object of a `CacheMe`.
//!
//! [`Stack::desired`] computes the whole desired state from the spec: the
//! objects to apply, the Secrets to create once, and the objects of switched-off
//! components to delete. Nothing here does IO, so every object is unit-tested
//! and snapshotted.
//!
//! Over 400 lines because [`Stack::desired`] lists every child of every component in
//! one function, so what a CacheMe creates and deletes can be read top to bottom.

mod autoscaling;
mod child;
mod config;
mod gateway;
mod network;
mod workloads;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use sha2::{Digest, Sha256};

use kube::core::DynamicObject;

use crate::crd::{CacheMe, CloudNativePgSpec, Endpoints, ExternalSpec, RetainPolicy};
use crate::{Error, Result};

pub use child::{Absent, Child, ChildKind};
pub use config::SecretPlan;
pub use gateway::{GATEWAY_API_VERSION, HTTPROUTES, httproute_resource};
pub use workloads::{CNPG_API_VERSION, CNPG_CLUSTERS, CNPG_URI_KEY, cloudnativepg_resource};

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

/// Who runs PostgreSQL for a `CacheMe`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PostgresMode<'a> {
    /// The operator: Deployment, Service, claim and generated password.
    Managed,
    /// Someone else, reached by the URL in a Secret.
    External(&'a ExternalSpec),
    /// CloudNativePG, from the `Cluster` the operator applies.
    CloudNativePg(&'a CloudNativePgSpec),
}

/// Everything the operator wants in the namespace for one `CacheMe`.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The CloudNativePG `Cluster`, applied first (see [`CNPG_CLUSTERS`]).
    pub cloudnativepg: Option<DynamicObject>,
    /// The generated Secrets, created once (never applied: see `SecretPlan`).
    pub secrets: Vec<SecretPlan>,
    /// Every other child, in apply order (the order of [`ChildKind`], then the order
    /// `desired` lists them in).
    pub children: Vec<Child>,
    pub absent: Vec<Absent>,
}

/// Seed data as the builders see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedSource {
    /// No seed data: the API keeps the products of its migrations.
    None,
    /// Inline products, serialised to JSON for the operator's ConfigMap.
    Inline(String),
    /// A user ConfigMap key; `digest` is the hash of its current content.
    ConfigMap {
        name: String,
        key: String,
        digest: String,
    },
}

/// One `CacheMe` with what the builders need, checked once.
#[derive(Debug, Clone)]
pub struct Stack<'a> {
    pub cm: &'a CacheMe,
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub seed: SeedSource,
}

impl<'a> Stack<'a> {
    /// Checks that the CacheMe can own objects. For a seed ConfigMap reference,
    /// `referenced_seed` is the content of the referenced key, read by the caller.
    pub fn new(cm: &'a CacheMe, referenced_seed: Option<&str>) -> Result<Self> {
        let namespace = cm.namespace().ok_or(Error::MissingNamespace)?;
        let owner = cm.controller_owner_ref(&()).ok_or(Error::MissingOwner)?;
        let seed = match &cm.spec.seed_data {
            None => SeedSource::None,
            Some(seed) => match (&seed.products, &seed.config_map_ref) {
                (Some(products), _) => SeedSource::Inline(serde_json::to_string_pretty(products)?),
                (None, Some(r)) => SeedSource::ConfigMap {
                    name: r.name.clone(),
                    key: r
                        .key
                        .clone()
                        .unwrap_or_else(|| crate::crd::DEFAULT_SEED_KEY.to_string()),
                    digest: short_hash(referenced_seed.unwrap_or_default().as_bytes()),
                },
                (None, None) => SeedSource::None,
            },
        };
        Ok(Self {
            cm,
            name: cm.name_any(),
            namespace,
            owner,
            seed,
        })
    }

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

    /// Who runs PostgreSQL (the CRD's rules allow at most one of `external` and
    /// `cloudNativePG`).
    pub fn postgres_mode(&self) -> PostgresMode<'_> {
        let postgres = &self.cm.spec.postgres;
        match (&postgres.external, &postgres.cloud_native_pg) {
            (Some(external), _) => PostgresMode::External(external),
            (None, Some(cnpg)) => PostgresMode::CloudNativePg(cnpg),
            (None, None) => PostgresMode::Managed,
        }
    }

    /// Whether PostgreSQL is run by the operator itself.
    pub fn postgres_managed(&self) -> bool {
        self.postgres_mode() == PostgresMode::Managed
    }

    /// Whether Redis is run by the operator.
    pub fn redis_managed(&self) -> bool {
        self.cm.spec.redis.external.is_none()
    }

    /// The whole desired state.
    pub fn desired(&self) -> Result<Desired> {
        let spec = &self.cm.spec;
        let mut d = Desired::default();
        let absent = |kind, name| Absent { kind, name };

        // CloudNativePG's Cluster replaces the managed PostgreSQL (whose Deployment,
        // Service and NetworkPolicy are then absent below). Never deleted by the
        // operator: like the claim, it holds the data.
        d.cloudnativepg = self.cloudnativepg_cluster();

        // API, always on.
        d.push(self.api_deployment()?);
        d.push(self.api_service());
        match self.api_pdb() {
            Some(pdb) => d.push(pdb),
            None => d.absent.push(absent(
                ChildKind::PodDisruptionBudget,
                self.child_name(Component::Api),
            )),
        }
        match self.seed_config_map() {
            Some(cm) => d.push(cm),
            None => d
                .absent
                .push(absent(ChildKind::ConfigMap, self.seed_config_map_name())),
        }

        // The page.
        let frontend = self.child_name(Component::Frontend);
        if spec.frontend.enabled {
            d.push(self.frontend_deployment());
            d.push(self.frontend_service());
        } else {
            d.absent
                .push(absent(ChildKind::Deployment, frontend.clone()));
            d.absent.push(absent(ChildKind::Service, frontend));
        }

        // The admin token: writes and cache clears need it (the API refuses them
        // without). A referenced Secret is the user's; a generated one stays
        // (owned by the CacheMe) when a reference replaces it.
        if spec.api.admin_token_secret_ref.is_none() {
            d.secrets.push(self.secret_plan(Component::Api));
        }
        match self.api_network_policy() {
            Some(np) => d.push(np),
            None => d.absent.push(absent(
                ChildKind::NetworkPolicy,
                self.child_name(Component::Api),
            )),
        }

        // Stores.
        for (component, managed) in [
            (Component::Postgres, self.postgres_managed()),
            (Component::Redis, self.redis_managed()),
        ] {
            let name = self.child_name(component);
            if managed {
                d.secrets.push(self.secret_plan(component));
                if let Some(pvc) = self.pvc(component) {
                    d.push(pvc);
                }
                d.push(self.store_service(component));
                d.push(match component {
                    Component::Postgres => self.postgres_deployment(),
                    _ => self.redis_deployment(),
                });
                d.push(self.store_network_policy(component));
            } else {
                d.absent.push(absent(ChildKind::Deployment, name.clone()));
                d.absent.push(absent(ChildKind::Service, name.clone()));
                d.absent.push(absent(ChildKind::NetworkPolicy, name));
            }
        }

        // Admin tools.
        let pgadmin = self.child_name(Component::PgAdmin);
        if spec.pg_admin.enabled {
            d.secrets.push(self.secret_plan(Component::PgAdmin));
            d.push(self.pgadmin_config_map()?);
            d.push(self.tool_service(Component::PgAdmin));
            d.push(self.pgadmin_deployment());
        } else {
            d.absent
                .push(absent(ChildKind::Deployment, pgadmin.clone()));
            d.absent.push(absent(ChildKind::Service, pgadmin.clone()));
            d.absent.push(absent(ChildKind::ConfigMap, pgadmin));
        }
        let commander = self.child_name(Component::RedisCommander);
        if spec.redis_commander.enabled {
            d.push(self.tool_service(Component::RedisCommander));
            d.push(self.redis_commander_deployment());
        } else {
            d.absent
                .push(absent(ChildKind::Deployment, commander.clone()));
            d.absent.push(absent(ChildKind::Service, commander));
        }

        match self.ingress() {
            Some(ingress) => d.push(ingress),
            None => d.absent.push(absent(ChildKind::Ingress, self.name.clone())),
        }
        match self.httproute()? {
            Some(route) => d.push(Child::HttpRoute(route)),
            None => d
                .absent
                .push(absent(ChildKind::HttpRoute, self.name.clone())),
        }
        match self.api_hpa() {
            Some(hpa) => d.push(hpa),
            None => d.absent.push(absent(
                ChildKind::HorizontalPodAutoscaler,
                self.child_name(Component::Api),
            )),
        }
        // Apply order: by kind (stable, so within a kind as listed above).
        d.children.sort_by_key(Child::kind);
        Ok(d)
    }

    /// URLs of the stack, for the status.
    pub fn endpoints(&self) -> Endpoints {
        let spec = &self.cm.spec;
        let svc = |component: Component, port: i32| {
            format!(
                "http://{}.{}.svc:{port}/",
                self.child_name(component),
                self.namespace
            )
        };
        // The Ingress's host, else the route's first real host name (plain HTTP: TLS is
        // the Gateway's listeners' business, which the operator does not read).
        let host = spec
            .ingress
            .as_ref()
            .and_then(|i| i.host.as_deref().map(|h| (h, i.tls_secret_name.is_some())))
            .or_else(|| self.gateway_host().map(|h| (h, false)));
        let (page, api) = match host {
            Some((host, tls)) => {
                let scheme = if tls { "https" } else { "http" };
                (
                    Some(format!("{scheme}://{host}/")),
                    format!("{scheme}://{host}/products"),
                )
            }
            None => (
                spec.frontend.enabled.then(|| svc(Component::Frontend, 80)),
                svc(Component::Api, API_PORT),
            ),
        };
        Endpoints {
            page,
            api: Some(api),
            pg_admin: spec.pg_admin.enabled.then(|| svc(Component::PgAdmin, 80)),
            redis_commander: spec
                .redis_commander
                .enabled
                .then(|| svc(Component::RedisCommander, 80)),
        }
    }
}

/// First 16 hex digits of the SHA-256 of `bytes`.
pub fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Placeholder written instead of a password by [`Desired::manifests`].
pub const PASSWORD_PLACEHOLDER: &str = "generated-at-creation";

impl Desired {
    fn push(&mut self, child: impl Into<Child>) {
        self.children.push(child.into());
    }

    /// Every object as JSON, Secrets with a placeholder password: what
    /// `cacheme-operator render` prints and what the schema tests validate.
    pub fn manifests(&self) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        if let Some(cluster) = &self.cloudnativepg {
            out.push(serde_json::to_value(cluster)?);
        }
        // ConfigMaps, then the Secrets, then the rest: the order `render` always printed.
        let (config_maps, rest): (Vec<&Child>, Vec<&Child>) = self
            .children
            .iter()
            .partition(|c| c.kind() == ChildKind::ConfigMap);
        for child in config_maps {
            out.push(child.to_json()?);
        }
        for plan in &self.secrets {
            out.push(serde_json::to_value(
                plan.build(PASSWORD_PLACEHOLDER.into()),
            )?);
        }
        for child in rest {
            out.push(child.to_json()?);
        }
        Ok(out)
    }
}
