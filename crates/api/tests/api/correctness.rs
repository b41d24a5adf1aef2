//! Cache correctness under concurrency and failure: stale fills, single flight, the
//! breaker, delayed invalidations. Expiry windows are in `expiry.rs`, L1 across replicas
//! in `memory_tier.rs`.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use cacheme_api::Hooks;
use cacheme_testsupport::RedisServer;
use futures::FutureExt;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::helpers::{
    Reached, TestDatabase, eventually, pause_once, shared_redis_url, spawn_app_with,
    start_with_hooks, test_config,
};

/// A hook that stops the first fill of `id` until released, and says when it got there.
fn pause_first_fill(id: i32) -> (Hooks, Reached, oneshot::Sender<()>) {
    let (hook, reached, release) = pause_once(id);
    let hooks = Hooks {
        before_fill: Some(hook),
        ..Hooks::default()
    };
    (hooks, reached, release)
}

async fn stale_fill_is_refused(l1_enabled: bool) {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &shared_redis_url());
    config.l1.enabled = l1_enabled;
    let (hooks, reached, release) = pause_first_fill(2);
    let app = start_with_hooks(config, Some(db), hooks).await;
    if l1_enabled {
        app.wait_for_memory_tier(true).await;
    }

    // The reader misses, reads the old row, and stops just before filling the cache.
    let reader = {
        let client = app.client.clone();
        let url = app.url("/products/2");
        tokio::spawn(async move { client.get(url).send().await?.json::<Value>().await })
    };
    reached.await.expect("the reader reached its fill");

    // The writer commits and invalidates meanwhile.
    let write = app
        .send(
            Method::PATCH,
            "/products/2",
            Some(json!({"name": "iPhone 16"})),
        )
        .await;
    assert_eq!(write.status, 200, "{}", write.body);

    release.send(()).expect("release the reader");
    let old = reader.await.expect("task").expect("reader answered");
    assert_eq!(
        old.get("name"),
        Some(&json!("iPhone 15 Pro")),
        "the reader began before the write"
    );

    // Its old row must not have reached either tier.
    assert_eq!(app.stats().await["fills_refused"], 1);
    let mut redis = app.redis().await;
    let cached: Option<String> = redis.get(app.product_key(2)).await.expect("get");
    assert_eq!(cached, None, "the refused fill left nothing in Redis");
    for _ in 0..3 {
        assert_eq!(app.get("/products/2").await.body["name"], "iPhone 16");
    }
}

#[tokio::test]
async fn a_reader_that_loaded_an_old_row_cannot_cache_it_after_a_write() {
    stale_fill_is_refused(false).await;
}

#[tokio::test]
async fn the_same_race_with_the_memory_tier_on() {
    stale_fill_is_refused(true).await;
}

/// A tiny deterministic generator, so a failing run can be repeated.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[tokio::test]
async fn concurrent_writers_and_readers_leave_every_cached_value_equal_to_its_row() {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &shared_redis_url());
    config.database.simulated_latency_ms = 2;
    // Random pauses between reading a row and filling widen the race window.
    let delays = Arc::new(Mutex::new(Lcg(7)));
    let hooks = Hooks {
        before_fill: Some(Arc::new(move |_id| {
            let ms = delays.lock().map(|mut d| d.next(25)).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).boxed()
        })),
        ..Hooks::default()
    };
    let app = Arc::new(start_with_hooks(config, Some(db), hooks).await);
    app.wait_for_memory_tier(true).await;
    let ids = [1, 2, 3, 4];

    let writers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for writer in 0..4u64 {
        let app = app.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = Lcg(100 + writer);
            for round in 0..40 {
                let id = ids[rng.next(4) as usize];
                let body = json!({"name": format!("w{writer}-r{round}")});
                let answer = app
                    .send(Method::PATCH, &format!("/products/{id}"), Some(body))
                    .await;
                assert_eq!(answer.status, 200);
                tokio::time::sleep(Duration::from_millis(rng.next(10))).await;
            }
        }));
    }
    // Readers run until the writers are done, so some are mid-fill at every write.
    for reader in 0..8u64 {
        let app = app.clone();
        let writers_done = writers_done.clone();
        readers.push(tokio::spawn(async move {
            let mut rng = Lcg(200 + reader);
            while !writers_done.load(std::sync::atomic::Ordering::Relaxed) {
                let id = ids[rng.next(4) as usize];
                assert_eq!(app.get(&format!("/products/{id}")).await.status, 200);
            }
        }));
    }
    for task in writers {
        task.await.expect("writer succeeded");
    }
    writers_done.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in readers {
        task.await.expect("reader succeeded");
    }

    // A connection of the test's own: the app may keep every pooled one.
    let mut db =
        <sqlx::PgConnection as sqlx::Connection>::connect(app.config.database.url.expose())
            .await
            .expect("connect");
    let mut redis = app.redis().await;
    for id in ids {
        let row: String = sqlx::query_scalar("SELECT name FROM products WHERE id = $1")
            .bind(id)
            .fetch_one(&mut db)
            .await
            .expect("row");
        let cached: Option<String> = redis.get(app.product_key(id)).await.expect("get");
        if let Some(cached) = cached {
            let cached: Value = serde_json::from_str(&cached).expect("json");
            assert_eq!(
                cached["name"],
                row.as_str(),
                "Redis holds an old value of product {id}"
            );
        }
        for _ in 0..2 {
            assert_eq!(
                app.get(&format!("/products/{id}")).await.body["name"],
                row.as_str(),
                "product {id}"
            );
        }
    }
}

#[tokio::test]
async fn two_hundred_concurrent_misses_cost_one_query() {
    let app = Arc::new(spawn_app_with(|c| c.database.simulated_latency_ms = 300).await);
    let before = app.stats().await["db_queries"].as_u64().expect("count");
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.get("/products/11").await })
        })
        .collect();
    for request in requests {
        let answer = request.await.expect("task");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["name"], "Bose QuietComfort 45");
    }
    let stats = app.stats().await;
    assert_eq!(
        stats["db_queries"].as_u64().expect("count") - before,
        1,
        "{stats}"
    );
    assert!(
        stats["coalesced"].as_u64().is_some_and(|c| c >= 1),
        "{stats}"
    );
}

#[tokio::test]
async fn a_frozen_redis_costs_one_timeout_then_the_breaker_skips_it() {
    let redis = RedisServer::start().expect("own redis-server");
    let redis_url = redis.url();
    let app = spawn_app_with(|c| {
        c.redis.url = redis_url.into();
        c.redis.timeout_ms = 300;
        c.redis.breaker_cooldown_ms = 60_000;
        // Counting alone: the span a run of failures must last has a test in disorder.rs.
        c.redis.breaker_failing_ms = 0;
        c.l1.enabled = false;
    })
    .await;
    app.get("/products/12").await;
    redis.pause().expect("SIGSTOP");
    for _ in 0..5 {
        let answer = app.get("/products/12").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["source"], "database");
    }
    let body = app.get("/cache/stats").await.body;
    redis.resume().expect("SIGCONT");
    let redis_tier = &body["app_stats"]["tiers"]["redis"];
    assert_eq!(
        redis_tier["errors"], 1,
        "only the first call waited: {redis_tier}"
    );
    assert_eq!(redis_tier["skipped"], 4, "{redis_tier}");
    assert_eq!(body["breaker"], "open");
}

#[tokio::test]
async fn pool_exhaustion_answers_503_instead_of_hanging() {
    let app = spawn_app_with(|c| {
        c.database.max_connections = 1;
        c.database.acquire_timeout_ms = 300;
        c.database.simulated_latency_ms = 2000;
        c.l1.enabled = false;
    })
    .await;
    // One slow miss holds the only connection for two seconds...
    let slow = {
        let client = app.client.clone();
        let url = app.url("/products/12");
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...so another miss waits the acquire timeout, then answers 503.
    let answer = app.get("/products/13").await;
    answer.assert_problem(503);
    assert!(answer.headers.contains_key("retry-after"));
    assert_eq!(slow.await.expect("task").expect("answer"), 200);
    assert_eq!(app.get("/products/13").await.status, 200);
}

#[tokio::test]
async fn an_invalidation_that_cannot_reach_redis_is_retried_and_reads_bypass_the_cache_meanwhile() {
    let redis = RedisServer::start().expect("own redis-server");
    let redis_url = redis.url();
    let app = spawn_app_with(|c| {
        c.redis.url = redis_url.into();
        c.redis.timeout_ms = 300;
        c.l1.enabled = false;
        c.redis.breaker_cooldown_ms = 200;
    })
    .await;
    app.get("/products/14").await;
    assert_eq!(app.get("/products/14").await.body["source"], "cache");

    redis.pause().expect("SIGSTOP");
    let write = app
        .send(
            Method::PATCH,
            "/products/14",
            Some(json!({"name": "Xbox Series Y"})),
        )
        .await;
    assert_eq!(write.status, 200, "the write itself succeeds");
    let stats = app.get("/cache/stats").await.body;
    assert_eq!(stats["pending_invalidations"], 1, "{stats}");
    let read = app.get("/products/14").await;
    assert_eq!(read.body["name"], "Xbox Series Y");
    assert_eq!(read.body["source"], "database");

    redis.resume().expect("SIGCONT");
    eventually("the delayed invalidation reaches Redis", || async {
        app.get("/cache/stats").await.body["pending_invalidations"] == 0
    })
    .await;
    eventually(
        "reads come from the cache again, with the new value",
        || async {
            let body = app.get("/products/14").await.body;
            body["source"] == "cache" && body["name"] == "Xbox Series Y"
        },
    )
    .await;
}
