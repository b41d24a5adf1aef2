//! The store options of the builders: PostgreSQL run by CloudNativePG (a `Cluster`
//! instead of the operator's own PostgreSQL) and an external Redis Cluster.

mod support;

use std::collections::BTreeSet;

use cacheme_operator::crd::{CacheMe, RetainPolicy};
use cacheme_operator::resources::{CNPG_API_VERSION, ChildKind, Stack};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::EnvVar;
use serde_json::{Value, json};
use support::{TestResult, names, sample};

fn api_env(cm: &CacheMe) -> TestResult<Vec<EnvVar>> {
    let api: Deployment = Stack::new(cm, Some("[]"))?.api_deployment()?;
    let pod = api.spec.template.spec.ok_or("no pod spec")?;
    Ok(pod.containers[0].env.clone().unwrap_or_default())
}

fn env_var<'a>(env: &'a [EnvVar], name: &str) -> Option<&'a EnvVar> {
    env.iter().find(|e| e.name == name)
}

fn secret_ref(env: &[EnvVar], name: &str) -> Option<(String, String)> {
    let r = env_var(env, name)?
        .value_from
        .as_ref()?
        .secret_key_ref
        .as_ref()?;
    Some((r.name.clone(), r.key.clone()))
}

#[test]
fn cloudnativepg_replaces_the_managed_postgres_with_a_cluster() -> TestResult {
    let cm = sample("cloudnativepg")?;
    let d = Stack::new(&cm, Some("[]"))?.desired()?;
    let built = names(&d.manifests()?);
    assert!(built.contains("Cluster/pg-postgres"), "{built:?}");
    for managed in [
        "Deployment/pg-postgres",
        "Service/pg-postgres",
        "NetworkPolicy/pg-postgres",
        "PersistentVolumeClaim/pg-postgres-data",
        "Secret/pg-postgres-credentials",
    ] {
        assert!(!built.contains(managed), "{managed} built: {built:?}");
    }
    // A CacheMe switched from the managed PostgreSQL loses its Deployment and Service.
    let absent: BTreeSet<String> = d
        .absent
        .iter()
        .map(|a| format!("{}/{}", a.kind.as_str(), a.name))
        .collect();
    assert!(absent.contains("Deployment/pg-postgres"), "{absent:?}");
    assert!(absent.contains("Service/pg-postgres"), "{absent:?}");
    assert!(
        d.absent
            .iter()
            .all(|a| a.kind != ChildKind::Deployment || a.name != "pg-api"),
        "the API stays"
    );

    let cluster = serde_json::to_value(d.cloudnativepg.as_ref().ok_or("no Cluster")?)?;
    assert_eq!(cluster["apiVersion"], CNPG_API_VERSION);
    assert_eq!(cluster["kind"], "Cluster");
    let spec = &cluster["spec"];
    assert_eq!(spec["instances"], 2);
    assert_eq!(spec["storage"], json!({"size": "2Gi"}));
    // The database and owner the managed PostgreSQL has: the API's migrations are the same.
    assert_eq!(
        spec["bootstrap"]["initdb"],
        json!({"database": "cacheme", "owner": "cacheme"})
    );
    assert!(spec.get("imageName").is_none());
    // retainPolicy Delete: owned, so garbage collection removes it with the CacheMe.
    assert_eq!(cluster["metadata"]["ownerReferences"][0]["kind"], "CacheMe");
    Ok(())
}

#[test]
fn cloudnativepg_cluster_is_not_owned_under_retain() -> TestResult {
    let mut cm = sample("cloudnativepg")?;
    cm.spec.postgres.retain_policy = RetainPolicy::Retain;
    if let Some(cnpg) = cm.spec.postgres.cloud_native_pg.as_mut() {
        cnpg.storage.storage_class_name = Some("fast".to_string());
        cnpg.image_name = Some("ghcr.io/cloudnative-pg/postgresql:17.5".to_string());
    }
    let cluster = Stack::new(&cm, None)?
        .cloudnativepg_cluster()
        .ok_or("no Cluster")?;
    let cluster = serde_json::to_value(cluster)?;
    assert!(
        cluster["metadata"]["ownerReferences"].is_null(),
        "{cluster}"
    );
    assert_eq!(
        cluster["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "cacheme-operator"
    );
    // CloudNativePG's field is `storageClass`, not the claim's `storageClassName`.
    assert_eq!(
        cluster["spec"]["storage"],
        json!({"size": "2Gi", "storageClass": "fast"})
    );
    assert_eq!(
        cluster["spec"]["imageName"],
        "ghcr.io/cloudnative-pg/postgresql:17.5"
    );
    Ok(())
}

#[test]
fn without_cloudnativepg_there_is_no_cluster() -> TestResult {
    for name in ["minimal", "full", "external", "redis-cluster"] {
        let d = Stack::new(&sample(name)?, Some("[]"))?.desired()?;
        assert!(d.cloudnativepg.is_none(), "{name}");
    }
    Ok(())
}

#[test]
fn the_api_reads_its_database_url_from_cloudnativepg_s_app_secret() -> TestResult {
    let env = api_env(&sample("cloudnativepg")?)?;
    assert_eq!(
        secret_ref(&env, "DATABASE_URL"),
        Some(("pg-postgres-app".to_string(), "uri".to_string()))
    );
    // No password of the managed PostgreSQL (its Secret does not exist).
    assert!(env_var(&env, "POSTGRES_USER").is_none());
    assert!(env_var(&env, "POSTGRES_PASSWORD").is_none());
    let stores: Vec<&EnvVar> = env
        .iter()
        .filter(|e| e.name.starts_with("DATABASE") || e.name.starts_with("REDIS"))
        .collect();
    insta::assert_yaml_snapshot!("cloudnativepg__api_store_env", stores);
    Ok(())
}

#[test]
fn a_redis_cluster_sets_redis_mode_and_keeps_the_url_secret() -> TestResult {
    let env = api_env(&sample("redis-cluster")?)?;
    assert_eq!(
        env_var(&env, "REDIS_MODE").and_then(|e| e.value.as_deref()),
        Some("cluster")
    );
    assert_eq!(
        secret_ref(&env, "REDIS_URL"),
        Some(("shop-redis-cluster".to_string(), "urls".to_string()))
    );
    assert!(env_var(&env, "REDIS_PASSWORD").is_none());
    let stores: Vec<&EnvVar> = env
        .iter()
        .filter(|e| e.name.starts_with("DATABASE") || e.name.starts_with("REDIS"))
        .collect();
    insta::assert_yaml_snapshot!("redis_cluster__api_store_env", stores);

    // A single external Redis (the default mode) and a managed one: no REDIS_MODE.
    for name in ["external", "minimal"] {
        let env = api_env(&sample(name)?)?;
        assert!(env_var(&env, "REDIS_MODE").is_none(), "{name}");
    }
    Ok(())
}

#[test]
fn the_redis_mode_changes_the_api_pod_template() -> TestResult {
    let mut cm = sample("redis-cluster")?;
    let template = |cm: &CacheMe| -> TestResult<Value> {
        Ok(serde_json::to_value(
            Stack::new(cm, None)?.api_deployment()?.spec.template,
        )?)
    };
    let cluster = template(&cm)?;
    if let Some(external) = cm.spec.redis.external.as_mut() {
        external.mode = cacheme_operator::crd::RedisMode::Single;
    }
    assert_ne!(
        cluster,
        template(&cm)?,
        "a mode change must roll the API out"
    );
    Ok(())
}

#[test]
fn pgadmin_points_at_cloudnativepg_s_read_write_service() -> TestResult {
    let mut cm = sample("cloudnativepg")?;
    cm.spec.pg_admin.enabled = true;
    let config = Stack::new(&cm, None)?.pgadmin_config_map()?;
    let servers = config
        .data
        .as_ref()
        .and_then(|d| d.get("servers.json"))
        .ok_or("no servers.json")?;
    let servers: Value = serde_json::from_str(servers)?;
    assert_eq!(servers["Servers"]["1"]["Host"], "pg-postgres-rw");
    Ok(())
}

/// D5 (issue #22): every instance used the API's default prefix `cacheme`, so two
/// CacheMe resources on one external Redis read, invalidated and cleared each other's
/// entries. Each instance now gets its own prefix; a managed Redis needs none.
#[test]
fn two_instances_on_one_external_redis_never_share_a_key_prefix() -> TestResult {
    let prefix = |cm: &CacheMe| -> TestResult<Option<String>> {
        Ok(env_var(&api_env(cm)?, "CACHE_KEY_PREFIX").and_then(|e| e.value.clone()))
    };
    let mut shop = sample("external")?;
    let mut other = shop.clone();
    other.metadata.name = Some("other".into());
    let mut elsewhere = shop.clone();
    elsewhere.metadata.namespace = Some("elsewhere".into());
    let prefixes: BTreeSet<Option<String>> = [&shop, &other, &elsewhere]
        .into_iter()
        .map(prefix)
        .collect::<TestResult<_>>()?;
    assert_eq!(prefixes.len(), 3, "{prefixes:?}");
    let namespace = shop.metadata.namespace.clone().unwrap_or_default();
    let name = shop.metadata.name.clone().unwrap_or_default();
    assert_eq!(prefix(&shop)?, Some(format!("cacheme.{namespace}.{name}")));

    // A name too long for the API's 64 characters: a hash, still unique and valid.
    let mut long = shop.clone();
    long.metadata.name = Some("n".repeat(60));
    let hashed = prefix(&long)?.ok_or("a prefix")?;
    assert!(
        hashed.len() <= 64 && hashed.starts_with("cacheme."),
        "{hashed}"
    );
    assert!(
        hashed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
        "{hashed}"
    );
    long.metadata.name = Some("m".repeat(60));
    assert_ne!(prefix(&long)?, Some(hashed));

    // Chosen in the spec: taken as it is.
    if let Some(external) = shop.spec.redis.external.as_mut() {
        external.key_prefix = Some("team-a".into());
    }
    assert_eq!(prefix(&shop)?, Some("team-a".into()));

    // A managed Redis serves one instance: the API's default.
    assert_eq!(prefix(&sample("minimal")?)?, None);
    Ok(())
}
