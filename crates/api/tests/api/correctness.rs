//! Cache correctness under concurrency and failure (issue: stale fills, single flight,
//! expiry windows, L1 across replicas, the breaker, delayed invalidations).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use cacheme_api::catalog::Hooks;
use cacheme_testsupport::RedisServer;
use futures::FutureExt;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::helpers::{
    TestApp, TestDatabase, eventually, pause_once, spawn_app_with, start, start_with_hooks, stores,
    test_config,
};

/// A hook that stops the first fill of `id` until released, and says when it got there.
fn pause_first_fill(id: i32) -> (Hooks, oneshot::Receiver<()>, oneshot::Sender<()>) {
    let (hook, reached, release) = pause_once(id);
    let hooks = Hooks {
        before_fill: Some(hook),
        ..Hooks::default()
    };
    (hooks, reached, release)
}

async fn stale_fill_is_refused(l1_enabled: bool) {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &stores().redis_url);
    config.l1_enabled = l1_enabled;
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
    let mut config = test_config(&db.url, &stores().redis_url);
    config.simulated_db_latency_ms = 2;
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
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&app.config.database_url)
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
    let app = Arc::new(spawn_app_with(|c| c.simulated_db_latency_ms = 300).await);
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
async fn unknown_ids_are_remembered_as_absent_for_the_negative_ttl() {
    let app = spawn_app_with(|c| c.negative_ttl_seconds = 40).await;
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
    let app = spawn_app_with(|c| c.negative_ttl_seconds = 0).await;
    app.get("/products/4242").await.assert_problem(404);
    app.get("/products/4242").await.assert_problem(404);
    assert_eq!(app.stats().await["db_queries"], 2);
}

#[tokio::test]
async fn ttls_are_jittered_within_the_band() {
    let app = spawn_app_with(|c| {
        c.cache_ttl_seconds = 1000;
        c.cache_ttl_jitter_percent = 10;
        c.cache_stale_while_revalidate_seconds = 0;
        c.cache_stale_if_error_seconds = 0;
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
        .execute(app.state.catalog.db().pool())
        .await
        .expect("update");
}

#[tokio::test]
async fn a_soft_expired_entry_is_served_while_one_refresh_runs() {
    let app = spawn_app_with(|c| {
        c.cache_ttl_seconds = 1;
        c.cache_ttl_jitter_percent = 0;
        c.cache_stale_while_revalidate_seconds = 60;
        c.cache_stale_if_error_seconds = 0;
        c.l1_enabled = false;
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
        c.cache_ttl_seconds = 1;
        c.cache_ttl_jitter_percent = 0;
        c.cache_stale_while_revalidate_seconds = 0;
        c.cache_stale_if_error_seconds = 0;
        c.l1_enabled = false;
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
    let tune = |c: &mut cacheme_api::config::Config| {
        c.cache_ttl_seconds = 1;
        c.cache_ttl_jitter_percent = 0;
        c.cache_stale_while_revalidate_seconds = 0;
        c.cache_stale_if_error_seconds = 120;
        c.l1_enabled = false;
    };
    let working = spawn_app_with(tune).await;
    assert_eq!(working.get("/products/6").await.body["source"], "database");
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let dead_db = format!(
        "postgres://postgres@127.0.0.1:{}/x",
        cacheme_testsupport::free_port().expect("port")
    );
    let mut config = test_config(&dead_db, &stores().redis_url);
    tune(&mut config);
    config.cache_key_prefix = working.config.cache_key_prefix.clone();
    config.db_acquire_timeout_ms = 300;
    let broken = start(config, None).await;
    let answer = broken.get("/products/6").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["source"], "cache");
    assert_eq!(broken.stats().await["stale_if_error_served"], 1);
    broken.get("/products/7").await.assert_problem(503);

    // With PostgreSQL up, the expired entry is not served: the row is read again.
    assert_eq!(working.get("/products/6").await.body["source"], "database");
}

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
    let app = spawn_app_with(|c| c.l1_ttl_ms = 600_000).await;
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
    let app = Arc::new(spawn_app_with(|c| c.simulated_db_latency_ms = 300).await);
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
    let mut config = test_config(&db.url, &stores().redis_url);
    // A long L1 TTL: only the invalidation message can explain a quick convergence.
    config.l1_ttl_ms = 600_000;
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
        c.redis_url = redis_url;
        c.redis_timeout_ms = 300;
        c.l1_ttl_ms = 600_000;
    })
    .await;
    app.wait_for_memory_tier(true).await;
    app.get("/products/10").await;
    assert_eq!(app.get("/products/10").await.body["cache_tier"], "memory");

    redis.kill().expect("kill");
    app.wait_for_memory_tier(false).await;
    let stats = app.get("/cache/stats").await.body;
    assert_eq!(stats["memory_tier"]["entries"], 0, "{stats}");
    assert_eq!(app.get("/products/10").await.body["source"], "database");

    redis.restart().expect("restart");
    app.wait_for_memory_tier(true).await;
}

#[tokio::test]
async fn a_frozen_redis_costs_one_timeout_then_the_breaker_skips_it() {
    let redis = RedisServer::start().expect("own redis-server");
    let redis_url = redis.url();
    let app = spawn_app_with(|c| {
        c.redis_url = redis_url;
        c.redis_timeout_ms = 300;
        c.redis_breaker_cooldown_ms = 60_000;
        c.l1_enabled = false;
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
        c.db_max_connections = 1;
        c.db_acquire_timeout_ms = 300;
        c.simulated_db_latency_ms = 2000;
        c.l1_enabled = false;
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
        c.redis_url = redis_url;
        c.redis_timeout_ms = 300;
        c.l1_enabled = false;
        c.redis_breaker_cooldown_ms = 200;
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
