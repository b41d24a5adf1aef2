//! `GET /metrics` in the Prometheus text format.
//!
//! Each app instance keeps its own registry (no process-global recorder), so two
//! instances in one process, as in the tests, never mix their numbers. Counters that the
//! cache already keeps are read from [`AppStats`] at scrape time.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use parking_lot::Mutex;

use super::stats::AppStats;

/// Upper bounds of the latency buckets, in seconds: from a memory hit to a slow miss.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative; summed when rendered).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (le, n) in LATENCY_BUCKETS.iter().zip(self.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// A label value escaped for the text format.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

type RequestKey = (String, String, u16);

/// Gauges read at scrape time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauges {
    pub memory_entries: u64,
    pub breaker_open: bool,
    pub pending_invalidations: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// A few dozen series at most, searched in place so an observation allocates nothing.
    requests: Mutex<Vec<(RequestKey, Histogram)>>,
    queries: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl Metrics {
    /// `route` is the matched route template (`/products/{id}`), never the raw path,
    /// so the number of series stays bounded.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut requests = self.requests.lock();
        let known = requests
            .iter_mut()
            .find(|((r, m, s), _)| *s == status && r == route && m == method);
        match known {
            Some((_, histogram)) => histogram.observe(seconds),
            None => {
                let mut histogram = Histogram::default();
                histogram.observe(seconds);
                requests.push(((route.to_owned(), method.to_owned(), status), histogram));
            }
        }
    }

    pub fn observe_query(&self, operation: &'static str, elapsed: Duration) {
        self.queries
            .lock()
            .entry(operation)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn render(&self, stats: &AppStats, gauges: Gauges) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };

        family(
            &mut out,
            "cacheme_http_request_duration_seconds",
            "histogram",
            "HTTP request duration by route, method and status.",
        );
        let mut requests = self.requests.lock().clone();
        requests.sort_by(|a, b| a.0.cmp(&b.0));
        for ((route, method, status), histogram) in &requests {
            let labels = format!(
                "route=\"{}\",method=\"{}\",status=\"{status}\"",
                escape_label(route),
                escape_label(method)
            );
            histogram.render(&mut out, "cacheme_http_request_duration_seconds", &labels);
        }

        let queries = self.queries.lock().clone();
        family(
            &mut out,
            "cacheme_db_queries_total",
            "counter",
            "PostgreSQL queries by operation.",
        );
        for (operation, histogram) in &queries {
            let _ = writeln!(
                out,
                "cacheme_db_queries_total{{operation=\"{operation}\"}} {}",
                histogram.count()
            );
        }
        family(
            &mut out,
            "cacheme_db_query_duration_seconds",
            "histogram",
            "PostgreSQL query duration by operation.",
        );
        for (operation, histogram) in &queries {
            histogram.render(
                &mut out,
                "cacheme_db_query_duration_seconds",
                &format!("operation=\"{operation}\""),
            );
        }

        family(
            &mut out,
            "cacheme_cache_lookups_total",
            "counter",
            "Cache lookups by tier and outcome (hit, miss, error, skipped).",
        );
        let lookups = [
            ("memory", "hit", stats.tiers.memory.hits),
            ("memory", "miss", stats.tiers.memory.misses),
            ("redis", "hit", stats.tiers.redis.hits),
            ("redis", "miss", stats.tiers.redis.misses),
            ("redis", "error", stats.tiers.redis.errors),
            ("redis", "skipped", stats.tiers.redis.skipped),
        ];
        for (tier, outcome, n) in lookups {
            let _ = writeln!(
                out,
                "cacheme_cache_lookups_total{{tier=\"{tier}\",outcome=\"{outcome}\"}} {n}"
            );
        }

        let counters = [
            (
                "cacheme_cache_negative_hits_total",
                "Answers for ids remembered as absent.",
                stats.negative_hits,
            ),
            (
                "cacheme_cache_coalesced_requests_total",
                "Misses that waited for another request's query (single flight).",
                stats.coalesced,
            ),
            (
                "cacheme_cache_fills_refused_total",
                "Cache fills refused because a write invalidated the key meanwhile.",
                stats.fills_refused,
            ),
            (
                "cacheme_cache_invalidation_failures_total",
                "Invalidations that could not reach Redis at once.",
                stats.invalidation_failures,
            ),
            (
                "cacheme_redis_timeouts_total",
                "Redis calls that hit REDIS_TIMEOUT_MS.",
                stats.redis_timeouts,
            ),
        ];
        for (name, help, n) in counters {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {n}");
        }
        family(
            &mut out,
            "cacheme_redis_errors_total",
            "counter",
            "Failed Redis calls (timeouts included).",
        );
        let _ = writeln!(
            out,
            "cacheme_redis_errors_total {}",
            stats.tiers.redis.errors
        );
        family(
            &mut out,
            "cacheme_cache_stale_served_total",
            "counter",
            "Entries served past their TTL, by reason.",
        );
        let _ = writeln!(
            out,
            "cacheme_cache_stale_served_total{{reason=\"revalidate\"}} {}",
            stats.stale_served
        );
        let _ = writeln!(
            out,
            "cacheme_cache_stale_served_total{{reason=\"error\"}} {}",
            stats.stale_if_error_served
        );

        let gauge_values = [
            (
                "cacheme_l1_entries",
                "Entries in the in-process tier.",
                gauges.memory_entries,
            ),
            (
                "cacheme_redis_breaker_open",
                "1 while the Redis circuit breaker skips calls.",
                u64::from(gauges.breaker_open),
            ),
            (
                "cacheme_pending_invalidations",
                "Invalidations waiting to reach Redis.",
                gauges.pending_invalidations,
            ),
        ];
        for (name, help, n) in gauge_values {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut h = Histogram::default();
        h.observe(0.0002);
        h.observe(0.003);
        h.observe(10.0);
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(
            out.contains("x_bucket{a=\"b\",le=\"0.00025\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"2.5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
