//! Acknowledged writes that were lost outside the chaos checker's fault model (issue:
//! consistency, round 2). Each test reproduces one, and was seen failing before its fix.
//!
//! `outbox`: the invalidation outbox and the seed (a write is never committed without
//! the row that tells every replica; a replica that cannot know asks PostgreSQL).
//! `redis_state`: Redis that lost, refused or replayed what it was told.

mod outbox;
mod redis_state;

use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

pub(super) async fn name_of(app: &TestApp, id: i32) -> String {
    let answer = app.get(&format!("/products/{id}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["name"].as_str().unwrap_or_default().to_owned()
}

pub(super) async fn rename(app: &TestApp, id: i32, name: &str) {
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
pub(super) async fn refuse_writes(conn: &mut crate::helpers::TestRedis, millis: u64) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(millis)
        .arg("WRITE")
        .query_async(conn)
        .await
        .expect("CLIENT PAUSE WRITE");
}

pub(super) async fn accept_writes(conn: &mut crate::helpers::TestRedis) {
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(conn)
        .await
        .expect("CLIENT UNPAUSE");
}
