//! The per-request middleware: a server span (continuing the caller's W3C trace),
//! `traceparent` and `Server-Timing` on every response, and the request histogram.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method},
    middleware::Next,
    response::Response,
};
use tracing::Instrument as _;

use super::{
    metrics::Metrics,
    timing::{self, RequestTimings},
};

/// The method as it may appear in metrics and span names: one of the standard methods,
/// or `_OTHER` (the OpenTelemetry convention), so made-up methods cannot create series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// Wraps every request: a server span that continues the caller's trace, the
/// `Server-Timing` and `traceparent` headers, a log line and the request histogram.
pub async fn trace_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = method_label(request.method());
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    // A span filtered out by RUST_LOG has no trace to continue or report.
    let traced = !span.is_disabled();
    if traced {
        cacheme_telemetry::continue_trace(&span, request.headers());
        if let Some(id) = cacheme_telemetry::trace_id(&span) {
            span.record("trace_id", id);
        }
    }

    let timings = Arc::new(RequestTimings::default());
    let mut response =
        timing::scope(timings.clone(), next.run(request).instrument(span.clone())).await;
    let elapsed = start.elapsed();
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }

    let headers = response.headers_mut();
    let server_timing = timing::server_timing(timings.cache(), timings.db(), elapsed);
    if let Ok(value) = HeaderValue::try_from(server_timing) {
        headers.insert(HeaderName::from_static("server-timing"), value);
    }
    if let Some(value) = traced
        .then(|| cacheme_telemetry::traceparent(&span))
        .flatten()
        .and_then(|v| HeaderValue::try_from(v).ok())
    {
        headers.insert(HeaderName::from_static("traceparent"), value);
    }
    metrics.observe_request(route, method, status.as_u16(), elapsed);
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for raw in ["M1XXXX", "get", "BREW"] {
            let method = Method::from_bytes(raw.as_bytes()).expect("a token");
            assert_eq!(method_label(&method), "_OTHER", "{raw}");
        }
    }
}
