//! Which CacheMes a change of a ConfigMap reconciles: those whose `seedData` names it,
//! in its namespace.

use kube::runtime::{reflector, watcher};
use serde_json::json;

use super::tests::*;
use super::*;
use crate::fixtures::scripted::*;

/// Names (`namespace/name`) of the CacheMes a change of `config_map` reconciles.
fn seed_users_of<C: Resource>(store: &Store<CacheMe>, config_map: &C) -> Vec<String> {
    let mut names: Vec<String> = seed_config_map_users(store, config_map)
        .into_iter()
        .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
        .collect();
    names.sort();
    names
}

#[test]
fn a_seed_config_map_change_reconciles_the_cachemes_that_reference_it() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::core::PartialObjectMetaExt;

    let (store, mut writer) = reflector::store::<CacheMe>();
    let mut elsewhere = cacheme(
        "elsewhere",
        json!({"seedData": {"configMapRef": {"name": "products"}}}),
    );
    elsewhere.metadata.namespace = Some("other".to_string());
    for cm in [
        cacheme(
            "by-name",
            json!({"seedData": {"configMapRef": {"name": "products"}}}),
        ),
        cacheme(
            "with-key",
            json!({"seedData": {"configMapRef": {"name": "products", "key": "list.json"}}}),
        ),
        cacheme(
            "other-name",
            json!({"seedData": {"configMapRef": {"name": "more-products"}}}),
        ),
        cacheme(
            "inline",
            json!({"seedData": {"products": [{"id": 1, "name": "Mug", "price": 4.5}]}}),
        ),
        cacheme("no-seed", json!({})),
        elsewhere,
    ] {
        writer.apply_watcher_event(&watcher::Event::Apply(cm));
    }
    let meta = |namespace: Option<&str>, name: &str| ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        ..ObjectMeta::default()
    };
    let config_map = |namespace: Option<&str>, name: &str| ConfigMap {
        metadata: meta(namespace, name),
        ..ConfigMap::default()
    };

    // Positive: every CacheMe of the namespace naming it, whatever the key.
    assert_eq!(
        seed_users_of(&store, &config_map(Some(NS), "products")),
        ["cacheme/by-name", "cacheme/with-key"]
    );
    assert_eq!(
        seed_users_of(&store, &config_map(Some(NS), "more-products")),
        ["cacheme/other-name"]
    );
    assert_eq!(
        seed_users_of(&store, &config_map(Some("other"), "products")),
        ["other/elsewhere"]
    );
    // The watch only delivers metadata: same answer.
    assert_eq!(
        seed_users_of(
            &store,
            &meta(Some(NS), "products").into_response_partial::<ConfigMap>()
        ),
        ["cacheme/by-name", "cacheme/with-key"]
    );

    // Negative: a name no CacheMe references, the same name in a namespace
    // without a referencing CacheMe, the operator's own ConfigMap of inline
    // seed data (an owned child, reconciled through its owner reference),
    // and a ConfigMap without a namespace.
    assert!(seed_users_of(&store, &config_map(Some(NS), "unrelated")).is_empty());
    assert!(seed_users_of(&store, &config_map(Some("third"), "products")).is_empty());
    assert!(seed_users_of(&store, &config_map(Some(NS), "inline-seed")).is_empty());
    assert!(seed_users_of(&store, &config_map(None, "products")).is_empty());

    // A CacheMe that stops referencing it is no longer mapped.
    writer.apply_watcher_event(&watcher::Event::Apply(cacheme(
        "by-name",
        json!({"seedData": {"products": []}}),
    )));
    assert_eq!(
        seed_users_of(&store, &config_map(Some(NS), "products")),
        ["cacheme/with-key"]
    );
}
