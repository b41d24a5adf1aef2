//! `spawn_app()`: the real service on port 0, a fresh database per test, its own Redis
//! key prefix; `TestApp` to talk to it, `Answer` for what it said.

use std::{sync::OnceLock, time::Duration};

use cacheme_api::{App, Config, Hooks, RedisMode};
use reqwest::{Response, StatusCode, header::HeaderMap};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;

use super::*;

/// A running service.
#[derive(Debug)]
pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub config: Config,
    pub redis: TestRedisClient,
    /// The app's own pool, to change rows behind its back.
    pub pool: PgPool,
    /// Kept so the database lives (and is dropped) with the app; `None` when the test
    /// pointed the app at an unreachable or self-managed database.
    _database: Option<TestDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A config for tests: generous Redis timeout (a loaded CI machine must not turn hits into
/// misses), a key prefix of the test's own, no migration (the test database is migrated).
pub fn test_config(database_url: &str, redis_url: &str) -> Config {
    let mut config = Config::defaults();
    config.database.url = database_url.into();
    config.redis.url = redis_url.into();
    if cluster_run().is_some() && redis_url == shared_redis_url() {
        config.redis.mode = RedisMode::Cluster;
    }
    config.http.bind_addr = "127.0.0.1:0".parse().expect("valid address");
    config.cache.key_prefix = unique_name("keys");
    config.redis.timeout_ms = 2000;
    config.database.migrate_on_start = false;
    config.database.startup_timeout_seconds = 0;
    // Most tests write without a token; the closed default has tests of its own.
    config.writes.allow_anonymous = true;
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A fresh database and the shared Redis; `adjust` may change any setting.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &shared_redis_url());
    adjust(&mut config);
    start(config, Some(db)).await
}

/// Starts the service with exactly `config`.
pub async fn start(config: Config, db: Option<TestDatabase>) -> TestApp {
    start_with_hooks(config, db, Hooks::default()).await
}

/// `TEST_LOG=<filter>` (as `RUST_LOG`, e.g. `TEST_LOG=cacheme_api=debug`) prints the
/// services' logs beside a test's output; without it they stay quiet.
fn init_test_log() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// `CACHEME_MUTATION` switches one consistency mechanism off in this test process, as in
/// the API binary: `cargo xtask chaos --mutations` runs the one test that should fail
/// without a mechanism the checker cannot see removed (crates/harness/chaos/src/
/// mutations/). The line printed is that run's proof the mutation was on: a test that
/// failed for another reason (say, a build without the `mutations` feature, which
/// refuses the variable) must not pass for a catch.
fn install_mutation_from_env() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if let Err(e) = cacheme_api::install_mutation_from_env() {
            panic!("{e}");
        }
        if let Ok(name) = std::env::var("CACHEME_MUTATION")
            && !name.trim().is_empty()
        {
            println!("{}{}", cacheme_testsupport::MUTATION_ON_MARKER, name.trim());
        }
    });
}

/// [`start`] with hooks in the read path.
pub async fn start_with_hooks(config: Config, db: Option<TestDatabase>, hooks: Hooks) -> TestApp {
    init_test_log();
    install_mutation_from_env();
    let mut config = config;
    // A test that pointed the app at a Redis of its own (one URL) keeps single mode in a
    // cluster run.
    if !config.redis.url.expose().contains(',') {
        config.redis.mode = RedisMode::Single;
    }
    let app = App::build_with_hooks(&config, hooks)
        .await
        .expect("app builds");
    let pool = app.db_pool();
    let addr = app.local_addr().expect("bound address");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base_url: format!("http://{addr}"),
        client: http_client(),
        redis: TestRedisClient::new(&config),
        config,
        pool,
        _database: db,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// A decoded answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub async fn from(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body reads");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts an RFC 9457 problem with this status, and returns its `detail`.
    pub fn assert_problem(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["type"].is_string() && self.body["title"].is_string(),
            "{}",
            self.body
        );
        self.body["detail"]
            .as_str()
            .expect("detail is a string")
            .to_owned()
    }

    /// The problem's kind: its `type` after `/problems/` (empty if it has none).
    pub fn problem_slug(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.rsplit_once("/problems/"))
            .map_or("", |(_, slug)| slug)
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `host:port`, for a test that opens its own TCP connection.
    pub fn address(&self) -> String {
        self.base_url.trim_start_matches("http://").to_owned()
    }

    pub async fn get(&self, path: &str) -> Answer {
        Answer::from(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Answer::from(request.send().await.expect("request sent")).await
    }

    pub async fn stats(&self) -> Value {
        self.get("/cache/stats").await.body["app_stats"].clone()
    }

    /// Waits until the in-process tier is in use (its invalidation channel subscribed).
    pub async fn wait_for_memory_tier(&self, active: bool) {
        for _ in 0..100 {
            if self.get("/health").await.body["memory_tier"] == active {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "memory tier never became {}",
            if active { "active" } else { "inactive" }
        );
    }

    pub async fn delete(&self, path: &str) -> Answer {
        Answer::from(
            self.client
                .delete(self.url(path))
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    pub async fn redis(&self) -> TestRedis {
        self.redis.connect().await
    }

    pub fn keys(&self) -> cacheme_api::KeyScheme {
        cacheme_api::KeyScheme::with_mode(
            self.config.cache.key_prefix.clone(),
            self.config.redis.mode,
        )
    }

    pub fn product_key(&self, id: i32) -> String {
        self.keys().product(id)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Remove this test's keys from a shared Redis; its own Redis dies anyway, and so
        // does the cluster of a cluster run, with the test binary.
        let TestRedisClient::Single(client) = self.redis.clone() else {
            return;
        };
        let pattern = format!("{}:*", self.config.cache.key_prefix);
        let _ = std::thread::spawn(move || {
            if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) {
                let keys: Vec<String> =
                    redis::Commands::scan_match::<_, String>(&mut conn, &pattern)
                        .map(|iter| iter.filter_map(Result::ok).collect())
                        .unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<u64> =
                        redis::cmd("UNLINK").arg(&keys).query(&mut conn);
                }
            }
        })
        .join();
    }
}
