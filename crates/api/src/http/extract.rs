//! Extractors whose rejections are [`ApiError`]s, so a bad id, query or body answers in
//! the same problem+json shape as every other failure, and handlers take plain values.

use axum::{
    body::Body,
    extract::{FromRequest, FromRequestParts, Path, Request},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The `{id}` of a product path: a positive 32-bit integer (PostgreSQL `SERIAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductId(pub i32);

impl<S: Send + Sync> FromRequestParts<S> for ProductId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(ParsedId(parsed)) = Path::<ParsedId>::from_request_parts(parts, state).await?;
        parsed.map(Self)
    }
}

/// The id parsed where axum holds the path segment, so no `String` is made of it (one
/// allocation less per product read); our message, not serde's, for a bad one.
struct ParsedId(Result<i32, ApiError>);

impl<'de> serde::Deserialize<'de> for ParsedId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Segment;

        impl serde::de::Visitor<'_> for Segment {
            type Value = ParsedId;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a product id")
            }

            fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<ParsedId, E> {
                Ok(ParsedId(parse_product_id(raw)))
            }
        }

        deserializer.deserialize_str(Segment)
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

/// A JSON body (`Content-Type: application/json`) of at most
/// [`BODY_LIMIT_BYTES`](crate::model::input::BODY_LIMIT_BYTES).
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // The limit is set here, where a body is read, rather than by a `DefaultBodyLimit`
        // layer: that one runs on every request (an extension each, a cache hit included).
        // axum's own limit (2 MiB) still wraps this one; the smaller one trips first, and
        // axum answers its error as 413 as it would its own.
        let request = request.map(|body| {
            Body::new(http_body_util::Limited::new(
                body,
                crate::model::input::BODY_LIMIT_BYTES,
            ))
        });
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

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
