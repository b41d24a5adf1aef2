//! The generated CRD, the install manifests and every object the builders
//! produce for the samples, checked against the Kubernetes schemas (the CRD's own
//! schema and CEL rules against the samples are in `crd_schema.rs`).

mod support;

use std::path::PathBuf;

use cacheme_operator::crd::crd_yaml;
use cacheme_operator::resources::{CNPG_API_VERSION, GATEWAY_API_VERSION, Stack};
use serde_json::Value;
use support::{
    NAMESPACE, SAMPLES, TestResult, repo_file, run_kubernetes_validate, sample, scratch_dir,
};

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
