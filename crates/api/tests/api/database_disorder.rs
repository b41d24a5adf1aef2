//! PostgreSQL in disorder: a pool busy with requests, a statement stuck on a lock,
//! connections the server terminates, and a write whose connection dies after the
//! statement was sent. Each test
//! reproduces a bug that the service had, and was seen failing before its fix.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::{disorder::impatient_client, helpers::spawn_app_with};

#[tokio::test]
async fn readiness_does_not_wait_behind_requests_for_a_connection() {
    let app = spawn_app_with(|c| {
        c.l1_enabled = false;
        c.db_max_connections = 1;
        c.simulated_db_latency_ms = 3000;
    })
    .await;
    let busy = {
        let client = app.client.clone();
        let url = app.url("/products/8");
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    assert_eq!(
        app.get("/readyz").await.status,
        200,
        "PostgreSQL is healthy, only busy"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.get("/health").await.body["database"], "connected");
    assert_eq!(busy.await.expect("task").expect("answered"), 200);
}

#[tokio::test]
async fn a_statement_stuck_on_a_lock_answers_503_within_its_deadline() {
    let app = spawn_app_with(|c| {
        c.l1_enabled = false;
        c.db_statement_timeout_ms = 500;
    })
    .await;
    let mut locker = PgConnection::connect(&app.config.database_url)
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN; LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .expect("lock the table");
    let started = Instant::now();
    let answer = crate::helpers::Answer::from(
        impatient_client(5000)
            .get(app.url("/products/9"))
            .send()
            .await
            .expect("an answer before the client gives up"),
    )
    .await;
    answer.assert_problem(503);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .expect("unlock");
    assert_eq!(app.get("/products/9").await.status, 200);
}

#[tokio::test]
async fn terminated_database_connections_are_replaced_not_answered_with_500() {
    let app = spawn_app_with(|c| {
        c.l1_enabled = false;
        c.simulated_db_latency_ms = 200;
    })
    .await;
    // Four concurrent misses leave four connections kept for reuse.
    let misses: Vec<_> = (1..=4)
        .map(|id| {
            let client = app.client.clone();
            let url = app.url(&format!("/products/{id}"));
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    for miss in misses {
        assert_eq!(miss.await.expect("task").expect("answer"), 200);
    }
    let mut admin = PgConnection::connect(&app.config.database_url)
        .await
        .expect("connect");
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'cacheme-api' AND datname = current_database()",
    )
    .fetch_all(&mut admin)
    .await
    .expect("terminate");
    assert!(terminated.len() >= 4, "{terminated:?}");
    for id in 5..=8 {
        let answer = app.get(&format!("/products/{id}")).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}

#[tokio::test]
async fn a_write_whose_outcome_is_unknown_still_invalidates() {
    let app = Arc::new(spawn_app_with(|c| c.l1_enabled = false).await);
    app.get("/products/4").await;
    assert_eq!(app.get("/products/4").await.body["source"], "cache");
    let before = app.get("/cache/entries/4").await.body["generation"].clone();

    let mut locker = PgConnection::connect(&app.config.database_url)
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN; SELECT 1 FROM products WHERE id = 4 FOR UPDATE")
        .execute(&mut locker)
        .await
        .expect("lock the row");
    let write = {
        let app = app.clone();
        tokio::spawn(async move {
            app.send(Method::PATCH, "/products/4", Some(json!({"name": "Lost?"})))
                .await
        })
    };
    // The statement has been sent and waits on the lock; then its connection dies.
    let mut admin = PgConnection::connect(&app.config.database_url)
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'cacheme-api' AND wait_event_type = 'Lock' \
             AND datname = current_database()",
        )
        .fetch_all(&mut admin)
        .await
        .expect("terminate");
        if !killed.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the write never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = write.await.expect("task");
    answer.assert_problem(503);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .expect("unlock");

    let entry = app.get("/cache/entries/4").await.body;
    assert_eq!(entry["cached"], false, "{entry}");
    assert_ne!(entry["generation"], before, "{entry}");
}

/// A PostgreSQL that accepts the connection and never answers (a black hole: packets of a
/// NetworkPolicy not synced yet, an address that failed over) held the start-up migration
/// until TCP gave up, about two minutes on kind, or for ever: each attempt is bounded and
/// retried, and the start gives up after its patience.
#[tokio::test]
async fn a_silent_postgresql_at_start_costs_bounded_attempts_not_a_hang() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a listener");
    let port = silent.local_addr().expect("its address").port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/cacheme");
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        cacheme_api::migrate_with_retry(&url, Duration::from_secs(1)),
    )
    .await
    .expect("the start gave up within 30 s");
    assert!(
        result.is_err(),
        "nothing answered, yet the migration passed"
    );
    // One attempt (5 s) past the patience (1 s), and the retry's second.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}
