//! HTTP server of the operator: `/livez`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

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
    metrics: Option<PrometheusHandle>,
}

/// The router; `metrics` is `None` when no recorder is installed (tests).
pub fn router(health: Arc<Health>, metrics: Option<PrometheusHandle>) -> Router {
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
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

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
        let (status, body) = get(router(Arc::default(), None), "/livez").await?;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        Ok(())
    }

    #[tokio::test]
    async fn readyz_follows_the_connection_not_the_lease() -> Result<(), Box<dyn std::error::Error>>
    {
        let health = Arc::new(Health::default());
        let (status, _) = get(router(health.clone(), None), "/readyz").await?;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        health.ready.store(true, Ordering::Relaxed);
        let (status, body) = get(router(health, None), "/readyz").await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body)?,
            json!({"ready": true, "leader": false})
        );
        Ok(())
    }

    #[tokio::test]
    async fn metrics_renders_the_prometheus_text_format() -> Result<(), Box<dyn std::error::Error>>
    {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            crate::metrics::reconcile_started();
            crate::metrics::reconcile_failed(&crate::Error::MissingNamespace);
        });
        let (status, body) = get(router(Arc::default(), Some(handle)), "/metrics").await?;
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
        Ok(())
    }
}
