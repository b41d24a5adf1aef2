//! What the builders produce per component: switched-off components listed for
//! deletion, external stores, PostgreSQL's data, the network policy, the endpoints, and
//! a CacheMe that cannot own objects.

mod support;

use std::collections::BTreeSet;

use cacheme_operator::resources::{ChildKind, Component, Stack};
use support::{TestResult, desired, names, sample};

#[test]
fn switched_off_components_are_listed_for_deletion() -> TestResult {
    let mut cm = sample("full")?;
    let on = desired(&cm)?;
    assert!(on.absent.iter().all(|a| a.kind != ChildKind::Deployment));

    cm.spec.pg_admin.enabled = false;
    cm.spec.redis_commander.enabled = false;
    cm.spec.frontend.enabled = false;
    cm.spec.ingress = None;
    cm.spec.gateway = None;
    cm.spec.replicas = 1;
    cm.spec.autoscaling = None;
    let off = desired(&cm)?;
    let absent: BTreeSet<String> = off
        .absent
        .iter()
        .map(|a| format!("{}/{}", a.kind.as_str(), a.name))
        .collect();
    for expected in [
        "Deployment/shop-pgadmin",
        "Service/shop-pgadmin",
        "ConfigMap/shop-pgadmin",
        "Deployment/shop-redis-commander",
        "Service/shop-redis-commander",
        "Deployment/shop-frontend",
        "Service/shop-frontend",
        "Ingress/shop",
        "HTTPRoute/shop",
        "PodDisruptionBudget/shop-api",
        "HorizontalPodAutoscaler/shop-api",
    ] {
        assert!(
            absent.contains(expected),
            "{expected} not deleted: {absent:?}"
        );
    }
    let kept = names(&off.manifests()?);
    assert!(
        !kept
            .iter()
            .any(|n| n.contains("pgadmin") || n.contains("frontend"))
    );
    Ok(())
}

#[test]
fn external_stores_replace_the_managed_ones() -> TestResult {
    let cm = sample("external")?;
    let stack = Stack::new(&cm, Some("[]"))?;
    let d = stack.desired()?;
    let built = names(&d.manifests()?);
    assert!(
        !built
            .iter()
            .any(|n| n.contains("postgres") || n.contains("redis")),
        "{built:?}"
    );
    let generated: Vec<&str> = d.secrets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        generated,
        ["ext-api-credentials"],
        "only the admin token is generated"
    );
    let api = stack.api_deployment()?;
    let env = &api.spec.template.spec.as_ref().ok_or("no pod")?.containers[0].env;
    let database = env
        .iter()
        .flatten()
        .find(|e| e.name == "DATABASE_URL")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .ok_or("DATABASE_URL not from a Secret")?;
    assert_eq!(
        (database.name.as_str(), database.key.as_str()),
        ("shop-database", "url")
    );
    Ok(())
}

#[test]
fn postgres_keeps_its_data_across_restarts() -> TestResult {
    let cm = sample("minimal")?;
    let stack = Stack::new(&cm, None)?;
    let postgres = stack.postgres_deployment();
    let strategy = postgres
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.clone());
    assert_eq!(strategy.as_deref(), Some("Recreate"));
    let claim = postgres
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.volumes.as_ref())
        .and_then(|v| v.iter().find_map(|v| v.persistent_volume_claim.clone()))
        .ok_or("no claim mounted")?;
    assert_eq!(claim.claim_name, stack.pvc_name(Component::Postgres));
    Ok(())
}

#[test]
fn only_the_api_and_its_admin_tool_reach_the_stores() -> TestResult {
    let cm = sample("minimal")?;
    let policy = Stack::new(&cm, None)?.store_network_policy(Component::Postgres);
    let spec = policy.spec.ok_or("no spec")?;
    let from = spec.ingress.ok_or("no ingress rules")?[0]
        .from
        .clone()
        .ok_or("no peers")?;
    assert_eq!(from.len(), 1);
    let labels = from[0]
        .pod_selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .ok_or("no selector")?;
    assert_eq!(
        labels
            .get("app.kubernetes.io/component")
            .map(String::as_str),
        Some("api")
    );

    let full = sample("full")?;
    let policy = Stack::new(&full, None)?.store_network_policy(Component::Postgres);
    let peers = policy.spec.and_then(|s| s.ingress).ok_or("no rules")?[0]
        .from
        .clone()
        .ok_or("no peers")?;
    assert_eq!(peers.len(), 2, "pgAdmin is allowed when enabled");
    Ok(())
}

#[test]
fn endpoints_use_the_ingress_host_or_the_services() -> TestResult {
    let full = sample("full")?;
    let e = Stack::new(&full, None)?.endpoints();
    assert_eq!(e.page.as_deref(), Some("https://shop.example.com/"));
    assert_eq!(e.api.as_deref(), Some("https://shop.example.com/products"));
    assert!(e.pg_admin.is_some() && e.redis_commander.is_some());
    let minimal = sample("minimal")?;
    let e = Stack::new(&minimal, None)?.endpoints();
    assert_eq!(e.api.as_deref(), Some("http://demo-api.cacheme.svc:8000/"));
    assert_eq!(e.pg_admin, None);
    Ok(())
}

#[test]
fn endpoints_use_the_gateway_host_when_the_ingress_has_none() -> TestResult {
    let mut cm = sample("full")?;
    cm.spec.ingress = None;
    let e = Stack::new(&cm, None)?.endpoints();
    assert_eq!(e.page.as_deref(), Some("http://gateway.shop.example.com/"));
    assert_eq!(
        e.api.as_deref(),
        Some("http://gateway.shop.example.com/products")
    );
    // A wildcard is no address: the first host name that is not one.
    let gateway = cm.spec.gateway.as_mut().ok_or("no gateway")?;
    gateway.hostnames = vec!["*.shop.example.com".into(), "www.shop.example.com".into()];
    let e = Stack::new(&cm, None)?.endpoints();
    assert_eq!(e.page.as_deref(), Some("http://www.shop.example.com/"));
    // No host name at all: the Services.
    cm.spec.gateway.as_mut().ok_or("no gateway")?.hostnames = vec!["*.shop.example.com".into()];
    let e = Stack::new(&cm, None)?.endpoints();
    assert_eq!(
        e.page.as_deref(),
        Some("http://shop-frontend.cacheme.svc:80/")
    );
    Ok(())
}

#[test]
fn a_cacheme_without_namespace_or_uid_cannot_own_objects() -> TestResult {
    let mut cm = sample("minimal")?;
    cm.metadata.uid = None;
    assert!(matches!(
        Stack::new(&cm, None),
        Err(cacheme_operator::Error::MissingOwner)
    ));
    cm.metadata.namespace = None;
    assert!(matches!(
        Stack::new(&cm, None),
        Err(cacheme_operator::Error::MissingNamespace)
    ));
    Ok(())
}
