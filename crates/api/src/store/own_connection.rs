//! A connection of its own for one background job (the health checks, the outbox poll),
//! outside the request pool: such a job never waits behind requests for a permit, so a
//! pool saturated by misses neither makes a pod unready nor keeps other replicas'
//! writes from being learned.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use sqlx::{Connection as _, PgConnection, postgres::PgConnectOptions};
use tokio::time::{Instant, timeout_at};

use super::failure::deadline_passed;

#[derive(Clone)]
pub(super) struct OwnConnection {
    slot: Arc<tokio::sync::Mutex<Option<PgConnection>>>,
    options: PgConnectOptions,
}

/// Not derived: sqlx's `PgConnectOptions` shows its password in `Debug`.
impl std::fmt::Debug for OwnConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnConnection")
            .field("host", &self.options.get_host())
            .field("database", &self.options.get_database())
            .finish_non_exhaustive()
    }
}

impl OwnConnection {
    /// Connects on first use.
    pub(super) fn new(options: PgConnectOptions) -> Self {
        Self {
            slot: Arc::default(),
            options,
        }
    }

    /// Runs `query` within `limit` (the wait for the connection, connecting, the query).
    /// A connection whose query failed or passed the deadline is dropped for a fresh one;
    /// a caller that only waited for the connection and gave up leaves it alone.
    pub(super) async fn run<T>(
        &self,
        limit: Duration,
        query: impl for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let deadline = Instant::now() + limit;
        let mut slot = timeout_at(deadline, self.slot.lock())
            .await
            .map_err(|_| deadline_passed(limit))?;
        let conn = match slot.take() {
            Some(conn) => conn,
            None => timeout_at(deadline, PgConnection::connect_with(&self.options))
                .await
                .map_err(|_| deadline_passed(limit))??,
        };
        let conn = slot.insert(conn);
        match timeout_at(deadline, query(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                *slot = None;
                Err(e)
            }
            Err(_) => {
                // Dropped mid-query: its state is unknown.
                *slot = None;
                Err(deadline_passed(limit))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From a review: `Debug` was derived over sqlx's options, password included, and
    /// reachable through every `Debug` of the catalog.
    #[test]
    fn debug_output_never_shows_the_password() -> Result<(), sqlx::Error> {
        let options: PgConnectOptions = "postgres://app:pg-s3cret@db:5432/cacheme".parse()?;
        let shown = format!("{:?}", OwnConnection::new(options));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("cacheme"), "{shown}");
        Ok(())
    }
}
