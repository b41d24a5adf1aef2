//! The HTTP surface: the router and its OpenAPI document (`routes`), the extractors
//! (`extract`, `access`), one error type answered as problem+json (`error`, documented
//! through `problems`); the middleware every route runs under is `observability`'s.

pub mod access;
pub mod error;
pub mod extract;
pub mod problems;
pub mod routes;
pub mod serve;
pub mod state;

use axum::{
    Router,
    handler::HandlerWithoutStateExt,
    http::{Method, header},
    response::IntoResponse as _,
};
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    services::ServeDir,
    set_header::SetResponseHeaderLayer,
};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use self::{error::ApiError, state::AppState};
use crate::{config::CorsOrigins, observability};

/// What the document says besides its operations, which the routes add.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "CacheMe API",
        description = "Product service that demonstrates Redis cache-aside in front of PostgreSQL. Errors are application/problem+json (RFC 9457) and always carry `detail`."
    ),
    components(schemas(
        crate::model::Product,
        error::Problem,
        crate::observability::stats::TierStats,
        crate::domain::Tier,
        routes::products::ProductResponse,
        routes::products::Source,
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "products", description = "Product reads, cached"),
        (name = "cache", description = "Cache statistics and management"),
        (name = "health", description = "Health and Kubernetes probes"),
        (name = "meta", description = "About the API"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` scheme the write operations require (`ADMIN_TOKEN`), so the
/// document is valid and Swagger UI can send the token.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "The admin token (`ADMIN_TOKEN`); writes and cache clears need it",
                        ))
                        .build(),
                ),
            );
    }
}

/// Every endpoint and the OpenAPI 3.1 document describing them, from one registration.
fn documented_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::router())
        .split_for_parts()
}

async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `None` for same-origin only. Credentials (cookies) are never allowed, so `*` never
/// meets them; the bearer token is a header the page sends itself.
fn cors_layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow_origin = match origins {
        CorsOrigins::None => return None,
        CorsOrigins::Any => AllowOrigin::from(Any),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    let layer = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([
            header::RETRY_AFTER,
            header::LOCATION,
            header::HeaderName::from_static("server-timing"),
            header::HeaderName::from_static("traceparent"),
        ]);
    Some(layer)
}

/// The whole HTTP surface for `state`; no socket, so tests can drive it with `oneshot`
/// (`tests/api/router.rs`, through `App::router`).
pub fn router(state: AppState, cors: &CorsOrigins) -> Router {
    let static_dir = state.static_dir.clone();
    let observer = observability::middleware::RequestObserver {
        metrics: state.metrics.clone(),
        sampler: state.sampler,
    };
    let (routes, doc) = documented_routes();
    let mut app = routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .method_not_allowed_fallback(method_not_allowed);
    app = match static_dir {
        Some(dir) => app.fallback_service(
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    header::HeaderValue::from_static(routes::root::PAGE_CSP),
                ))
                .service(ServeDir::new(dir.as_ref()).fallback(not_found.into_service())),
        ),
        None => app.fallback(not_found),
    };
    // Added with `layer` on the router, so the middleware sees the matched route. One
    // `layer` call for all of it: each call wraps every route in one more boxed service,
    // which a request clones (with every box beneath it) and whose future it boxes:
    // 41 allocations per cache hit with three calls, 31 with one (BENCHMARKS.md). The
    // body limit is the JSON extractor's (`extract::AppJson`), not a layer's.
    let middleware = tower::ServiceBuilder::new()
        .option_layer(cors_layer(cors))
        .layer(observability::middleware::RequestLayer::new(
            observer,
            state.request_timeout,
            || ApiError::RequestTimeout.into_response(),
        ));
    app.layer(middleware).with_state(state)
}
