//! The in-process tier (L1): repeat reads, and staying in step with other replicas.

use std::{sync::Arc, time::Duration};

use cacheme_testsupport::RedisServer;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    TestDatabase, eventually, shared_redis_url, spawn_app_with, start, test_config,
};

#[tokio::test]
async fn the_memory_tier_answers_repeat_reads() {
    let app = spawn_app_with(|_| {}).await;
    app.wait_for_memory_tier(true).await;
    assert!(
        app.get("/products/8")
            .await
            .body
            .get("cache_tier")
            .is_none()
    );
    assert_eq!(app.get("/products/8").await.body["cache_tier"], "memory");
    let stats = app.stats().await;
    assert_eq!(stats["tiers"]["memory"]["hits"], 1, "{stats}");
}

#[tokio::test]
async fn the_memory_tier_stays_in_use_while_nothing_changes() {
    let app = spawn_app_with(|c| c.l1.ttl_ms = 600_000).await;
    app.wait_for_memory_tier(true).await;
    app.get("/products/8").await;
    assert_eq!(app.get("/products/8").await.body["cache_tier"], "memory");
    // Several idle pings of the invalidation channel later, the entry must still be there.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(app.get("/products/8").await.body["cache_tier"], "memory");
    assert_eq!(app.get("/health").await.body["memory_tier"], true);
}

#[tokio::test]
async fn a_stampede_right_after_a_clear_still_costs_one_query() {
    let app = Arc::new(spawn_app_with(|c| c.database.simulated_latency_ms = 300).await);
    app.wait_for_memory_tier(true).await;
    app.get("/products/12").await;
    assert_eq!(app.delete("/cache/clear").await.status, 200);
    let before = app.stats().await["db_queries"].as_u64().expect("count");
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.get("/products/12").await.status })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.expect("task"), 200);
    }
    let after = app.stats().await["db_queries"].as_u64().expect("count");
    assert_eq!(after - before, 1);
}

#[tokio::test]
async fn a_write_on_one_replica_reaches_the_other_replicas_memory_tier() {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &shared_redis_url());
    // A long L1 TTL: only the invalidation message can explain a quick convergence.
    config.l1.ttl_ms = 600_000;
    let a = start(config.clone(), Some(db)).await;
    let b = start(config, None).await;
    a.wait_for_memory_tier(true).await;
    b.wait_for_memory_tier(true).await;

    for app in [&a, &b] {
        app.get("/products/9").await;
        assert_eq!(app.get("/products/9").await.body["cache_tier"], "memory");
    }
    let write = a
        .send(
            Method::PATCH,
            "/products/9",
            Some(json!({"name": "Dell XPS 14"})),
        )
        .await;
    assert_eq!(write.status, 200);
    assert_eq!(
        a.get("/products/9").await.body["name"],
        "Dell XPS 14",
        "the writer never reads its old value"
    );

    let started = std::time::Instant::now();
    eventually("replica B drops its L1 entry", || async {
        b.get("/products/9").await.body["name"] == "Dell XPS 14"
    })
    .await;
    eprintln!("replica B converged in {:?}", started.elapsed());
}

#[tokio::test]
async fn losing_the_invalidation_channel_flushes_and_bypasses_the_memory_tier() {
    let mut redis = RedisServer::start().expect("own redis-server");
    let redis_url = redis.url();
    let app = spawn_app_with(|c| {
        c.redis.url = redis_url.into();
        c.redis.timeout_ms = 300;
        c.l1.ttl_ms = 600_000;
    })
    .await;
    app.wait_for_memory_tier(true).await;
    app.get("/products/10").await;
    assert_eq!(app.get("/products/10").await.body["cache_tier"], "memory");
    let stats = app.get("/cache/stats").await.body;
    assert_eq!(stats["memory_tier"]["entries"], 1, "{stats}");

    // The lost channel, not the lease running out, must empty L1: the flush is what
    // makes a visible loss cost nothing, where the lease alone leaves L1 in use for up
    // to 750 ms after the last answered ping (the `lost-does-nothing` mutation, which
    // the checker's 1 s bound cannot see; `cargo xtask chaos --mutations` runs this test
    // with it and expects it to fail).
    redis.kill().expect("kill");
    app.wait_for_memory_tier(false).await;
    let stats = app.get("/cache/stats").await.body;
    assert_eq!(stats["memory_tier"]["entries"], 0, "{stats}");
    assert_eq!(app.get("/products/10").await.body["source"], "database");

    redis.restart().expect("restart");
    app.wait_for_memory_tier(true).await;
}
