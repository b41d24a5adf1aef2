//! The problem answers the OpenAPI document lists, each declared once with its status and
//! description; operations name them in `responses(...)`. Every one is an
//! `application/problem+json` [`Problem`] body, as [`ApiError`](super::error::ApiError)
//! answers.

use std::collections::BTreeMap;

use utoipa::{
    ToSchema as _,
    openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, response::Response},
};

use super::error::Problem;

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

/// `Name = "status", "description";` declares a unit type documenting that answer.
macro_rules! problems {
    ($($name:ident = $status:literal, $description:literal;)+) => {$(
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([($status.to_owned(), problem($description))])
            }
        }
    )+};
}

// Descriptions differ by operation where the cause does (which id, which store), so
// several statuses have more than one entry.
problems! {
    Unauthorized = "401", "Bearer token missing or wrong";
    UnauthorizedWithToken = "401", "`ADMIN_TOKEN` is set and the bearer token is missing or wrong";
    WritesDisabled = "403", "Writes are disabled: no `ADMIN_TOKEN` is configured (and `ALLOW_ANONYMOUS_WRITES` is off)";
    ClearDisabled = "403", "Writes are disabled: no ADMIN_TOKEN is configured";
    ProductNotFound = "404", "No product has this id";
    BodyTooLarge = "413", "The body is larger than any valid product (128 KiB)";
    NotJson = "415", "The body is not JSON";
    InvalidId = "422", "Invalid id";
    IdNotPositive = "422", "The id is not a positive 32-bit integer";
    PageOutOfRange = "422", "`limit` or `offset` out of range";
    InvalidField = "422", "A field is invalid; `detail` names it; nothing was written";
    InvalidIdOrField = "422", "Invalid id or field; nothing was written";
    ClearTooSoon = "429", "Another clear is running, or one ran less than a second ago; see Retry-After";
    DatabaseDown = "503", "PostgreSQL is unreachable";
    DatabaseDownRetry = "503", "PostgreSQL is unreachable; see Retry-After";
    NotCachedDatabaseDown = "503", "Not cached and PostgreSQL is unreachable; see Retry-After";
    RedisDown = "503", "Redis is unreachable";
    RedisDownRetry = "503", "Redis is unreachable; see Retry-After";
    NoStoreReachable = "503", "Neither PostgreSQL nor Redis is reachable";
}
