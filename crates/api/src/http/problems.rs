//! The problem answers the OpenAPI document lists, each declared once with its status and
//! description; operations name them in `responses(...)`. Every one is an
//! `application/problem+json` [`Problem`] body, as [`ApiError`](super::error::ApiError)
//! answers.

use std::collections::BTreeMap;

use utoipa::{
    ToSchema as _,
    openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, response::Response},
};

use super::error::{ApiError, Problem};

fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build(),
        )
        .build()
        .into()
}

/// `Name = <the ApiError it documents> => "description";` declares a unit type
/// documenting that answer; its status is the error's own (`ApiError::status`), so the
/// document cannot say another.
macro_rules! problems {
    ($($name:ident = $error:expr => $description:expr;)+) => {$(
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                let error: ApiError = $error;
                BTreeMap::from([(error.status().as_str().to_owned(), problem(&$description))])
            }
        }
    )+};
}

fn down() -> ApiError {
    ApiError::DatabaseUnavailable("documented".into())
}

// Descriptions differ by operation where the cause does (which id, which store), so
// several errors have more than one entry.
problems! {
    Unauthorized = ApiError::Unauthorized => "Bearer token missing or wrong";
    UnauthorizedWithToken = ApiError::Unauthorized => "`ADMIN_TOKEN` is set and the bearer token is missing or wrong";
    WritesDisabled = ApiError::WritesDisabled => "Writes are disabled: no `ADMIN_TOKEN` is configured (and `ALLOW_ANONYMOUS_WRITES` is off)";
    ClearDisabled = ApiError::WritesDisabled => "Writes are disabled: no ADMIN_TOKEN is configured";
    ProductNotFound = ApiError::ProductNotFound => "No product has this id";
    BodyTooLarge = ApiError::PayloadTooLarge => format!(
        "The body is larger than any valid product ({} KiB)",
        crate::model::input::BODY_LIMIT_BYTES / 1024
    );
    NotJson = ApiError::UnsupportedMediaType => "The body is not JSON";
    InvalidId = ApiError::Validation(String::new()) => "Invalid id";
    IdNotPositive = ApiError::Validation(String::new()) => "The id is not a positive 32-bit integer";
    PageOutOfRange = ApiError::Validation(String::new()) => "`limit` or `offset` out of range";
    InvalidField = ApiError::Validation(String::new()) => "A field is invalid; `detail` names it; nothing was written";
    InvalidIdOrField = ApiError::Validation(String::new()) => "Invalid id or field; nothing was written";
    ClearTooSoon = ApiError::TooManyRequests(1) => "Another clear is running, or one ran less than a second ago; see Retry-After";
    DatabaseDown = down() => "PostgreSQL is unreachable";
    DatabaseDownRetry = down() => "PostgreSQL is unreachable; see Retry-After";
    NotCachedDatabaseDown = down() => "Not cached, and PostgreSQL is unreachable or `DB_MAX_LOADS` loads are running; see Retry-After";
    RedisDown = ApiError::CacheUnavailable("documented".into()) => "Redis is unreachable";
    RedisDownRetry = ApiError::CacheUnavailable("documented".into()) => "Redis is unreachable; see Retry-After";
    NoStoreReachable = down() => "Neither PostgreSQL nor Redis is reachable";
}
