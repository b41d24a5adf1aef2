//! Writes, each in one statement together with its row in the invalidation outbox
//! (`cache_invalidations`), and the outbox itself.
//!
//! One statement (data-modifying CTEs) instead of a transaction: the change and its
//! outbox row commit together without extra round trips, so a write that commits always
//! leaves a record that its cache entries must go, even if the process dies right after.

use std::time::Instant;

use futures::FutureExt as _;
use sqlx::{FromRow as _, PgConnection, Row as _, postgres::PgRow};

use super::{Database, Product};
use crate::input::{ValidPatch, ValidProduct};

/// A committed change and its outbox row.
#[derive(Debug, Clone)]
pub struct Written<T> {
    pub value: T,
    pub outbox_id: i64,
}

/// An invalidation not yet known to have reached Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub product_id: i32,
    /// Older than the relay's grace period: its writer should have deleted it by now.
    pub due: bool,
}

fn product_and_outbox(row: &PgRow) -> Result<Written<Product>, sqlx::Error> {
    Ok(Written {
        value: Product::from_row(row)?,
        outbox_id: row.try_get("outbox_id")?,
    })
}

/// `UPDATE ... RETURNING` (or `INSERT`) in a CTE named `p`, then its outbox row.
macro_rules! with_outbox {
    ($change:expr) => {
        concat!(
            "WITH p AS (",
            $change,
            " RETURNING ",
            product_columns!(),
            "), o AS (INSERT INTO cache_invalidations (product_id) SELECT id FROM p RETURNING id) ",
            "SELECT p.*, o.id AS outbox_id FROM p, o"
        )
    };
}

impl Database {
    /// One write statement on a checked-out connection, under the statement deadline.
    async fn write<T>(
        &self,
        operation: &'static str,
        query: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let start = Instant::now();
        let mut checkout = self.checkout().await?;
        let result = self.bounded(query(checkout.connection())).await;
        self.finish(Some(operation), start, checkout, &result);
        result
    }

    #[tracing::instrument(name = "db.insert_product", skip_all, fields(db.system = "postgresql", db.statement = "insert_product"))]
    pub async fn insert_product(&self, p: &ValidProduct) -> Result<Written<Product>, sqlx::Error> {
        self.write("insert_product", async |conn| {
            let row = sqlx::query(with_outbox!(
                "INSERT INTO products (name, description, price, category) VALUES ($1, $2, $3, $4)"
            ))
            .bind(&p.name)
            .bind(&p.description)
            .bind(p.price)
            .bind(&p.category)
            .fetch_one(conn)
            .await?;
            product_and_outbox(&row)
        })
        .await
    }

    #[tracing::instrument(name = "db.replace_product", skip(self, p), fields(db.system = "postgresql", db.statement = "replace_product"))]
    pub async fn replace_product(
        &self,
        id: i32,
        p: &ValidProduct,
    ) -> Result<Option<Written<Product>>, sqlx::Error> {
        self.write("replace_product", async |conn| {
            {
                let row = sqlx::query(with_outbox!(
                    "UPDATE products SET name = $2, description = $3, price = $4, category = $5 WHERE id = $1"
                ))
                .bind(id)
                .bind(&p.name)
                .bind(&p.description)
                .bind(p.price)
                .bind(&p.category)
                .fetch_optional(conn)
                .await?;
                row.as_ref().map(product_and_outbox).transpose()
            }
        })
        .await
    }

    /// Changes only the fields the patch names; one statement, so no lost update.
    #[tracing::instrument(name = "db.patch_product", skip(self, p), fields(db.system = "postgresql", db.statement = "patch_product"))]
    pub async fn patch_product(
        &self,
        id: i32,
        p: &ValidPatch,
    ) -> Result<Option<Written<Product>>, sqlx::Error> {
        self.write("patch_product", async |conn| {
            let row = sqlx::query(with_outbox!(concat!(
                "UPDATE products SET ",
                "name = COALESCE($2, name), ",
                "description = CASE WHEN $3 THEN $4 ELSE description END, ",
                "price = CASE WHEN $5 THEN $6 ELSE price END, ",
                "category = CASE WHEN $7 THEN $8 ELSE category END ",
                "WHERE id = $1"
            )))
            .bind(id)
            .bind(&p.name)
            .bind(p.description.is_some())
            .bind(p.description.clone().flatten())
            .bind(p.price.is_some())
            .bind(p.price.flatten())
            .bind(p.category.is_some())
            .bind(p.category.clone().flatten())
            .fetch_optional(conn)
            .await?;
            row.as_ref().map(product_and_outbox).transpose()
        })
        .await
    }

    /// The outbox row of the deletion, `None` when no product had this id.
    #[tracing::instrument(name = "db.delete_product", skip(self), fields(db.system = "postgresql", db.statement = "delete_product"))]
    pub async fn delete_product(&self, id: i32) -> Result<Option<Written<()>>, sqlx::Error> {
        self.write("delete_product", async |conn| {
            {
                let outbox_id: Option<i64> = sqlx::query_scalar(
                    "WITH d AS (DELETE FROM products WHERE id = $1 RETURNING id), \
                     o AS (INSERT INTO cache_invalidations (product_id) SELECT id FROM d RETURNING id) \
                     SELECT id FROM o",
                )
                .bind(id)
                .fetch_optional(conn)
                .await?;
                Ok(outbox_id.map(|outbox_id| Written {
                    value: (),
                    outbox_id,
                }))
            }
        })
        .await
    }

    /// Records invalidations of `ids` that did not come from a write statement (seed data
    /// upserted at start).
    pub async fn record_invalidations(&self, ids: &[i32]) -> Result<Vec<i64>, sqlx::Error> {
        let ids = ids.to_vec();
        self.write("record_invalidations", async |conn| {
            sqlx::query_scalar(
                "INSERT INTO cache_invalidations (product_id) SELECT unnest($1::int[]) RETURNING id",
            )
            .bind(ids)
            .fetch_all(conn)
            .await
        })
        .await
    }

    /// Every outbox row (oldest first, at most `limit`); `due` marks those older than `grace`.
    pub async fn outbox(
        &self,
        grace: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let grace_secs = grace.as_secs_f64();
        let rows: Vec<(i64, i32, bool)> = self
            .read(None, move |conn| {
                sqlx::query_as(
                    "SELECT id, product_id, created_at < now() - make_interval(secs => $1) \
                     FROM cache_invalidations ORDER BY id LIMIT $2",
                )
                .bind(grace_secs)
                .bind(limit)
                .fetch_all(conn)
                .boxed()
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, product_id, due)| OutboxRow {
                id,
                product_id,
                due,
            })
            .collect())
    }

    /// Deletes outbox rows whose invalidation reached Redis.
    pub async fn delete_outbox_rows(&self, ids: &[i64]) -> Result<(), sqlx::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        self.read(None, move |conn| {
            sqlx::query("DELETE FROM cache_invalidations WHERE id = ANY($1)")
                .bind(ids.clone())
                .execute(conn)
                .boxed()
        })
        .await
        .map(|_| ())
    }
}
