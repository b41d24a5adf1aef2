//! Per-request time spent in the cache and in the database, for `Server-Timing`.

use std::{cell::Cell, time::Duration};

use tokio::task::futures::TaskLocalFuture;

tokio::task_local! {
    static TIMINGS: RequestTimings;
}

/// Microseconds spent in the cache and in the database by one request. Task-local, so
/// a plain `Cell`: only the request's own task adds to it.
#[derive(Debug, Default)]
pub struct RequestTimings {
    cache_micros: Cell<u64>,
    db_micros: Cell<u64>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RequestTimings {
    pub fn cache(&self) -> Duration {
        Duration::from_micros(self.cache_micros.get())
    }
    pub fn db(&self) -> Duration {
        Duration::from_micros(self.db_micros.get())
    }
}

/// Runs `work` with a fresh set of timings that [`record_cache`] and [`record_db`] add
/// to; once it is done, `take_value` on the returned future gives them back.
pub fn scope<F: Future>(work: F) -> TaskLocalFuture<RequestTimings, F> {
    TIMINGS.scope(RequestTimings::default(), work)
}

/// Adds to the current request's cache time (no-op outside a request).
pub fn record_cache(d: Duration) {
    let _ = TIMINGS.try_with(|t| {
        t.cache_micros
            .set(t.cache_micros.get().saturating_add(micros(d)))
    });
}

/// Adds to the current request's database time (no-op outside a request).
pub fn record_db(d: Duration) {
    let _ = TIMINGS.try_with(|t| t.db_micros.set(t.db_micros.get().saturating_add(micros(d))));
}

/// `cache;dur=0.120, db;dur=12.400, total;dur=12.900` (milliseconds to the nearest
/// microsecond, halves up; parts not used are left out). Integer formatting: this runs on every
/// response, and formatting floats cost a cache hit about 1 %.
pub fn server_timing(cache: Duration, db: Duration, total: Duration) -> String {
    use std::fmt::Write as _;
    fn millis(out: &mut String, d: Duration) {
        let micros = d.as_nanos().saturating_add(500) / 1000;
        let _ = write!(out, "{}.{:03}", micros / 1000, micros % 1000);
    }
    let mut out = String::with_capacity(64);
    for (name, d) in [("cache", cache), ("db", db)] {
        if !d.is_zero() {
            out.push_str(name);
            out.push_str(";dur=");
            millis(&mut out, d);
            out.push_str(", ");
        }
    }
    out.push_str("total;dur=");
    millis(&mut out, total);
    out
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

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
        // Rounded to the nearest microsecond (halves up).
        assert_eq!(
            server_timing(
                Duration::ZERO,
                Duration::ZERO,
                Duration::from_nanos(1_234_567)
            ),
            "total;dur=1.235"
        );
        assert_eq!(
            server_timing(
                Duration::ZERO,
                Duration::ZERO,
                Duration::from_nanos(999_999_400)
            ),
            "total;dur=999.999"
        );
    }

    #[tokio::test]
    async fn recordings_reach_only_their_own_request() {
        let mut a = pin!(scope(async { record_db(Duration::from_millis(3)) }));
        a.as_mut().await;
        let mut b = pin!(scope(async { record_cache(Duration::from_millis(1)) }));
        b.as_mut().await;
        record_db(Duration::from_secs(1));
        let (a, b) = (
            a.take_value().expect("a's timings"),
            b.take_value().expect("b's timings"),
        );
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
