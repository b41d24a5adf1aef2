//! The Redis circuit breaker under disorder: a probe whose client gave up, a probe
//! answered "busy", a short stall under load. Each test reproduces a bug the service
//! had, and was seen failing before its fix (moved here from `disorder.rs`).

use std::time::Duration;

use cacheme_testsupport::RedisServer;
use reqwest::Method;

use crate::{
    disorder::abandon,
    helpers::{eventually, spawn_app_with},
};

#[tokio::test]
async fn an_abandoned_breaker_probe_does_not_switch_the_cache_off() {
    let redis = RedisServer::start().expect("own redis-server");
    let redis_url = redis.url();
    let app = spawn_app_with(|c| {
        c.redis.url = redis_url.into();
        c.redis.timeout_ms = 300;
        c.redis.breaker_cooldown_ms = 500;
        c.redis.breaker_failing_ms = 0;
        c.l1.enabled = false;
    })
    .await;
    app.get("/products/5").await;
    assert_eq!(app.get("/products/5").await.body["source"], "cache");

    redis.pause().expect("SIGSTOP");
    assert_eq!(app.get("/products/5").await.body["source"], "database");
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The first request after the cool-down is the probe; its client gives up.
    abandon(&app, Method::GET, "/products/5", None, 20).await;
    redis.resume().expect("SIGCONT");

    eventually("reads come from the cache again", || async {
        app.get("/products/5").await.body["source"] == "cache"
    })
    .await;
    assert_eq!(app.get("/health").await.body["redis_breaker"], "closed");
}

#[tokio::test]
async fn a_probe_answered_busy_reopens_the_breaker_instead_of_leaving_it_half_open() {
    let redis = RedisServer::start().expect("own redis-server");
    let redis_url = redis.url();
    let app = spawn_app_with(|c| {
        c.redis.url = redis_url.into();
        c.redis.timeout_ms = 300;
        c.redis.breaker_cooldown_ms = 300;
        c.redis.breaker_failing_ms = 0;
        c.l1.enabled = false;
    })
    .await;
    app.get("/products/6").await;
    assert_eq!(app.get("/products/6").await.body["source"], "cache");

    // An outage opens the breaker.
    redis.pause().expect("SIGSTOP");
    assert_eq!(app.get("/products/6").await.body["source"], "database");
    redis.resume().expect("SIGCONT");
    // Redis is back but busy (a long script): every command answers BUSY.
    let mut admin = app.redis().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg(50)
        .query_async(&mut admin)
        .await
        .expect("config");
    let client = app.redis.clone();
    let script = tokio::spawn(async move {
        let mut conn = client.connect().await;
        let _: redis::RedisResult<()> = redis::cmd("EVAL")
            .arg("while true do end")
            .arg(0)
            .query_async(&mut conn)
            .await;
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The probe after the cool-down meets BUSY.
    assert_eq!(app.get("/products/6").await.body["source"], "database");
    let mut killer = app.redis().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("KILL")
        .query_async(&mut killer)
        .await
        .expect("kill the script");
    let _ = script.await;

    eventually("reads come from the cache again", || async {
        app.get("/products/6").await.body["source"] == "cache"
    })
    .await;
}

/// A4 of the second consistency review: one slow reply on the shared connection failed
/// every call in flight at once, and one failure opened the breaker: a fork for an RDB
/// save or another tenant's slow command sent every read to PostgreSQL for the cool-down.
#[tokio::test]
async fn a_short_redis_stall_under_load_leaves_the_breaker_closed() {
    let redis = RedisServer::start().expect("own redis-server");
    let redis_url = redis.url();
    let app = spawn_app_with(|c| {
        c.redis.url = redis_url.into();
        // The shipped timeout and breaker; a cool-down long enough to see.
        c.redis.timeout_ms = 50;
        c.redis.breaker_cooldown_ms = 60_000;
        c.l1.enabled = false;
    })
    .await;
    for id in 1..=8 {
        app.get(&format!("/products/{id}")).await;
    }
    // Readers in flight when Redis stops answering for 150 ms.
    let readers: Vec<_> = (1..=8)
        .map(|id| {
            let client = app.client.clone();
            let url = app.url(&format!("/products/{id}"));
            tokio::spawn(async move {
                for _ in 0..10 {
                    let _ = client.get(url.as_str()).send().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    redis.pause().expect("SIGSTOP");
    tokio::time::sleep(Duration::from_millis(150)).await;
    redis.resume().expect("SIGCONT");
    for reader in readers {
        reader.await.expect("reader");
    }
    let stats = app.get("/cache/stats").await.body;
    assert!(
        stats["app_stats"]["tiers"]["redis"]["errors"]
            .as_u64()
            .is_some_and(|e| e >= 1),
        "the stall was not seen: {stats}"
    );
    assert_eq!(stats["breaker"], "closed", "{stats}");
    assert_eq!(app.get("/products/3").await.body["source"], "cache");
}
