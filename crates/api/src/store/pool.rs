//! Connections lent to one statement at a time, on top of sqlx's pool.
//!
//! sqlx pings a connection every time it goes back to its pool, a second round trip per
//! query. Connections are therefore kept here between statements and go back only when
//! a statement failed in a way that may have broken them, or at shutdown. A semaphore
//! with one permit per pooled connection queues waiters first come, first served.

use std::time::Instant;

use futures::future::BoxFuture;
use sqlx::{Connection as _, PgConnection, Postgres, pool::PoolConnection};
use tokio::sync::SemaphorePermit;

use super::{
    Database, IDLE_BEFORE_PING,
    failure::{lost_connection, worth_retrying},
};

/// A connection between statements, and when it was last used.
pub(super) type KeptConnection = (PoolConnection<Postgres>, Instant);

/// A connection lent to one statement. Marked reusable it is kept for the next statement.
/// Dropped without (the statement failed so, or its request was cancelled mid-statement)
/// it is closed: sqlx would check it with a ping that has no deadline, holding a pool
/// slot for TCP's retransmission time (about 15 minutes) if the server went silent.
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
        if let Some(mut conn) = self.conn.take() {
            if self.reusable && !self.db.permits.is_closed() {
                self.db.kept.lock().push((conn, Instant::now()));
            } else if !self.reusable {
                // sqlx closes it within its own bound (`CLOSE_ON_DROP_TIMEOUT`).
                conn.close_on_drop();
            }
        }
    }
}

impl Database {
    /// Runs a read under the statement deadline, tried once more on a verified connection
    /// when the first turns out lost (a PostgreSQL restart or a proxy closed it while it
    /// was kept; the other kept ones are closed too). `metric` names it in the metrics; a
    /// read so named also waits out the simulated latency (it stands for a slow database).
    /// `None` is bookkeeping, kept out of both.
    pub(super) async fn read<T>(
        &self,
        metric: Option<&'static str>,
        query: impl for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let first = self
            .attempt(metric, false, metric.is_some(), async |conn| {
                query(conn).await
            })
            .await;
        if !worth_retrying(&first) {
            return first;
        }
        self.attempt(metric, true, metric.is_some(), async |conn| {
            query(conn).await
        })
        .await
    }

    /// Runs one write statement under the statement deadline, never repeated: a lost
    /// connection leaves its outcome unknown, which the caller handles.
    pub(super) async fn write<T>(
        &self,
        metric: &'static str,
        query: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        self.attempt(Some(metric), false, false, query).await
    }

    /// One try on a lent connection (one that answered a ping, after a lost one), timed
    /// for `/metrics` from before the checkout: the wait for a connection and the
    /// simulated latency are part of what a slow database costs.
    async fn attempt<T>(
        &self,
        metric: Option<&'static str>,
        verified: bool,
        simulated_latency: bool,
        query: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let start = Instant::now();
        // Boxed: the verified path is rare and its futures large; inline, they made every
        // read's future (and so every request's) about 15 KiB.
        let mut checkout = if verified {
            Box::pin(self.checkout_verified()).await?
        } else {
            self.checkout().await?
        };
        if simulated_latency && !self.simulated_latency.is_zero() {
            tokio::time::sleep(self.simulated_latency).await;
        }
        let result = self.bounded(query(checkout.connection())).await;
        // Kept for the next statement unless this one may have broken it.
        checkout.reusable = !lost_connection(&result);
        drop(checkout);
        if let Some(metric) = metric {
            self.metrics.observe_query(metric, start.elapsed());
        }
        result
    }

    /// A connection for one statement, once a permit is free. Waiting longer than the
    /// acquire timeout for a permit fails like waiting for a pooled connection.
    async fn checkout(&self) -> Result<Checkout<'_>, sqlx::Error> {
        let permit = self.permit().await?;
        loop {
            let kept = self.kept.lock().pop();
            let Some((mut conn, last_used)) = kept else {
                // Boxed, as sqlx's acquire future is large and a kept connection is the rule.
                let conn = Box::pin(self.pool.acquire()).await?;
                return Ok(Checkout::new(self, conn, permit));
            };
            // Bounded: a connection that went silent must not hold the permit.
            if last_used.elapsed() < IDLE_BEFORE_PING
                || self
                    .bounded(Box::pin(sqlx::Connection::ping(&mut *conn)))
                    .await
                    .is_ok()
            {
                return Ok(Checkout::new(self, conn, permit));
            }
            // Dropped by a restart or a proxy, or silent: close it and try the next one.
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
        let stale: Vec<_> = self.kept.lock().drain(..).collect();
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
}
