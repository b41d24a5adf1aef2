//! The Gateway API route of a `CacheMe` (`spec.gateway`): which Gateways its HTTPRoute
//! attaches to and for which host names. Re-exported by [`crate::crd`].
//!
//! The fields, bounds and patterns are those of the Gateway API's own `ParentReference`
//! and `Hostname` (`gateway.networking.k8s.io/v1`), so a CacheMe the CRD accepts gives an
//! HTTPRoute the Gateway API's CRD accepts too.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Gateway API `HTTPRoute` of a CacheMe: where it attaches and which hosts it
/// answers (the CRD's description is the `gateway` field's, in `crd.rs`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("size(self.parentRefs) > 0").message("gateway.parentRefs needs at least one Gateway to attach to, e.g. [{name: traefik-gateway, namespace: traefik}]"))]
#[x_kube(validation = Rule::new("self.parentRefs.all(p, self.parentRefs.exists_one(q, q == p))").message("gateway.parentRefs lists the same parent twice: give each entry of one Gateway its own sectionName or port"))]
pub struct GatewaySpec {
    /// The Gateways (or some of their listeners, by `sectionName` or `port`) the route
    /// attaches to: at least one, each once. A Gateway in another namespace must allow routes from this one
    /// (its listeners' `allowedRoutes.namespaces`).
    #[schemars(length(max = 32))]
    pub parent_refs: Vec<ParentReference>,
    /// Host names the route answers (matched against the `Host` header; `*.example.com`
    /// for a subdomain wildcard). Empty: every host the Gateway's listeners accept. The
    /// first one that is not a wildcard makes the status's page and API URLs when
    /// `ingress.host` is unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 1, max = 253),
            regex(
                pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
            )
        )
    )]
    pub hostnames: Vec<String>,
}

/// A parent of the route, as the Gateway API's `ParentReference`: usually a Gateway
/// by `name` (and `namespace` when it is in another one).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group of the parent; unset means the Gateway API's default,
    /// `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        regex(pattern = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub group: Option<String>,
    /// Kind of the parent; unset means the Gateway API's default, `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
    )]
    pub kind: Option<String>,
    /// Namespace of the parent; the CacheMe's namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
    /// Name of the parent, e.g. the Gateway's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Name of one listener of the Gateway to attach to; every listener that allows
    /// the route when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub section_name: Option<String>,
    /// Port of the Gateway's listeners to attach to; every port when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}
