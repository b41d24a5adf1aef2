//! The OpenAPI 3.1 document, served at `/openapi.json` and browsed at `/docs`.

use utoipa::OpenApi;

use crate::{db, error, routes};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "CacheMe API",
        description = "Product service that demonstrates Redis cache-aside in front of PostgreSQL. Errors are application/problem+json (RFC 9457) and always carry `detail`."
    ),
    paths(
        routes::root::root,
        routes::products::get_product,
        routes::products::list_products,
        routes::products::create_product,
        routes::products::replace_product,
        routes::products::patch_product,
        routes::products::delete_product,
        routes::cache::cache_entry,
        routes::cache::cache_stats,
        routes::cache::clear_cache,
        routes::health::health,
        routes::health::livez,
        routes::health::readyz,
        routes::health::metrics,
    ),
    components(schemas(
        db::Product,
        error::Problem,
        crate::stats::TierStats,
        crate::catalog::Tier,
        routes::products::ProductResponse,
        routes::products::Source,
    )),
    tags(
        (name = "products", description = "Product reads, cached"),
        (name = "cache", description = "Cache statistics and management"),
        (name = "health", description = "Health and Kubernetes probes"),
        (name = "meta", description = "About the API"),
    )
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
