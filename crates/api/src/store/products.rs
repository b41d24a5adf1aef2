//! The product statements. Each write is one statement together with its row in the
//! invalidation outbox (`outbox.rs`).
//!
//! One statement (data-modifying CTEs) instead of a transaction: the change and its
//! outbox row commit together without extra round trips, so a write that commits always
//! leaves a record that its cache entries must go, even if the process dies right after.

use sqlx::{FromRow as _, Row as _, postgres::PgRow};

use futures::FutureExt as _;

use super::{Database, Written};
use crate::model::{Product, ValidPatch, ValidProduct};

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

    /// The highest existing id (`None`: no product), for the miss path's bound.
    #[tracing::instrument(name = "db.max_product_id", skip(self), fields(db.system = "postgresql", db.statement = "max_product_id"))]
    pub async fn max_product_id(&self) -> Result<Option<i32>, sqlx::Error> {
        self.read(Some("max_product_id"), move |conn| {
            sqlx::query_scalar::<_, Option<i32>>("SELECT max(id) FROM products")
                .fetch_one(conn)
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

    /// Applies seed data (`canonical`: the seed as text, for its digest) unless this very
    /// seed was the last one applied. In one transaction: each product whose values differ
    /// is inserted or updated together with its outbox row (so no crash leaves a change
    /// without the record that its cache entries must go), the id sequence moves past
    /// them, and the seed's digest is stored. Concurrent starts are serialised by a table
    /// lock. `None`: already applied; otherwise the changed products and their rows.
    pub async fn apply_seed(
        &self,
        canonical: &str,
        products: &[(i32, ValidProduct)],
    ) -> Result<Option<Vec<Written<i32>>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE seed_applied IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let same: Option<bool> = sqlx::query_scalar("SELECT digest = md5($1) FROM seed_applied")
            .bind(canonical)
            .fetch_optional(&mut *tx)
            .await?;
        if same == Some(true) {
            tx.commit().await?;
            return Ok(None);
        }
        let mut changed = Vec::new();
        for (id, p) in products {
            let row: Option<(i64,)> = sqlx::query_as(
                "WITH changed AS ( \
                   INSERT INTO products (id, name, description, price, category) VALUES ($1, $2, $3, $4, $5) \
                   ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description, \
                   price = EXCLUDED.price, category = EXCLUDED.category \
                   WHERE (products.name, products.description, products.price, products.category) \
                   IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.description, EXCLUDED.price, EXCLUDED.category) \
                   RETURNING id) \
                 INSERT INTO cache_invalidations (product_id) SELECT id FROM changed RETURNING id",
            )
            .bind(id)
            .bind(&p.name)
            .bind(&p.description)
            .bind(p.price)
            .bind(&p.category)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((outbox_id,)) = row {
                changed.push(Written {
                    value: *id,
                    outbox_id,
                });
            }
        }
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('products', 'id'), GREATEST((SELECT max(id) FROM products), 1))",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO seed_applied (singleton, digest) VALUES (true, md5($1)) \
             ON CONFLICT (singleton) DO UPDATE SET digest = EXCLUDED.digest, applied_at = now()",
        )
        .bind(canonical)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(changed))
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
        })
        .await
    }
}
