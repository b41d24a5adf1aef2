//! Behaviour under disorder (issue: consistency under disorder): clients that give up
//! mid-request, Redis losing keys or its counters, a pool that is busy or restarted, and
//! invalidations that outlive the process that owed them (PostgreSQL's own disorder is in
//! `database_disorder.rs`). Each test reproduces a bug that the service had, and was seen
//! failing before its fix.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cacheme_api::Hooks;
use cacheme_testsupport::RedisServer;
use futures::FutureExt;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::helpers::{
    TestApp, TestDatabase, eventually, http_client_with_timeout, pause_once, shared_redis_url,
    spawn_app_with, start, start_with_hooks, test_config,
};

/// A client that gives up after `ms` milliseconds, as a load balancer or a user would.
pub(crate) fn impatient_client(ms: u64) -> reqwest::Client {
    http_client_with_timeout(Duration::from_millis(ms))
}

/// Sends a request on a connection of its own and closes the connection after `ms`
/// milliseconds without reading the answer, as a client that gives up does (a pooled
/// HTTP client may keep the connection open, which the server does not see as giving up).
pub(crate) async fn abandon(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    ms: u64,
) {
    use tokio::io::AsyncWriteExt as _;
    let addr = app.address();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect to the app");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    drop(stream);
}

async fn name_in_database(app: &TestApp, id: i32) -> String {
    sqlx::query_scalar("SELECT name FROM products WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("read the row")
}

#[tokio::test]
async fn a_write_whose_client_gave_up_still_invalidates_the_cache() {
    let app = spawn_app_with(|c| {
        c.l1.enabled = false;
        // The outbox would mend it within a poll; this is about the write's own invalidation.
        c.cache.invalidation_poll_ms = 60_000;
    })
    .await;
    app.get("/products/3").await;
    assert_eq!(app.get("/products/3").await.body["source"], "cache");

    // Another transaction holds the row, so the write waits on its lock...
    let mut locker = PgConnection::connect(app.config.database.url.expose())
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN; SELECT 1 FROM products WHERE id = 3 FOR UPDATE")
        .execute(&mut locker)
        .await
        .expect("lock the row");
    // ...and its client gives up meanwhile.
    abandon(
        &app,
        Method::PATCH,
        "/products/3",
        Some(json!({"name": "Given up on"})),
        300,
    )
    .await;
    // Long enough for the server to notice the client is gone (and drop its handler).
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::raw_sql("COMMIT")
        .execute(&mut locker)
        .await
        .expect("release");

    let released = Instant::now();
    while name_in_database(&app, 3).await != "Given up on" {
        assert!(
            released.elapsed() < Duration::from_secs(5),
            "the abandoned write never committed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Invalidated by the write itself, right after its commit.
    let committed = Instant::now();
    while app.get("/products/3").await.body["name"] != "Given up on" {
        assert!(
            committed.elapsed() < Duration::from_millis(200),
            "the cache still answers the old name"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn abandoned_misses_do_not_strand_connections_or_readiness() {
    let app = spawn_app_with(|c| {
        c.l1.enabled = false;
        c.database.max_connections = 2;
        c.database.simulated_latency_ms = 1000;
    })
    .await;
    for id in 2_000_000_001..=2_000_000_004 {
        abandon(&app, Method::GET, &format!("/products/{id}"), None, 100).await;
    }
    // Each load runs to its end (two at a time, a second each), then lets go.
    eventually("every abandoned load has finished", || async {
        let stats = app.get("/cache/stats").await.body;
        stats["loads_in_flight"] == 0 && stats["loads_running"] == 0
    })
    .await;
    assert_eq!(app.get("/readyz").await.status, 200);
    let answer = app.get("/products/1").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn a_write_is_never_followed_by_an_old_read_on_its_own_replica() {
    let db = TestDatabase::create().await;
    let config = test_config(&db.url, &shared_redis_url());
    let (hook, reached, release) = pause_once(2);
    let hooks = Hooks {
        before_redis_invalidate: Some(hook),
        // This process's own announcement arrives late, so it cannot mend L1 in time.
        before_remote_invalidation: Some(Arc::new(|_id| {
            tokio::time::sleep(Duration::from_millis(1000)).boxed()
        })),
        ..Hooks::default()
    };
    let app = Arc::new(start_with_hooks(config, Some(db), hooks).await);
    app.wait_for_memory_tier(true).await;
    app.get("/products/2").await;
    assert_eq!(app.get("/products/2").await.body["cache_tier"], "memory");

    let writer = {
        let app = app.clone();
        tokio::spawn(async move {
            app.send(Method::PATCH, "/products/2", Some(json!({"name": "Pixel"})))
                .await
                .status
        })
    };
    reached
        .await
        .expect("the write dropped L1 and stopped before Redis");
    // A reader now finds L1 empty and Redis still holding the old row, and copies it.
    let during = app.get("/products/2").await;
    assert_eq!(during.body["name"], "iPhone 15 Pro", "{}", during.body);
    release.send(()).expect("release the write");
    assert_eq!(writer.await.expect("task"), 200);

    let after = app.get("/products/2").await;
    assert_eq!(
        after.body["name"], "Pixel",
        "read after the write returned: {}",
        after.body
    );
}

#[tokio::test]
async fn a_flushed_redis_cannot_take_back_a_fill_read_before_the_flush() {
    let redis = RedisServer::start().expect("own redis-server");
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &redis.url());
    config.l1.enabled = false;
    let (hook, reached, release) = pause_once(2);
    let hooks = Hooks {
        before_fill: Some(hook),
        ..Hooks::default()
    };
    let app = start_with_hooks(config, Some(db), hooks).await;
    // Generation 1: the counter now exists and the reader will see it.
    let first = app
        .send(Method::PATCH, "/products/2", Some(json!({"name": "A"})))
        .await;
    assert_eq!(first.status, 200);

    let reader = {
        let client = app.client.clone();
        let url = app.url("/products/2");
        tokio::spawn(async move { client.get(url).send().await?.json::<Value>().await })
    };
    reached
        .await
        .expect("the reader read A and stopped before its fill");
    // Redis loses everything (FLUSHALL, a restart without persistence), then a write
    // brings the counter back to the value the reader saw.
    let mut conn = app.redis().await;
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("flush");
    let second = app
        .send(Method::PATCH, "/products/2", Some(json!({"name": "B"})))
        .await;
    assert_eq!(second.status, 200);
    release.send(()).expect("release the reader");
    assert_eq!(reader.await.expect("task").expect("answer")["name"], "A");

    assert_eq!(app.stats().await["fills_refused"], 1);
    for _ in 0..3 {
        assert_eq!(app.get("/products/2").await.body["name"], "B");
    }
    drop(redis);
}

#[tokio::test]
async fn an_invalidation_owed_by_a_stopped_process_is_not_lost() {
    let redis = RedisServer::start().expect("own redis-server");
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &redis.url());
    config.redis.timeout_ms = 300;
    config.l1.enabled = false;
    let first = start(config.clone(), None).await;
    first.get("/products/14").await;
    assert_eq!(first.get("/products/14").await.body["source"], "cache");

    redis.pause().expect("SIGSTOP");
    let write = first
        .send(
            Method::PATCH,
            "/products/14",
            Some(json!({"name": "Xbox Series Y"})),
        )
        .await;
    assert_eq!(write.status, 200, "{}", write.body);
    // A rollout: the process that owes the invalidation stops before Redis is back.
    first.stop().await;
    redis.resume().expect("SIGCONT");

    let second = start(config, Some(db)).await;
    let read = second.get("/products/14").await;
    assert_eq!(read.body["name"], "Xbox Series Y", "{}", read.body);
    eventually(
        "the relayed invalidation lets the cache serve again",
        || async {
            let body = second.get("/products/14").await.body;
            body["source"] == "cache" && body["name"] == "Xbox Series Y"
        },
    )
    .await;
}

#[tokio::test]
async fn every_replica_bypasses_redis_for_an_id_whose_invalidation_is_pending() {
    let reachable = RedisServer::start().expect("redis the reader reaches");
    let frozen = RedisServer::start().expect("redis the writer reaches");
    let db = TestDatabase::create().await;
    let mut reader_config = test_config(&db.url, &reachable.url());
    reader_config.l1.enabled = false;
    let mut writer_config = reader_config.clone();
    writer_config.redis.url = frozen.url().into();
    writer_config.redis.timeout_ms = 200;
    let reader = start(reader_config, Some(db)).await;
    let writer = start(writer_config, None).await;
    reader.get("/products/11").await;
    assert_eq!(reader.get("/products/11").await.body["source"], "cache");

    // The writer cannot reach Redis (a partition): its invalidation stays in the outbox.
    frozen.pause().expect("SIGSTOP");
    let write = writer
        .send(
            Method::PATCH,
            "/products/11",
            Some(json!({"name": "Switch 3"})),
        )
        .await;
    assert_eq!(write.status, 200, "{}", write.body);
    let written = Instant::now();
    eventually("the other replica stops serving the old entry", || async {
        reader.get("/products/11").await.body["name"] == "Switch 3"
    })
    .await;
    // Within the poll interval (250 ms) and the time one read takes, not the TTL.
    assert!(
        written.elapsed() < Duration::from_millis(900),
        "{:?}",
        written.elapsed()
    );
    eventually(
        "the reader's relay cleaned its Redis and the outbox",
        || async {
            let body = reader.get("/products/11").await.body;
            body["source"] == "cache" && body["name"] == "Switch 3"
        },
    )
    .await;
    frozen.resume().expect("SIGCONT");
}
