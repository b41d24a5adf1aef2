//! Cluster mode on a Redis Cluster of the test's own (3 masters, 1 replica each): a lost
//! master switches off only the buckets it owned, `/health` names it, and once its replica
//! has taken over the cache serves those buckets again, with writes read back. The rest
//! of the suite runs against a cluster too with `CACHEME_TEST_REDIS=cluster` (`cargo xtask
//! test` does both).
//!
//! Here the lost master; `slot_migration`: a bucket's slot moving between masters;
//! `lost_data`: owed invalidations and a master restarted from older data.

mod lost_data;
mod slot_migration;

use cacheme_api::RedisMode;
use cacheme_testsupport::RedisCluster;
use serde_json::json;

use crate::helpers::{TestApp, TestDatabase, eventually, start, test_config};

pub(super) async fn start_cluster() -> RedisCluster {
    tokio::task::spawn_blocking(|| RedisCluster::start(3, 1))
        .await
        .expect("cluster start task")
        .expect("a Redis Cluster starts")
}

/// The master holding `key` (the one where it exists).
pub(super) fn owner(cluster: &RedisCluster, key: &str) -> u16 {
    let masters = cluster.masters().expect("masters");
    masters
        .into_iter()
        .find(|&port| {
            cluster
                .cli(port, &["exists", key])
                .is_ok_and(|out| out.trim() == "1")
        })
        .unwrap_or_else(|| panic!("no master holds {key}"))
}

pub(super) async fn source(app: &TestApp, id: i32) -> String {
    let answer = app.get(&format!("/products/{id}")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["source"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_lost_master_switches_off_only_its_buckets_until_its_replica_takes_over() {
    let mut cluster = start_cluster().await;
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &cluster.urls().join(","));
    config.redis.mode = RedisMode::Cluster;
    // Only Redis: a memory-tier hit would hide which breaker is open.
    config.l1.enabled = false;
    config.redis.breaker_failures = 1;
    config.redis.breaker_failing_ms = 0;
    config.redis.breaker_cooldown_ms = 500;
    let app = start(config, Some(db)).await;

    for id in 1..=15 {
        assert_eq!(source(&app, id).await, "database");
        assert_eq!(source(&app, id).await, "cache");
    }
    let owners: Vec<(i32, u16)> = (1..=15)
        .map(|id| (id, owner(&cluster, &app.product_key(id))))
        .collect();
    let victim = owners[0].1;
    let elsewhere: Vec<i32> = owners
        .iter()
        .filter(|(_, port)| *port != victim)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        !elsewhere.is_empty(),
        "products spread over masters: {owners:?}"
    );

    let stats = app.get("/cache/stats").await;
    assert_eq!(
        stats.body["cache_stats"]["cluster_masters"], 3,
        "{:?}",
        stats.body
    );
    assert_eq!(stats.body["redis"], "connected");

    cluster.kill(victim).expect("kill a master");
    let health = app.get("/health").await;
    assert_eq!(health.body["status"], "degraded", "{:?}", health.body);
    let nodes = health.body["redis_nodes"].as_array().expect("nodes listed");
    let down: Vec<&serde_json::Value> = nodes.iter().filter(|n| n["status"] == "down").collect();
    assert_eq!(down.len(), 1, "{nodes:?}");
    assert_eq!(down[0]["node"], format!("127.0.0.1:{victim}"));

    // The lost master's product comes from PostgreSQL; the others stay cached, before and
    // after its breaker opened.
    for &id in &elsewhere {
        assert_eq!(source(&app, id).await, "cache", "product {id} before");
    }
    assert_eq!(source(&app, 1).await, "database");
    assert_eq!(source(&app, 1).await, "database");
    for &id in &elsewhere {
        assert_eq!(source(&app, id).await, "cache", "product {id} after");
    }

    // The replica takes over (node timeout 2 s): product 1 is cached again, and a write is
    // read back at once.
    eventually("the lost master's buckets are cached again", || async {
        source(&app, 1).await == "cache"
    })
    .await;
    let renamed = app
        .send(
            reqwest::Method::PATCH,
            "/products/1",
            Some(json!({"name": "After failover"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(app.get("/products/1").await.body["name"], "After failover");
    // The promoted master has no replica left: each invalidation waits for an
    // acknowledgement that cannot come (at most 100 ms), then is accepted; reads bypass
    // the cache meanwhile.
    eventually("product 1 is cached again after the write", || async {
        source(&app, 1).await == "cache"
    })
    .await;
    assert_eq!(app.get("/products/1").await.body["name"], "After failover");

    eventually("health is back to healthy", || async {
        app.get("/health").await.body["status"] == "healthy"
    })
    .await;
    let cleared = app.delete("/cache/clear").await;
    assert_eq!(cleared.status, 200, "{:?}", cleared.body);
    for (id, _) in &owners {
        assert_eq!(source(&app, *id).await, "database", "product {id} cleared");
    }
}
