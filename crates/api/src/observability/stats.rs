//! Counters kept by this process, shown by `GET /cache/stats` (Redis's own are server-wide)
//! and, being registered in [`super::metrics::Metrics`], by `GET /metrics`.

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Default)]
pub struct CacheCounters {
    pub memory_hits: Counter,
    pub memory_misses: Counter,
    pub redis_hits: Counter,
    pub redis_misses: Counter,
    pub redis_errors: Counter,
    pub redis_skipped: Counter,
    pub redis_timeouts: Counter,
    pub negative_hits: Counter,
    pub beyond_last_id: Counter,
    pub coalesced: Counter,
    pub db_queries: Counter,
    pub stale_served: Counter,
    pub stale_if_error_served: Counter,
    pub fills_refused: Counter,
    pub loads_refused: Counter,
    pub refreshes_skipped: Counter,
    pub invalidation_failures: Counter,
}

pub fn bump(counter: &Counter) {
    counter.inc();
}

fn read(counter: &Counter) -> u64 {
    counter.get()
}

/// hits / (hits + misses) as a percentage with two decimals; 0 before any lookup.
pub fn hit_rate_percent(hits: u64, misses: u64) -> f64 {
    let total = hits + misses;
    if total == 0 {
        return 0.0;
    }
    (hits as f64 * 10_000.0 / total as f64).round() / 100.0
}

/// One tier's lookups.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct TierStats {
    pub hits: u64,
    pub misses: u64,
    /// Calls that failed or timed out (counted as misses too).
    pub errors: u64,
    /// Calls not made because the circuit breaker was open (counted as misses too).
    pub skipped: u64,
    /// hits / (hits + misses) × 100
    pub hit_rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Tiers {
    pub memory: TierStats,
    pub redis: TierStats,
}

/// This process's counters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct AppStats {
    /// Requests answered from either cache tier (negative entries included).
    pub hits: u64,
    /// Requests that had to ask PostgreSQL (or would have, for coalesced ones).
    pub misses: u64,
    /// hits / (hits + misses) × 100
    pub hit_rate: f64,
    pub tiers: Tiers,
    /// Answers for ids remembered as absent.
    pub negative_hits: u64,
    /// 404s for ids above the highest existing one, answered without a query.
    pub beyond_last_id: u64,
    /// Misses that waited for another request's database query instead of making their own.
    pub coalesced: u64,
    /// Product queries this process sent to PostgreSQL.
    pub db_queries: u64,
    /// Entries served past their TTL, within the stale window, while a background refresh
    /// ran (or was skipped: `refreshes_skipped`).
    pub stale_served: u64,
    /// Entries served past their TTL because PostgreSQL failed.
    pub stale_if_error_served: u64,
    /// Fills refused because a write invalidated the key meanwhile.
    pub fills_refused: u64,
    /// Misses (and background refreshes) that started no load because `DB_MAX_LOADS` loads
    /// were running: 503, or a stale entry.
    pub loads_refused: u64,
    /// Stale entries served without a background refresh because half of `DB_MAX_LOADS`
    /// (at least one) were refreshes already; a later read of the entry tries again.
    pub refreshes_skipped: u64,
    /// Invalidations that could not reach Redis at once (retried in the background).
    pub invalidation_failures: u64,
    /// Redis calls that hit the timeout (also counted in the redis tier's errors).
    pub redis_timeouts: u64,
}

impl CacheCounters {
    pub fn snapshot(&self) -> AppStats {
        let memory = TierStats {
            hits: read(&self.memory_hits),
            misses: read(&self.memory_misses),
            errors: 0,
            skipped: 0,
            hit_rate: hit_rate_percent(read(&self.memory_hits), read(&self.memory_misses)),
        };
        let redis = TierStats {
            hits: read(&self.redis_hits),
            misses: read(&self.redis_misses),
            errors: read(&self.redis_errors),
            skipped: read(&self.redis_skipped),
            hit_rate: hit_rate_percent(read(&self.redis_hits), read(&self.redis_misses)),
        };
        let hits = memory.hits + redis.hits;
        // Every request that reached Redis without a hit was a miss of the whole cache.
        let misses = redis.misses;
        AppStats {
            hits,
            misses,
            hit_rate: hit_rate_percent(hits, misses),
            tiers: Tiers { memory, redis },
            negative_hits: read(&self.negative_hits),
            beyond_last_id: read(&self.beyond_last_id),
            coalesced: read(&self.coalesced),
            db_queries: read(&self.db_queries),
            stale_served: read(&self.stale_served),
            stale_if_error_served: read(&self.stale_if_error_served),
            fills_refused: read(&self.fills_refused),
            loads_refused: read(&self.loads_refused),
            refreshes_skipped: read(&self.refreshes_skipped),
            invalidation_failures: read(&self.invalidation_failures),
            redis_timeouts: read(&self.redis_timeouts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rate_is_a_rounded_percentage() {
        assert_eq!(hit_rate_percent(0, 0), 0.0);
        assert_eq!(hit_rate_percent(1, 2), 33.33);
        assert_eq!(hit_rate_percent(3, 1), 75.0);
    }

    #[test]
    fn overall_hits_add_both_tiers_and_misses_are_redis_misses() {
        let counters = CacheCounters::default();
        bump(&counters.memory_hits);
        bump(&counters.memory_misses);
        bump(&counters.memory_misses);
        bump(&counters.redis_hits);
        bump(&counters.redis_misses);
        let s = counters.snapshot();
        assert_eq!((s.hits, s.misses), (2, 1));
        assert_eq!(s.hit_rate, 66.67);
        assert_eq!(s.tiers.memory.misses, 2);
    }
}
