//! PostgreSQL: the product model, its queries, and migrations.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{
    PgPool,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};
use utoipa::ToSchema;

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

/// The database handle the handlers use.
#[derive(Debug, Clone)]
pub struct Database {
    pool: PgPool,
    simulated_latency: Duration,
}

impl Database {
    /// Builds a lazy pool: nothing connects until the first query, so the
    /// service can start (and report itself unready) while PostgreSQL is down.
    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
        simulated_latency: Duration,
    ) -> Result<Self, sqlx::Error> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_lazy_with(options.application_name("cacheme-api"));
        Ok(Self {
            pool,
            simulated_latency,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn simulate_latency(&self) {
        if !self.simulated_latency.is_zero() {
            tokio::time::sleep(self.simulated_latency).await;
        }
    }

    #[tracing::instrument(name = "db.get_product", skip(self), fields(db.statement = "get_product"))]
    pub async fn get_product(&self, id: i32) -> Result<Option<Product>, sqlx::Error> {
        self.simulate_latency().await;
        sqlx::query_as::<_, Product>(concat!(
            "SELECT ",
            product_columns!(),
            " FROM products WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    #[tracing::instrument(name = "db.list_products", skip(self), fields(db.statement = "list_products"))]
    pub async fn list_products(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Product>, sqlx::Error> {
        self.simulate_latency().await;
        sqlx::query_as::<_, Product>(concat!(
            "SELECT ",
            product_columns!(),
            " FROM products ORDER BY id LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
    }

    /// A round trip to the server, for health checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
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
