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

/// A product whose invalidation is not yet known to have reached Redis: every outbox row
/// it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedInvalidation {
    pub product_id: i32,
    /// Its rows, oldest first.
    pub row_ids: Vec<i64>,
    /// One row is older than the relay's grace period: its writer should have deleted it
    /// by now.
    pub due: bool,
}

impl Database {
    /// Every product the outbox holds rows for, oldest first: all of them, however many
    /// rows are owed (a row limit here once hid the newest writes from the pending set, so
    /// they were served stale for as long as Redis refused invalidations). The number of
    /// products bounds the answer. Bounded by the statement deadline.
    pub async fn owed_invalidations(
        &self,
        grace: std::time::Duration,
    ) -> Result<Vec<OwedInvalidation>, sqlx::Error> {
        let grace_secs = grace.as_secs_f64();
        // On its own connection: behind request misses in the pool's queue, other
        // replicas would not learn pending ids for as long as the queue is long.
        let rows: Vec<(i32, Vec<i64>, bool)> = self
            .outbox
            .run(self.statement_deadline(), move |conn| {
                sqlx::query_as(
                    "SELECT product_id, array_agg(id ORDER BY id), \
                     bool_or(created_at < now() - make_interval(secs => $1)) \
                     FROM cache_invalidations GROUP BY product_id ORDER BY min(id)",
                )
                .bind(grace_secs)
                .fetch_all(conn)
                .boxed()
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(product_id, row_ids, due)| OwedInvalidation {
                product_id,
                row_ids,
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
