//! A lost master holds back only its own owed invalidations, and a master restarted
//! from older data does not bring back an invalidated entry.

use cacheme_api::RedisMode;
use cacheme_testsupport::RedisCluster;
use serde_json::json;

use super::*;
use crate::helpers::{TestDatabase, eventually, start, test_config};

/// A5: the relay stopped at the first invalidation that failed, so with one master down
/// the owed invalidations of every other master waited behind it (and the outbox grew)
/// until the failover. Now only the lost master's ids wait.
#[tokio::test]
async fn a_lost_master_holds_back_only_its_own_owed_invalidations() {
    let mut cluster = start_cluster().await;
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &cluster.urls().join(","));
    config.redis.mode = RedisMode::Cluster;
    config.redis.timeout_ms = 200;
    let app = start(config, Some(db)).await;
    for id in 1..=15 {
        source(&app, id).await;
    }
    let owners: Vec<(i32, u16)> = (1..=15)
        .map(|id| (id, owner(&cluster, &app.product_key(id))))
        .collect();
    let (lost_id, victim) = owners[0];
    let (healthy_id, _) = *owners
        .iter()
        .find(|(_, port)| *port != victim)
        .expect("products spread over masters");
    cluster.kill(victim).expect("kill a master");

    // Owed invalidations, the lost master's first, both past the relay's grace period.
    for id in [lost_id, healthy_id] {
        sqlx::query(
            "INSERT INTO cache_invalidations (product_id, created_at) \
             VALUES ($1, now() - interval '1 minute')",
        )
        .bind(id)
        .execute(&app.pool)
        .await
        .expect("an owed invalidation");
    }
    let owed = |id: i32| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM cache_invalidations WHERE product_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("count owed rows")
        }
    };
    // Well within the 2 s before the lost master's replica takes over.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(
        owed(healthy_id).await,
        0,
        "product {healthy_id} (a healthy master) is still owed behind product {lost_id}"
    );
}

/// D2 of the second consistency review, in cluster mode: a master restarted from its own
/// snapshot brings back an entry, its generation and its bucket's epoch of before a write.
/// Each bucket's epoch is tied to its master's `run_id`, so the entry is never served.
#[tokio::test]
async fn a_master_restarted_from_older_data_does_not_bring_back_an_invalidated_entry() {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .expect("cluster start task")
        .expect("a Redis Cluster starts");
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &cluster.urls().join(","));
    config.redis.mode = RedisMode::Cluster;
    // So the window below also sees what Redis serves once L1's copies expire.
    config.l1.ttl_ms = 300;
    let a = start(config.clone(), Some(db)).await;
    let b = start(config, None).await;
    let original = a.get("/products/1").await.body["name"].clone();
    for app in [&a, &b] {
        app.get("/products/1").await;
        assert_eq!(source(app, 1).await, "cache");
    }
    let key = a.product_key(1);
    let master = owner(&cluster, &key);
    cluster.cli(master, &["SAVE"]).expect("SAVE");
    let write = a
        .send(
            reqwest::Method::PATCH,
            "/products/1",
            Some(json!({"name": "Restored-away name"})),
        )
        .await;
    assert_eq!(write.status, 200, "{}", write.body);
    // The master dies without saving again and starts from its snapshot; the replicas
    // keep running meanwhile (a blocked test thread would freeze them, as no real
    // process is).
    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.restart(master)?;
        cluster.wait_ok(std::time::Duration::from_secs(20))?;
        anyhow::Ok(cluster)
    })
    .await
    .expect("restart task")
    .expect("the master restarts and the cluster is whole again");
    let restored = cluster.cli(master, &["GET", &key]).expect("GET");
    let restored_name = serde_json::from_str::<serde_json::Value>(restored.trim())
        .map(|entry| entry["name"].clone())
        .unwrap_or_default();
    assert_eq!(
        restored_name, original,
        "the restarted master holds the old entry: {restored}"
    );

    let restarted = std::time::Instant::now();
    let mut stale = Vec::new();
    while restarted.elapsed() < std::time::Duration::from_secs(4) {
        for (replica, app) in [("writer", &a), ("other replica", &b)] {
            let answer = app.get("/products/1").await;
            if answer.status == 200 && answer.body["name"] != "Restored-away name" {
                stale.push(format!(
                    "{replica} at {:?}: {} from {}",
                    restarted.elapsed(),
                    answer.body["name"],
                    answer.body["source"]
                ));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        stale.is_empty(),
        "invalidated entry served again: {stale:?}"
    );
    eventually("the cache works again", || async {
        a.get("/products/1").await.body["source"] == "cache"
    })
    .await;
}
