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
        c.l1.enabled = false;
        c.database.max_connections = 1;
        c.database.simulated_latency_ms = 3000;
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
        c.l1.enabled = false;
        c.database.statement_timeout_ms = 500;
    })
    .await;
    let mut locker = PgConnection::connect(app.config.database.url.expose())
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
        c.l1.enabled = false;
        c.database.simulated_latency_ms = 200;
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
    let mut admin = PgConnection::connect(app.config.database.url.expose())
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
    let app = Arc::new(spawn_app_with(|c| c.l1.enabled = false).await);
    app.get("/products/4").await;
    assert_eq!(app.get("/products/4").await.body["source"], "cache");
    let before = app.get("/cache/entries/4").await.body["generation"].clone();

    let mut locker = PgConnection::connect(app.config.database.url.expose())
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
    let mut admin = PgConnection::connect(app.config.database.url.expose())
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

/// A TCP proxy to PostgreSQL that can turn every connection open so far into a black
/// hole (bytes accepted, never forwarded, never closed), as a failover to a new address
/// or a firewall's silent drop does, while new connections go through.
struct BlackHoleProxy {
    port: u16,
    /// Connections accepted so far (numbered from 1).
    opened: Arc<std::sync::atomic::AtomicU64>,
    /// Connections numbered up to this are black holes.
    swallow_up_to: Arc<std::sync::atomic::AtomicU64>,
}

impl BlackHoleProxy {
    async fn start(target_port: u16) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("its address").port();
        let swallow_up_to = Arc::new(AtomicU64::new(0));
        let opened = Arc::new(AtomicU64::new(0));
        let swallow = Arc::clone(&swallow_up_to);
        let count = Arc::clone(&opened);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let number = count.fetch_add(1, Ordering::SeqCst) + 1;
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [(client_read, server_write), (server_read, client_write)]
                {
                    let swallow = Arc::clone(&swallow);
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buffer = vec![0_u8; 16 * 1024];
                        loop {
                            let Ok(n) = from.read(&mut buffer).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            if number <= swallow.load(Ordering::SeqCst) {
                                // Hold both sockets open and say nothing, for ever.
                                std::future::pending::<()>().await;
                            }
                            if to.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Self {
            port,
            opened,
            swallow_up_to,
        }
    }

    /// Every connection open now goes silent; later ones go through.
    fn black_hole_open_connections(&self) {
        use std::sync::atomic::Ordering;
        self.swallow_up_to
            .store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// An app with one PostgreSQL connection, reached through a [`BlackHoleProxy`], and
/// statements bounded to 500 ms; no L1 and no negative entries, so every read of a new
/// id is a query.
async fn app_behind_black_hole_proxy() -> (crate::helpers::TestApp, BlackHoleProxy) {
    let db = crate::helpers::TestDatabase::create().await;
    let (head, db_port_and_name) = db.url.rsplit_once(':').expect("a port in the URL");
    let (db_port, db_name) = db_port_and_name.split_once('/').expect("a database name");
    let proxy = BlackHoleProxy::start(db_port.parse().expect("a port")).await;
    let mut config = crate::helpers::test_config(
        &format!("{head}:{}/{db_name}", proxy.port),
        &crate::helpers::shared_redis_url(),
    );
    config.l1.enabled = false;
    config.cache.negative_ttl_seconds = 0;
    config.database.max_connections = 1;
    config.database.statement_timeout_ms = 500;
    config.database.acquire_timeout_ms = 1000;
    let app = crate::helpers::start(config, Some(db)).await;
    (app, proxy)
}

/// A2: a PostgreSQL connection that went silent (no RST: a failover to a new address, a
/// dropped route) was pinged without a bound, by us when it had been kept idle and by
/// sqlx when a statement on it passed its deadline, each holding a pool slot for TCP's
/// retransmission time (about 15 minutes): every later miss answered 503. Both pings are
/// now bounded and a connection whose statement failed so is closed, not pinged.
#[tokio::test]
async fn a_silent_postgresql_connection_is_replaced_not_waited_on() {
    let (app, proxy) = app_behind_black_hole_proxy().await;
    let answered_within = |limit: Duration, started: Instant| started.elapsed() < limit;

    // A statement sent on a connection that went silent passes its deadline (503), and
    // the next miss gets a new connection.
    assert_eq!(app.get("/products/1").await.status, 200);
    proxy.black_hole_open_connections();
    let silent = app.get("/products/2").await;
    assert_eq!(silent.status, 503, "{}", silent.body);
    let started = Instant::now();
    let mut statuses = Vec::new();
    loop {
        let answer = app.get("/products/3").await;
        statuses.push(answer.status);
        if answer.status == 200 || !answered_within(Duration::from_secs(8), started) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        statuses.last().map(|s| s.as_u16()),
        Some(200),
        "misses after a silent connection: {statuses:?} over {:?}",
        started.elapsed()
    );
}

/// A2, the other unbounded ping: a connection kept idle for 10 s is pinged before its
/// next statement, and that ping waited on a silent server for ever, holding the only
/// permit. It is bounded now, and the connection replaced.
#[tokio::test]
async fn a_kept_connection_that_went_silent_while_idle_is_replaced() {
    let (app, proxy) = app_behind_black_hole_proxy().await;

    assert_eq!(app.get("/products/1").await.status, 200);
    proxy.black_hole_open_connections();
    // Idle long enough to be pinged before the next statement.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let started = Instant::now();
    let answer = app.get("/products/2").await;
    assert_eq!(
        answer.status,
        200,
        "after {:?}: {}",
        started.elapsed(),
        answer.body
    );
}
