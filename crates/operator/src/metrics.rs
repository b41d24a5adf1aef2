//! Prometheus metrics of the operator, rendered by the HTTP server at `/metrics`.
//!
//! - `cacheme_operator_reconciles_total`
//! - `cacheme_operator_reconcile_failures_total{reason}` (reason = [`crate::Error::metric_label`])
//! - `cacheme_operator_reconcile_duration_seconds` (histogram)
//! - `cacheme_operator_leader` (1 while this replica leads)

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{Error, Result};

pub const RECONCILES: &str = "cacheme_operator_reconciles_total";
pub const FAILURES: &str = "cacheme_operator_reconcile_failures_total";
pub const DURATION: &str = "cacheme_operator_reconcile_duration_seconds";
pub const LEADER: &str = "cacheme_operator_leader";

/// Installs the global recorder; the handle renders the text format.
pub fn install() -> Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(DURATION.to_string()),
            &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))
}

/// Counts a reconcile.
pub fn reconcile_started() {
    metrics::counter!(RECONCILES).increment(1);
}

/// Counts a failed reconcile by reason.
pub fn reconcile_failed(error: &Error) {
    metrics::counter!(FAILURES, "reason" => error.metric_label()).increment(1);
}

/// Records how long a reconcile took.
pub fn reconcile_duration(elapsed: Duration) {
    metrics::histogram!(DURATION).record(elapsed.as_secs_f64());
}

/// Records whether this replica leads.
pub fn leader(is_leader: bool) {
    metrics::gauge!(LEADER).set(if is_leader { 1.0 } else { 0.0 });
}
