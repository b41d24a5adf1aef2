//! HTTP server of the operator: `/livez`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::metrics::Metrics;

/// State shared by the server and the leader-election loop.
#[derive(Debug, Default)]
pub struct Health {
    /// Connected to the API server (set once the client works).
    pub ready: AtomicBool,
    /// This replica holds the lease and runs the controller.
    pub leader: AtomicBool,
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: &'static Metrics,
}

/// The router; `metrics` is [`crate::metrics::global`] but in tests.
pub fn router(health: Arc<Health>, metrics: &'static Metrics) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState { health, metrics })
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // A standby replica is ready too: it is healthy and waits for the lease.
    let ready = state.health.ready.load(Ordering::Relaxed);
    let leader = state.health.leader.load(Ordering::Relaxed);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({ "ready": ready, "leader": leader })))
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// Metrics of a test's own: the process-wide ones count every test's reconciles.
    fn fresh_metrics() -> &'static Metrics {
        Box::leak(Box::default())
    }

    async fn get(
        router: Router,
        path: &str,
    ) -> Result<(StatusCode, String), Box<dyn std::error::Error>> {
        let response = router
            .oneshot(axum::http::Request::get(path).body(Body::empty())?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8(body.to_vec())?))
    }

    #[tokio::test]
    async fn livez_is_always_ok() -> Result<(), Box<dyn std::error::Error>> {
        let (status, body) = get(router(Arc::default(), fresh_metrics()), "/livez").await?;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        Ok(())
    }

    #[tokio::test]
    async fn readyz_follows_the_connection_not_the_lease() -> Result<(), Box<dyn std::error::Error>>
    {
        let health = Arc::new(Health::default());
        let (status, _) = get(router(health.clone(), fresh_metrics()), "/readyz").await?;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        health.ready.store(true, Ordering::Relaxed);
        let (status, body) = get(router(health, fresh_metrics()), "/readyz").await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body)?,
            json!({"ready": true, "leader": false})
        );
        Ok(())
    }

    #[tokio::test]
    async fn metrics_renders_the_openmetrics_text_format() -> Result<(), Box<dyn std::error::Error>>
    {
        let metrics = fresh_metrics();
        metrics.reconcile_started();
        metrics.reconcile_failed(&crate::Error::MissingNamespace);
        metrics.reconcile_duration(std::time::Duration::from_millis(30));
        metrics.leader(true);
        let (status, body) = get(router(Arc::default(), metrics), "/metrics").await?;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("cacheme_operator_reconciles_total 1"),
            "{body}"
        );
        assert!(
            body.contains(
                r#"cacheme_operator_reconcile_failures_total{reason="missing_namespace"} 1"#
            ),
            "{body}"
        );
        assert!(
            body.contains(r#"cacheme_operator_reconcile_duration_seconds_bucket{le="0.05"} 1"#),
            "{body}"
        );
        assert!(body.contains("cacheme_operator_leader 1"), "{body}");
        assert!(body.ends_with("# EOF\n"), "OpenMetrics: {body}");
        Ok(())
    }
}
