//! Extractors whose rejections are [`ApiError`]s, so a bad id, query or body answers in
//! the same problem+json shape as every other failure, and handlers take plain values.

use axum::{
    extract::{FromRequest, FromRequestParts, Path},
    http::request::Parts,
};

use super::error::ApiError;

/// The `{id}` of a product path: a positive 32-bit integer (PostgreSQL `SERIAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductId(pub i32);

impl<S: Send + Sync> FromRequestParts<S> for ProductId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await?;
        parse_product_id(&raw).map(Self)
    }
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

/// A JSON body (`Content-Type: application/json`).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// Query parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

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
}
