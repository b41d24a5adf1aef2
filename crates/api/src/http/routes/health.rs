//! `GET /health` (really checks both stores), `GET /livez`, `GET /readyz`.

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::now_rfc3339;
use crate::{
    domain::{BreakerState, NodeHealth},
    http::{error::ApiError, problems, state::AppState},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(livez))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Both stores answer.
    Healthy,
    /// PostgreSQL answers, Redis does not: everything works, only slower.
    Degraded,
    /// PostgreSQL does not answer: only cached products can be served.
    Unhealthy,
}

/// The overall status from the two checks. Pure.
pub fn overall_status(database_ok: bool, redis_ok: bool) -> HealthStatus {
    match (database_ok, redis_ok) {
        (true, true) => HealthStatus::Healthy,
        (true, false) => HealthStatus::Degraded,
        (false, _) => HealthStatus::Unhealthy,
    }
}

fn connection_word(ok: bool) -> &'static str {
    if ok { "connected" } else { "disconnected" }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: HealthStatus,
    /// `connected` or `disconnected`
    #[schema(example = "connected")]
    pub database: String,
    /// `connected` or `disconnected` (in a cluster: disconnected when any master is down)
    #[schema(example = "connected")]
    pub redis: String,
    /// Circuit breaker in front of Redis (in a cluster: the worst of the masters').
    pub redis_breaker: BreakerState,
    /// Redis Cluster only: every master, up or down, with its breaker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_nodes: Option<Vec<NodeHealth>>,
    /// Whether the in-process tier is in use (enabled, and its invalidation channel up).
    pub memory_tier: bool,
    pub timestamp: String,
    #[schema(example = "0.1.0")]
    pub version: String,
}

/// Checks PostgreSQL and Redis now. 200 when healthy or degraded, 503 when unhealthy.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Healthy, or degraded (Redis down, served from PostgreSQL)", body = HealthResponse),
        (status = 503, description = "Unhealthy: PostgreSQL is unreachable", body = HealthResponse),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let report = state.catalog.health().await;
    let status = overall_status(report.database_ok, report.redis_ok);
    let code = if status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        Json(HealthResponse {
            status,
            database: connection_word(report.database_ok).to_owned(),
            redis: connection_word(report.redis_ok).to_owned(),
            redis_breaker: report.redis_breaker,
            redis_nodes: report.redis_nodes,
            memory_tier: report.memory_tier_active,
            timestamp: now_rfc3339(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }),
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeResponse {
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: the process answers HTTP.
#[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, body = ProbeResponse)))]
pub async fn livez() -> Json<ProbeResponse> {
    Json(ProbeResponse {
        status: "ok".into(),
    })
}

/// Whether a replica should receive traffic, from the two store checks. Pure.
/// With PostgreSQL down it still serves every cached product, so it stays ready
/// as long as Redis answers: taking every replica out of the Service while
/// PostgreSQL restarts would turn "cached products are still served" into
/// "nothing is served". `None` when neither store answers.
pub fn readiness(database_ok: bool, redis_ok: bool) -> Option<&'static str> {
    match (database_ok, redis_ok) {
        (true, _) => Some("ok"),
        (false, true) => Some("cache-only"),
        (false, false) => None,
    }
}

/// Readiness: PostgreSQL or Redis is reachable (`ok`, or `cache-only` when only
/// Redis answers and misses are refused with 503).
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, body = ProbeResponse),
        problems::NoStoreReachable,
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<ProbeResponse>, ApiError> {
    let report = state.catalog.readiness().await;
    match (
        readiness(report.database.is_ok(), report.redis_ok),
        report.database,
    ) {
        (None, Err(e)) => Err(ApiError::DatabaseUnavailable(e.into())),
        // `readiness` is `Some` whenever PostgreSQL answered.
        (status, _) => Ok(Json(ProbeResponse {
            status: status.unwrap_or("ok").into(),
        })),
    }
}

/// OpenMetrics text (which Prometheus scrapes): request, cache and database metrics of this process.
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text exposition format", content_type = "application/openmetrics-text; version=1.0.0", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let body = state.metrics.render(state.catalog.gauges().await);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::observability::metrics::CONTENT_TYPE,
        )],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_ready_while_either_store_answers() {
        assert_eq!(readiness(true, true), Some("ok"));
        assert_eq!(readiness(true, false), Some("ok"));
        assert_eq!(readiness(false, true), Some("cache-only"));
        assert_eq!(readiness(false, false), None);
    }

    #[test]
    fn redis_down_is_degraded_and_database_down_is_unhealthy() {
        assert_eq!(overall_status(true, true), HealthStatus::Healthy);
        assert_eq!(overall_status(true, false), HealthStatus::Degraded);
        assert_eq!(overall_status(false, true), HealthStatus::Unhealthy);
        assert_eq!(overall_status(false, false), HealthStatus::Unhealthy);
    }
}
