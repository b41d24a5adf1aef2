//! Expiry: negative caching, TTL jitter, stale-while-revalidate and stale-if-error.

use std::time::Duration;

use redis::AsyncCommands;

use crate::helpers::{TestApp, eventually, shared_redis_url, spawn_app_with, start, test_config};

/// A product far above the seeded ones, so 4242 is a gap below the highest id (above
/// it, misses answer 404 without asking PostgreSQL or remembering anything).
async fn far_product(app: &TestApp) {
    sqlx::query("INSERT INTO products (id, name) VALUES (5000, 'far')")
        .execute(&app.pool)
        .await
        .expect("inserted");
}

#[tokio::test]
async fn unknown_ids_are_remembered_as_absent_for_the_negative_ttl() {
    let app = spawn_app_with(|c| c.cache.negative_ttl_seconds = 40).await;
    far_product(&app).await;
    app.get("/products/4242").await.assert_problem(404);
    app.get("/products/4242").await.assert_problem(404);
    app.get("/products/4242").await.assert_problem(404);
    let stats = app.stats().await;
    assert_eq!(stats["db_queries"], 1, "{stats}");
    assert_eq!(stats["negative_hits"], 2, "{stats}");
    let entry = app.get("/cache/entries/4242").await;
    assert_eq!(entry.body["negative"], true);
    let ttl = entry.body["ttl_seconds"].as_f64().expect("ttl");
    assert!(ttl > 0.0 && ttl <= 40.0, "{ttl}");
}

#[tokio::test]
async fn negative_caching_can_be_turned_off() {
    let app = spawn_app_with(|c| c.cache.negative_ttl_seconds = 0).await;
    far_product(&app).await;
    app.get("/products/4242").await.assert_problem(404);
    app.get("/products/4242").await.assert_problem(404);
    assert_eq!(app.stats().await["db_queries"], 2);
}

#[tokio::test]
async fn ttls_are_jittered_within_the_band() {
    let app = spawn_app_with(|c| {
        c.cache.ttl_seconds = 1000;
        c.cache.ttl_jitter_percent = 10;
        c.cache.stale_while_revalidate_seconds = 0;
        c.cache.stale_if_error_seconds = 0;
    })
    .await;
    let mut redis = app.redis().await;
    let mut ttls = Vec::new();
    for id in 1..=12 {
        app.get(&format!("/products/{id}")).await;
        let ttl: i64 = redis.ttl(app.product_key(id)).await.expect("ttl");
        assert!((895..=1100).contains(&ttl), "{ttl}");
        ttls.push(ttl);
    }
    ttls.sort_unstable();
    ttls.dedup();
    assert!(ttls.len() > 3, "TTLs are not spread: {ttls:?}");
}

async fn rename_behind_the_cache(app: &TestApp, id: i32, name: &str) {
    sqlx::query("UPDATE products SET name = $2 WHERE id = $1")
        .bind(id)
        .bind(name)
        .execute(&app.pool)
        .await
        .expect("update");
}

#[tokio::test]
async fn a_soft_expired_entry_is_served_while_one_refresh_runs() {
    let app = spawn_app_with(|c| {
        c.cache.ttl_seconds = 1;
        c.cache.ttl_jitter_percent = 0;
        c.cache.stale_while_revalidate_seconds = 60;
        c.cache.stale_if_error_seconds = 0;
        c.l1.enabled = false;
    })
    .await;
    assert_eq!(app.get("/products/5").await.body["source"], "database");
    rename_behind_the_cache(&app, 5, "Renamed TV").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let stale = app.get("/products/5").await;
    assert_eq!(stale.body["source"], "cache");
    assert_eq!(
        stale.body["name"], "Samsung 65\" QLED TV",
        "served stale, not waited for the refresh"
    );
    assert_eq!(app.stats().await["stale_served"], 1);
    eventually("the background refresh", || async {
        app.get("/products/5").await.body["name"] == "Renamed TV"
    })
    .await;
}

#[tokio::test]
async fn without_a_stale_window_an_expired_entry_is_read_again() {
    let app = spawn_app_with(|c| {
        c.cache.ttl_seconds = 1;
        c.cache.ttl_jitter_percent = 0;
        c.cache.stale_while_revalidate_seconds = 0;
        c.cache.stale_if_error_seconds = 0;
        c.l1.enabled = false;
    })
    .await;
    app.get("/products/5").await;
    rename_behind_the_cache(&app, 5, "Renamed TV").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let fresh = app.get("/products/5").await;
    assert_eq!(fresh.body["source"], "database");
    assert_eq!(fresh.body["name"], "Renamed TV");
}

#[tokio::test]
async fn stale_if_error_serves_an_expired_entry_when_postgres_is_down() {
    let tune = |c: &mut cacheme_api::Config| {
        c.cache.ttl_seconds = 1;
        c.cache.ttl_jitter_percent = 0;
        c.cache.stale_while_revalidate_seconds = 0;
        c.cache.stale_if_error_seconds = 120;
        c.l1.enabled = false;
    };
    let working = spawn_app_with(tune).await;
    assert_eq!(working.get("/products/6").await.body["source"], "database");
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let dead_db = format!(
        "postgres://postgres@127.0.0.1:{}/x",
        cacheme_testsupport::free_port().expect("port")
    );
    let mut config = test_config(&dead_db, &shared_redis_url());
    tune(&mut config);
    config.cache.key_prefix = working.config.cache.key_prefix.clone();
    config.database.acquire_timeout_ms = 300;
    let broken = start(config, None).await;
    let answer = broken.get("/products/6").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["source"], "cache");
    assert_eq!(broken.stats().await["stale_if_error_served"], 1);
    broken.get("/products/7").await.assert_problem(503);

    // With PostgreSQL up, the expired entry is not served: the row is read again.
    assert_eq!(working.get("/products/6").await.body["source"], "database");
}
