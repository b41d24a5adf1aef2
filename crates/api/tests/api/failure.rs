use cacheme_testsupport::{RedisServer, free_port};
use redis::AsyncCommands;

use crate::helpers::{
    TestDatabase, eventually, shared_redis_url, spawn_app_with, start, stores, test_config,
};

#[tokio::test]
async fn redis_killed_mid_test_degrades_then_recovers() {
    let mut redis = RedisServer::start().expect("own redis-server");
    let redis_url = redis.url();
    let app = spawn_app_with(|c| {
        c.redis.url = redis_url.into();
        c.redis.timeout_ms = 300;
        c.l1.enabled = false;
    })
    .await;
    assert_eq!(app.get("/products/1").await.body["source"], "database");
    assert_eq!(app.get("/products/1").await.body["source"], "cache");

    redis.kill().expect("kill redis");

    for id in [1, 2] {
        let answer = app.get(&format!("/products/{id}")).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["source"], "database");
        assert_eq!(answer.body["id"], id);
    }
    let health = app.get("/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "degraded");
    assert_eq!(health.body["redis"], "disconnected");
    assert_eq!(health.body["database"], "connected");
    assert_eq!(
        app.get("/readyz").await.status,
        200,
        "Redis down must not make the pod unready"
    );

    let stats = app.get("/cache/stats").await;
    assert_eq!(stats.status, 200);
    assert_eq!(stats.body["redis"], "disconnected");
    let redis_tier = &stats.body["app_stats"]["tiers"]["redis"];
    let failed =
        redis_tier["errors"].as_u64().unwrap_or(0) + redis_tier["skipped"].as_u64().unwrap_or(0);
    assert!(failed >= 2, "{redis_tier}");

    let clear = app.delete("/cache/clear").await;
    clear.assert_problem(503);
    assert!(clear.headers.contains_key("retry-after"));

    redis.restart().expect("restart redis on the same port");
    eventually("health back to healthy", || async {
        app.get("/health").await.body["status"] == "healthy"
    })
    .await;
    eventually("hits come back without restarting the app", || async {
        app.get("/products/3").await.body["source"] == "cache"
    })
    .await;
}

#[tokio::test]
async fn a_frozen_redis_costs_a_bounded_wait_not_a_hang() {
    let redis = RedisServer::start().expect("own redis-server");
    let redis_url = redis.url();
    let app = spawn_app_with(|c| {
        c.redis.url = redis_url.into();
        c.redis.timeout_ms = 200;
        c.l1.enabled = false;
    })
    .await;
    assert_eq!(app.get("/products/6").await.body["source"], "database");

    redis.pause().expect("SIGSTOP redis");
    // reqwest's own 30 s timeout would fail the test if the service hung on Redis.
    let answer = app.get("/products/6").await;
    redis.resume().expect("SIGCONT redis");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["source"], "database");
}

#[tokio::test]
async fn redis_unreachable_from_the_start_is_degraded_not_down() {
    let closed = format!("redis://127.0.0.1:{}", free_port().expect("port"));
    let app = spawn_app_with(|c| c.redis.url = closed.into()).await;
    let answer = app.get("/products/8").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["source"], "database");
    assert_eq!(app.get("/health").await.body["status"], "degraded");
}

#[tokio::test]
async fn postgres_unreachable_serves_cached_products_and_503s_misses() {
    // Fill the cache from a working database, then point a second app with the same key
    // prefix at a port where nothing listens.
    let working = spawn_app_with(|_| {}).await;
    assert_eq!(working.get("/products/9").await.body["source"], "database");

    let dead_db = format!(
        "postgres://postgres@127.0.0.1:{}/cacheme",
        free_port().expect("port")
    );
    let mut config = test_config(&dead_db, &shared_redis_url());
    config.cache.key_prefix = working.config.cache.key_prefix.clone();
    config.database.acquire_timeout_ms = 500;
    let app = start(config, None).await;

    let cached = app.get("/products/9").await;
    assert_eq!(cached.status, 200);
    assert_eq!(cached.body["source"], "cache");
    assert_eq!(cached.body["name"], "Dell XPS 13");

    let miss = app.get("/products/10").await;
    miss.assert_problem(503);
    assert_eq!(miss.headers["retry-after"], "5");
    app.get("/products").await.assert_problem(503);

    let health = app.get("/health").await;
    assert_eq!(health.status, 503);
    assert_eq!(health.body["status"], "unhealthy");
    assert_eq!(health.body["database"], "disconnected");
    // Cached products are still served, so the replica stays in the Service.
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["status"], "cache-only");

    let mut redis = working.redis().await;
    let _: () = redis.del(working.product_key(9)).await.expect("del");
}

#[tokio::test]
async fn a_fresh_database_is_created_and_migrated_at_start() {
    let (url, name) = TestDatabase::fresh_url();
    let mut config = test_config(&url, &shared_redis_url());
    config.database.migrate_on_start = true;
    let app = start(config, None).await;
    assert_eq!(
        app.get("/products/15").await.body["name"],
        "HP Spectre x360"
    );
    app.stop().await;
    crate::helpers::drop_database_blocking(stores().postgres_admin_url.clone(), name);
}

/// Connections are kept between queries (not pinged on every use); one that the server
/// closed meanwhile must cost a retry, not an error.
#[tokio::test]
async fn a_connection_closed_by_the_server_is_replaced_without_an_error() {
    let app = spawn_app_with(|c| c.l1.enabled = false).await;
    assert_eq!(app.get("/products/1").await.status, 200);
    assert_eq!(app.get("/products?limit=2").await.status, 200);

    // What a PostgreSQL restart or a proxy's idle cut does to the kept connections.
    let database = app
        .config
        .database
        .url
        .expose()
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .expect("a database name")
        .to_owned();
    let admin = sqlx::PgPool::connect(&stores().postgres_admin_url)
        .await
        .expect("admin connection");
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'cacheme-api'",
    )
    .bind(&database)
    .fetch_all(&admin)
    .await
    .expect("terminate the app's connections");
    assert!(!terminated.is_empty(), "the app kept a connection");

    for path in ["/readyz", "/products/2", "/products?limit=2"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }
    assert_eq!(app.get("/products/2").await.body["source"], "cache");
}
