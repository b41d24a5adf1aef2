//! A flood of made-up ids (consistency review A3): above the highest existing id a miss
//! answers 404 without a query, a load task or a Redis key, and the bound never hides a
//! product created on another replica.

use redis::AsyncCommands as _;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app, start};

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
