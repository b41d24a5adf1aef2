//! Acknowledged writes that were lost outside the chaos checker's fault model (issue:
//! consistency, round 2). Each test reproduces one, and was seen failing before its fix.

use std::time::{Duration, Instant};

use cacheme_testsupport::RedisServer;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, TestDatabase, start, test_config};

async fn name_of(app: &TestApp, id: i32) -> String {
    let answer = app.get(&format!("/products/{id}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["name"].as_str().unwrap_or_default().to_owned()
}

async fn rename(app: &TestApp, id: i32, name: &str) {
    let write = app
        .send(
            Method::PATCH,
            &format!("/products/{id}"),
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(write.status, 200, "{}", write.body);
}

/// Redis answers reads but refuses every write for `millis` (`CLIENT PAUSE WRITE`), as
/// under `noeviction` at maxmemory.
async fn refuse_writes(conn: &mut crate::helpers::TestRedis, millis: u64) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(millis)
        .arg("WRITE")
        .query_async(conn)
        .await
        .expect("CLIENT PAUSE WRITE");
}

async fn accept_writes(conn: &mut crate::helpers::TestRedis) {
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(conn)
        .await
        .expect("CLIENT UNPAUSE");
}

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

fn seed_file(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "cacheme-seed-{}-{}.json",
        std::process::id(),
        name.replace(' ', "-")
    ));
    std::fs::write(
        &path,
        json!([{ "id": 3, "name": name, "price": 10 }]).to_string(),
    )
    .expect("write the seed file");
    path
}

/// D6: every replica start upserted the seed, so a scale-out reverted edits acknowledged
/// since; a changed seed still applies, once.
#[tokio::test]
async fn a_replica_starting_with_the_seed_does_not_revert_an_acknowledged_edit() {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &crate::helpers::shared_redis_url());
    config.database.seed_file = Some(seed_file("Seeded console"));
    let first = start(config.clone(), Some(db)).await;
    assert_eq!(name_of(&first, 3).await, "Seeded console");
    rename(&first, 3, "Edited console").await;

    // A scale-out: a second replica with the same seed.
    let second = start(config.clone(), None).await;
    assert_eq!(name_of(&second, 3).await, "Edited console");
    assert_eq!(name_of(&first, 3).await, "Edited console");

    // A new seed is a deliberate change: it applies, and every replica sees it.
    config.database.seed_file = Some(seed_file("Reseeded console"));
    let third = start(config, None).await;
    assert_eq!(name_of(&third, 3).await, "Reseeded console");
    crate::helpers::eventually("the other replicas see the new seed", || async {
        name_of(&first, 3).await == "Reseeded console"
            && name_of(&second, 3).await == "Reseeded console"
    })
    .await;
}

/// D6: the seed's upsert committed before its outbox rows were written, so a crash in
/// between left a changed row that no replica knew to invalidate. Both now commit
/// together: while the outbox cannot be written, the change is not visible either.
#[tokio::test]
async fn a_seed_change_is_never_committed_without_its_outbox_row() {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &crate::helpers::shared_redis_url());
    let admin = db.pool().await;
    let first = start(config.clone(), Some(db)).await;
    let before = name_of(&first, 3).await;

    let mut lock = admin.begin().await.expect("begin");
    sqlx::query("LOCK TABLE cache_invalidations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock the outbox");
    config.database.seed_file = Some(seed_file("Half-seeded console"));
    // The replica starts, and is stopped (a crash) while the outbox is unwritable.
    let started =
        tokio::time::timeout(Duration::from_secs(2), cacheme_api::App::build(&config)).await;
    assert!(started.is_err(), "the start waits for the outbox");
    let seen: String = sqlx::query_scalar("SELECT name FROM products WHERE id = 3")
        .fetch_one(&first.pool)
        .await
        .expect("read the row");
    lock.rollback().await.expect("unlock");
    assert_eq!(
        seen, before,
        "the seed's change was visible without its outbox row"
    );
}

/// D7: a replica that started while the outbox could not be read served whatever Redis
/// held, owed invalidations included. Until it has read the outbox once, PostgreSQL
/// answers first (the caches only while PostgreSQL fails).
#[tokio::test]
async fn a_replica_that_has_not_read_the_outbox_asks_postgresql_first() {
    let db = TestDatabase::create().await;
    let config = test_config(&db.url, &crate::helpers::shared_redis_url());
    let writer = start(config.clone(), Some(db)).await;
    name_of(&writer, 5).await;
    assert_eq!(writer.get("/products/5").await.body["source"], "cache");

    // A write whose invalidation never reached Redis (its writer then died), and an
    // outbox that cannot be read when the next replica starts: one transaction, so no
    // relay runs in between.
    let mut tx = writer.pool.begin().await.expect("begin");
    for statement in [
        "UPDATE products SET name = 'Owed console' WHERE id = 5",
        "INSERT INTO cache_invalidations (product_id) VALUES (5)",
        "ALTER TABLE cache_invalidations RENAME TO cache_invalidations_away",
    ] {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .expect(statement);
    }
    tx.commit().await.expect("commit");

    let reader = start(config, None).await;
    let read = reader.get("/products/5").await;
    sqlx::query("ALTER TABLE cache_invalidations_away RENAME TO cache_invalidations")
        .execute(&writer.pool)
        .await
        .expect("the outbox back");
    assert_eq!(read.body["name"], "Owed console", "{}", read.body);
    crate::helpers::eventually("the relay clears the owed row", || async {
        let body = reader.get("/products/5").await.body;
        body["source"] == "cache" && body["name"] == "Owed console"
    })
    .await;
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

/// D3/D4: in-process trust had no bound of its own: a replica whose outbox poll could
/// not get through (here the table is locked) kept trusting its caches, however long
/// ago it last learned which invalidations are owed. Past the lease (four polls, at
/// least 1 s) it reads PostgreSQL first. The row is changed behind the caches' back, as
/// a write whose invalidation is owed looks to a replica that cannot read the outbox.
#[tokio::test]
async fn a_replica_that_cannot_read_the_outbox_stops_trusting_its_caches() {
    let db = TestDatabase::create().await;
    let config = test_config(&db.url, &crate::helpers::shared_redis_url());
    let admin = db.pool().await;
    let app = start(config, Some(db)).await;
    name_of(&app, 5).await;
    assert_eq!(app.get("/products/5").await.body["source"], "cache");

    let mut lock = admin.begin().await.expect("begin");
    sqlx::query("LOCK TABLE cache_invalidations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock the outbox");
    sqlx::query("UPDATE products SET name = 'Owed elsewhere' WHERE id = 5")
        .execute(&admin)
        .await
        .expect("change the row");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let read = app.get("/products/5").await;
    lock.rollback().await.expect("unlock");
    assert_eq!(read.body["name"], "Owed elsewhere", "{}", read.body);
    assert_eq!(read.body["source"], "database", "{}", read.body);
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

/// A5 of the second consistency review: every replica relayed every due outbox row, so
/// after an outage N replicas ran N invalidations per row (each bumping its generation,
/// dropping every replica's L1 entry and refusing fills in flight). One replica at a time
/// relays now; the generation counters count the invalidations that ran.
#[tokio::test]
async fn owed_invalidations_are_relayed_once_not_once_per_replica() {
    let redis = RedisServer::start().expect("own redis-server");
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &redis.url());
    config.cache.invalidation_poll_ms = 20;
    let replicas = [
        start(config.clone(), Some(db)).await,
        start(config.clone(), None).await,
        start(config, None).await,
    ];
    let a = &replicas[0];
    // An outage's backlog: 1 000 products whose rows no writer deleted, all due.
    sqlx::query(
        "INSERT INTO cache_invalidations (product_id, created_at) \
         SELECT g, now() - interval '10 seconds' FROM generate_series(1, 1000) g",
    )
    .execute(&a.pool)
    .await
    .expect("backlog");
    crate::helpers::eventually("the backlog is relayed", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM cache_invalidations")
            .fetch_one(&a.pool)
            .await
            .is_ok_and(|n| n == 0)
    })
    .await;
    let keys = a.keys();
    let counters: Vec<String> = (1..=1000).map(|id| keys.generation(id)).collect();
    let mut conn = a.redis().await;
    let generations: Vec<Option<u64>> = redis::AsyncCommands::mget(&mut conn, &counters)
        .await
        .expect("MGET");
    let invalidations: u64 = generations.iter().map(|g| g.unwrap_or(0)).sum();
    assert!(
        (1000..=1010).contains(&invalidations),
        "{invalidations} invalidations for 1 000 owed products and 3 replicas"
    );
}
