//! PostgreSQL: the connection handle, its queries (`products.rs`, `outbox.rs`) and migrations.

use std::{sync::Arc, time::Duration};

use parking_lot::Mutex;

use sqlx::{
    Connection as _, PgPool,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::sync::Semaphore;

use crate::observability::metrics::Metrics;

/// The columns of [`Product`](crate::model::Product), as a literal so queries stay `&'static str`.
macro_rules! product_columns {
    () => {
        "id, name, category, price, description, created_at, updated_at"
    };
}

mod failure;
mod outbox;
mod own_connection;
mod pool;
mod products;

pub use failure::{outcome_unknown, unavailable};
pub use outbox::{OwedInvalidation, Written};

use failure::deadline_passed;
use own_connection::OwnConnection;
use pool::KeptConnection;

/// The schema and the 15 seed products; the single source of truth for both.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// How long shutdown waits for the pool to close its connections.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

/// A pooled connection idle this long is pinged before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(10);

/// Client-side deadline on top of `statement_timeout`: a frozen server or a dead network
/// never answers, so the server's own timer cannot help.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

/// The database handle the handlers use.
#[derive(Debug, Clone)]
pub struct Database {
    pool: PgPool,
    /// One permit per pooled connection, handed out first come, first served: under a
    /// thousand concurrent misses the queue waits here, and sqlx's pool never has more
    /// waiters than connections (with a deep queue of its own it timed requests out while
    /// connections sat idle).
    permits: Arc<Semaphore>,
    /// Connections checked out of the pool and kept between queries (most recently used
    /// last), with when each was last used. sqlx pings a connection every time it goes
    /// back to its pool, a second round trip per query; kept here, it goes back only
    /// when a query failed in a way that may have broken it, or at shutdown.
    kept: Arc<Mutex<Vec<KeptConnection>>>,
    acquire_timeout: Duration,
    /// Upper bound on one statement, enforced by the server (`statement_timeout`) and,
    /// plus a margin, by us.
    statement_timeout: Duration,
    simulated_latency: Duration,
    metrics: Arc<Metrics>,
    /// The health checks' own connection: probes never wait behind requests for a
    /// permit, so a busy pool does not make a pod unready.
    health: OwnConnection,
    /// The outbox poll's own connection: how other replicas' writes are learned when
    /// Redis cannot announce them, so it must not queue behind misses.
    outbox: OwnConnection,
}

/// Pool settings of [`Database::connect_lazy`].
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    pub simulated_latency: Duration,
}

impl Database {
    /// Builds a lazy pool: nothing connects until the first query, so the
    /// service can start (and report itself unready) while PostgreSQL is down.
    pub fn connect_lazy(
        url: &str,
        settings: &DatabaseSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, sqlx::Error> {
        let DatabaseSettings {
            max_connections,
            acquire_timeout,
            statement_timeout,
            simulated_latency,
        } = *settings;
        let options: PgConnectOptions = url.parse()?;
        let options = options
            .application_name("cacheme-api")
            .options([("statement_timeout", statement_timeout.as_millis())]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            // sqlx pings every connection it hands out by default: a second round trip per
            // query (half the database's work on a miss). Only a connection that sat idle
            // long enough to have been dropped by a restart or a proxy is checked.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options.clone());
        Ok(Self {
            pool,
            permits: Arc::new(Semaphore::new(max_connections as usize)),
            kept: Arc::default(),
            acquire_timeout,
            statement_timeout,
            simulated_latency,
            metrics,
            health: OwnConnection::new(options.clone()),
            outbox: OwnConnection::new(options),
        })
    }

    /// How long one statement may take, our margin included.
    pub fn statement_deadline(&self) -> Duration {
        self.statement_timeout + DEADLINE_MARGIN
    }

    /// The longest a load can take: the wait for a connection, the simulated latency and
    /// the statement, each bounded, twice over (a read is tried once more on a fresh
    /// connection when the first turns out lost).
    pub fn load_deadline(&self) -> Duration {
        self.acquire_timeout * 2 + self.simulated_latency + self.statement_deadline() * 2
    }

    /// Runs `query` under the statement deadline.
    async fn bounded<T>(
        &self,
        query: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let limit = self.statement_deadline();
        tokio::time::timeout(limit, query)
            .await
            .unwrap_or_else(|_| Err(deadline_passed(limit)))
    }

    /// The pool itself, for tests (the `test-hooks` feature).
    #[cfg(feature = "test-hooks")]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection (kept ones included) once those in use are done.
    pub async fn close(&self) {
        self.permits.close();
        let kept: Vec<_> = self.kept.lock().drain(..).collect();
        drop(kept);
        // sqlx waits for every connection it lent to come back, and after a burst of load
        // one sometimes never did (seen: SIGTERM left the process waiting here for good).
        if tokio::time::timeout(CLOSE_PATIENCE, self.pool.close())
            .await
            .is_err()
        {
            tracing::warn!(
                "PostgreSQL connections still open after {CLOSE_PATIENCE:?}; stopping anyway"
            );
        }
    }

    /// A round trip to the server on the health checks' own connection (never a request
    /// permit), bounded by the acquire timeout.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.health
            .run(self.acquire_timeout, |conn| Box::pin(conn.ping()))
            .await
    }
}

/// How long one start-up connection attempt may take before it is retried.
const MIGRATE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates the database when missing, then applies every pending migration.
///
/// Several replicas may start at once: a concurrent `CREATE DATABASE` that
/// loses the race is ignored, and sqlx serialises migrations with a
/// PostgreSQL advisory lock.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // A server that never answers (packets dropped: a NetworkPolicy not yet synced, a
    // failed-over address) would hold a connection attempt for the TCP timeout, about
    // two minutes, or for ever once connected; each attempt gets MIGRATE_CONNECT_TIMEOUT.
    let exists = tokio::time::timeout(
        MIGRATE_CONNECT_TIMEOUT,
        sqlx::Postgres::database_exists(url),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer from PostgreSQL within {MIGRATE_CONNECT_TIMEOUT:?}"))?
    .context("cannot reach PostgreSQL")?;
    if !exists && let Err(e) = sqlx::Postgres::create_database(url).await {
        // Another replica may have created it in the meantime.
        if !sqlx::Postgres::database_exists(url).await.unwrap_or(false) {
            return Err(anyhow::Error::new(e).context("cannot create the database"));
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(MIGRATE_CONNECT_TIMEOUT)
        .connect(url)
        .await
        .context("cannot connect to the database")?;
    MIGRATOR.run(&pool).await.context("migration failed")?;
    pool.close().await;
    Ok(())
}

/// [`migrate`], retried every second while PostgreSQL is unreachable, for at most `patience`.
pub async fn migrate_with_retry(url: &str, patience: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match migrate(url).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "migration not done yet; retrying in 1 s"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
