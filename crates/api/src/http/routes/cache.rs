//! `GET /cache/stats`, `GET /cache/entries/{id}` and `DELETE /cache/clear`.

use axum::{Json, extract::State};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::now_rfc3339;
use crate::{
    domain::{BreakerState, NodeHealth, NodeStatus},
    http::{
        access::WriteAccess,
        error::{ApiError, ApiResult},
        extract::ProductId,
        problems,
        state::AppState,
    },
    observability::stats::{AppStats, hit_rate_percent},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cache_stats))
        .routes(routes!(cache_entry))
        .routes(routes!(clear_cache))
}

/// The `INFO` fields the page shows, in the original's order.
const INFO_FIELDS: &[&str] = &[
    "cluster_masters",
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
    "maxmemory_policy",
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

/// State of the in-process tier.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryTierState {
    pub enabled: bool,
    /// Enabled and the invalidation channel is up.
    pub active: bool,
    pub entries: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CacheStatsResponse {
    /// Redis's own server-wide counters (`INFO`); empty while Redis is unreachable.
    #[schema(value_type = Object, example = json!({"keyspace_hits": 42, "keyspace_misses": 8, "used_memory_human": "1.2M", "connected_clients": 2, "total_commands_processed": 156, "total_connections_received": 9, "hit_rate": 84.0}))]
    pub cache_stats: Map<String, Value>,
    /// Counters of this API process.
    pub app_stats: AppStats,
    pub memory_tier: MemoryTierState,
    /// Circuit breaker in front of Redis.
    pub breaker: BreakerState,
    /// Products whose invalidation has not reached Redis yet (in the outbox, seen by every
    /// replica, relayed in the background); read from PostgreSQL only meanwhile.
    pub pending_invalidations: usize,
    /// Database loads running or lingering in this process (single flight), joinable ones
    /// only (not those a write forgot, which `loads_running` counts): each ends within
    /// its deadline, so this returns to 0 once traffic stops.
    pub loads_in_flight: usize,
    /// Database loads running, out of `DB_MAX_LOADS` (past which a miss answers 503):
    /// those no request waits for any more included.
    pub loads_running: usize,
    /// Background refreshes of stale entries among `loads_running`: at most half of
    /// `DB_MAX_LOADS` (at least one), the rest kept for misses.
    pub refreshes_running: usize,
    /// `connected` or `disconnected`; `partial` when some masters of a cluster are down
    /// (`cache_stats` then sums the others).
    pub redis: String,
    /// Redis Cluster only: every master, up or down, with its breaker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_nodes: Option<Vec<NodeHealth>>,
    /// RFC 3339.
    pub timestamp: String,
}

/// Redis server statistics plus this process's own counters per tier.
#[utoipa::path(
    get, path = "/cache/stats", tag = "cache",
    responses((status = 200, description = "Statistics; `cache_stats` (Redis INFO, read at most once a second and shared by the callers of that second) is empty while Redis is unreachable", body = CacheStatsResponse))
)]
pub async fn cache_stats(State(state): State<AppState>) -> Json<CacheStatsResponse> {
    let report = state.catalog.stats().await;
    let nodes = report.redis_nodes;
    let some_down = nodes
        .as_ref()
        .is_some_and(|nodes| nodes.iter().any(|n| n.status != NodeStatus::Up));
    let (cache_stats, redis) = match report.info {
        Ok(info) if some_down => (select_info_fields(&info), "partial"),
        Ok(info) => (select_info_fields(&info), "connected"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read Redis INFO");
            (Map::new(), "disconnected")
        }
    };
    Json(CacheStatsResponse {
        cache_stats,
        app_stats: report.counters,
        memory_tier: MemoryTierState {
            enabled: report.memory.enabled,
            active: report.memory.active,
            entries: report.memory.entries,
        },
        breaker: report.breaker,
        pending_invalidations: report.pending_invalidations,
        loads_in_flight: report.loads_in_flight,
        loads_running: report.loads_running,
        refreshes_running: report.refreshes_running,
        redis: redis.to_owned(),
        redis_nodes: nodes,
        timestamp: now_rfc3339(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CacheEntryResponse {
    #[schema(example = "cacheme:v1:product:1")]
    pub key: String,
    /// Redis holds an entry for this id (a product, or the knowledge that it does not exist).
    pub cached: bool,
    /// The entry says the id does not exist (negative caching).
    pub negative: bool,
    /// Remaining Redis TTL in seconds (includes the stale grace period); null when not cached.
    pub ttl_seconds: Option<f64>,
    /// Invalidations of this id so far (the version a fill must match).
    pub generation: u64,
}

/// What Redis holds for one product, with its remaining TTL.
#[utoipa::path(
    get, path = "/cache/entries/{id}", tag = "cache",
    params(("id" = i32, Path, minimum = 1)),
    responses(
        (status = 200, body = CacheEntryResponse),
        problems::InvalidId, problems::RedisDown,
    )
)]
pub async fn cache_entry(
    State(state): State<AppState>,
    ProductId(id): ProductId,
) -> ApiResult<Json<CacheEntryResponse>> {
    let entry = state
        .catalog
        .entry(id)
        .await
        .map_err(|e| ApiError::CacheUnavailable(e.into()))?;
    Ok(Json(CacheEntryResponse {
        key: entry.key,
        cached: entry.cached,
        negative: entry.absent_marker,
        ttl_seconds: entry
            .ttl
            .map(|t| (t.as_secs_f64() * 1000.0).round() / 1000.0),
        generation: entry.generation,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClearResponse {
    #[schema(example = "Cache cleared successfully")]
    pub message: String,
    /// How many of this service's entries were removed from Redis.
    pub cleared_keys: u64,
    pub timestamp: String,
}

/// Remove this service's cache entries (and nothing else in the same Redis); every replica drops its L1.
#[utoipa::path(
    delete, path = "/cache/clear", tag = "cache",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Entries removed", body = ClearResponse),
        problems::Unauthorized, problems::ClearDisabled, problems::ClearTooSoon,
        problems::RedisDownRetry,
    )
)]
pub async fn clear_cache(
    _access: WriteAccess,
    State(state): State<AppState>,
) -> ApiResult<Json<ClearResponse>> {
    let clear = async { Ok(state.catalog.clear(state.clear_gate.interval()).await?) };
    let cleared_keys = state.clear_gate.run(clear).await?;
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
        let info: std::collections::BTreeMap<String, String> = [
            ("keyspace_hits", "3"),
            ("keyspace_misses", "1"),
            ("used_memory_human", "1.2M"),
            ("role", "master"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let selected = select_info_fields(&info);
        assert_eq!(selected["keyspace_hits"], Value::from(3));
        assert_eq!(selected["used_memory_human"], Value::from("1.2M"));
        assert_eq!(selected["hit_rate"], Value::from(75.0));
        assert!(!selected.contains_key("role"));
    }
}
