//! `GET /`: the API's self-description, or the page for a browser when `STATIC_DIR` is set.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, header},
    response::{Html, IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(root))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RootResponse {
    #[schema(example = "Cache Me If You Can - Redis caching demo API")]
    pub message: String,
    pub version: String,
    /// What each endpoint is, by name.
    pub endpoints: BTreeMap<String, String>,
}

/// The endpoints a person starts from, under the names the original demo's page reads;
/// `/openapi.json` lists them all.
pub fn describe() -> RootResponse {
    let endpoints = [
        ("product", "GET /products/{id}"),
        ("products", "GET /products?limit=&offset="),
        ("cache_stats", "GET /cache/stats"),
        ("clear_cache", "DELETE /cache/clear"),
        ("health", "GET /health"),
        ("liveness", "GET /livez"),
        ("readiness", "GET /readyz"),
        ("docs", "GET /docs"),
        ("openapi", "GET /openapi.json"),
    ];
    RootResponse {
        message: "Cache Me If You Can - Redis caching demo API".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        endpoints: endpoints
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// True when the client prefers a page to JSON (a browser's navigation request).
/// The page's Content-Security-Policy (the same as `frontend/nginx.conf` sends): its
/// own scripts, styles and API only, no inline script or style, no framing. The page
/// holds the admin token in a field, so an injected script must have nowhere to run.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'";

pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// API name, version and endpoints; a browser gets the page instead when it is served here.
#[utoipa::path(
    get, path = "/", tag = "meta",
    responses((status = 200, description = "Self-description (or the page, for Accept: text/html with STATIC_DIR set)", body = RootResponse))
)]
pub async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(dir) = state.static_dir.as_deref()
        && wants_html(&headers)
    {
        match tokio::fs::read_to_string(dir.join("index.html")).await {
            Ok(page) => {
                return ([(header::CONTENT_SECURITY_POLICY, PAGE_CSP)], Html(page)).into_response();
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "STATIC_DIR has no readable index.html")
            }
        }
    }
    Json(describe()).into_response()
}
