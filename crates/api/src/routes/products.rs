//! `GET /products/{id}` (cache-aside) and `GET /products` (paginated, from PostgreSQL).

use std::time::Instant;

use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::PathRejection, rejection::QueryRejection},
    routing::get,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    db::Product,
    error::{ApiError, ApiResult, Problem},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/products", get(list_products))
        .route("/products/{id}", get(get_product))
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
    /// Milliseconds from the start of the handler to just before the answer is serialised.
    #[schema(example = 0.42)]
    pub fetch_time_ms: f64,
}

/// Parses a product id: a positive 32-bit integer (PostgreSQL `SERIAL`).
pub fn parse_product_id(raw: &str) -> Result<i32, ApiError> {
    let value: i64 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::Validation(format!("product id must be an integer, got {raw:?}")))?;
    if value < 1 {
        return Err(ApiError::Validation(format!(
            "product id must be a positive integer, got {value}"
        )));
    }
    i32::try_from(value).map_err(|_| {
        ApiError::Validation(format!(
            "product id must be at most {}, got {value}",
            i32::MAX
        ))
    })
}

fn elapsed_ms(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Get one product, from the cache when it is there, else from PostgreSQL (then cached).
#[utoipa::path(
    get, path = "/products/{id}", tag = "products",
    params(("id" = i32, Path, description = "Product id, a positive integer", minimum = 1)),
    responses(
        (status = 200, description = "The product, with `source` and `fetch_time_ms`", body = ProductResponse),
        (status = 404, description = "No product has this id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id is not a positive 32-bit integer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not cached and PostgreSQL is unreachable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "products.get", skip(state, id), fields(product.id, cache.hit))]
pub async fn get_product(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<ProductResponse>> {
    let start = Instant::now();
    let Path(raw_id) = id?;
    let id = parse_product_id(&raw_id)?;
    let span = tracing::Span::current();
    span.record("product.id", id);

    match state.cache.get_product(id).await {
        Ok(Some(product)) => {
            span.record("cache.hit", true);
            return Ok(Json(ProductResponse {
                product,
                source: Source::Cache,
                fetch_time_ms: elapsed_ms(start),
            }));
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cache lookup failed; reading from PostgreSQL"),
    }
    span.record("cache.hit", false);

    let product = state
        .db
        .get_product(id)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::ProductNotFound)?;
    if let Err(e) = state.cache.put_product(&product).await {
        tracing::warn!(error = %e, "cache fill failed; answering anyway");
    }
    Ok(Json(ProductResponse {
        product,
        source: Source::Database,
        fetch_time_ms: elapsed_ms(start),
    }))
}

pub const DEFAULT_LIMIT: i64 = 10;
pub const MAX_LIMIT: i64 = 100;

/// `limit` and `offset` exactly as sent, validated by [`Pagination::parse`] for clear messages.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaginationParams {
    /// How many products, 1 to 100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// How many products to skip, 0 or more (default 0).
    #[param(value_type = Option<i64>, minimum = 0)]
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
                Ok(n) if n >= 0 => n,
                _ => {
                    return Err(ApiError::Validation(format!(
                        "offset must be an integer of 0 or more, got {raw:?}"
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
        (status = 422, description = "`limit` or `offset` out of range", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PostgreSQL is unreachable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_products(
    State(state): State<AppState>,
    params: Result<Query<PaginationParams>, QueryRejection>,
) -> ApiResult<Json<Vec<Product>>> {
    let Query(params) = params?;
    let page = Pagination::parse(&params)?;
    let products = state
        .db
        .list_products(page.limit, page.offset)
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(products))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_positive_32_bit_integers() {
        assert_eq!(parse_product_id("1").ok(), Some(1));
        assert_eq!(parse_product_id("2147483647").ok(), Some(i32::MAX));
        for bad in [
            "abc",
            "1.5",
            "",
            "0",
            "-3",
            "2147483648",
            "99999999999999999999",
        ] {
            let err = parse_product_id(bad).expect_err(bad);
            assert_eq!(
                err.status(),
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "{bad}"
            );
        }
    }

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
            (None, Some("y")),
        ] {
            assert!(
                Pagination::parse(&params(limit, offset)).is_err(),
                "{limit:?} {offset:?}"
            );
        }
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
            "\"fetch_time_ms\"",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|f| json.find(f).unwrap_or(usize::MAX))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    }
}
