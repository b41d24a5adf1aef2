//! The highest product id that exists, so a flood of made-up ids costs neither a
//! database query, nor a spawned load, nor a negative entry in Redis per id (consistency
//! review A3): a miss on an id above it answers 404 at once.
//!
//! The bound only ever says "cannot exist" from a `max(id)` query that *started after
//! the request arrived*. A create acknowledged before that (on any replica) committed
//! before the query began, so its id is covered: a stale bound can cost a query, never
//! a wrong 404. Concurrent requests above the bound share one query; a failed query
//! says nothing (the ordinary miss path decides). Negative entries are therefore only
//! ever made for ids at or below the highest id, which bounds how many there can be.

use std::{
    future::Future,
    sync::atomic::{AtomicI64, Ordering},
    time::Instant,
};

/// What the process knows of the highest existing id.
#[derive(Debug)]
pub struct IdBound {
    /// The highest id seen to exist (`0` until the first query or create).
    known: AtomicI64,
    /// When the last successful `max(id)` query started; held while one runs.
    last_query: tokio::sync::Mutex<Option<Instant>>,
}

impl Default for IdBound {
    fn default() -> Self {
        Self {
            known: AtomicI64::new(0),
            last_query: tokio::sync::Mutex::new(None),
        }
    }
}

impl IdBound {
    /// A product with this id exists now (this process created or read it).
    pub fn raise(&self, id: i32) {
        self.known.fetch_max(i64::from(id), Ordering::Relaxed);
    }

    /// Whether a product with `id` may exist for a request that arrived at `arrived`;
    /// `max_id` reads `max(id)` from PostgreSQL, and runs only when no query that
    /// started after `arrived` has answered already.
    pub async fn may_exist<F, Fut, E>(&self, id: i32, arrived: Instant, max_id: F) -> bool
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<i32>, E>>,
    {
        let id = i64::from(id);
        if id <= self.known.load(Ordering::Relaxed) {
            return true;
        }
        let mut last_query = self.last_query.lock().await;
        if id <= self.known.load(Ordering::Relaxed) {
            return true;
        }
        if last_query.is_some_and(|started| started > arrived) {
            // A query that began after this request arrived found nothing this high.
            return false;
        }
        let started = Instant::now();
        match max_id().await {
            Ok(max) => {
                self.known
                    .fetch_max(max.map_or(0, i64::from), Ordering::Relaxed);
                *last_query = Some(started);
                id <= self.known.load(Ordering::Relaxed)
            }
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    fn counted(
        queries: &Arc<AtomicUsize>,
        max: Option<i32>,
    ) -> impl FnOnce() -> std::future::Ready<Result<Option<i32>, ()>> {
        let queries = Arc::clone(queries);
        move || {
            queries.fetch_add(1, Ordering::Relaxed);
            std::future::ready(Ok(max))
        }
    }

    #[tokio::test]
    async fn ids_above_the_highest_are_refused_after_a_query_that_began_later() {
        let bound = IdBound::default();
        let queries = Arc::new(AtomicUsize::new(0));
        let arrived = Instant::now();
        assert!(
            !bound
                .may_exist(16, arrived, counted(&queries, Some(15)))
                .await
        );
        assert!(
            bound
                .may_exist(15, arrived, counted(&queries, Some(15)))
                .await
        );
        // The first query began after `arrived`: later requests that arrived before it
        // began reuse its answer.
        assert!(
            !bound
                .may_exist(99, arrived, counted(&queries, Some(15)))
                .await
        );
        assert_eq!(queries.load(Ordering::Relaxed), 1);

        // A request that arrives later asks again and sees a create made meanwhile.
        let later = Instant::now();
        assert!(
            bound
                .may_exist(16, later, counted(&queries, Some(16)))
                .await
        );
        assert_eq!(queries.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_create_raises_the_bound_and_a_failed_query_refuses_nothing() {
        let bound = IdBound::default();
        let queries = Arc::new(AtomicUsize::new(0));
        bound.raise(40);
        assert!(
            bound
                .may_exist(40, Instant::now(), counted(&queries, None))
                .await
        );
        assert_eq!(queries.load(Ordering::Relaxed), 0);
        let failing = || std::future::ready(Err::<Option<i32>, ()>(()));
        assert!(bound.may_exist(41, Instant::now(), failing).await);
        // An empty table: every id is refused.
        let empty = IdBound::default();
        assert!(
            !empty
                .may_exist(1, Instant::now(), counted(&queries, None))
                .await
        );
    }
}
