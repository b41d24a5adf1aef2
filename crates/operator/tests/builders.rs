//! The pure object builders: snapshots of every object for every sample, and
//! the properties the operator contract asks for.
//!
//! Long because each contract property is its own test over every sample.

mod support;

use std::collections::BTreeSet;

use cacheme_operator::crd::CacheMe;
use cacheme_operator::resources::{
    CONFIG_HASH_ANNOTATION, ChildKind, Component, Desired, PASSWORD_PLACEHOLDER, Stack,
};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;
use support::{SAMPLES, TestResult, names, sample};

fn desired(cm: &CacheMe) -> TestResult<Desired> {
    Ok(Stack::new(cm, Some("[]"))?.desired()?)
}

fn config_hash(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CONFIG_HASH_ANNOTATION)
        .cloned()
}

fn env_names(deployment: &Deployment) -> Vec<String> {
    deployment
        .spec
        .template
        .spec
        .iter()
        .flat_map(|p| p.containers.iter())
        .flat_map(|c| c.env.iter().flatten())
        .map(|e| e.name.clone())
        .collect()
}

#[test]
fn snapshots_of_every_object_of_every_sample() -> TestResult {
    for name in SAMPLES {
        let cm = sample(name)?;
        let d = desired(&cm)?;
        for object in d.manifests()? {
            let kind = object["kind"].as_str().unwrap_or("unknown").to_lowercase();
            let object_name = object["metadata"]["name"].as_str().unwrap_or("unnamed");
            insta::assert_yaml_snapshot!(format!("{name}__{kind}__{object_name}"), object);
        }
        let absent: Vec<String> = d
            .absent
            .iter()
            .map(|a| format!("{}/{}", a.kind.as_str(), a.name))
            .collect();
        insta::assert_yaml_snapshot!(format!("{name}__absent"), absent);
    }
    Ok(())
}

#[test]
fn minimal_sample_builds_the_default_stack() -> TestResult {
    let objects = desired(&sample("minimal")?)?.manifests()?;
    let expected: BTreeSet<String> = [
        "Deployment/demo-api",
        "Deployment/demo-frontend",
        "Deployment/demo-postgres",
        "Deployment/demo-redis",
        "Service/demo-api",
        "Service/demo-frontend",
        "Service/demo-postgres",
        "Service/demo-redis",
        "Secret/demo-api-credentials",
        "Secret/demo-postgres-credentials",
        "Secret/demo-redis-credentials",
        "PersistentVolumeClaim/demo-postgres-data",
        "NetworkPolicy/demo-api",
        "NetworkPolicy/demo-postgres",
        "NetworkPolicy/demo-redis",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names(&objects), expected);
    Ok(())
}

/// PostgreSQL's claim and password, which the default `retainPolicy: Retain` keeps.
fn retained(name: &str) -> bool {
    name.ends_with("-postgres-data") || name.ends_with("-postgres-credentials")
}

#[test]
fn every_child_is_owned_labelled_and_namespaced() -> TestResult {
    for name in SAMPLES {
        let cm = sample(name)?;
        for object in desired(&cm)?.manifests()? {
            let meta = &object["metadata"];
            if retained(meta["name"].as_str().unwrap_or_default()) {
                assert!(meta["ownerReferences"].is_null(), "{object}");
                continue;
            }
            let owner = &meta["ownerReferences"][0];
            assert_eq!(owner["kind"], "CacheMe", "{object}");
            assert_eq!(owner["controller"], true, "{object}");
            assert_eq!(owner["name"].as_str(), cm.metadata.name.as_deref());
            assert_eq!(meta["namespace"], support::NAMESPACE);
            assert_eq!(
                meta["labels"]["app.kubernetes.io/managed-by"],
                "cacheme-operator"
            );
        }
    }
    Ok(())
}

#[test]
fn retain_policy_delete_lets_the_cacheme_own_the_database_claim_and_password() -> TestResult {
    let mut cm = sample("minimal")?;
    cm.spec.postgres.retain_policy = cacheme_operator::crd::RetainPolicy::Delete;
    let objects = desired(&cm)?.manifests()?;
    let owned: Vec<&Value> = objects
        .iter()
        .filter(|o| retained(o["metadata"]["name"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(owned.len(), 2, "{owned:?}");
    for object in owned {
        assert_eq!(object["metadata"]["ownerReferences"][0]["kind"], "CacheMe");
    }
    Ok(())
}

#[test]
fn no_password_appears_in_any_object_but_generated_secrets() -> TestResult {
    for name in SAMPLES {
        for object in desired(&sample(name)?)?.manifests()? {
            let text = object.to_string();
            if object["kind"] == "Secret" {
                assert_eq!(object["immutable"], true);
                continue;
            }
            assert!(!text.contains(PASSWORD_PLACEHOLDER), "{text}");
            assert!(!text.to_lowercase().contains("password\":\""), "{text}");
        }
    }
    Ok(())
}

#[test]
fn api_deployment_follows_the_container_contract() -> TestResult {
    let cm = sample("full")?;
    let api = Stack::new(&cm, None)?.api_deployment()?;
    let env = env_names(&api);
    for required in [
        "BIND_ADDR",
        "LOG_FORMAT",
        "CACHE_TTL_SECONDS",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "DATABASE_URL",
        "REDIS_PASSWORD",
        "REDIS_URL",
        "OTEL_SERVICE_NAME",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "SEED_FILE",
        "SIMULATED_DB_LATENCY_MS",
    ] {
        assert!(
            env.contains(&required.to_string()),
            "{required} missing: {env:?}"
        );
    }
    // $(VAR) expansion needs the referenced variables defined earlier.
    let pos = |n: &str| env.iter().position(|e| e == n);
    assert!(pos("POSTGRES_PASSWORD") < pos("DATABASE_URL"));
    assert!(pos("REDIS_PASSWORD") < pos("REDIS_URL"));
    let pod = api.spec.template.spec.as_ref().ok_or("no pod spec")?;
    let container = &pod.containers[0];
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        probe_path(&container.readiness_probe).as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        probe_path(&container.liveness_probe).as_deref(),
        Some("/livez")
    );
    let security = container
        .security_context
        .as_ref()
        .ok_or("no securityContext")?;
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    // The full sample has an autoscaler: `replicas` is left to it.
    assert_eq!(api.spec.replicas, None);
    Ok(())
}

#[test]
fn the_api_and_the_page_keep_serving_until_the_endpoints_forget_them() -> TestResult {
    let cm = sample("full")?;
    let stack = Stack::new(&cm, None)?;
    for deployment in [stack.api_deployment()?, stack.frontend_deployment()] {
        let pod = deployment
            .spec
            .template
            .spec
            .as_ref()
            .ok_or("no pod spec")?;
        let sleep = pod.containers[0]
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.sleep.as_ref())
            .map(|s| s.seconds);
        assert_eq!(sleep, Some(5), "{:?}", deployment.metadata.name);
        // The default grace period (30 s) covers the drain and the API's own shutdown.
        let grace = pod.termination_grace_period_seconds.unwrap_or(30);
        assert!(grace > 5 + 10, "{grace}");
    }
    Ok(())
}

#[test]
fn ttl_and_seed_changes_change_the_api_rollout_hash() -> TestResult {
    let cm = sample("minimal")?;
    let hash = |cm: &CacheMe| -> TestResult<Option<String>> {
        Ok(config_hash(&Stack::new(cm, None)?.api_deployment()?))
    };
    let base = hash(&cm)?;
    assert!(base.is_some());

    let mut ttl = cm.clone();
    ttl.spec.ttl_seconds = 60;
    assert_ne!(hash(&ttl)?, base, "TTL change must roll the API out");

    let mut seeded = sample("full")?;
    let seeded_hash = hash(&seeded)?;
    if let Some(products) = seeded
        .spec
        .seed_data
        .as_mut()
        .and_then(|s| s.products.as_mut())
    {
        products[0].price = 1.0;
    }
    assert_ne!(
        hash(&seeded)?,
        seeded_hash,
        "seed change must roll the API out"
    );

    let mut scaled = cm.clone();
    scaled.spec.replicas = 5;
    assert_eq!(hash(&scaled)?, base, "scaling is not a config change");
    Ok(())
}

#[test]
fn replicas_are_applied_only_without_an_autoscaler() -> TestResult {
    let mut cm = sample("full")?;
    let stack = Stack::new(&cm, None)?;
    let hpa = stack.api_hpa().ok_or("no HorizontalPodAutoscaler")?;
    assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(2), 6));
    assert_eq!(hpa.spec.scale_target_ref.name, "shop-api");
    assert_eq!(stack.api_deployment()?.spec.replicas, None);

    cm.spec.autoscaling = None;
    let stack = Stack::new(&cm, None)?;
    assert!(stack.api_hpa().is_none());
    assert_eq!(stack.api_deployment()?.spec.replicas, Some(3));
    Ok(())
}

#[test]
fn referenced_seed_content_is_part_of_the_hash() -> TestResult {
    let cm = sample("external")?;
    let a = config_hash(&Stack::new(&cm, Some("[1]"))?.api_deployment()?);
    let b = config_hash(&Stack::new(&cm, Some("[2]"))?.api_deployment()?);
    assert_ne!(a, b);
    Ok(())
}

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
