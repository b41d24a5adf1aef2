//! `spawn_app()`: the real service on port 0, a fresh database per test, its own Redis key prefix.
//! (Just over 400 lines: every helper a test file imports lives here, so there is one place to look.)

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use cacheme_api::{App, Config, Hooks, KeyLayout, RedisMode};
use cacheme_testsupport::{RedisCluster, Stores, with_database};
use futures::FutureExt as _;
use reqwest::{Response, StatusCode, header::HeaderMap};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;

/// The servers every test uses, found or started once per test binary.
pub fn stores() -> &'static Stores {
    static STORES: OnceLock<Stores> = OnceLock::new();
    STORES.get_or_init(|| {
        Stores::find_or_start().unwrap_or_else(|e| {
            panic!("cannot find or start PostgreSQL and Redis for the tests: {e:#}")
        })
    })
}

/// With `CACHEME_TEST_REDIS=cluster` the suite's shared Redis is a Redis Cluster of its
/// own (3 masters, 1 replica each) and apps use cluster mode; tests that start a Redis of
/// their own (to kill or freeze it) keep single mode.
pub fn cluster_run() -> Option<&'static RedisCluster> {
    static CLUSTER: OnceLock<Option<RedisCluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            (std::env::var("CACHEME_TEST_REDIS").as_deref() == Ok("cluster")).then(|| {
                RedisCluster::start(3, 1)
                    .unwrap_or_else(|e| panic!("cannot start a Redis Cluster for the tests: {e:#}"))
            })
        })
        .as_ref()
}

/// The Redis every test shares: the single server, or the cluster's seed list.
pub fn shared_redis_url() -> String {
    match cluster_run() {
        Some(cluster) => cluster.urls().join(","),
        None => stores().redis_url.clone(),
    }
}

fn unique_name(kind: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "cacheme_{kind}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn http_client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; plain HTTP still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client builds")
}

/// A fresh, migrated database, dropped with this value.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url = stores().postgres_admin_url.clone();
        let name = unique_name("test");
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL admin database");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let url = with_database(&admin_url, &name);
        let db = Self {
            name,
            url,
            admin_url,
        };
        let pool = db.pool().await;
        cacheme_api::MIGRATOR
            .run(&pool)
            .await
            .expect("migrations apply");
        pool.close().await;
        db
    }

    /// An empty database name on the same server, never created (for `migrate` tests).
    pub fn fresh_url() -> (String, String) {
        let name = unique_name("fresh");
        (with_database(&stores().postgres_admin_url, &name), name)
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

/// Drops a database, forcing out connections, on a runtime of its own (usable from `Drop`).
pub fn drop_database_blocking(admin_url: String, name: String) {
    let worker = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await;
            }
        });
    });
    let _ = worker.join();
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        drop_database_blocking(self.admin_url.clone(), self.name.clone());
    }
}

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
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
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
        let layout = match self.config.redis.mode {
            RedisMode::Single => KeyLayout::Single,
            RedisMode::Cluster => KeyLayout::Cluster,
        };
        cacheme_api::KeyScheme::with_layout(self.config.cache.key_prefix.clone(), layout)
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

/// Polls `check` every 100 ms for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// The real `cacheme-api` binary on `port` with a clean environment: the test database,
/// the shared Redis under `key_prefix`, no migration. Add settings, then spawn it.
pub fn api_binary(database_url: &str, port: u16, key_prefix: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cacheme-api"));
    command
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", &stores().redis_url)
        .env("CACHE_KEY_PREFIX", key_prefix)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("MIGRATE_ON_START", "false")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// Waits up to 10 s for something to listen on `port`.
pub async fn wait_until_listening(port: u16) {
    for _ in 0..200 {
        if cacheme_testsupport::port_open(port) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listened on port {port} within 10 s");
}

/// A one-shot pause of the first call of a hook for `id`: says when it got there, waits
/// for the release.
pub fn pause_once(
    id: i32,
) -> (
    cacheme_api::Hook,
    oneshot::Receiver<()>,
    oneshot::Sender<()>,
) {
    let (reached_tx, reached_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some((reached_tx, release_rx))));
    let hook: cacheme_api::Hook = std::sync::Arc::new(move |called: i32| {
        let taken = if called == id {
            slot.lock().ok().and_then(|mut s| s.take())
        } else {
            None
        };
        async move {
            if let Some((reached, release)) = taken {
                let _ = reached.send(());
                let _ = release.await;
            }
        }
        .boxed()
    });
    (hook, reached_rx, release_tx)
}

/// How a test reaches the app's Redis, in either mode.
#[derive(Debug, Clone)]
pub enum TestRedisClient {
    Single(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

impl TestRedisClient {
    fn new(config: &Config) -> Self {
        match config.redis.mode {
            RedisMode::Single => Self::Single(
                redis::Client::open(config.redis.url.expose()).expect("valid redis url"),
            ),
            RedisMode::Cluster => Self::Cluster(Box::new(
                redis::cluster::ClusterClient::new(config.redis.url.expose().split(','))
                    .expect("valid urls"),
            )),
        }
    }

    pub async fn connect(&self) -> TestRedis {
        match self {
            Self::Single(client) => TestRedis::Single(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("test connects to Redis"),
            ),
            Self::Cluster(client) => TestRedis::Cluster(
                client
                    .get_async_connection()
                    .await
                    .expect("test connects to the Redis Cluster"),
            ),
        }
    }
}

/// A connection to the app's Redis: commands route by key in a cluster.
#[derive(Clone)]
pub enum TestRedis {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for TestRedis {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}
