//! Per-request time spent in the cache and in the database, for `Server-Timing`.

use std::{cell::Cell, time::Duration};

use axum::http::HeaderValue;

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
///
/// Written on the stack and copied once into the header (one allocation, not a `String`
/// and then its copy).
pub fn server_timing(cache: Duration, db: Duration, total: Duration) -> Option<HeaderValue> {
    use std::io::Write as _;
    fn millis(out: &mut &mut [u8], d: Duration) -> std::io::Result<()> {
        let micros = d.as_nanos().saturating_add(500) / 1000;
        write!(out, "{}.{:03}", micros / 1000, micros % 1000)
    }
    // Longest possible: three parts of at most 26 characters each (23 digits, the point
    // and three more), their names and separators: 112 bytes.
    const TEXT: usize = 128;
    let mut text = [0u8; TEXT];
    let mut out = &mut text[..];
    for (name, d) in [("cache", cache), ("db", db)] {
        if !d.is_zero() {
            write!(out, "{name};dur=").ok()?;
            millis(&mut out, d).ok()?;
            out.write_all(b", ").ok()?;
        }
    }
    out.write_all(b"total;dur=").ok()?;
    millis(&mut out, total).ok()?;
    let written = TEXT - out.len();
    HeaderValue::from_bytes(text.get(..written)?).ok()
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    fn text(cache: Duration, db: Duration, total: Duration) -> String {
        let value = server_timing(cache, db, total).expect("formats");
        value.to_str().expect("ASCII").to_owned()
    }

    #[test]
    fn server_timing_lists_the_parts_used() {
        assert_eq!(
            text(
                Duration::from_micros(120),
                Duration::from_micros(12_400),
                Duration::from_micros(12_900)
            ),
            "cache;dur=0.120, db;dur=12.400, total;dur=12.900"
        );
        assert_eq!(
            text(Duration::ZERO, Duration::ZERO, Duration::from_millis(1)),
            "total;dur=1.000"
        );
        // Rounded to the nearest microsecond (halves up).
        assert_eq!(
            text(
                Duration::ZERO,
                Duration::ZERO,
                Duration::from_nanos(1_234_567)
            ),
            "total;dur=1.235"
        );
        assert_eq!(
            text(
                Duration::ZERO,
                Duration::ZERO,
                Duration::from_nanos(999_999_400)
            ),
            "total;dur=999.999"
        );
        // The longest durations there are still fit (rounded up to the next microsecond).
        assert_eq!(
            text(Duration::MAX, Duration::MAX, Duration::MAX),
            "cache;dur=18446744073709551616000.000, db;dur=18446744073709551616000.000, \
             total;dur=18446744073709551616000.000"
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
