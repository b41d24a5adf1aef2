//! One error type for every handler, answered as RFC 9457 problem+json.
//!
//! Every body carries `detail`, so the original demo's client (which reads
//! `detail`) keeps working. Internal causes are logged, never returned.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::CatalogError;

/// A cause kept for the log: the answer never shows it.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Seconds a client should wait before retrying when a backing store is down.
pub const RETRY_AFTER_SECONDS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Product not found")]
    ProductNotFound,
    #[error("{0}")]
    Validation(String),
    #[error("Resource not found")]
    RouteNotFound,
    #[error("Method not allowed on this resource")]
    MethodNotAllowed,
    #[error("The database is unavailable; try again shortly")]
    DatabaseUnavailable(#[source] Cause),
    #[error("Missing or wrong bearer token")]
    Unauthorized,
    #[error(
        "Writes are disabled on this instance: it has no ADMIN_TOKEN (and ALLOW_ANONYMOUS_WRITES is off)"
    )]
    WritesDisabled,
    #[error("The body is larger than any valid product ({} KiB at most)", crate::model::input::BODY_LIMIT_BYTES / 1024)]
    PayloadTooLarge,
    #[error("Too many requests; retry after {0} s")]
    TooManyRequests(u32),
    #[error("The request took too long and was abandoned; try again shortly")]
    RequestTimeout,
    #[error("Expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("Too many products are being loaded from the database at once; try again shortly")]
    TooManyLoads(#[source] Cause),
    #[error("The cache is unavailable; try again shortly")]
    CacheUnavailable(#[source] Cause),
    #[error("Internal server error")]
    Internal(#[from] anyhow::Error),
}

/// The problem+json body (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[schema(example = "https://cacheme.dev/problems/not-found")]
    pub r#type: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for a person.
    #[schema(example = "Product not found")]
    pub detail: String,
}

impl ApiError {
    /// The status and the problem type (`https://cacheme.dev/problems/<slug>`) of each
    /// error, in one table; `problems.rs` documents answers through it.
    fn status_and_slug(&self) -> (StatusCode, &'static str) {
        match self {
            Self::ProductNotFound | Self::RouteNotFound => (StatusCode::NOT_FOUND, "not-found"),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            Self::DatabaseUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "database-unavailable")
            }
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::WritesDisabled => (StatusCode::FORBIDDEN, "writes-disabled"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too-many-requests"),
            Self::RequestTimeout => (StatusCode::SERVICE_UNAVAILABLE, "request-timeout"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            Self::CacheUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "cache-unavailable"),
            Self::TooManyLoads(_) => (StatusCode::SERVICE_UNAVAILABLE, "too-many-loads"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_slug().0
    }

    fn slug(&self) -> &'static str {
        self.status_and_slug().1
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            r#type: format!("https://cacheme.dev/problems/{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NotFound => Self::ProductNotFound,
            CatalogError::DatabaseUnavailable(_) | CatalogError::LoadTimedOut(_) => {
                Self::DatabaseUnavailable(error.into())
            }
            CatalogError::CacheUnavailable(_) => Self::CacheUnavailable(error.into()),
            // Not logged per request (a flood would flood the log): `loads_refused` counts them.
            CatalogError::TooManyLoads(_) => Self::TooManyLoads(error.into()),
            CatalogError::TooSoon(wait) => Self::TooManyRequests(retry_after_seconds(wait)),
            CatalogError::Internal(_) => Self::Internal(error.into()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::Validation(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::Validation(rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::PayloadTooLarge;
        }
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            other => Self::Validation(other.body_text()),
        }
    }
}

impl From<crate::model::input::FieldErrors> for ApiError {
    fn from(errors: crate::model::input::FieldErrors) -> Self {
        Self::Validation(errors.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::DatabaseUnavailable(e) => tracing::warn!(error = %e, "database unavailable"),
            Self::CacheUnavailable(e) => tracing::warn!(error = %e, "cache unavailable"),
            Self::Internal(e) => tracing::error!(error = ?e, "internal error"),
            _ => {}
        }
        let problem = self.problem();
        let mut response = (self.status(), Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status() == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if let Self::TooManyRequests(seconds) = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A wait as a `Retry-After` in whole seconds: rounded up, never 0.
pub fn retry_after_seconds(wait: std::time::Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_keeps_the_original_detail() {
        let p = ApiError::ProductNotFound.problem();
        assert_eq!(p.status, 404);
        assert_eq!(p.detail, "Product not found");
        assert!(p.r#type.ends_with("/not-found"));
    }

    fn from_db(error: sqlx::Error) -> ApiError {
        CatalogError::from_db(error).into()
    }

    #[test]
    fn connection_failures_are_503_and_others_500() {
        assert_eq!(
            from_db(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            from_db(sqlx::Error::RowNotFound).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn unavailable_answers_carry_retry_after() {
        let response = ApiError::CacheUnavailable("down".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
