//! The samples and hand-made specs against the CRD's schema and its CEL rules, through
//! the operator's own checker.

mod support;

use cacheme_operator::crd::crd;
use serde_json::Value;
use support::{NAMESPACE, SAMPLES, TestResult, repo_file, sample};

fn crd_schema() -> TestResult<Value> {
    let crd = serde_json::to_value(crd())?;
    Ok(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
}

fn yaml_file(path: &str) -> TestResult<Value> {
    let text = std::fs::read_to_string(repo_file(path))?;
    Ok(yaml_serde::from_str(&text)?)
}

#[test]
fn samples_are_valid_against_the_crd_schema() -> TestResult {
    let schema = crd_schema()?;
    for name in SAMPLES {
        let object = yaml_file(&format!("k8s/samples/{name}.yaml"))?;
        let errors = cacheme_operator::validate::validate(&schema, &object);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        // And the operator reads them.
        let cm = sample(name)?;
        assert_eq!(cm.metadata.namespace.as_deref(), Some(NAMESPACE));
    }
    Ok(())
}

#[test]
fn out_of_range_sample_is_rejected_by_the_schema() -> TestResult {
    let object = yaml_file("k8s/samples/invalid/out-of-range.yaml")?;
    let errors = cacheme_operator::validate::validate(&crd_schema()?, &object);
    let text = errors.join("\n");
    assert!(
        text.contains("spec.ttlSeconds: 0 is below the minimum 1"),
        "{text}"
    );
    assert!(
        text.contains("spec.telemetry.samplingRatio: 1.5 is above the maximum 1"),
        "{text}"
    );
    assert!(text.contains("spec.cacheSize: unknown field"), "{text}");
    Ok(())
}

#[test]
fn external_and_managed_sample_is_rejected_by_the_cel_rules() -> TestResult {
    let object = yaml_file("k8s/samples/invalid/external-and-managed.yaml")?;
    let errors = cacheme_operator::validate::validate(&crd_schema()?, &object);
    let text = errors.join("\n");
    assert!(
        text.contains("postgres is either external or managed"),
        "{text}"
    );
    assert!(
        text.contains("seedData needs exactly one of products and configMapRef"),
        "{text}"
    );
    Ok(())
}

#[test]
fn cors_origins_are_checked_by_the_schema_and_cel() -> TestResult {
    let with_origins = |origins: Value| -> TestResult<String> {
        let mut object = yaml_file("k8s/samples/minimal.yaml")?;
        object["spec"]["api"] = serde_json::json!({ "corsAllowedOrigins": origins });
        Ok(cacheme_operator::validate::validate(&crd_schema()?, &object).join("\n"))
    };
    let ok = with_origins(serde_json::json!([
        "https://a.example",
        "http://localhost:3000"
    ]))?;
    assert!(ok.is_empty(), "{ok}");
    assert!(with_origins(serde_json::json!(["*"]))?.is_empty());
    let path = with_origins(serde_json::json!(["https://a.example/app"]))?;
    assert!(path.contains("spec.api.corsAllowedOrigins[0]"), "{path}");
    // Browsers send origins lower-case and without credentials.
    for origin in ["https://A.example", "https://user@a.example"] {
        let refused = with_origins(serde_json::json!([origin]))?;
        assert!(
            refused.contains("corsAllowedOrigins[0]"),
            "{origin}: {refused}"
        );
    }
    assert!(with_origins(serde_json::json!(["http://localhost:3000"]))?.is_empty());
    let both = with_origins(serde_json::json!(["*", "https://a.example"]))?;
    assert!(both.contains("corsAllowedOrigins is either"), "{both}");
    Ok(())
}

#[test]
fn the_checker_sees_maximums_alone_nested_arrays_and_duplicate_keys() -> TestResult {
    let check = |spec: Value| -> TestResult<String> {
        let mut object = yaml_file("k8s/samples/minimal.yaml")?;
        object["spec"] = spec;
        Ok(cacheme_operator::validate::validate(&crd_schema()?, &object).join("\n"))
    };
    // `replicas` has a minimum and a maximum; the seed id's maximum is what matters here.
    let big_id = check(serde_json::json!({"seedData": {"products": [
        {"id": 3_000_000_000_i64, "name": "Pen", "price": 1.5}
    ]}}))?;
    assert!(big_id.contains("above the maximum 2147483647"), "{big_id}");
    // Items of an array without maxItems are still checked.
    let no_operator = check(
        serde_json::json!({"api": {"networkPolicy": {"allowedFrom": [
            {"namespaceSelector": {"matchExpressions": [{"key": "team"}]}}
        ]}}}),
    )?;
    assert!(no_operator.contains("operator"), "{no_operator}");
    let twice = check(serde_json::json!({"seedData": {"products": [
        {"id": 7, "name": "Pen", "price": 1.5},
        {"id": 7, "name": "Ink", "price": 2.5},
    ]}}))?;
    assert!(twice.contains("Duplicate value"), "{twice}");
    Ok(())
}

#[test]
fn long_names_are_rejected_by_the_cel_rules() -> TestResult {
    let mut object = yaml_file("k8s/samples/minimal.yaml")?;
    object["metadata"]["name"] = Value::from("a".repeat(41));
    let errors = cacheme_operator::validate::validate(&crd_schema()?, &object);
    assert!(
        errors.join("\n").contains("at most 40 characters"),
        "{errors:?}"
    );
    Ok(())
}

/// The checker's errors for the minimal sample with `spec` as its spec.
fn spec_errors(spec: Value) -> TestResult<String> {
    let mut object = yaml_file("k8s/samples/minimal.yaml")?;
    object["spec"] = spec;
    Ok(cacheme_operator::validate::validate(&crd_schema()?, &object).join("\n"))
}

#[test]
fn cloudnativepg_is_checked_by_the_schema_and_cel() -> TestResult {
    use serde_json::json;
    // Defaults alone are a valid opt-in; so are the three fields.
    assert_eq!(spec_errors(json!({"postgres": {"cloudNativePG": {}}}))?, "");
    let full = json!({"postgres": {"cloudNativePG": {
        "instances": 3,
        "storage": {"size": "5Gi", "storageClassName": "fast"},
        "imageName": "ghcr.io/cloudnative-pg/postgresql:17.5",
    }}});
    assert_eq!(spec_errors(full)?, "");
    for instances in [0, 10] {
        let text = spec_errors(json!({"postgres": {"cloudNativePG": {"instances": instances}}}))?;
        assert!(
            text.contains("spec.postgres.cloudNativePG.instances"),
            "{instances}: {text}"
        );
    }
    let with_external = spec_errors(json!({"postgres": {
        "cloudNativePG": {},
        "external": {"urlSecretRef": {"name": "db"}},
    }}))?;
    assert!(
        with_external.contains("postgres.cloudNativePG and postgres.external exclude each other"),
        "{with_external}"
    );
    for managed in [
        json!({"storage": {"size": "1Gi"}}),
        json!({"image": "postgres:17"}),
        json!({"resources": {"requests": {"cpu": "1"}}}),
    ] {
        let mut postgres = managed.clone();
        postgres["cloudNativePG"] = json!({});
        let text = spec_errors(json!({ "postgres": postgres }))?;
        assert!(
            text.contains("postgres.cloudNativePG replaces the managed PostgreSQL"),
            "{managed}: {text}"
        );
    }
    let unknown = spec_errors(json!({"postgres": {"cloudNativePG": {"replicas": 2}}}))?;
    assert!(unknown.contains("unknown field"), "{unknown}");
    Ok(())
}

#[test]
fn redis_mode_is_checked_by_the_schema_and_only_for_redis() -> TestResult {
    use serde_json::json;
    let external = |mode: Value| json!({"urlSecretRef": {"name": "r"}, "mode": mode});
    for mode in ["single", "cluster"] {
        assert_eq!(
            spec_errors(json!({"redis": {"external": external(json!(mode))}}))?,
            ""
        );
    }
    let sentinel = spec_errors(json!({"redis": {"external": external(json!("sentinel"))}}))?;
    assert!(sentinel.contains("spec.redis.external.mode"), "{sentinel}");
    // PostgreSQL has no mode.
    let postgres = spec_errors(json!({"postgres": {"external": external(json!("cluster"))}}))?;
    assert!(
        postgres.contains("spec.postgres.external.mode: unknown field"),
        "{postgres}"
    );
    // The default, as the API server writes it.
    let cm: cacheme_operator::crd::CacheMeSpec =
        serde_json::from_value(json!({"redis": {"external": {"urlSecretRef": {"name": "r"}}}}))?;
    let mode = cm.redis.external.map(|e| e.mode);
    assert_eq!(mode, Some(cacheme_operator::crd::RedisMode::Single));
    Ok(())
}

#[test]
fn gateway_is_checked_by_the_schema_and_cel() -> TestResult {
    use serde_json::json;
    let gateway = |gateway: Value| spec_errors(json!({ "gateway": gateway }));
    let parent = json!({"name": "traefik-gateway", "namespace": "traefik"});
    assert_eq!(gateway(json!({"parentRefs": [parent]}))?, "");
    let every_field = json!({
        "parentRefs": [
            {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "gateways",
             "name": "shared", "sectionName": "web", "port": 8080},
            {"name": "shared", "namespace": "gateways", "sectionName": "websecure"},
        ],
        "hostnames": ["shop.example.com", "*.shop.example.com"],
    });
    assert_eq!(gateway(every_field)?, "");

    let none = gateway(json!({"parentRefs": []}))?;
    assert!(
        none.contains("gateway.parentRefs needs at least one Gateway"),
        "{none}"
    );
    let missing = gateway(json!({"hostnames": ["shop.example.com"]}))?;
    assert!(missing.contains("parentRefs"), "{missing}");
    let twice = gateway(json!({"parentRefs": [parent, parent]}))?;
    assert!(
        twice.contains("gateway.parentRefs lists the same parent twice"),
        "{twice}"
    );
    for (bad, field) in [
        (json!({"name": ""}), "spec.gateway.parentRefs[0].name"),
        (
            json!({"name": "g", "port": 0}),
            "spec.gateway.parentRefs[0].port",
        ),
        (
            json!({"name": "g", "namespace": "Traefik"}),
            "spec.gateway.parentRefs[0].namespace",
        ),
        (
            json!({"name": "g", "sectionName": "web_1"}),
            "spec.gateway.parentRefs[0].sectionName",
        ),
        (
            json!({"name": "g", "kind": "1Gateway"}),
            "spec.gateway.parentRefs[0].kind",
        ),
        (
            json!({"name": "g", "weight": 1}),
            "spec.gateway.parentRefs[0].weight: unknown field",
        ),
    ] {
        let text = gateway(json!({ "parentRefs": [bad] }))?;
        assert!(text.contains(field), "{bad}: {text}");
    }
    for host in [
        "Shop.example.com",
        "shop.example.com.",
        "*",
        "http://shop.example.com",
    ] {
        let text = gateway(json!({"parentRefs": [parent], "hostnames": [host]}))?;
        assert!(text.contains("spec.gateway.hostnames[0]"), "{host}: {text}");
    }
    Ok(())
}
