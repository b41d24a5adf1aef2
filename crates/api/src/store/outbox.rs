//! The invalidation outbox (`cache_invalidations`): one row per change whose cache
//! entries must go, written in the same statement as the change (`products.rs`) and
//! deleted once Redis has acknowledged the invalidation.

use futures::FutureExt as _;

use super::Database;

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

impl Database {
    /// Records invalidations of `ids` that did not come from a write statement (seed data
    /// upserted at start).
    pub async fn record_invalidations(&self, ids: &[i32]) -> Result<Vec<i64>, sqlx::Error> {
        let ids = ids.to_vec();
        self.write("record_invalidations", async |conn| {
            sqlx::query_scalar(
                "INSERT INTO cache_invalidations (product_id) SELECT unnest($1::int[]) RETURNING id",
            )
            .bind(ids.clone())
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
