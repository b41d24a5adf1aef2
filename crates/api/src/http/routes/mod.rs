//! One module per group of endpoints, each registering its handlers once, for routing
//! and for the OpenAPI document alike; [`router`] merges them.

pub mod cache;
pub mod health;
pub mod products;
pub mod root;

use utoipa_axum::router::OpenApiRouter;

use super::state::AppState;

/// Timestamps on the wire: RFC 3339, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(root::router())
        .merge(products::router())
        .merge(cache::router())
        .merge(health::router())
}
