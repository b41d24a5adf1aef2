//! The pure object builders: snapshots of every object for every sample, and the
//! ownership properties the operator contract asks for. The API's rollout is checked
//! in `api_rollout.rs`, components and endpoints in `components.rs`.

mod support;

use std::collections::BTreeSet;

use cacheme_operator::resources::PASSWORD_PLACEHOLDER;
use serde_json::Value;
use support::{SAMPLES, TestResult, desired, names, sample};

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
