//! Per-request time spent in the cache and in the database, for `Server-Timing`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

tokio::task_local! {
    static TIMINGS: Arc<RequestTimings>;
}

#[derive(Debug, Default)]
pub struct RequestTimings {
    cache_micros: AtomicU64,
    db_micros: AtomicU64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RequestTimings {
    pub fn cache(&self) -> Duration {
        Duration::from_micros(self.cache_micros.load(Ordering::Relaxed))
    }
    pub fn db(&self) -> Duration {
        Duration::from_micros(self.db_micros.load(Ordering::Relaxed))
    }
}

/// Runs `work` with a fresh set of timings that [`record_cache`] and [`record_db`] add to.
pub async fn scope<F: Future>(timings: Arc<RequestTimings>, work: F) -> F::Output {
    TIMINGS.scope(timings, work).await
}

/// Adds to the current request's cache time (no-op outside a request).
pub fn record_cache(d: Duration) {
    let _ = TIMINGS.try_with(|t| t.cache_micros.fetch_add(micros(d), Ordering::Relaxed));
}

/// Adds to the current request's database time (no-op outside a request).
pub fn record_db(d: Duration) {
    let _ = TIMINGS.try_with(|t| t.db_micros.fetch_add(micros(d), Ordering::Relaxed));
}

/// `cache;dur=0.120, db;dur=12.400, total;dur=12.900` (milliseconds; parts not used are left out).
pub fn server_timing(cache: Duration, db: Duration, total: Duration) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64);
    for (name, d) in [("cache", cache), ("db", db)] {
        if !d.is_zero() {
            let _ = write!(out, "{name};dur={:.3}, ", d.as_secs_f64() * 1000.0);
        }
    }
    let _ = write!(out, "total;dur={:.3}", total.as_secs_f64() * 1000.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_lists_the_parts_used() {
        assert_eq!(
            server_timing(
                Duration::from_micros(120),
                Duration::from_micros(12_400),
                Duration::from_micros(12_900)
            ),
            "cache;dur=0.120, db;dur=12.400, total;dur=12.900"
        );
        assert_eq!(
            server_timing(Duration::ZERO, Duration::ZERO, Duration::from_millis(1)),
            "total;dur=1.000"
        );
    }

    #[tokio::test]
    async fn recordings_reach_only_their_own_request() {
        let a = Arc::new(RequestTimings::default());
        let b = Arc::new(RequestTimings::default());
        scope(a.clone(), async { record_db(Duration::from_millis(3)) }).await;
        scope(b.clone(), async { record_cache(Duration::from_millis(1)) }).await;
        record_db(Duration::from_secs(1));
        assert_eq!(
            (a.db(), a.cache()),
            (Duration::from_millis(3), Duration::ZERO)
        );
        assert_eq!(
            (b.db(), b.cache()),
            (Duration::ZERO, Duration::from_millis(1))
        );
    }
}
