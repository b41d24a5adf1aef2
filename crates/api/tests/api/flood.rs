//! A flood of made-up ids (consistency review A3): above the highest existing id a miss
//! answers 404 without a query, a load task or a Redis key, and the bound never hides a
//! product created on another replica. Below it, loads are bounded (`DB_MAX_LOADS`),
//! counting those whose requests stopped waiting.

use std::{sync::Arc, time::Duration};

use cacheme_api::Hooks;
use redis::AsyncCommands as _;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    TestDatabase, pause_call, pause_once, shared_redis_url, spawn_app, start, start_with_hooks,
    test_config,
};

/// A request that stops waiting (its deadline passed, or its HTTP/2 stream was reset)
/// frees its connection's place but not its load's: the load runs on, and holds its
/// permit to its end. With every permit held, a miss of another product answers 503 at
/// once instead of queueing one more load; a request for the product being loaded joins
/// that load and is answered. (An HTTP/1.1 client that only goes away does not stop its
/// request here: half-close lets it run on; the deadline does.)
#[tokio::test]
async fn a_load_whose_request_gave_up_still_counts_against_the_bound() {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &shared_redis_url());
    config.database.max_loads = 1;
    config.http.request_timeout_ms = 1000;
    let (hook, reached, release) = pause_once(3);
    let hooks = Hooks {
        before_fill: Some(hook),
        ..Hooks::default()
    };
    let app = Arc::new(start_with_hooks(config, Some(db), hooks).await);

    let gave_up = app.get("/products/3").await;
    gave_up.assert_problem(503);
    assert_eq!(
        gave_up.problem_slug(),
        "request-timeout",
        "the load of product 3 is paused, so its request passes its deadline: {}",
        gave_up.body
    );
    reached
        .await
        .expect("the load of product 3 runs on without its request");

    let refused = app.get("/products/4").await;
    let detail = refused.assert_problem(503);
    assert_eq!(refused.problem_slug(), "too-many-loads", "{}", refused.body);
    assert!(detail.contains("loaded"), "{detail}");
    assert_eq!(refused.headers["retry-after"], "5");
    let stats = app.get("/cache/stats").await.body;
    assert_eq!(stats["app_stats"]["loads_refused"], 1, "{stats}");
    assert_eq!(stats["loads_running"], 1, "{stats}");
    assert_eq!(stats["loads_in_flight"], 1, "{stats}");

    // A request for product 3 joins the running load (once past Redis, it is a few
    // steps from it), and is answered when the load is let go.
    let redis_misses =
        |stats: &serde_json::Value| stats["tiers"]["redis"]["misses"].as_u64().expect("a count");
    let before = redis_misses(&app.stats().await);
    let joiner = {
        let app = app.clone();
        tokio::spawn(async move { app.get("/products/3").await })
    };
    for attempt in 0.. {
        if redis_misses(&app.stats().await) != before {
            break;
        }
        assert!(
            attempt < 300 && !joiner.is_finished(),
            "the second request for product 3 never reached Redis"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.send(()).expect("release the load of product 3");
    let joined = joiner.await.expect("task");
    assert_eq!(joined.status, 200, "{}", joined.body);
    assert_eq!(joined.body["id"], 3);
    let stats = app.get("/cache/stats").await.body;
    assert_eq!(
        stats["app_stats"]["coalesced"], 1,
        "the second request joined the load: {stats}"
    );
    assert_eq!(stats["loads_running"], 0, "the permit is back: {stats}");

    let answered = app.get("/products/4").await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(app.stats().await["loads_refused"], 1);
}

/// Background refreshes of stale entries, which nobody waits for, may hold at most half
/// of the load places: with `DB_MAX_LOADS` 2 and one refresh paused, a second stale
/// entry's refresh is skipped (the entry is still served stale) and a miss still gets the
/// other place.
#[tokio::test]
async fn refreshes_cannot_take_the_places_misses_need() {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &shared_redis_url());
    config.database.max_loads = 2;
    config.cache.ttl_seconds = 1;
    config.cache.ttl_jitter_percent = 0;
    config.cache.stale_while_revalidate_seconds = 60;
    config.cache.stale_if_error_seconds = 0;
    config.l1.enabled = false;
    // Each product's second fill is its refresh's: 1's is paused, and so would 2's be.
    let (pause_1, refreshing_1, release_1) = pause_call(1, 2);
    let (pause_2, _refreshing_2, _release_2) = pause_call(2, 2);
    let hooks = Hooks {
        before_fill: Some(Arc::new(move |id| {
            let (one, two) = (pause_1(id), pause_2(id));
            Box::pin(async move {
                one.await;
                two.await;
            })
        })),
        ..Hooks::default()
    };
    let app = start_with_hooks(config, Some(db), hooks).await;
    for id in [1, 2] {
        let filled = app.get(&format!("/products/{id}")).await;
        assert_eq!(filled.body["source"], "database", "{}", filled.body);
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;

    assert_eq!(app.get("/products/1").await.body["source"], "cache");
    refreshing_1
        .await
        .expect("the refresh of product 1 reaches its fill");
    assert_eq!(app.get("/products/2").await.body["source"], "cache");
    let mut stats = app.get("/cache/stats").await.body;
    for _ in 0..300 {
        if stats["app_stats"]["refreshes_skipped"] != 0 || stats["loads_running"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        stats = app.get("/cache/stats").await.body;
    }
    assert_eq!(
        stats["app_stats"]["refreshes_skipped"], 1,
        "the refresh of product 2 is skipped: {stats}"
    );
    assert_eq!(stats["app_stats"]["loads_refused"], 0, "{stats}");
    assert_eq!(stats["refreshes_running"], 1, "{stats}");
    assert_eq!(stats["loads_running"], 1, "{stats}");

    let missed = app.get("/products/3").await;
    assert_eq!(missed.status, 200, "{}", missed.body);
    assert_eq!(missed.body["source"], "database");

    release_1
        .send(())
        .expect("release the refresh of product 1");
    let mut stats = app.get("/cache/stats").await.body;
    for _ in 0..300 {
        if stats["loads_running"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        stats = app.get("/cache/stats").await.body;
    }
    assert_eq!(stats["loads_running"], 0, "{stats}");
    assert_eq!(stats["refreshes_running"], 0, "{stats}");
}

#[tokio::test]
async fn ids_above_the_highest_cost_no_query_and_no_redis_key() {
    let app = spawn_app().await;
    let before = app.stats().await["db_queries"].as_u64().expect("count");
    for id in 1000..1200 {
        app.get(&format!("/products/{id}"))
            .await
            .assert_problem(404);
    }
    let stats = app.stats().await;
    assert_eq!(
        stats["db_queries"].as_u64().expect("count") - before,
        0,
        "{stats}"
    );
    assert_eq!(stats["beyond_last_id"], 200, "{stats}");
    let mut redis = app.redis().await;
    for id in [1000, 1100, 1199] {
        let exists: bool = redis.exists(app.product_key(id)).await.expect("EXISTS");
        assert!(!exists, "a negative entry for {id}");
    }
    // Ids at or below the highest still go to PostgreSQL (and are remembered).
    app.get("/products/15").await;
    assert_eq!(
        app.stats().await["db_queries"].as_u64().expect("count") - before,
        1
    );
}

#[tokio::test]
async fn a_product_created_on_another_replica_is_found_at_once() {
    let a = spawn_app().await;
    let b = start(a.config.clone(), None).await;
    // B learns that nothing exists above 15.
    b.get("/products/16").await.assert_problem(404);
    let created = a
        .send(Method::POST, "/products", Some(json!({"name": "New on A"})))
        .await;
    assert_eq!(created.body["id"], 16, "{}", created.body);
    let read = b.get("/products/16").await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["name"], "New on A");
}
