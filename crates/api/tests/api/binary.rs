//! The real `cacheme-api` binary: settings, `migrate`, and graceful shutdown on SIGTERM.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use cacheme_testsupport::{free_port, port_open};

use crate::helpers::{
    TestDatabase, api_binary, drop_database_blocking, http_client, stores, wait_until_listening,
};

const BINARY: &str = env!("CARGO_BIN_EXE_cacheme-api");

/// The binary with a clean environment apart from what the test sets.
fn command() -> Command {
    let mut cmd = Command::new(BINARY);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("REDIS_URL", &stores().redis_url)
        .stdin(Stdio::null());
    cmd
}

#[test]
fn help_lists_every_setting() {
    let output = command().arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "CACHE_TTL_SECONDS",
        "BIND_ADDR",
        "SIMULATED_DB_LATENCY_MS",
        "STATIC_DIR",
        "CORS_ALLOWED_ORIGINS",
        "REDIS_TIMEOUT_MS",
        "CACHE_KEY_PREFIX",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
    assert!(help.contains("migrate"));
}

#[test]
fn bad_settings_exit_non_zero_with_a_clear_message() {
    for (var, value, mention) in [
        ("CACHE_TTL_SECONDS", "soon", "cache-ttl-seconds"),
        ("BIND_ADDR", "everywhere", "bind-addr"),
        ("CORS_ALLOWED_ORIGINS", "localhost:3000", "not an origin"),
        ("CACHE_KEY_PREFIX", "a*b", "cache-key-prefix"),
    ] {
        let output = command().env(var, value).output().expect("runs");
        assert!(!output.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(mention), "{var}={value}: {stderr}");
    }
}

#[test]
fn an_unreachable_database_at_start_is_a_clear_failure() {
    let dead = format!(
        "postgres://postgres@127.0.0.1:{}/cacheme",
        free_port().expect("port")
    );
    let output = command()
        .env("DATABASE_URL", dead)
        .env("DB_STARTUP_TIMEOUT_SECONDS", "0")
        .env("BIND_ADDR", "127.0.0.1:0")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach PostgreSQL"), "{stderr}");
}

#[test]
fn migrate_creates_the_database_and_is_safe_to_run_concurrently() {
    let (url, name) = TestDatabase::fresh_url();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            command()
                .arg("migrate")
                .env("DATABASE_URL", &url)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawns")
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().expect("waits");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let count = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
                .fetch_one(&pool)
                .await
                .expect("count");
            let next: i64 =
                sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('products', 'id'))")
                    .fetch_one(&pool)
                    .await
                    .expect("nextval");
            pool.close().await;
            (count, next)
        });
    assert_eq!(
        count,
        (15, 16),
        "15 seed rows, and new ids continue after them"
    );
    drop_database_blocking(stores().postgres_admin_url.clone(), name);
}

/// Sends SIGTERM to a running API process.
fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running");
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
}

/// A connection that has sent nothing yet has no request to finish: shutdown does not
/// wait for it (it waited up to its header deadline, or the shutdown patience of 32 s,
/// while the accept loop's protocol sniff held a shutdown watcher). (Seen failing: still
/// running after 10 s.)
#[tokio::test]
async fn sigterm_does_not_wait_for_a_connection_that_sent_nothing() {
    let db = TestDatabase::create().await;
    let port = free_port().expect("port");
    let mut child = api_binary(&db.url, port, &format!("sigterm_{port}"))
        .spawn()
        .expect("spawns");
    wait_until_listening(port).await;
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s with a silent connection open")
        .expect("wait");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let db = TestDatabase::create().await;
    let port = free_port().expect("port");
    let mut child = api_binary(&db.url, port, &format!("sigterm_{port}"))
        .env("SIMULATED_DB_LATENCY_MS", "1500")
        .spawn()
        .expect("spawns");
    wait_until_listening(port).await;

    let client = http_client();
    let in_flight = tokio::spawn({
        let url = format!("http://127.0.0.1:{port}/products/1");
        async move { client.get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    sigterm(&child);

    let response = in_flight
        .await
        .expect("task")
        .expect("the in-flight request was answered");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["source"], "database");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after draining")
        .expect("wait");
    assert!(status.success(), "exit status {status}");
    assert!(!port_open(port), "still listening after SIGTERM");

    let redis = redis::Client::open(stores().redis_url.as_str()).expect("valid url");
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::AsyncCommands::del(&mut conn, format!("sigterm_{port}:v1:product:1"))
        .await
        .expect("remove the test's key");
}
