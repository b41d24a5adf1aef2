//! The generated CRD, the install manifests and every object the builders
//! produce for the samples, checked against the Kubernetes schemas.

mod support;

use std::path::PathBuf;

use cacheme_operator::crd::{crd, crd_yaml};
use cacheme_operator::resources::{CNPG_API_VERSION, GATEWAY_API_VERSION, Stack};
use serde_json::Value;
use support::{
    NAMESPACE, SAMPLES, TestResult, repo_file, run_kubernetes_validate, sample, scratch_dir,
};

fn crd_schema() -> TestResult<Value> {
    let crd = serde_json::to_value(crd())?;
    Ok(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
}

fn yaml_file(path: &str) -> TestResult<Value> {
    let text = std::fs::read_to_string(repo_file(path))?;
    Ok(yaml_serde::from_str(&text)?)
}

#[test]
fn committed_crd_matches_the_code() -> TestResult {
    let generated = crd_yaml()?;
    let committed = std::fs::read_to_string(repo_file("k8s/crd.yaml")).unwrap_or_default();
    assert!(
        committed == generated,
        "k8s/crd.yaml is out of date; regenerate it with\n  cargo run -p cacheme-operator -- crd > k8s/crd.yaml"
    );
    Ok(())
}

#[test]
fn crd_passes_strict_kubernetes_validation() -> TestResult {
    let (ok, output) = run_kubernetes_validate(&[repo_file("k8s/crd.yaml")])?;
    assert!(ok, "{output}");
    assert!(
        output.contains("customresourcedefinition/cachemes.cacheme.dev"),
        "{output}"
    );
    Ok(())
}

#[test]
fn operator_install_manifests_pass_strict_kubernetes_validation() -> TestResult {
    let (ok, output) = run_kubernetes_validate(&[repo_file("k8s/operator.yaml")])?;
    assert!(ok, "{output}");
    for object in [
        "namespace/cacheme-system",
        "serviceaccount/cacheme-operator",
        "clusterrole/cacheme-operator",
        "clusterrolebinding/cacheme-operator",
        "role/cacheme-operator-leader-election",
        "rolebinding/cacheme-operator-leader-election",
        "deployment/cacheme-operator",
    ] {
        assert!(output.contains(object), "{object} not validated:\n{output}");
    }
    Ok(())
}

/// Every child object of every sample, one JSON file each.
fn write_children(dir: &std::path::Path) -> TestResult<Vec<PathBuf>> {
    let mut files = Vec::new();
    for name in SAMPLES {
        let cm = sample(name)?;
        let objects = Stack::new(&cm, Some("[]"))?.desired()?.manifests()?;
        assert!(!objects.is_empty());
        for object in objects {
            // kubernetes-validate has no schema for CloudNativePG's Cluster or the Gateway
            // API's HTTPRoute (their builder tests check them); a test below shows it would
            // only warn, not check.
            if object["apiVersion"] == CNPG_API_VERSION
                || object["apiVersion"] == GATEWAY_API_VERSION
            {
                continue;
            }
            let kind = object["kind"].as_str().unwrap_or("unknown").to_lowercase();
            let object_name = object["metadata"]["name"].as_str().unwrap_or("unnamed");
            let file = dir.join(format!("{name}-{kind}-{object_name}.json"));
            std::fs::write(&file, serde_json::to_vec_pretty(&object)?)?;
            files.push(file);
        }
    }
    Ok(files)
}

#[test]
fn every_built_object_passes_strict_kubernetes_validation() -> TestResult {
    let dir = scratch_dir("children")?;
    let files = write_children(&dir)?;
    let (ok, output) = run_kubernetes_validate(&files)?;
    assert!(ok, "{output}");
    let passed = output.matches(" passed ").count();
    assert_eq!(passed, files.len(), "every file must be checked:\n{output}");
    // The kinds the operator creates are all covered.
    for kind in [
        "deployment/",
        "service/",
        "configmap/",
        "secret/",
        "persistentvolumeclaim/",
        "networkpolicy/",
        "poddisruptionbudget/",
        "ingress/",
    ] {
        assert!(output.contains(kind), "no {kind} validated:\n{output}");
    }
    Ok(())
}

#[test]
fn kubernetes_validate_rejects_a_broken_child() -> TestResult {
    // The strict check really looks at our objects: an unknown field fails.
    let cm = sample("minimal")?;
    let mut deployment = serde_json::to_value(Stack::new(&cm, None)?.api_deployment()?)?;
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] =
        Value::from("Always");
    let file = scratch_dir("broken-child")?.join("deployment.json");
    std::fs::write(&file, serde_json::to_vec(&deployment)?)?;
    let (ok, output) = run_kubernetes_validate(&[file])?;
    assert!(!ok, "an unknown field must fail:\n{output}");
    assert!(output.contains("imagePullPolicyy"), "{output}");
    Ok(())
}

/// The API's settings are environment variables the operator spells out; a typo would be
/// ignored by the API (its default applies) and no schema or e2e run would notice.
#[test]
fn every_variable_the_operator_sets_is_one_the_api_reads() -> TestResult {
    let known = cacheme_api::env_names();
    for name in SAMPLES {
        let cm = sample(name)?;
        let deployment = serde_json::to_value(Stack::new(&cm, Some("[]"))?.api_deployment()?)?;
        let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let names: Vec<&str> = env.iter().filter_map(|e| e["name"].as_str()).collect();
        // A variable only there to be spliced into another (`$(POSTGRES_PASSWORD)` in
        // `DATABASE_URL`) is the container's, not the API's.
        let spliced = |var: &str| {
            env.iter()
                .filter_map(|e| e["value"].as_str())
                .any(|value| value.contains(&format!("$({var})")))
        };
        let unknown: Vec<&&str> = names
            .iter()
            .filter(|n| !known.iter().any(|k| k == *n) && !spliced(n))
            .collect();
        assert!(
            unknown.is_empty(),
            "sample {name}: the API reads no {unknown:?} (it reads {known:?})"
        );
        assert!(
            names.contains(&"DATABASE_URL") && names.contains(&"REDIS_URL"),
            "{names:?}"
        );
    }
    Ok(())
}

#[test]
fn kubernetes_validate_does_not_know_the_custom_kind() -> TestResult {
    // Why the samples are validated against the CRD schema below instead.
    let (ok, output) = run_kubernetes_validate(&[repo_file("k8s/samples/minimal.yaml")])?;
    assert!(ok || output.contains("ouldn't find schema"), "{output}");
    assert!(!output.contains(" passed "), "{output}");
    Ok(())
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

#[test]
fn every_sample_in_the_folder_is_covered() -> TestResult {
    let mut found: Vec<String> = std::fs::read_dir(repo_file("k8s/samples"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| n.trim_end_matches(".yaml").to_string())
        .collect();
    found.sort();
    let mut expected: Vec<String> = SAMPLES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected);
    Ok(())
}

#[test]
fn crd_subcommand_prints_the_committed_crd() -> TestResult {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cacheme-operator"))
        .arg("crd")
        .output()?;
    assert!(output.status.success(), "{output:?}");
    let committed = std::fs::read_to_string(repo_file("k8s/crd.yaml"))?;
    assert_eq!(String::from_utf8(output.stdout)?, committed);
    Ok(())
}

#[test]
fn render_subcommand_output_passes_strict_kubernetes_validation() -> TestResult {
    let dir = scratch_dir("render")?;
    for name in SAMPLES {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cacheme-operator"))
            .args(["render", "--namespace", NAMESPACE])
            .arg(repo_file(&format!("k8s/samples/{name}.yaml")))
            .output()?;
        assert!(output.status.success(), "{output:?}");
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, &output.stdout)?;
        // A YAML 1.1 reader (PyYAML here, like kubectl) must read it as we meant.
        let (ok, report) = run_kubernetes_validate(&[file])?;
        assert!(ok, "{name}: {report}");
        assert!(
            report.contains(&format!("deployment/{}-api", cm_name(name)?)),
            "{report}"
        );
    }
    Ok(())
}

fn cm_name(sample_name: &str) -> TestResult<String> {
    Ok(sample(sample_name)?.metadata.name.unwrap_or_default())
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
