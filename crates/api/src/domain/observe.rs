//! What a read counts and times, apart from the algorithm in `read.rs`: each step hands
//! what it found to one function here, which bumps the counters of `/cache/stats` and
//! `/metrics`, adds to the request's `Server-Timing` and logs a failure worth a line.

use std::{future::Future, time::Instant};

use tracing::Instrument as _;

use crate::{
    cache::{
        expiry::Freshness,
        redis_tier::{CacheError, Lookup},
        value::CachedValue,
    },
    observability::{
        stats::{CacheCounters, bump},
        timing::{record_cache, record_db},
    },
};

/// Awaits a cache call, its time counted as the request's cache time.
pub(super) async fn cache_time<T>(call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    record_cache(started.elapsed());
    out
}

/// Awaits a database call (or a wait for one), its time counted as the request's
/// database time.
pub(super) async fn db_time<T>(call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    record_db(started.elapsed());
    out
}

/// An L1 lookup of `id`: in its own span, timed, counted.
pub(super) async fn memory_lookup(
    counters: &CacheCounters,
    id: i32,
    lookup: impl Future<Output = Option<CachedValue>>,
) -> Option<CachedValue> {
    let span = tracing::info_span!(
        "cache.memory.get",
        cache.tier = "memory",
        product.id = id,
        cache.hit = tracing::field::Empty
    );
    let found = cache_time(lookup.instrument(span.clone())).await;
    span.record("cache.hit", found.is_some());
    bump(if found.is_some() {
        &counters.memory_hits
    } else {
        &counters.memory_misses
    });
    found
}

/// What a Redis lookup came to: a hit (fresh, or stale and served while refreshed), a
/// miss (an entry only good if PostgreSQL fails counts as one), or a call not made or
/// failed, each a miss too.
pub(super) fn redis_lookup(counters: &CacheCounters, lookup: &Result<Lookup, CacheError>) {
    match lookup {
        Ok(Lookup {
            entry: Some((_, Freshness::Fresh)),
            ..
        }) => bump(&counters.redis_hits),
        Ok(Lookup {
            entry: Some((_, Freshness::Stale)),
            ..
        }) => {
            bump(&counters.redis_hits);
            bump(&counters.stale_served);
        }
        Ok(Lookup {
            entry: None | Some((_, Freshness::ErrorOnly)),
            ..
        }) => bump(&counters.redis_misses),
        Err(CacheError::BreakerOpen | CacheError::Unverified) => {
            bump(&counters.redis_misses);
            bump(&counters.redis_skipped);
        }
        Err(other) => {
            bump(&counters.redis_misses);
            bump(&counters.redis_errors);
            if matches!(other, CacheError::Timeout(_)) {
                bump(&counters.redis_timeouts);
            }
            tracing::warn!(error = %other, "Redis lookup failed; reading from PostgreSQL");
        }
    }
}
