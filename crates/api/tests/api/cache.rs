use redis::AsyncCommands;

use cacheme_testsupport::RedisServer;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn clear_removes_only_this_services_keys() {
    let app = spawn_app().await;
    let mut redis = app.redis().await;
    let foreign = format!("foreign:{}:keep-me", app.config.cache.key_prefix);
    let _: () = redis
        .set_ex(&foreign, "someone else's", 600)
        .await
        .expect("set foreign key");

    for id in [1, 2, 3] {
        assert_eq!(
            app.get(&format!("/products/{id}")).await.body["source"],
            "database"
        );
    }
    let answer = app.delete("/cache/clear").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["cleared_keys"], 3);
    assert!(answer.body["message"].is_string());
    assert!(
        chrono::DateTime::parse_from_rfc3339(answer.body["timestamp"].as_str().expect("string"))
            .is_ok()
    );

    let still_there: Option<String> = redis.get(&foreign).await.expect("get");
    assert_eq!(still_there.as_deref(), Some("someone else's"));
    let _: () = redis.del(&foreign).await.expect("del");

    assert_eq!(app.get("/products/1").await.body["source"], "database");
    // Clears are spaced out by a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.delete("/cache/clear").await.body["cleared_keys"], 1);
}

#[tokio::test]
async fn stats_report_redis_info_and_this_process_counters() {
    let app = spawn_app().await;
    app.get("/products/7").await;
    app.get("/products/7").await;
    app.get("/products/7").await;

    let answer = app.get("/cache/stats").await;
    assert_eq!(answer.status, 200);
    let stats = &answer.body["cache_stats"];
    for field in [
        "keyspace_hits",
        "keyspace_misses",
        "connected_clients",
        "total_commands_processed",
        "total_connections_received",
    ] {
        assert!(stats[field].is_u64(), "{field} is not a count: {stats}");
    }
    assert!(stats["used_memory_human"].is_string());
    assert!(stats["hit_rate"].is_number());

    let own = &answer.body["app_stats"];
    assert_eq!(own["hits"], 2);
    assert_eq!(own["misses"], 1);
    assert_eq!(own["hit_rate"], 66.67);
    assert_eq!(own["db_queries"], 1);
    let tiers = &own["tiers"];
    let tier_hits = tiers["memory"]["hits"].as_u64().unwrap_or(0)
        + tiers["redis"]["hits"].as_u64().unwrap_or(0);
    assert_eq!(tier_hits, 2, "{tiers}");
    assert_eq!(tiers["redis"]["errors"], 0);
    assert_eq!(answer.body["breaker"], "closed");
    assert_eq!(answer.body["redis"], "connected");
    assert!(answer.body["timestamp"].is_string());
}

#[tokio::test]
async fn wrong_methods_are_405_problems() {
    let app = spawn_app().await;
    let answer = crate::helpers::Answer::from(
        app.client
            .get(app.url("/cache/clear"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    answer.assert_problem(405);
    app.get("/no/such/route").await.assert_problem(404);
}

/// A4 of the second consistency review: `/cache/stats` is public, and each call ran an
/// `INFO` (one per master in a cluster) on the connection the reads share.
#[tokio::test]
async fn a_flood_of_stats_requests_reads_redis_info_once_a_second() {
    let redis = RedisServer::start().expect("own redis-server");
    let redis_url = redis.url();
    let app = spawn_app_with(|c| c.redis.url = redis_url.into()).await;
    // The start's own INFO (the eviction-policy check) is done, then counting starts.
    assert_eq!(app.get("/cache/stats").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut admin = app.redis().await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .expect("resetstat");
    let flood = (0..40).map(|_| app.get("/cache/stats"));
    for answer in futures::future::join_all(flood).await {
        assert_eq!(answer.status, 200);
        assert!(answer.body["cache_stats"]["keyspace_hits"].is_u64());
    }
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin)
        .await
        .expect("commandstats");
    let info_calls: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_info:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        (1..=2).contains(&info_calls),
        "{info_calls} INFO calls for 40 requests"
    );
}
