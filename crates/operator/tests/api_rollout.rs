//! The API Deployment the builders produce: the container contract, serving until the
//! endpoints forget a pod, the rollout hash, and replicas left to an autoscaler.

mod support;

use cacheme_operator::crd::CacheMe;
use cacheme_operator::resources::Stack;
use support::{TestResult, config_hash, env_names, sample};

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
