//! The `CacheMe` custom resource (`cachemes.cacheme.dev`, `v1alpha1`).
//!
//! The CRD YAML in `k8s/crd.yaml` (and the Helm chart's copy) is generated from
//! these types by [`crd_yaml`]; a test fails when the committed file drifts.
//!
//! The spec's top level is here; its components (the API, the page, the admin tools)
//! are in `crd/components.rs`, the stores (Redis, PostgreSQL) in `crd/stores.rs`, the
//! Gateway API route in `crd/gateway.rs`, the status in `crd/status.rs`. Each type's
//! doc comments are the CRD's descriptions.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod components;
pub mod fields;
mod gateway;
mod status;
mod stores;

pub use components::{
    ApiNetworkPolicy, ApiSpec, AutoscalingSpec, ContainerSpec, DEFAULT_API_CLIENT_NAMESPACES,
    DEFAULT_TOKEN_KEY, FrontendSpec, TokenSecretRef, ToolSpec,
};

pub use gateway::{GatewaySpec, ParentReference};
pub use status::{CacheMeStatus, Endpoints, Phase};
pub use stores::{
    CloudNativePgSpec, ExternalSpec, PostgresSpec, RedisExternalSpec, RedisMode, RedisSpec,
    RetainPolicy, SecretKeyRef, StorageSpec,
};

/// Default image of the product API.
pub const DEFAULT_API_IMAGE: &str = "localhost/cacheme/api:0.1.0";
/// Default image of the static page.
pub const DEFAULT_FRONTEND_IMAGE: &str = "localhost/cacheme/frontend:0.1.0";
/// Default image of the managed Redis.
pub const DEFAULT_REDIS_IMAGE: &str = "redis:7.4-alpine";
/// Default image of the managed PostgreSQL.
pub const DEFAULT_POSTGRES_IMAGE: &str = "postgres:17-alpine";
/// Default image of pgAdmin.
pub const DEFAULT_PGADMIN_IMAGE: &str = "dpage/pgadmin4:9.4";
/// Default image of Redis Commander.
pub const DEFAULT_REDIS_COMMANDER_IMAGE: &str = "ghcr.io/joeferner/redis-commander:0.9.0";
/// Default key of the URL inside an external database/Redis Secret.
pub const DEFAULT_URL_KEY: &str = "url";
/// Default key of the products inside a referenced seed ConfigMap.
pub const DEFAULT_SEED_KEY: &str = "products.json";

/// Desired state of a CacheMe stack: the product API with Redis in front of
/// PostgreSQL, its page, and optional admin tools.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cacheme.dev",
    version = "v1alpha1",
    kind = "CacheMe",
    plural = "cachemes",
    singular = "cacheme",
    // Not `cm`: that is ConfigMap's, and kubectl warns on every ambiguous `get cm`.
    shortname = "cme",
    category = "cacheme",
    namespaced,
    status = "CacheMeStatus",
    derive = "PartialEq",
    doc = "A CacheMe stack: product API, Redis cache, PostgreSQL, page and admin tools.",
    validation = Rule::new("size(self.metadata.name) <= 40").message("metadata.name must be at most 40 characters: child object names add a suffix"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter): it names the Services"),
    // `kubectl scale cacheme/<name> --replicas=N` (and an HPA that targets the CacheMe).
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    validation = Rule::new("!has(self.spec.autoscaling) || self.spec.autoscaling.minReplicas <= self.spec.autoscaling.maxReplicas").message("autoscaling.minReplicas must not exceed autoscaling.maxReplicas"),
    validation = Rule::new("!has(self.spec.autoscaling) || (has(self.spec.api) && has(self.spec.api.resources) && has(self.spec.api.resources.requests) && 'cpu' in self.spec.api.resources.requests)").message("autoscaling needs api.resources.requests.cpu: CPU utilization is measured against the request"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every enabled component is available"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Human-readable summary"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Ready API replicas"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired API replicas",
        priority = 1
    ),
    printcolumn(
        name = "TTL",
        type_ = "integer",
        json_path = ".spec.ttlSeconds",
        description = "Cache TTL of a product entry, in seconds"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CacheMeSpec {
    /// TTL of a cached product entry in seconds (the API adds jitter). A change rolls
    /// the API out.
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 1, max = 604800))]
    pub ttl_seconds: i32,

    /// Number of API replicas. A PodDisruptionBudget is created when > 1.
    /// `kubectl scale cacheme/<name> --replicas=N` sets it (the scale subresource).
    /// Ignored while `autoscaling` is set (the HorizontalPodAutoscaler decides).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 50))]
    pub replicas: i32,

    /// Let a HorizontalPodAutoscaler scale the API on CPU (needs
    /// `api.resources.requests.cpu` and a metrics server); the operator then leaves the
    /// API Deployment's `replicas` to it. Removing `autoscaling` deletes the
    /// HorizontalPodAutoscaler and gives `replicas` back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// Products the API applies at start, once per distinct seed (pods that start with a
    /// seed already applied keep edits made through the API): inline, or from a ConfigMap.
    /// A change, also of the referenced ConfigMap, rolls the API out and applies once.
    /// Without it the API keeps the products of its migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_data: Option<SeedData>,

    /// The product API.
    #[serde(default)]
    pub api: ApiSpec,

    /// The static page.
    #[serde(default)]
    pub frontend: FrontendSpec,

    /// Redis: managed by the operator (password-protected; an append-only file on a
    /// claim when `storage` is set) or external.
    #[serde(default)]
    pub redis: RedisSpec,

    /// PostgreSQL, managed by the operator, external, or run by CloudNativePG.
    #[serde(default)]
    pub postgres: PostgresSpec,

    /// pgAdmin, pre-configured with the managed PostgreSQL (off by default).
    #[serde(default)]
    pub pg_admin: ToolSpec,

    /// Redis Commander, pre-configured with the managed Redis (off by default).
    #[serde(default)]
    pub redis_commander: ToolSpec,

    /// An Ingress routing `/` to the page and the API paths (`/products`, `/cache`,
    /// `/health`, `/docs`, `/openapi.json`) to the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// A Gateway API HTTPRoute named like the CacheMe, beside the Ingress or instead of
    /// it: the API paths (`/products`, `/cache`, `/health`, `/docs`, `/openapi.json`) to
    /// the API, the rest to the page (to the API when the page is off), attached to the
    /// Gateways in `parentRefs`. Needs the Gateway API CRDs and a Gateway controller;
    /// without the CRDs the CacheMe is `Degraded` with reason `GatewayAPIMissing`.
    /// Removing `gateway` deletes the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,

    /// OpenTelemetry export of the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,
}

fn default_ttl() -> i32 {
    3600
}

fn default_replicas() -> i32 {
    1
}

fn default_true() -> bool {
    true
}

/// Seed products: exactly one of `products` and `configMapRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.products) != has(self.configMapRef)").message("seedData needs exactly one of products and configMapRef"))]
pub struct SeedData {
    /// Products inline; the operator writes them to a ConfigMap. Keyed by
    /// `id`: the API server refuses two products with one id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["id".into()]))]
    pub products: Option<Vec<Product>>,

    /// A ConfigMap key holding a JSON array of products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
}

/// A product as the API stores it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// Product id (primary key, a 32-bit integer in the API).
    #[schemars(range(min = 1, max = 2147483647))]
    pub id: i64,
    /// Name.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Description (the API's limit: 10 000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    pub description: Option<String>,
    /// Price, two decimals.
    #[schemars(range(min = 0.0, max = 99999999.99))]
    pub price: f64,
    /// Category (the API's limit: 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub category: Option<String>,
}

/// A key in a ConfigMap of the same namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// ConfigMap name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the JSON array (default `products.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Ingress settings.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name; all hosts when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    ))]
    pub host: Option<String>,
    /// IngressClass name; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Secret with the TLS certificate for `host`; plain HTTP when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
}

/// OpenTelemetry settings of the API.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySpec {
    /// OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`), e.g. `http://otel-collector:4318`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub otlp_endpoint: Option<String>,
    /// Share of requests traced, 0 to 1 (default 1), drawn per request: a caller's
    /// `traceparent` is continued but its sampled flag cannot force a trace.
    #[serde(default = "default_sampling_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sampling_ratio: f64,
}

fn default_sampling_ratio() -> f64 {
    1.0
}

impl Default for TelemetrySpec {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            sampling_ratio: default_sampling_ratio(),
        }
    }
}

/// The CustomResourceDefinition.
pub fn crd() -> CustomResourceDefinition {
    CacheMe::crd()
}

/// The CustomResourceDefinition as YAML, as committed in `k8s/crd.yaml`.
pub fn crd_yaml() -> Result<String, yaml_serde::Error> {
    let body = yaml_serde::to_string(&crd())?;
    Ok(format!(
        "# Generated by `cacheme-operator crd`; do not edit.\n---\n{body}"
    ))
}
