//! CacheMe operator: turns one `CacheMe` resource into the whole stack.
//!
//! - [`crd`]: the custom resource types and the generated CRD.
//! - [`resources`]: pure builders of every child object.
//! - [`secrets`]: generated credentials.
//! - [`status`]: pure computation of the status (conditions, phase, endpoints, why a
//!   rollout is stuck).
//! - [`controller`]: the reconcile loop (server-side apply, events, backoff) and its
//!   wiring (what is watched).
//! - [`apply`]: server-side apply and deletion under the one field manager.
//! - [`metrics`], [`server`], [`run`]: running it (`cacheme-operator run`: the HTTP
//!   server, leader election, the controller, shutdown); [`render`] and [`validate`]:
//!   offline rendering, and the CRD's schema and CEL rules checked as the API server
//!   does (`cacheme-operator validate`, for users' own CacheMe files as for the tests).

pub mod apply;
pub mod controller;
pub mod crd;
#[cfg(test)]
mod fixtures;
pub mod metrics;
pub mod render;
pub mod resources;
pub mod run;
pub mod secrets;
pub mod server;
pub mod status;
pub mod validate;

/// The single field manager of every server-side apply made by the operator.
pub const FIELD_MANAGER: &str = "cacheme-operator";

/// Everything that can fail in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CacheMe has no namespace (it is a namespaced resource).
    #[error("the CacheMe has no namespace")]
    MissingNamespace,

    /// The CacheMe has no uid yet, so no owner reference can point to it.
    #[error("the CacheMe has no uid or name yet")]
    MissingOwner,

    /// Server-side apply of a child object failed.
    #[error("cannot apply {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },

    /// `postgres.cloudNativePG` is set, but the API server has no CloudNativePG
    /// `Cluster` kind (applying one answered 404): CloudNativePG is not installed.
    #[error(
        "postgres.cloudNativePG needs CloudNativePG, but the API server has no {}: install CloudNativePG first (its CRDs and operator: kubectl apply --server-side -f <its release manifest>, see https://cloudnative-pg.io/documentation/current/installation_upgrade/)",
        crate::resources::CNPG_CLUSTERS
    )]
    CloudNativePgMissing,

    /// `gateway` is set, but the API server has no Gateway API `HTTPRoute` kind
    /// (applying one answered 404): the Gateway API CRDs are not installed.
    #[error(
        "gateway needs the Gateway API, but the API server has no {}: install its CRDs (kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.4.0/standard-install.yaml) and a Gateway controller, or remove spec.gateway",
        crate::resources::HTTPROUTES
    )]
    GatewayApiMissing,

    /// Deleting the child object of a switched-off component failed.
    #[error("cannot delete {kind} {name}: {source}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },

    /// Reading or creating a generated Secret failed.
    #[error("cannot ensure Secret {name}: {source}")]
    Secret {
        name: String,
        #[source]
        source: Box<kube::Error>,
    },

    /// The referenced seed ConfigMap is missing or unusable.
    #[error("seed ConfigMap {name}: {reason}")]
    Seed { name: String, reason: String },

    /// Writing the status failed.
    #[error("cannot update the status: {0}")]
    Status(#[source] Box<kube::Error>),

    /// Any other Kubernetes API failure.
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] Box<kube::Error>),

    /// The operating system's random generator failed.
    #[error("cannot generate a password: {0}")]
    Random(String),

    /// Serialisation of a built object failed.
    #[error("cannot serialise: {0}")]
    Serialize(#[from] serde_json::Error),

    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(String),

    /// Several children could not be applied or deleted; every other child was.
    #[error("{}", join_errors(.0))]
    Children(Vec<Error>),

    /// A CacheMe file could not be rendered.
    #[error("render: {0}")]
    Render(String),

    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The failure's two names, in one table: the label of the failure metrics (low
    /// cardinality, snake_case) and the reason of the `Degraded` condition and of the
    /// Warning event (CamelCase).
    fn names(&self) -> (&'static str, &'static str) {
        match self {
            Error::MissingNamespace => ("missing_namespace", "MissingNamespace"),
            Error::MissingOwner => ("missing_owner", "MissingOwner"),
            Error::Apply { .. } => ("apply", "ApplyFailed"),
            Error::CloudNativePgMissing => ("cloudnativepg_missing", "CloudNativePGMissing"),
            Error::GatewayApiMissing => ("gateway_api_missing", "GatewayAPIMissing"),
            Error::Delete { .. } => ("delete", "DeleteFailed"),
            Error::Secret { .. } => ("secret", "SecretFailed"),
            Error::Seed { .. } => ("seed", "SeedUnavailable"),
            Error::Status(_) => ("status", "StatusFailed"),
            Error::Kube(_) => ("kube", "KubernetesError"),
            Error::Random(_) => ("random", "RandomFailed"),
            Error::Serialize(_) => ("serialize", "SerializeFailed"),
            Error::Lease(_) => ("lease", "LeaderElectionFailed"),
            Error::Render(_) => ("render", "RenderFailed"),
            // Several: named after the first.
            Error::Children(all) => all.first().map_or(("apply", "ApplyFailed"), Error::names),
            Error::Io(_) => ("io", "IoFailed"),
        }
    }

    /// Label of the `reason` of the failure metrics (low cardinality).
    pub fn metric_label(&self) -> &'static str {
        self.names().0
    }

    /// Reason of the `Degraded` condition and of the Warning event (CamelCase).
    pub fn reason(&self) -> &'static str {
        self.names().1
    }
}

fn join_errors(all: &[Error]) -> String {
    all.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
