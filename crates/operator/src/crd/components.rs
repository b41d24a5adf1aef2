//! The components of a `CacheMe` (re-exported by [`crate::crd`]): the API with its
//! autoscaling and network policy, the page, the admin tools, and the container
//! settings they share.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::default_true;

/// The container settings every component shares, flattened into it so each
/// reads `image` and `resources` at the same place.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Container image; unset: the operator's default for the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Compute resources of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// The product API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.corsAllowedOrigins) || !('*' in self.corsAllowedOrigins) || size(self.corsAllowedOrigins) == 1").message("corsAllowedOrigins is either [\"*\"] or a list of origins, not both"))]
pub struct ApiSpec {
    /// Image and compute resources of the container.
    #[serde(flatten)]
    pub container: ContainerSpec,
    /// Extra delay on each database read, to show what the cache saves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub simulated_db_latency_ms: Option<i32>,
    /// The Secret key holding the bearer token that writes and cache clears
    /// need. Unset: the operator generates `<name>-api-credentials` (key
    /// `password`) once. There is no anonymous mode in Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_secret_ref: Option<TokenSecretRef>,
    /// Origins whose pages may call the API from a browser (CORS), e.g.
    /// `https://shop.example.com`, or `*` for any (no cookies are ever
    /// allowed, so `*` never meets credentials). Empty: same origin only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(regex(pattern = r"^(\*|https?://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?)$"))
    )]
    pub cors_allowed_origins: Vec<String>,
    /// Who may open a connection to the API's port 8000 (the NetworkPolicy `<name>-api`).
    #[serde(default)]
    pub network_policy: ApiNetworkPolicy,
}

/// A key in a Secret holding a token.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenSecretRef {
    /// Secret name (a DNS-1123 subdomain).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key holding the token (default `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: Option<String>,
}

/// The API's NetworkPolicy: the page's pods of the same CacheMe may always
/// connect (its web server proxies the API); everyone else only when listed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.allowedFrom) || self.allowedFrom.all(p, has(p.podSelector) || has(p.namespaceSelector) || has(p.ipBlock))").message("each allowedFrom peer needs podSelector, namespaceSelector or ipBlock (a podSelector alone means this namespace only)"))]
pub struct ApiNetworkPolicy {
    /// Create the NetworkPolicy (default true). Without it any pod in the
    /// cluster can reach the API.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Peers allowed besides the page: by default pods in the namespaces
    /// `traefik` (the Gateway and ingress controller of the kind guide),
    /// `ingress-nginx` (minikube's ingress addon) and `monitoring` (Prometheus).
    /// An empty list allows the page only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub allowed_from: Option<Vec<NetworkPolicyPeer>>,
}

impl Default for ApiNetworkPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_from: None,
        }
    }
}

/// Namespaces whose pods reach the API when `allowedFrom` is unset.
pub const DEFAULT_API_CLIENT_NAMESPACES: &[&str] = &["traefik", "ingress-nginx", "monitoring"];
/// Default key of the token inside a referenced admin token Secret.
pub const DEFAULT_TOKEN_KEY: &str = "token";

/// The static page.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FrontendSpec {
    /// Run the page (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Image and compute resources of the container.
    #[serde(flatten)]
    pub container: ContainerSpec,
}

impl Default for FrontendSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            container: ContainerSpec::default(),
        }
    }
}

/// An optional admin tool.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// Run the tool (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Image and compute resources of the container.
    #[serde(flatten)]
    pub container: ContainerSpec,
}

/// Bounds and target of the API's HorizontalPodAutoscaler.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Fewest API replicas (default 1).
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 50))]
    pub min_replicas: i32,
    /// Most API replicas.
    #[schemars(range(min = 1, max = 50))]
    pub max_replicas: i32,
    /// Average CPU use, in percent of the request, the autoscaler aims at (default 80).
    #[serde(
        default = "default_cpu_target",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_min_replicas() -> i32 {
    1
}

fn default_cpu_target() -> i32 {
    80
}
