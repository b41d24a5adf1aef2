//! The Gateway API `HTTPRoute` (`spec.gateway`): the Ingress's split of paths, attached
//! to the user's Gateways.

use kube::core::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use super::network::API_PATHS;
use super::{API_PORT, Component, Stack};
use crate::Result;

/// API group and version of the Gateway API's `HTTPRoute`.
pub const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";
/// The resource whose absence means the Gateway API CRDs are not installed.
pub const HTTPROUTES: &str = "httproutes.gateway.networking.k8s.io";

/// The Gateway API's `HTTPRoute` kind, for the dynamic API (no Rust type: k8s-openapi
/// has none, the Gateway API is optional, and only the fields below are ever written).
pub fn httproute_resource() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".to_string(),
        version: "v1".to_string(),
        api_version: GATEWAY_API_VERSION.to_string(),
        kind: "HTTPRoute".to_string(),
        plural: "httproutes".to_string(),
    }
}

/// A `PathPrefix` match of `path` (whole path elements, like the Ingress's `Prefix`).
fn prefix(path: &str) -> Value {
    json!({"path": {"type": "PathPrefix", "value": path}})
}

impl Stack<'_> {
    /// The HTTPRoute named like the CacheMe, when `gateway` is set: the API paths to the
    /// API's Service (port 8000), `/` to the page's (port 80), or to the API when the
    /// page is off. The longest matching prefix wins, so the order of the rules does not
    /// matter; it is the Ingress's.
    pub fn httproute(&self) -> Result<Option<DynamicObject>> {
        let Some(gateway) = self.cm.spec.gateway.as_ref() else {
            return Ok(None);
        };
        let backend = |component: Component, port: i32| json!([{"name": self.child_name(component), "port": port}]);
        let (page, page_port) = if self.cm.spec.frontend.enabled {
            (Component::Frontend, 80)
        } else {
            (Component::Api, API_PORT)
        };
        let mut spec = json!({
            "parentRefs": serde_json::to_value(&gateway.parent_refs)?,
            "rules": [
                {
                    "matches": API_PATHS.iter().map(|p| prefix(p)).collect::<Vec<_>>(),
                    "backendRefs": backend(Component::Api, API_PORT),
                },
                {
                    "matches": [prefix("/")],
                    "backendRefs": backend(page, page_port),
                },
            ],
        });
        if !gateway.hostnames.is_empty() {
            spec["hostnames"] = json!(gateway.hostnames);
        }
        let mut route =
            DynamicObject::new(&self.name, &httproute_resource()).data(json!({ "spec": spec }));
        // The Ingress's labels: both are the stack's front door.
        route.metadata = self.meta(self.name.clone(), Component::Frontend);
        Ok(Some(route))
    }

    /// The first host name of the route a browser can open (not a `*.` wildcard).
    pub fn gateway_host(&self) -> Option<&str> {
        self.cm
            .spec
            .gateway
            .as_ref()?
            .hostnames
            .iter()
            .find(|h| !h.starts_with("*."))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CacheMe, CacheMeSpec};

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn cacheme(spec: Value) -> std::result::Result<CacheMe, serde_json::Error> {
        let spec: CacheMeSpec = serde_json::from_value(spec)?;
        let mut cm = CacheMe::new("shop", spec);
        cm.metadata.namespace = Some("cacheme".to_string());
        cm.metadata.uid = Some("8d6b9a4e-0000-4000-8000-000000000001".to_string());
        Ok(cm)
    }

    fn gateway(extra: Value) -> Value {
        let mut spec = json!({"gateway": {"parentRefs": [{"name": "traefik-gateway", "namespace": "traefik"}]}});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        spec
    }

    /// The route as JSON, or an error when the spec makes none.
    fn route(cm: &CacheMe) -> std::result::Result<Value, Box<dyn std::error::Error>> {
        let route = Stack::new(cm, None)?.httproute()?.ok_or("no HTTPRoute")?;
        Ok(serde_json::to_value(route)?)
    }

    /// `(paths, backend name, backend port)` of each rule.
    fn rules(route: &Value) -> Vec<(Vec<String>, String, i64)> {
        route["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|rule| {
                let paths = rule["matches"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        assert_eq!(m["path"]["type"], "PathPrefix", "{m}");
                        m["path"]["value"].as_str().unwrap_or_default().to_string()
                    })
                    .collect();
                let backend = &rule["backendRefs"][0];
                (
                    paths,
                    backend["name"].as_str().unwrap_or_default().to_string(),
                    backend["port"].as_i64().unwrap_or_default(),
                )
            })
            .collect()
    }

    fn api_paths() -> Vec<String> {
        API_PATHS.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn no_gateway_no_route() -> TestResult {
        let cm = cacheme(json!({}))?;
        let stack = Stack::new(&cm, None)?;
        assert!(stack.httproute()?.is_none());
        assert_eq!(stack.gateway_host(), None);
        Ok(())
    }

    #[test]
    fn api_paths_go_to_the_api_and_the_rest_to_the_page() -> TestResult {
        let route = route(&cacheme(gateway(json!({})))?)?;
        assert_eq!(
            (&route["apiVersion"], &route["kind"]),
            (&json!("gateway.networking.k8s.io/v1"), &json!("HTTPRoute"))
        );
        assert_eq!(route["metadata"]["name"], "shop");
        assert_eq!(route["metadata"]["namespace"], "cacheme");
        assert_eq!(
            rules(&route),
            [
                (api_paths(), "shop-api".to_string(), 8000),
                (vec!["/".to_string()], "shop-frontend".to_string(), 80),
            ]
        );
        assert_eq!(
            route["spec"]["parentRefs"],
            json!([{"name": "traefik-gateway", "namespace": "traefik"}])
        );
        // No hostnames: every host the Gateway's listeners accept.
        assert!(route["spec"].get("hostnames").is_none(), "{route}");
        Ok(())
    }

    #[test]
    fn without_the_page_everything_goes_to_the_api() -> TestResult {
        let route = route(&cacheme(gateway(json!({"frontend": {"enabled": false}})))?)?;
        assert_eq!(
            rules(&route),
            [
                (api_paths(), "shop-api".to_string(), 8000),
                (vec!["/".to_string()], "shop-api".to_string(), 8000),
            ]
        );
        Ok(())
    }

    #[test]
    fn hostnames_and_every_parent_field_are_passed_on() -> TestResult {
        let parent = json!({
            "group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "gateways",
            "name": "shared", "sectionName": "web", "port": 8080,
        });
        let cm = cacheme(json!({"gateway": {
            "parentRefs": [parent, {"name": "local"}],
            "hostnames": ["*.shop.example.com", "shop.example.com"],
        }}))?;
        let route = route(&cm)?;
        assert_eq!(
            route["spec"]["parentRefs"],
            json!([parent, {"name": "local"}])
        );
        assert_eq!(
            route["spec"]["hostnames"],
            json!(["*.shop.example.com", "shop.example.com"])
        );
        // A wildcard is no address to open: the first real host name is.
        assert_eq!(
            Stack::new(&cm, None)?.gateway_host(),
            Some("shop.example.com")
        );
        Ok(())
    }

    #[test]
    fn the_route_is_owned_by_the_cacheme_and_labelled_like_its_children() -> TestResult {
        let route = route(&cacheme(gateway(json!({})))?)?;
        let meta = &route["metadata"];
        let owner = &meta["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["controller"]),
            (&json!("CacheMe"), &json!("shop"), &json!(true))
        );
        assert_eq!(owner["uid"], "8d6b9a4e-0000-4000-8000-000000000001");
        assert_eq!(
            meta["labels"]["app.kubernetes.io/managed-by"],
            "cacheme-operator"
        );
        assert_eq!(meta["labels"]["app.kubernetes.io/instance"], "shop");
        Ok(())
    }
}
