//! The outbox and the seed: a write is committed with the row that tells every replica,
//! relayed once, and a replica that cannot read it stops trusting its caches.

use std::time::Duration;

use cacheme_testsupport::RedisServer;
use serde_json::json;

use super::*;
use crate::helpers::{TestDatabase, start, test_config};

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
