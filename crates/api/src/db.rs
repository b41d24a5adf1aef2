//! PostgreSQL: the product model, its queries, and migrations.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{FutureExt as _, future::BoxFuture};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{
    Connection as _, PgConnection, PgPool, Postgres,
    migrate::{MigrateDatabase, Migrator},
    pool::PoolConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, SemaphorePermit};

use utoipa::ToSchema;

use crate::{input::ValidProduct, metrics::Metrics};

/// The schema and the 15 seed products; the single source of truth for both.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// A product row, as stored in PostgreSQL and (as JSON) in the cache.
///
/// Field order is the original demo's wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Product {
    #[schema(example = 1)]
    pub id: i32,
    #[schema(example = "MacBook Pro 16\"")]
    pub name: String,
    #[schema(example = "Laptops")]
    pub category: Option<String>,
    /// NUMERIC(10,2) in the database, a JSON number on the wire.
    #[serde(with = "rust_decimal::serde::float_option")]
    #[schema(value_type = Option<f64>, example = 2499.99)]
    pub price: Option<Decimal>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`Product`], as a literal so queries stay `&'static str`.
macro_rules! product_columns {
    () => {
        "id, name, category, price, description, created_at, updated_at"
    };
}

mod writes;

pub use writes::{OutboxRow, Written};

/// How long shutdown waits for the pool to close its connections.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

/// A pooled connection idle this long is pinged before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(10);

/// Whether a query failed in a way that may have broken its connection (the server did
/// not answer: a restart, a proxy that dropped it, or our own deadline). Such a connection
/// is never reused.
fn lost_connection<T>(result: &Result<T, sqlx::Error>) -> bool {
    match result {
        Ok(_) | Err(sqlx::Error::RowNotFound) => false,
        // The server's last words on a connection it is closing: class 08 (connection
        // exception) and 57P (shutdown, e.g. `pg_terminate_backend` or a restart).
        Err(sqlx::Error::Database(e)) => e
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        Err(_) => true,
    }
}

/// Whether a failed statement may still have been carried out: the connection was lost
/// or the deadline passed after it was sent. A write that fails so must still be
/// invalidated.
pub fn outcome_unknown(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Whether a read that failed so is worth one more try on a fresh connection (a kept
/// connection that a restart or a proxy closed); a deadline that passed is not.
fn worth_retrying<T>(result: &Result<T, sqlx::Error>) -> bool {
    match result {
        Err(sqlx::Error::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => false,
        other => lost_connection(other),
    }
}

/// What our own deadline on a statement looks like to callers: a connection-level
/// failure, so it answers 503 (and stale-if-error applies).
fn deadline_passed(limit: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("PostgreSQL did not answer within {limit:?}"),
    ))
}

/// Client-side deadline on top of `statement_timeout`: a frozen server or a dead network
/// never answers, so the server's own timer cannot help.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

/// A connection between queries, and when it was last used.
type KeptConnection = (PoolConnection<Postgres>, std::time::Instant);

fn lock_kept<T>(kept: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Pushes and pops only; a poisoned list is still consistent.
    kept.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection lent to one query. Dropped without being marked reusable (the query
/// failed, or its request was cancelled mid-query) it goes back to sqlx's pool, which
/// checks it; marked reusable it is kept for the next query.
struct Checkout<'a> {
    db: &'a Database,
    conn: Option<PoolConnection<Postgres>>,
    reusable: bool,
    _permit: SemaphorePermit<'a>,
}

impl<'a> Checkout<'a> {
    fn new(db: &'a Database, conn: PoolConnection<Postgres>, permit: SemaphorePermit<'a>) -> Self {
        Self {
            db,
            conn: Some(conn),
            reusable: false,
            _permit: permit,
        }
    }

    fn connection(&mut self) -> &mut PgConnection {
        // Present from `new` until `drop`.
        self.conn.as_deref_mut().expect("a checked-out connection")
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.reusable
            && !self.db.permits.is_closed()
        {
            lock_kept(&self.db.kept).push((conn, std::time::Instant::now()));
        }
    }
}

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
    health: Arc<tokio::sync::Mutex<Option<PgConnection>>>,
    options: PgConnectOptions,
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
            health: Arc::default(),
            options,
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

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection (kept ones included) once those in use are done.
    pub async fn close(&self) {
        self.permits.close();
        let kept: Vec<_> = lock_kept(&self.kept).drain(..).collect();
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

    /// A connection for one query, once a permit is free. Waiting longer than the acquire
    /// timeout for a permit fails like waiting for a pooled connection.
    async fn checkout(&self) -> Result<Checkout<'_>, sqlx::Error> {
        let permit = self.permit().await?;
        loop {
            let kept = lock_kept(&self.kept).pop();
            let Some((mut conn, last_used)) = kept else {
                let conn = self.pool.acquire().await?;
                return Ok(Checkout::new(self, conn, permit));
            };
            if last_used.elapsed() < IDLE_BEFORE_PING
                || sqlx::Connection::ping(&mut *conn).await.is_ok()
            {
                return Ok(Checkout::new(self, conn, permit));
            }
            // Dropped by a restart or a proxy: close it and try the next one.
            conn.close_on_drop();
        }
    }

    async fn permit(&self) -> Result<SemaphorePermit<'_>, sqlx::Error> {
        match tokio::time::timeout(self.acquire_timeout, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(sqlx::Error::PoolClosed),
            Err(_elapsed) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// After a lost connection: closes every kept connection (a restart closed them all)
    /// and checks out one that answers a ping, trying as many as the pool holds.
    async fn checkout_verified(&self) -> Result<Checkout<'_>, sqlx::Error> {
        let stale: Vec<_> = lock_kept(&self.kept).drain(..).collect();
        for (mut conn, _) in stale {
            conn.close_on_drop();
        }
        let permit = self.permit().await?;
        let mut last = sqlx::Error::PoolTimedOut;
        for _ in 0..=self.pool.options().get_max_connections() {
            let mut conn = self.pool.acquire().await?;
            match self.bounded(conn.ping()).await {
                Ok(()) => return Ok(Checkout::new(self, conn, permit)),
                Err(e) => {
                    conn.close_on_drop();
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Gives the connection back (kept when the query left it usable) and times the query
    /// for `/metrics`, from before the checkout (the wait for a connection and the
    /// simulated latency included: it stands for a slow database).
    /// `operation: None` keeps the query out of the metrics (health checks).
    fn finish<T>(
        &self,
        operation: Option<&'static str>,
        start: std::time::Instant,
        mut checkout: Checkout<'_>,
        result: &Result<T, sqlx::Error>,
    ) {
        checkout.reusable = !lost_connection(result);
        drop(checkout);
        if let Some(operation) = operation {
            self.metrics.observe_query(operation, start.elapsed());
        }
    }

    /// Runs a read under the statement deadline, tried once more on a verified connection
    /// when the first turns out lost (a PostgreSQL restart or a proxy closed it while it
    /// was kept; the other kept ones are closed too). `operation` names it in the
    /// metrics; a product read also waits out the simulated latency.
    async fn read<T>(
        &self,
        operation: Option<&'static str>,
        query: impl for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let mut retry = false;
        loop {
            let start = std::time::Instant::now();
            let mut checkout = if retry {
                self.checkout_verified().await?
            } else {
                self.checkout().await?
            };
            if operation.is_some() {
                self.simulate_latency().await;
            }
            let result = self.bounded(query(checkout.connection())).await;
            self.finish(operation, start, checkout, &result);
            if retry || !worth_retrying(&result) {
                return result;
            }
            retry = true;
        }
    }

    async fn simulate_latency(&self) {
        if !self.simulated_latency.is_zero() {
            tokio::time::sleep(self.simulated_latency).await;
        }
    }

    #[tracing::instrument(name = "db.get_product", skip(self), fields(db.system = "postgresql", db.statement = "get_product", product.id = id))]
    pub async fn get_product(&self, id: i32) -> Result<Option<Product>, sqlx::Error> {
        self.read(Some("get_product"), move |conn| {
            sqlx::query_as::<_, Product>(concat!(
                "SELECT ",
                product_columns!(),
                " FROM products WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(conn)
            .boxed()
        })
        .await
    }

    #[tracing::instrument(name = "db.list_products", skip(self), fields(db.system = "postgresql", db.statement = "list_products"))]
    pub async fn list_products(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Product>, sqlx::Error> {
        self.read(Some("list_products"), move |conn| {
            sqlx::query_as::<_, Product>(concat!(
                "SELECT ",
                product_columns!(),
                " FROM products ORDER BY id LIMIT $1 OFFSET $2"
            ))
            .bind(limit)
            .bind(offset)
            .fetch_all(conn)
            .boxed()
        })
        .await
    }

    /// Inserts or updates products with the given ids (seed data), in one transaction,
    /// then moves the id sequence past them.
    pub async fn upsert_products(
        &self,
        products: &[(i32, ValidProduct)],
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for (id, p) in products {
            sqlx::query(
                "INSERT INTO products (id, name, description, price, category) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description, \
                 price = EXCLUDED.price, category = EXCLUDED.category \
                 WHERE (products.name, products.description, products.price, products.category) \
                 IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.description, EXCLUDED.price, EXCLUDED.category)",
            )
            .bind(id)
            .bind(&p.name)
            .bind(&p.description)
            .bind(p.price)
            .bind(&p.category)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('products', 'id'), GREATEST((SELECT max(id) FROM products), 1))",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// A round trip to the server on the health checks' own connection (never a request
    /// permit), bounded by the acquire timeout.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let limit = self.acquire_timeout;
        let check = async {
            let mut slot = self.health.lock().await;
            let result = match slot.as_mut() {
                Some(conn) => conn.ping().await,
                None => match PgConnection::connect_with(&self.options).await {
                    Ok(mut conn) => {
                        let pinged = conn.ping().await;
                        *slot = Some(conn);
                        pinged
                    }
                    Err(e) => Err(e),
                },
            };
            if result.is_err() {
                // Reconnect on the next check.
                *slot = None;
            }
            result
        };
        match tokio::time::timeout(limit, check).await {
            Ok(result) => result,
            Err(_) => {
                // The check was dropped mid-call: its connection is in an unknown state.
                if let Ok(mut slot) = self.health.try_lock() {
                    *slot = None;
                }
                Err(deadline_passed(limit))
            }
        }
    }
}

/// Creates the database when missing, then applies every pending migration.
///
/// Several replicas may start at once: a concurrent `CREATE DATABASE` that
/// loses the race is ignored, and sqlx serialises migrations with a
/// PostgreSQL advisory lock.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let exists = sqlx::Postgres::database_exists(url)
        .await
        .context("cannot reach PostgreSQL")?;
    if !exists && let Err(e) = sqlx::Postgres::create_database(url).await {
        // Another replica may have created it in the meantime.
        if !sqlx::Postgres::database_exists(url).await.unwrap_or(false) {
            return Err(anyhow::Error::new(e).context("cannot create the database"));
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
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
