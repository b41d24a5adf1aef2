//! `GET /cache/stats` and `DELETE /cache/clear`.

use axum::{
    Json, Router,
    extract::State,
    routing::{delete, get},
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::{
    cache::{TierStats, hit_rate_percent},
    error::{ApiError, ApiResult, Problem},
    routes::now_rfc3339,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cache/stats", get(cache_stats))
        .route("/cache/clear", delete(clear_cache))
}

/// The `INFO` fields the page shows, in the original's order.
const INFO_FIELDS: &[&str] = &[
    "keyspace_hits",
    "keyspace_misses",
    "used_memory_human",
    "connected_clients",
    "total_commands_processed",
    "total_connections_received",
    "expired_keys",
    "evicted_keys",
    "uptime_in_seconds",
    "redis_version",
];

/// Picks [`INFO_FIELDS`] out of `INFO`, numbers as JSON numbers, and adds the server-wide hit rate.
pub fn select_info_fields(info: &std::collections::BTreeMap<String, String>) -> Map<String, Value> {
    let mut out = Map::new();
    for &field in INFO_FIELDS {
        if let Some(raw) = info.get(field) {
            let value = raw
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(raw.clone()));
            out.insert(field.to_owned(), value);
        }
    }
    let count = |f: &str| info.get(f).and_then(|v| v.parse::<u64>().ok());
    if let (Some(hits), Some(misses)) = (count("keyspace_hits"), count("keyspace_misses")) {
        out.insert(
            "hit_rate".into(),
            Value::from(hit_rate_percent(hits, misses)),
        );
    }
    out
}

/// This process's own counters, per tier.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppStats {
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses) × 100
    pub hit_rate: f64,
    pub tiers: Tiers,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tiers {
    pub redis: TierStats,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CacheStatsResponse {
    /// Redis's own server-wide counters (`INFO`); empty while Redis is unreachable.
    #[schema(value_type = Object, example = json!({"keyspace_hits": 42, "keyspace_misses": 8, "used_memory_human": "1.2M", "connected_clients": 2, "total_commands_processed": 156, "total_connections_received": 9, "hit_rate": 84.0}))]
    pub cache_stats: Map<String, Value>,
    /// Counters of this API process.
    pub app_stats: AppStats,
    /// `connected` or `disconnected`.
    pub redis: String,
    /// RFC 3339.
    pub timestamp: String,
}

/// Redis server statistics plus this process's own hit and miss counters.
#[utoipa::path(
    get, path = "/cache/stats", tag = "cache",
    responses((status = 200, description = "Statistics; `cache_stats` is empty while Redis is unreachable", body = CacheStatsResponse))
)]
pub async fn cache_stats(State(state): State<AppState>) -> Json<CacheStatsResponse> {
    let (cache_stats, redis) = match state.cache.info().await {
        Ok(info) => (select_info_fields(&info), "connected"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read Redis INFO");
            (Map::new(), "disconnected")
        }
    };
    let redis_tier = state.cache.stats();
    Json(CacheStatsResponse {
        cache_stats,
        app_stats: AppStats {
            hits: redis_tier.hits,
            misses: redis_tier.misses,
            hit_rate: redis_tier.hit_rate,
            tiers: Tiers { redis: redis_tier },
        },
        redis: redis.to_owned(),
        timestamp: now_rfc3339(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClearResponse {
    #[schema(example = "Cache cleared successfully")]
    pub message: String,
    /// How many of this service's keys were removed.
    pub cleared_keys: u64,
    pub timestamp: String,
}

/// Remove this service's cache entries (and nothing else in the same Redis).
#[utoipa::path(
    delete, path = "/cache/clear", tag = "cache",
    responses(
        (status = 200, description = "Entries removed", body = ClearResponse),
        (status = 503, description = "Redis is unreachable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn clear_cache(State(state): State<AppState>) -> ApiResult<Json<ClearResponse>> {
    let cleared_keys = state
        .cache
        .clear()
        .await
        .map_err(|e| ApiError::CacheUnavailable(e.to_string()))?;
    tracing::info!(cleared_keys, "cache cleared");
    Ok(Json(ClearResponse {
        message: "Cache cleared successfully".to_owned(),
        cleared_keys,
        timestamp: now_rfc3339(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_become_numbers_and_a_hit_rate() {
        let info = crate::cache::parse_info(
            "keyspace_hits:3\r\nkeyspace_misses:1\r\nused_memory_human:1.2M\r\nrole:master\r\n",
        );
        let selected = select_info_fields(&info);
        assert_eq!(selected["keyspace_hits"], Value::from(3));
        assert_eq!(selected["used_memory_human"], Value::from("1.2M"));
        assert_eq!(selected["hit_rate"], Value::from(75.0));
        assert!(!selected.contains_key("role"));
    }
}
