//! Request middleware of the HTTP layer itself (the tracing and metrics middleware is in
//! `observability`).

use std::time::Duration;

use axum::{
    extract::Request,
    middleware::Next,
    response::{IntoResponse as _, Response},
};

use super::error::ApiError;

/// Answers 503 when a request takes longer than `limit`. Dropping the handler only stops
/// the wait: writes and loads run as tasks of their own and finish.
pub async fn deadline(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}
