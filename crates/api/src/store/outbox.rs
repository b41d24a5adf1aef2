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

/// The session advisory lock whose holder relays due rows ("cacheme" and a 1 in its
/// bytes). Per database, so two deployments on two databases never wait for each other.
const RELAY_LOCK: i64 = 0x6361_6368_656d_6501;

impl Database {
    /// Whether this replica relays due rows this pass: one replica at a time holds the
    /// relay lock (on the outbox's own connection, so a crash or a lost connection frees
    /// it), so N replicas do not each relay every row, N invalidations and N² messages per
    /// row after an outage (A5 of the second consistency review). The others still read
    /// the outbox for their pending set. `false` when it cannot be asked.
    pub async fn try_lead_relay(&self) -> bool {
        self.outbox
            .run(self.statement_deadline(), |conn| {
                sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                    .bind(RELAY_LOCK)
                    .fetch_one(conn)
                    .boxed()
            })
            .await
            .unwrap_or(false)
    }

    /// Gives the relay lock up after a pass (a failure drops the connection, and the lock
    /// with it).
    pub async fn end_relay_lead(&self) {
        let released = self
            .outbox
            .run(self.statement_deadline(), |conn| {
                sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
                    .bind(RELAY_LOCK)
                    .fetch_one(conn)
                    .boxed()
            })
            .await;
        if let Err(e) = released {
            tracing::debug!(error = %e, "relay lock not released; it goes with the connection");
        }
    }

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
