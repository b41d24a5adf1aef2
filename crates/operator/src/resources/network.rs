//! Services, NetworkPolicies, the Ingress and the PodDisruptionBudget.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyIngressRule,
    NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    API_PORT, Component, PGADMIN_PORT, POSTGRES_PORT, REDIS_COMMANDER_PORT, REDIS_PORT, Stack,
};
use crate::crd::DEFAULT_API_CLIENT_NAMESPACES;

/// Paths of the API routed by the Ingress and the HTTPRoute; everything else goes to the page.
pub const API_PATHS: &[&str] = &["/products", "/cache", "/health", "/docs", "/openapi.json"];

impl Stack<'_> {
    fn service(&self, component: Component, port: i32, target: &str) -> Service {
        Service {
            metadata: self.meta(self.child_name(component), component),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".to_string()),
                selector: Some(self.selector_labels(component)),
                ports: Some(vec![ServicePort {
                    name: Some(target.to_string()),
                    port,
                    target_port: Some(IntOrString::String(target.to_string())),
                    protocol: Some("TCP".to_string()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    /// The API's Service (port 8000, also scraped for `/metrics`).
    pub fn api_service(&self) -> Service {
        self.service(Component::Api, API_PORT, "http")
    }

    /// The page's Service on port 80.
    pub fn frontend_service(&self) -> Service {
        self.service(Component::Frontend, 80, "http")
    }

    /// The Service of a managed store.
    pub fn store_service(&self, component: Component) -> Service {
        match component {
            Component::Postgres => self.service(component, POSTGRES_PORT, "postgres"),
            _ => self.service(component, REDIS_PORT, "redis"),
        }
    }

    /// The Service of an admin tool, on port 80.
    pub fn tool_service(&self, component: Component) -> Service {
        let _ = (PGADMIN_PORT, REDIS_COMMANDER_PORT);
        self.service(component, 80, "http")
    }

    /// Only the API (and the store's admin tool, when enabled) may reach a
    /// managed store.
    pub fn store_network_policy(&self, component: Component) -> NetworkPolicy {
        let (port, tool, tool_enabled) = match component {
            Component::Postgres => (
                POSTGRES_PORT,
                Component::PgAdmin,
                self.cm.spec.pg_admin.enabled,
            ),
            _ => (
                REDIS_PORT,
                Component::RedisCommander,
                self.cm.spec.redis_commander.enabled,
            ),
        };
        let peer = |c: Component| NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(self.selector_labels(c)),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        };
        let mut from = vec![peer(Component::Api)];
        if tool_enabled {
            from.push(peer(tool));
        }
        NetworkPolicy {
            metadata: self.meta(self.child_name(component), component),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(self.selector_labels(component)),
                    ..LabelSelector::default()
                }),
                policy_types: Some(vec!["Ingress".to_string()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(from),
                    ports: Some(vec![NetworkPolicyPort {
                        port: Some(IntOrString::Int(port)),
                        protocol: Some("TCP".to_string()),
                        ..NetworkPolicyPort::default()
                    }]),
                }]),
                ..NetworkPolicySpec::default()
            }),
        }
    }

    /// Who may connect to the API: the page of the same CacheMe (its web
    /// server proxies the API's paths) and the configured peers — by default
    /// the ingress controller's and Prometheus's namespaces. `None` when the
    /// CacheMe turns the policy off.
    pub fn api_network_policy(&self) -> Option<NetworkPolicy> {
        let policy = &self.cm.spec.api.network_policy;
        if !policy.enabled {
            return None;
        }
        let mut from = Vec::new();
        if self.cm.spec.frontend.enabled {
            from.push(NetworkPolicyPeer {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(self.selector_labels(Component::Frontend)),
                    ..LabelSelector::default()
                }),
                ..NetworkPolicyPeer::default()
            });
        }
        match &policy.allowed_from {
            Some(peers) => from.extend(peers.iter().cloned()),
            None => from.push(NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: "kubernetes.io/metadata.name".to_string(),
                        operator: "In".to_string(),
                        values: Some(
                            DEFAULT_API_CLIENT_NAMESPACES
                                .iter()
                                .map(|ns| ns.to_string())
                                .collect(),
                        ),
                    }]),
                    ..LabelSelector::default()
                }),
                ..NetworkPolicyPeer::default()
            }),
        }
        Some(NetworkPolicy {
            metadata: self.meta(self.child_name(Component::Api), Component::Api),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(self.selector_labels(Component::Api)),
                    ..LabelSelector::default()
                }),
                policy_types: Some(vec!["Ingress".to_string()]),
                // An empty `from` would mean "from anywhere": with no peer at
                // all (page off, empty list) the rule goes and nothing may connect.
                ingress: Some(if from.is_empty() {
                    Vec::new()
                } else {
                    vec![NetworkPolicyIngressRule {
                        from: Some(from),
                        ports: Some(vec![NetworkPolicyPort {
                            port: Some(IntOrString::Int(API_PORT)),
                            protocol: Some("TCP".to_string()),
                            ..NetworkPolicyPort::default()
                        }]),
                    }]
                }),
                ..NetworkPolicySpec::default()
            }),
        })
    }

    /// Keeps one API pod up during voluntary disruptions, when there can be several.
    pub fn api_pdb(&self) -> Option<PodDisruptionBudget> {
        (self.max_api_replicas() > 1).then(|| PodDisruptionBudget {
            metadata: self.meta(self.child_name(Component::Api), Component::Api),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(self.selector_labels(Component::Api)),
                    ..LabelSelector::default()
                }),
                ..PodDisruptionBudgetSpec::default()
            }),
            ..PodDisruptionBudget::default()
        })
    }

    /// The Ingress: API paths to the API, `/` to the page (to the API when the
    /// page is off).
    pub fn ingress(&self) -> Option<Ingress> {
        let spec = self.cm.spec.ingress.as_ref()?;
        let backend = |component: Component, port: i32| IngressBackend {
            service: Some(IngressServiceBackend {
                name: self.child_name(component),
                port: Some(ServiceBackendPort {
                    number: Some(port),
                    ..ServiceBackendPort::default()
                }),
            }),
            ..IngressBackend::default()
        };
        let path = |path: &str, component: Component, port: i32| HTTPIngressPath {
            path: Some(path.to_string()),
            path_type: "Prefix".to_string(),
            backend: backend(component, port),
        };
        let mut paths: Vec<HTTPIngressPath> = API_PATHS
            .iter()
            .map(|p| path(p, Component::Api, API_PORT))
            .collect();
        paths.push(if self.cm.spec.frontend.enabled {
            path("/", Component::Frontend, 80)
        } else {
            path("/", Component::Api, API_PORT)
        });
        let tls = spec.tls_secret_name.as_ref().map(|secret| {
            vec![IngressTLS {
                hosts: spec.host.clone().map(|h| vec![h]),
                secret_name: Some(secret.clone()),
            }]
        });
        Some(Ingress {
            metadata: self.meta(self.name.clone(), Component::Frontend),
            spec: Some(IngressSpec {
                ingress_class_name: spec.class_name.clone(),
                tls,
                rules: Some(vec![IngressRule {
                    host: spec.host.clone(),
                    http: Some(HTTPIngressRuleValue { paths }),
                }]),
                ..IngressSpec::default()
            }),
            ..Ingress::default()
        })
    }
}
