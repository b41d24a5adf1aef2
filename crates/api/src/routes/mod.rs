//! One module per group of endpoints; [`router`] merges them.

pub mod cache;
pub mod health;
pub mod products;
pub mod root;

use axum::Router;

use crate::state::AppState;

/// Timestamps on the wire: RFC 3339, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(root::router())
        .merge(products::router())
        .merge(cache::router())
        .merge(health::router())
}
