//! Prometheus metrics of the operator, rendered by the HTTP server at `/metrics` in the
//! OpenMetrics text format, through `prometheus-client` as the API's are (one metrics
//! library for both binaries):
//!
//! - `cacheme_operator_reconciles_total`
//! - `cacheme_operator_reconcile_failures_total{reason}` (reason = [`crate::Error::metric_label`])
//! - `cacheme_operator_reconcile_duration_seconds` (histogram)
//! - `cacheme_operator_leader` (1 while this replica leads)
//!
//! The controller and the election loop record into one process-wide [`Metrics`]
//! ([`global`]); tests render one of their own.

use std::{sync::LazyLock, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::Error;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the reconcile duration buckets, in seconds.
const DURATION_BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    reason: &'static str,
}

/// The operator's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<FailureLabels, Counter>,
    duration: Histogram,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Counter::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Histogram::new(DURATION_BUCKETS);
        let leader = Gauge::default();
        let mut registry = Registry::with_prefix("cacheme_operator");
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took",
            duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease and runs the controller",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
            leader,
        }
    }
}

impl Metrics {
    /// Counts a reconcile.
    pub fn reconcile_started(&self) {
        self.reconciles.inc();
    }

    /// Counts a failed reconcile by reason.
    pub fn reconcile_failed(&self, error: &Error) {
        self.failures
            .get_or_create(&FailureLabels {
                reason: error.metric_label(),
            })
            .inc();
    }

    /// Records how long a reconcile took.
    pub fn reconcile_duration(&self, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Records whether this replica leads.
    pub fn leader(&self, is_leader: bool) {
        self.leader.set(i64::from(is_leader));
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            // Writing into a String cannot fail; say so if it ever does.
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::default);
    &GLOBAL
}

/// Counts a reconcile.
pub fn reconcile_started() {
    global().reconcile_started();
}

/// Counts a failed reconcile by reason.
pub fn reconcile_failed(error: &Error) {
    global().reconcile_failed(error);
}

/// Records how long a reconcile took.
pub fn reconcile_duration(elapsed: Duration) {
    global().reconcile_duration(elapsed);
}

/// Records whether this replica leads.
pub fn leader(is_leader: bool) {
    global().leader(is_leader);
}
