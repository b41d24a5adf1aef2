//! Loads in flight, shared by the misses that arrive while one runs: a read that began
//! after a write was acknowledged must never be answered by a load that began before it.
//!
//! Loads carry the Redis generation their starter saw, which a write bumps, so a later
//! reader that reached Redis never joins an older load. What is left is a load started
//! while Redis failed (no generation) and a reader whose lookup also fails: only the
//! write forgetting the loads in flight for its id keeps that reader off the old load
//! (the `no-flight-forget-on-write` mutation; the chaos checker cannot line this up, so
//! `cargo xtask chaos --mutations` runs this test with it switched off and expects it
//! to fail).

use std::{sync::Arc, time::Duration};

use cacheme_api::Hooks;
use futures::FutureExt;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    TestDatabase, TestRedis, pause_once, shared_redis_url, start_with_hooks, test_config,
};

async fn set(redis: &mut TestRedis, key: &str, value: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(redis)
        .await
        .expect("SET");
}

#[tokio::test]
async fn a_read_after_a_write_never_joins_a_load_begun_before_it() {
    let db = TestDatabase::create().await;
    let config = test_config(&db.url, &shared_redis_url());
    let (hook, reached, release) = pause_once(3);
    let hooks = Hooks {
        before_fill: Some(hook),
        // This process's own announcement of the write would also forget the load, a
        // few milliseconds after the write: it arrives late here, so what is tested is
        // the write's own forgetting, the only one on time for a read on its replica.
        before_remote_invalidation: Some(Arc::new(|_id| {
            tokio::time::sleep(Duration::from_millis(3000)).boxed()
        })),
        ..Hooks::default()
    };
    let app = Arc::new(start_with_hooks(config, Some(db), hooks).await);
    let generation = app.keys().generation(3);
    let mut redis = app.redis().await;

    // A generation counter that is not a number makes every lookup of product 3 fail
    // (as a timed-out one would) without stalling Redis, whose stall would also cost
    // the invalidation listener its channel, and a lost channel forgets every load.
    set(&mut redis, &generation, "not-a-number").await;
    let before = {
        let app = app.clone();
        tokio::spawn(async move { app.get("/products/3").await })
    };
    reached
        .await
        .expect("the load began without Redis, read the row and stopped before its fill");

    // Redis answers for the write: its invalidation bumps the generation.
    let _: () = redis::cmd("DEL")
        .arg(&generation)
        .query_async(&mut redis)
        .await
        .expect("DEL");
    let write = app
        .send(
            Method::PATCH,
            "/products/3",
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(write.status, 200, "{}", write.body);

    // The next lookup fails too: this read has no generation to tell the old load apart.
    set(&mut redis, &generation, "not-a-number").await;
    let mut after = {
        let app = app.clone();
        tokio::spawn(async move { app.get("/products/3").await })
    };
    // With the write's forgetting, this read loads on its own and answers at once; a
    // read that joined the old load waits for its release, and then answers its row.
    let on_its_own = tokio::time::timeout(Duration::from_secs(2), &mut after).await;
    let joined = on_its_own.is_err();
    release.send(()).expect("release the old load");
    let after = match on_its_own {
        Ok(answer) => answer.expect("task"),
        Err(_) => after.await.expect("task"),
    };
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(
        after.body["name"], "Renamed",
        "a read begun after the write was acknowledged answered {} (it waited for a load \
         begun before the write: {joined})",
        after.body
    );
    let before = before.await.expect("task");
    assert_eq!(before.status, 200, "{}", before.body);
    let _: () = redis::cmd("DEL")
        .arg(&generation)
        .query_async(&mut redis)
        .await
        .expect("DEL");
}
