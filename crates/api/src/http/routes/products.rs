//! `/products`: reads (`GET /products/{id}` through the cache, `GET /products` from
//! PostgreSQL) and the writes that invalidate the cache.

use std::{fmt::Write as _, time::Instant};

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::Tier,
    http::{
        access::WriteAccess,
        error::{ApiError, ApiResult},
        extract::{AppJson, AppQuery, ProductId},
        problems,
        state::AppState,
    },
    model::{
        Product,
        input::{ProductInput, ProductPatch},
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(
            get_product,
            replace_product,
            patch_product,
            delete_product
        ))
}

/// Where a product answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Cache,
    Database,
}

/// A product with the lesson attached: where it came from and how long it took.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductResponse {
    #[serde(flatten)]
    pub product: Product,
    pub source: Source,
    /// Which cache tier answered; absent when `source` is `database`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_tier: Option<Tier>,
    /// Milliseconds from the start of the handler to just before the answer is serialised.
    #[schema(example = 0.42)]
    pub fetch_time_ms: f64,
}

fn elapsed_ms(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Get one product, from the cache when it is there, else from PostgreSQL (then cached).
#[utoipa::path(
    get, path = "/products/{id}", tag = "products",
    params(("id" = i32, Path, description = "Product id, a positive integer", minimum = 1)),
    responses(
        (status = 200, description = "The product, with `source`, `cache_tier` and `fetch_time_ms`", body = ProductResponse),
        problems::ProductNotFound, problems::IdNotPositive, problems::NotCachedDatabaseDown,
    )
)]
#[tracing::instrument(name = "products.get", skip(state, id), fields(product.id, cache.hit))]
pub async fn get_product(
    State(state): State<AppState>,
    ProductId(id): ProductId,
) -> ApiResult<Response> {
    let start = Instant::now();
    tracing::Span::current().record("product.id", id);
    let served = state.catalog.get(id).await?;
    tracing::Span::current().record("cache.hit", served.tier.is_some());
    let body = product_body(&served.product.json, served.tier, elapsed_ms(start));
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// The [`ProductResponse`] JSON, spliced onto the product's pre-encoded JSON object so a
/// hit neither decodes nor re-encodes the product. `product_json` must be a JSON object.
pub fn product_body(product_json: &str, tier: Option<Tier>, fetch_time_ms: f64) -> String {
    let fields = product_json.strip_suffix('}').unwrap_or(product_json);
    let mut body = String::with_capacity(product_json.len() + 72);
    body.push_str(fields);
    match tier {
        None => body.push_str(r#","source":"database""#),
        Some(Tier::Memory) => body.push_str(r#","source":"cache","cache_tier":"memory""#),
        Some(Tier::Redis) => body.push_str(r#","source":"cache","cache_tier":"redis""#),
    }
    body.push_str(r#","fetch_time_ms":"#);
    // f64's Display never uses an exponent, so this is always a valid JSON number.
    let fetch_time_ms = if fetch_time_ms.is_finite() {
        fetch_time_ms
    } else {
        0.0
    };
    let _ = write!(body, "{fetch_time_ms}");
    body.push('}');
    body
}

pub const DEFAULT_LIMIT: i64 = 10;
pub const MAX_LIMIT: i64 = 100;
/// Deepest page: each query walks the id index this far, so it is bounded.
pub const MAX_OFFSET: i64 = 1_000_000;

/// `limit` and `offset` exactly as sent, validated by [`Pagination::parse`] for clear messages.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaginationParams {
    /// How many products, 1 to 100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// How many products to skip, 0 to 1 000 000 (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 1_000_000)]
    pub offset: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    pub limit: i64,
    pub offset: i64,
}

impl Pagination {
    pub fn parse(params: &PaginationParams) -> Result<Self, ApiError> {
        let limit = match params.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::Validation(format!(
                        "limit must be an integer from 1 to {MAX_LIMIT}, got {raw:?}"
                    )));
                }
            },
        };
        let offset = match params.offset.as_deref() {
            None => 0,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if (0..=MAX_OFFSET).contains(&n) => n,
                _ => {
                    return Err(ApiError::Validation(format!(
                        "offset must be an integer from 0 to {MAX_OFFSET}, got {raw:?}"
                    )));
                }
            },
        };
        Ok(Self { limit, offset })
    }
}

/// List products ordered by id (always from PostgreSQL).
#[utoipa::path(
    get, path = "/products", tag = "products",
    params(PaginationParams),
    responses(
        (status = 200, description = "Products ordered by id", body = Vec<Product>),
        problems::PageOutOfRange, problems::DatabaseDownRetry,
    )
)]
pub async fn list_products(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<PaginationParams>,
) -> ApiResult<Json<Vec<Product>>> {
    let page = Pagination::parse(&params)?;
    Ok(Json(state.catalog.list(page.limit, page.offset).await?))
}

/// Create a product; its id is assigned by the database.
#[utoipa::path(
    post, path = "/products", tag = "products",
    request_body = ProductInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `Location` names the new product", body = Product),
        problems::UnauthorizedWithToken, problems::WritesDisabled, problems::NotJson,
        problems::BodyTooLarge, problems::InvalidField, problems::DatabaseDown,
    )
)]
pub async fn create_product(
    _access: WriteAccess,
    State(state): State<AppState>,
    AppJson(input): AppJson<ProductInput>,
) -> ApiResult<Response> {
    let product = state.catalog.create(input.validate()?).await?;
    let location = format!("/products/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(product),
    )
        .into_response())
}

/// Replace a product's fields; its cache entries are invalidated on every replica.
#[utoipa::path(
    put, path = "/products/{id}", tag = "products",
    params(("id" = i32, Path, minimum = 1)),
    request_body = ProductInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The product as stored", body = Product),
        problems::Unauthorized, problems::WritesDisabled, problems::ProductNotFound,
        problems::BodyTooLarge, problems::NotJson, problems::InvalidIdOrField,
        problems::DatabaseDown,
    )
)]
pub async fn replace_product(
    _access: WriteAccess,
    State(state): State<AppState>,
    ProductId(id): ProductId,
    AppJson(input): AppJson<ProductInput>,
) -> ApiResult<Json<Product>> {
    Ok(Json(state.catalog.replace(id, input.validate()?).await?))
}

/// Change some fields (`null` clears an optional one); cache entries are invalidated.
#[utoipa::path(
    patch, path = "/products/{id}", tag = "products",
    params(("id" = i32, Path, minimum = 1)),
    request_body = ProductPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The product as stored", body = Product),
        problems::Unauthorized, problems::WritesDisabled, problems::ProductNotFound,
        problems::BodyTooLarge, problems::NotJson, problems::InvalidIdOrField,
        problems::DatabaseDown,
    )
)]
pub async fn patch_product(
    _access: WriteAccess,
    State(state): State<AppState>,
    ProductId(id): ProductId,
    AppJson(patch): AppJson<ProductPatch>,
) -> ApiResult<Json<Product>> {
    Ok(Json(state.catalog.patch(id, patch.validate()?).await?))
}

/// Delete a product; its cache entries are invalidated.
#[utoipa::path(
    delete, path = "/products/{id}", tag = "products",
    params(("id" = i32, Path, minimum = 1)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        problems::Unauthorized, problems::WritesDisabled, problems::ProductNotFound,
        problems::InvalidId, problems::DatabaseDown,
    )
)]
pub async fn delete_product(
    _access: WriteAccess,
    State(state): State<AppState>,
    ProductId(id): ProductId,
) -> ApiResult<StatusCode> {
    state.catalog.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(limit: Option<&str>, offset: Option<&str>) -> PaginationParams {
        PaginationParams {
            limit: limit.map(str::to_owned),
            offset: offset.map(str::to_owned),
        }
    }

    #[test]
    fn pagination_defaults_and_bounds() {
        assert_eq!(
            Pagination::parse(&params(None, None)).ok(),
            Some(Pagination {
                limit: 10,
                offset: 0
            })
        );
        assert_eq!(
            Pagination::parse(&params(Some("100"), Some("5"))).ok(),
            Some(Pagination {
                limit: 100,
                offset: 5
            })
        );
        for (limit, offset) in [
            (Some("0"), None),
            (Some("101"), None),
            (Some("x"), None),
            (None, Some("-1")),
            (None, Some("1000001")),
            (None, Some("9223372036854775807")),
            (None, Some("y")),
        ] {
            assert!(
                Pagination::parse(&params(limit, offset)).is_err(),
                "{limit:?} {offset:?}"
            );
        }
    }

    #[test]
    fn the_spliced_body_equals_the_serialised_response() {
        let product = Product {
            id: 7,
            name: "AirPods \"Pro\"".into(),
            category: None,
            price: Some(rust_decimal::Decimal::new(24999, 2)),
            description: Some("ünïcödé, {braces}".into()),
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_string(&product).expect("encodes");
        for (tier, source) in [
            (None, Source::Database),
            (Some(Tier::Memory), Source::Cache),
            (Some(Tier::Redis), Source::Cache),
        ] {
            let spliced = product_body(&json, tier, 1.25);
            let expected = serde_json::to_string(&ProductResponse {
                product: product.clone(),
                source,
                cache_tier: tier,
                fetch_time_ms: 1.25,
            })
            .expect("serialises");
            assert_eq!(spliced, expected);
        }
        let tiny = product_body(&json, None, 0.0001);
        let parsed: serde_json::Value = serde_json::from_str(&tiny).expect("valid JSON");
        assert_eq!(parsed["fetch_time_ms"], 0.0001);
    }

    #[test]
    fn product_response_keeps_the_original_field_order() {
        let product = Product {
            id: 1,
            name: "n".into(),
            category: Some("c".into()),
            price: Some(rust_decimal::Decimal::new(249999, 2)),
            description: Some("d".into()),
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_string(&ProductResponse {
            product,
            source: Source::Cache,
            cache_tier: Some(Tier::Redis),
            fetch_time_ms: 1.5,
        })
        .expect("serialises");
        let order = [
            "\"id\"",
            "\"name\"",
            "\"category\"",
            "\"price\":2499.99",
            "\"description\"",
            "\"created_at\"",
            "\"updated_at\"",
            "\"source\":\"cache\"",
            "\"cache_tier\":\"redis\"",
            "\"fetch_time_ms\"",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|f| json.find(f).unwrap_or(usize::MAX))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    }
}
