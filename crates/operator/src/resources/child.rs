//! The kinds of child object a `CacheMe` has, in one table: each kind's Rust type, its
//! place in the apply order, its API resource (how it is applied, deleted and watched,
//! all through the dynamic API) and whether the API server may lack it.
//!
//! Adding a kind is a row in `child_kinds!` below (the declaration order is the apply
//! order), a builder in this folder pushing it in `Stack::desired`, and a rule in the
//! operator's RBAC (the chart and `k8s/operator.yaml`). The controller watches, the
//! applies, the deletes of a switched-off component and `render` follow from the row.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource as _;
use kube::core::{ApiResource, DynamicObject};

use super::gateway::{GATEWAY_API_VERSION, httproute_resource};
use crate::Error;

/// The table: `Variant(Type)` for each kind k8s-openapi has a type for, in apply order;
/// the Gateway API's `HTTPRoute` (no Rust type) is written out where the macro needs it.
macro_rules! child_kinds {
    (before_route: [$($early:ident),*], after_route: [$($late:ident),*]) => {
        /// Kind of a child object. The declaration order is the apply order: what a
        /// child refers to (a ConfigMap, a claim, a Service) is applied before it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ChildKind {
            $($early,)*
            /// The Gateway API's, whose kind may not exist (then it is absent already).
            HttpRoute,
            $($late,)*
        }

        /// One child object to apply.
        // A Deployment is 2.5 KB, the smallest kinds a few hundred bytes: a reconcile
        // builds a dozen children once, so boxing them would only add allocations.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone)]
        pub enum Child {
            $($early($early),)*
            HttpRoute(DynamicObject),
            $($late($late),)*
        }

        impl ChildKind {
            /// Every kind, in apply order.
            pub const ALL: [ChildKind; child_kinds!(@count $($early)* HttpRoute $($late)*)] =
                [$(ChildKind::$early,)* ChildKind::HttpRoute, $(ChildKind::$late,)*];

            /// `apiVersion` of the kind.
            pub fn api_version(self) -> &'static str {
                match self {
                    $(ChildKind::$early => <$early as k8s_openapi::Resource>::API_VERSION,)*
                    ChildKind::HttpRoute => GATEWAY_API_VERSION,
                    $(ChildKind::$late => <$late as k8s_openapi::Resource>::API_VERSION,)*
                }
            }

            /// Kind name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ChildKind::$early => <$early as k8s_openapi::Resource>::KIND,)*
                    ChildKind::HttpRoute => "HTTPRoute",
                    $(ChildKind::$late => <$late as k8s_openapi::Resource>::KIND,)*
                }
            }

            /// The kind for the dynamic API (group, version, plural).
            pub fn resource(self) -> ApiResource {
                match self {
                    $(ChildKind::$early => ApiResource::erase::<$early>(&()),)*
                    ChildKind::HttpRoute => httproute_resource(),
                    $(ChildKind::$late => ApiResource::erase::<$late>(&()),)*
                }
            }
        }

        impl Child {
            pub fn kind(&self) -> ChildKind {
                match self {
                    $(Child::$early(_) => ChildKind::$early,)*
                    Child::HttpRoute(_) => ChildKind::HttpRoute,
                    $(Child::$late(_) => ChildKind::$late,)*
                }
            }

            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Child::$early(o) => o.meta(),)*
                    Child::HttpRoute(o) => o.meta(),
                    $(Child::$late(o) => o.meta(),)*
                }
            }

            /// The object as JSON, with its `apiVersion` and `kind`.
            pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
                match self {
                    $(Child::$early(o) => serde_json::to_value(o),)*
                    Child::HttpRoute(o) => serde_json::to_value(o),
                    $(Child::$late(o) => serde_json::to_value(o),)*
                }
            }
        }

        $(impl From<$early> for Child {
            fn from(object: $early) -> Self {
                Child::$early(object)
            }
        })*
        $(impl From<$late> for Child {
            fn from(object: $late) -> Self {
                Child::$late(object)
            }
        })*
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + child_kinds!(@count $($tail)*) };
}

child_kinds!(
    before_route: [
        ConfigMap,
        PersistentVolumeClaim,
        Service,
        Deployment,
        NetworkPolicy,
        PodDisruptionBudget,
        Ingress
    ],
    after_route: [HorizontalPodAutoscaler]
);

impl ChildKind {
    /// When the API server may not serve the kind: the error that says what to install.
    /// An apply answered 404 means exactly that (an apply creates a missing object).
    pub fn missing(self) -> Option<Error> {
        match self {
            ChildKind::HttpRoute => Some(Error::GatewayApiMissing),
            _ => None,
        }
    }

    /// Whether the controller watches children of this kind. Not a kind that may be
    /// missing: a watch on a kind the API server does not serve fails on every retry (a
    /// warning loop in every operator without it, whether or not a CacheMe uses it), and
    /// would not start by itself once the CRDs are installed. An HTTPRoute edited or
    /// deleted by someone else is applied again by the periodic reconcile.
    pub fn watched(self) -> bool {
        self.missing().is_none()
    }
}

impl Child {
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }
}

/// A child object that must not exist (its component is switched off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absent {
    pub kind: ChildKind,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_names_itself_as_the_api_server_does() {
        // Sorted: the names are what is checked here, not the apply order.
        let mut seen: Vec<(&str, &str, String)> = ChildKind::ALL
            .iter()
            .map(|k| (k.api_version(), k.as_str(), k.resource().plural))
            .collect();
        seen.sort();
        let mut expected = vec![
            ("v1", "ConfigMap", "configmaps".to_owned()),
            (
                "v1",
                "PersistentVolumeClaim",
                "persistentvolumeclaims".to_owned(),
            ),
            ("v1", "Service", "services".to_owned()),
            ("apps/v1", "Deployment", "deployments".to_owned()),
            (
                "networking.k8s.io/v1",
                "NetworkPolicy",
                "networkpolicies".to_owned(),
            ),
            (
                "policy/v1",
                "PodDisruptionBudget",
                "poddisruptionbudgets".to_owned(),
            ),
            ("networking.k8s.io/v1", "Ingress", "ingresses".to_owned()),
            (
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                "httproutes".to_owned(),
            ),
            (
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers".to_owned(),
            ),
        ];
        expected.sort();
        assert_eq!(seen, expected);
        // The declaration order is the apply order.
        let mut sorted = ChildKind::ALL;
        sorted.sort();
        assert_eq!(sorted, ChildKind::ALL);
        assert_eq!(
            ChildKind::ALL
                .iter()
                .filter(|k| !k.watched())
                .collect::<Vec<_>>(),
            [&ChildKind::HttpRoute]
        );
    }

    #[test]
    fn a_child_knows_its_kind_name_and_json() -> serde_json::Result<()> {
        let child = Child::from(ConfigMap {
            metadata: ObjectMeta {
                name: Some("demo-seed".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        });
        assert_eq!(child.kind(), ChildKind::ConfigMap);
        assert_eq!(child.name(), "demo-seed");
        let json = child.to_json()?;
        assert_eq!(json["kind"], "ConfigMap");
        assert_eq!(json["apiVersion"], "v1");
        Ok(())
    }
}
