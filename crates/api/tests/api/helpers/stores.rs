//! The servers the tests share (PostgreSQL, Redis, the optional Redis Cluster) and a
//! fresh database per test.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use cacheme_testsupport::{RedisCluster, Stores, with_database};
use sqlx::{Connection, PgConnection, PgPool};

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

pub(crate) fn unique_name(kind: &str) -> String {
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
    http_client_with_timeout(Duration::from_secs(30))
}

/// A client that gives up after `timeout`: for the tests that expect no answer, or an
/// answer soon.
pub fn http_client_with_timeout(timeout: Duration) -> reqwest::Client {
    http_client_builder(timeout)
        .build()
        .expect("reqwest client builds")
}

/// The builder behind [`http_client`], for a test that needs one more setting.
pub fn http_client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    // reqwest is built without a default TLS provider; plain HTTP still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(timeout)
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
