//! `GET /metrics` through `prometheus-client`, in the OpenMetrics text format.
//!
//! Each app instance has its own [`Registry`] (no process-global recorder), so two
//! instances in one process, as in the tests, never mix their numbers. The cache
//! counters are registered here and handed to the catalog as [`CacheCounters`]: the
//! same atomics feed `/metrics` and `/cache/stats`.
//!
//! Label values are `&'static str` (methods are a fixed set, routes are interned
//! templates), so recording a request allocates nothing.

use std::time::Duration;

use parking_lot::RwLock;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use super::stats::CacheCounters;

/// Upper bounds of the latency buckets, in seconds: from a memory hit to a slow miss.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    tier: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StaleLabels {
    reason: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauges {
    pub memory_entries: u64,
    pub breaker_open: bool,
    pub pending_invalidations: u64,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Histograms<RequestLabels>,
    queries: Family<QueryLabels, Counter>,
    query_durations: Histograms<QueryLabels>,
    l1_entries: Gauge,
    breaker_open: Gauge,
    pending_invalidations: Gauge,
}

impl Metrics {
    /// The registry and the cache counters it exports.
    pub fn new() -> (Self, CacheCounters) {
        let mut registry = Registry::default();
        let requests = Histograms::<RequestLabels>::new_with_constructor(latency_histogram);
        registry.register(
            "cacheme_http_request_duration_seconds",
            "HTTP request duration by route, method and status",
            requests.clone(),
        );
        let queries = Family::<QueryLabels, Counter>::default();
        registry.register(
            "cacheme_db_queries",
            "PostgreSQL queries by operation",
            queries.clone(),
        );
        let query_durations = Histograms::<QueryLabels>::new_with_constructor(latency_histogram);
        registry.register(
            "cacheme_db_query_duration_seconds",
            "PostgreSQL query duration by operation",
            query_durations.clone(),
        );

        let lookups = Family::<LookupLabels, Counter>::default();
        registry.register(
            "cacheme_cache_lookups",
            "Cache lookups by tier and outcome (hit, miss, error, skipped)",
            lookups.clone(),
        );
        let lookup = |tier, outcome| {
            lookups
                .get_or_create(&LookupLabels { tier, outcome })
                .clone()
        };
        let stale = Family::<StaleLabels, Counter>::default();
        registry.register(
            "cacheme_cache_stale_served",
            "Entries served past their TTL, by reason",
            stale.clone(),
        );
        let stale_by = |reason| stale.get_or_create(&StaleLabels { reason }).clone();
        let counters = CacheCounters {
            memory_hits: lookup("memory", "hit"),
            memory_misses: lookup("memory", "miss"),
            redis_hits: lookup("redis", "hit"),
            redis_misses: lookup("redis", "miss"),
            redis_errors: lookup("redis", "error"),
            redis_skipped: lookup("redis", "skipped"),
            stale_served: stale_by("revalidate"),
            stale_if_error_served: stale_by("error"),
            ..CacheCounters::default()
        };
        for (name, help, counter) in [
            (
                "cacheme_cache_negative_hits",
                "Answers for ids remembered as absent",
                &counters.negative_hits,
            ),
            (
                "cacheme_cache_beyond_last_id",
                "404s for ids above the highest existing one, answered without a query",
                &counters.beyond_last_id,
            ),
            (
                "cacheme_cache_coalesced_requests",
                "Misses that waited for another request's query (single flight)",
                &counters.coalesced,
            ),
            (
                "cacheme_cache_fills_refused",
                "Cache fills refused because a write invalidated the key meanwhile",
                &counters.fills_refused,
            ),
            (
                "cacheme_cache_loads_refused",
                "Misses that started no database load because DB_MAX_LOADS loads were running",
                &counters.loads_refused,
            ),
            (
                "cacheme_cache_refreshes_skipped",
                "Stale entries served without a background refresh because half of DB_MAX_LOADS were refreshes",
                &counters.refreshes_skipped,
            ),
            (
                "cacheme_cache_invalidation_failures",
                "Invalidations that could not reach Redis at once",
                &counters.invalidation_failures,
            ),
            (
                "cacheme_redis_timeouts",
                "Redis calls that hit REDIS_TIMEOUT_MS",
                &counters.redis_timeouts,
            ),
            (
                "cacheme_redis_errors",
                "Failed Redis calls (timeouts included)",
                &counters.redis_errors,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }

        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let l1_entries = gauge(
            &mut registry,
            "cacheme_l1_entries",
            "Entries in the in-process tier",
        );
        let breaker_open = gauge(
            &mut registry,
            "cacheme_redis_breaker_open",
            "1 while the Redis circuit breaker skips calls",
        );
        let pending_invalidations = gauge(
            &mut registry,
            "cacheme_pending_invalidations",
            "Invalidations waiting to reach Redis",
        );
        let metrics = Self {
            registry,
            requests,
            queries,
            query_durations,
            l1_entries,
            breaker_open,
            pending_invalidations,
        };
        (metrics, counters)
    }

    /// `route` is the matched route template (`/products/{id}`), never the raw path,
    /// so the number of series stays bounded.
    pub fn observe_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            route,
            method,
            status,
        };
        self.requests
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_query(&self, operation: &'static str, elapsed: Duration) {
        let labels = QueryLabels { operation };
        self.queries.get_or_create(&labels).inc();
        self.query_durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text of every family, after setting the gauges to `gauges`.
    pub fn render(&self, gauges: Gauges) -> String {
        let as_gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.l1_entries.set(as_gauge(gauges.memory_entries));
        self.breaker_open.set(i64::from(gauges.breaker_open));
        self.pending_invalidations
            .set(as_gauge(gauges.pending_invalidations));
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Route templates seen so far. They come from the router, so there are as many as
/// routes (plus "unmatched"); each is leaked once to become a `&'static str` label.
static ROUTES: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());

/// The label for `route`, leaked the first time it is seen.
pub fn intern(route: &str) -> &'static str {
    if let Some(known) = ROUTES.read().iter().find(|r| **r == route) {
        return known;
    }
    let mut routes = ROUTES.write();
    if let Some(known) = routes.iter().find(|r| **r == route) {
        return known;
    }
    let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
    routes.push(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let (metrics, _) = Metrics::new();
        for seconds in [0.0002, 0.003, 10.0] {
            metrics.observe_request("/x", "GET", 200, Duration::from_secs_f64(seconds));
        }
        let text = metrics.render(Gauges {
            memory_entries: 0,
            breaker_open: false,
            pending_invalidations: 0,
        });
        let series = |le: &str| {
            format!(
                "cacheme_http_request_duration_seconds_bucket{{le=\"{le}\",route=\"/x\",method=\"GET\",status=\"200\"}}"
            )
        };
        assert_eq!(sample(&text, &series("0.00025")), Some("1"), "{text}");
        assert_eq!(sample(&text, &series("0.005")), Some("2"), "{text}");
        assert_eq!(sample(&text, &series("+Inf")), Some("3"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn the_cache_counters_are_the_exported_ones() {
        let (metrics, counters) = Metrics::new();
        counters.memory_hits.inc();
        counters.redis_errors.inc();
        counters.redis_errors.inc();
        let text = metrics.render(Gauges {
            memory_entries: 3,
            breaker_open: true,
            pending_invalidations: 0,
        });
        assert_eq!(
            sample(
                &text,
                r#"cacheme_cache_lookups_total{tier="memory",outcome="hit"}"#
            ),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"cacheme_cache_lookups_total{tier="redis",outcome="error"}"#
            ),
            Some("2")
        );
        assert_eq!(sample(&text, "cacheme_redis_errors_total"), Some("2"));
        assert_eq!(sample(&text, "cacheme_l1_entries"), Some("3"));
        assert_eq!(sample(&text, "cacheme_redis_breaker_open"), Some("1"));
        assert_eq!(counters.snapshot().tiers.redis.errors, 2);
    }

    #[test]
    fn a_route_is_interned_once() {
        let a = intern(&String::from("/products/{id}"));
        let b = intern(&String::from("/products/{id}"));
        assert!(std::ptr::eq(a, b));
    }
}
