//! Redis that lost, refused or replayed what it was told: owed invalidations, a restart
//! from older data, a saturated pool, a late listener.

use std::time::{Duration, Instant};

use cacheme_testsupport::RedisServer;
use serde_json::json;

use super::*;
use crate::helpers::{TestDatabase, start, test_config};

/// D1: the outbox was read 1000 oldest rows at a time and the pending set replaced by
/// them, so with a backlog owed the newest write dropped out of it, the writer's own
/// included, and both replicas served the old entry for as long as Redis refused writes.
#[tokio::test]
async fn a_backlog_of_owed_invalidations_does_not_hide_the_newest_write() {
    let redis = RedisServer::start().expect("own redis-server");
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &redis.url());
    config.redis.timeout_ms = 200;
    let a = start(config.clone(), Some(db)).await;
    let b = start(config, None).await;
    for app in [&a, &b] {
        name_of(app, 11).await;
        let again = app.get("/products/11").await;
        assert_eq!(again.body["source"], "cache", "{}", again.body);
    }
    // Redis answers reads but refuses every write, as under `noeviction` at maxmemory.
    let mut conn = a.redis().await;
    refuse_writes(&mut conn, 20_000).await;
    // 1000 older invalidations owed for another product.
    sqlx::query(
        "INSERT INTO cache_invalidations (product_id) SELECT 12 FROM generate_series(1, 1000)",
    )
    .execute(&a.pool)
    .await
    .expect("the backlog");

    rename(&a, 11, "Steam Deck 2").await;
    let acked = Instant::now();
    let mut stale = Vec::new();
    while acked.elapsed() < Duration::from_secs(3) {
        let on_a = name_of(&a, 11).await;
        if on_a != "Steam Deck 2" {
            stale.push(format!("writer at {:?}: {on_a}", acked.elapsed()));
        }
        // The other replica learns within its poll (250 ms); the bound is 1 s.
        let on_b = name_of(&b, 11).await;
        if acked.elapsed() > Duration::from_secs(1) && on_b != "Steam Deck 2" {
            stale.push(format!("other replica at {:?}: {on_b}", acked.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    accept_writes(&mut conn).await;
    assert!(
        stale.is_empty(),
        "old value served after the ack: {stale:?}"
    );
}

/// D2: a Redis restarted from its own persistence (or restored from a backup) held the
/// entry, the generation and the epoch of before the write, so every replica, the writer
/// included, served the invalidated entry until its TTL. The epoch is now tied to the
/// Redis process (`run_id`): a restart rotates it, and entries filled under another epoch
/// are not served.
#[tokio::test]
async fn a_redis_restarted_from_older_data_does_not_bring_back_an_invalidated_entry() {
    let mut redis = RedisServer::start().expect("own redis-server");
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &redis.url());
    // So the window below also sees what Redis serves once L1's copies expire.
    config.l1.ttl_ms = 300;
    let a = start(config.clone(), Some(db)).await;
    let b = start(config, None).await;
    let original = name_of(&a, 1).await;
    for app in [&a, &b] {
        let again = app.get("/products/1").await;
        assert_eq!(again.body["source"], "cache", "{}", again.body);
    }
    // A snapshot holding the entry, its generation and the epoch.
    let mut conn = a.redis().await;
    let _: () = redis::cmd("SAVE")
        .query_async(&mut conn)
        .await
        .expect("SAVE");
    rename(&a, 1, "Restored-away name").await;
    // Redis dies without saving again and starts from the snapshot (`dump.rdb`).
    redis.restart().expect("restart redis from its dump");
    let mut check = redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let restored: Option<String> = redis::AsyncCommands::get(&mut check, a.product_key(1))
        .await
        .expect("GET");
    let restored_name = restored
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
        .map(|entry| entry["name"].clone());
    assert_eq!(
        restored_name,
        Some(json!(original)),
        "the restarted Redis holds the old entry"
    );

    let restarted = Instant::now();
    let mut stale = Vec::new();
    while restarted.elapsed() < Duration::from_secs(4) {
        for (replica, app) in [("writer", &a), ("other replica", &b)] {
            let answer = app.get("/products/1").await;
            if answer.body["name"] != "Restored-away name" {
                stale.push(format!(
                    "{replica} at {:?}: {} from {}",
                    restarted.elapsed(),
                    answer.body["name"],
                    answer.body["source"]
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stale.is_empty(),
        "invalidated entry served again: {stale:?}"
    );
    crate::helpers::eventually("the cache works again", || async {
        a.get("/products/1").await.body["source"] == "cache"
    })
    .await;
}

/// D3: the outbox poll waited for a permit behind request misses, so under a miss storm
/// (Redis refusing writes, the pool saturated) another replica never learned that a
/// write's invalidation was owed, and served the old value from L1, then Redis. The poll
/// now has a connection of its own.
#[tokio::test]
async fn a_saturated_pool_does_not_keep_other_replicas_from_learning_a_write() {
    let redis = RedisServer::start().expect("own redis-server");
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &redis.url());
    config.redis.timeout_ms = 200;
    let a = start(config.clone(), Some(db)).await;
    let mut busy = config;
    busy.database.max_connections = 1;
    busy.database.simulated_latency_ms = 300;
    busy.cache.negative_ttl_seconds = 0;
    let b = start(busy, None).await;
    name_of(&b, 11).await;
    name_of(&b, 11).await;
    assert_eq!(b.get("/products/11").await.body["cache_tier"], "memory");

    // Misses of unknown ids keep B's only connection busy, its queue always full.
    let storm: Vec<_> = (0..16)
        .map(|worker| {
            let client = b.client.clone();
            let base = b.url("/products/");
            tokio::spawn(async move {
                for n in 0_u32.. {
                    let id = 1_000_000 + worker * 100_000 + n;
                    let _ = client.get(format!("{base}{id}")).send().await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut conn = a.redis().await;
    refuse_writes(&mut conn, 10_000).await;
    rename(&a, 11, "Learned console").await;
    let acked = Instant::now();
    let mut seen = Vec::new();
    let mut learned = 0;
    while acked.elapsed() < Duration::from_secs(4) {
        let answer = b.get("/products/11").await;
        // A 503 (the queue is long) is the storm's doing, not a stale read.
        if answer.status == 200 && acked.elapsed() > Duration::from_secs(1) {
            if answer.body["name"] == "Learned console" {
                learned += 1;
            } else {
                seen.push(format!("{:?}: {}", acked.elapsed(), answer.body["name"]));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for worker in storm {
        worker.abort();
    }
    accept_writes(&mut conn).await;
    assert!(
        seen.is_empty(),
        "the other replica, past the 1 s bound: {seen:?}"
    );
    assert!(learned > 0, "no read of the other replica was answered");
}

/// D4: L1 had no lease: another replica used it for as long as its listener had not yet
/// applied the write's message (a paused or throttled process, a stuck listener), up to
/// `L1_TTL_MS`. L1 is now used only within 750 ms of the listener proving (a ping's
/// reply) that it applied every message published before some moment.
#[tokio::test]
async fn a_replica_whose_listener_is_late_stops_using_l1_within_its_lease() {
    use futures::FutureExt as _;
    let db = TestDatabase::create().await;
    let config = test_config(&db.url, &crate::helpers::shared_redis_url());
    let writer = start(config.clone(), Some(db)).await;
    let late = crate::helpers::start_with_hooks(
        config,
        None,
        cacheme_api::Hooks {
            // Its listener takes 3 s over each message, as a paused process would.
            before_remote_invalidation: Some(std::sync::Arc::new(|_id| {
                tokio::time::sleep(Duration::from_secs(3)).boxed()
            })),
            ..cacheme_api::Hooks::default()
        },
    )
    .await;
    late.wait_for_memory_tier(true).await;
    name_of(&late, 11).await;
    name_of(&late, 11).await;
    assert_eq!(late.get("/products/11").await.body["cache_tier"], "memory");

    rename(&writer, 11, "Leased console").await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let read = late.get("/products/11").await;
    assert_eq!(read.body["name"], "Leased console", "{}", read.body);
}
