//! The per-request middleware: the head-sampling decision, a server span for sampled
//! requests (continuing the caller's W3C trace), the request deadline, `Server-Timing`
//! on every response, `traceparent` on traced ones, and the request histogram.
//!
//! One hand-written layer rather than `axum::middleware::from_fn` twice: each `from_fn`
//! clones and boxes the inner service and boxes its future on every request, which
//! cost a cache hit about 5 % of its time (see `BENCHMARKS.md`, #24).

use std::{
    convert::Infallible,
    pin::{Pin, pin},
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue, Method},
    response::{IntoResponse, Response},
};
use cacheme_telemetry::{HeadSampler, RemoteParent};
use tower::{Layer, Service};
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

/// Wraps every route: a server span when the head sampler picks it (continuing the
/// caller's W3C trace), the deadline (past it the answer is `on_deadline()`; dropping
/// the handler only stops the wait: writes and loads run as tasks of their own and
/// finish), the `Server-Timing` header, `traceparent` on traced responses, a log line
/// and the request histogram. Added with `Router::layer`, so it sees the matched route.
///
/// The sampling decision comes first: an unsampled request (every request when no
/// OTLP endpoint is set) builds no span here or below, because building spans that
/// nobody collects cost 45 % of a cache hit.
#[derive(Debug, Clone)]
pub struct RequestLayer {
    observer: RequestObserver,
    deadline: Duration,
    on_deadline: fn() -> Response,
}

impl RequestLayer {
    pub fn new(
        observer: RequestObserver,
        deadline: Duration,
        on_deadline: fn() -> Response,
    ) -> Self {
        Self {
            observer,
            deadline,
            on_deadline,
        }
    }
}

impl<S> Layer<S> for RequestLayer {
    type Service = ObservedRoute<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObservedRoute {
            inner,
            layer: self.clone(),
        }
    }
}

/// A route under [`RequestLayer`].
#[derive(Debug, Clone)]
pub struct ObservedRoute<S> {
    inner: S,
    layer: RequestLayer,
}

impl<S> Service<Request> for ObservedRoute<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Started::begin(&self.layer.observer, &request);
        let RequestLayer {
            observer,
            deadline,
            on_deadline,
        } = self.layer.clone();
        // Called here, on the service that was polled ready, rather than on a clone
        // inside the future: a clone of the routes below is one more allocation.
        let work = self.inner.call(request);
        Box::pin(async move {
            let work = tokio::time::timeout(deadline, work).instrument(started.span.clone());
            let mut scoped = pin!(timing::scope(work));
            let response = match scoped.as_mut().await {
                Ok(Ok(response)) => response.into_response(),
                Ok(Err(never)) => match never {},
                Err(_elapsed) => on_deadline(),
            };
            let timings = scoped.take_value().unwrap_or_default();
            Ok(started.finish(&observer, response, &timings))
        })
    }
}

/// What is known of a request before its handler runs.
struct Started {
    at: Instant,
    route: &'static str,
    method: &'static str,
    caller: Option<RemoteParent>,
    span: tracing::Span,
}

impl Started {
    fn begin(observer: &RequestObserver, request: &Request) -> Self {
        let at = Instant::now();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let route = super::metrics::intern(route);
        let method = method_label(request.method());
        let caller = request
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(RemoteParent::parse);
        let span = if observer.sampler.sample_request(caller.as_ref()) {
            server_span(request, method, route)
        } else {
            tracing::Span::none()
        };
        Self {
            at,
            route,
            method,
            caller,
            span,
        }
    }

    fn finish(
        self,
        observer: &RequestObserver,
        mut response: Response,
        timings: &RequestTimings,
    ) -> Response {
        let Self {
            at,
            route,
            method,
            caller,
            span,
        } = self;
        let elapsed = at.elapsed();
        let status = response.status();
        let headers = response.headers_mut();
        if let Some(value) = timing::server_timing(timings.cache(), timings.db(), elapsed) {
            headers.insert(HeaderName::from_static("server-timing"), value);
        }
        observer
            .metrics
            .observe_request(route, method, status.as_u16(), elapsed);

        if span.is_disabled() {
            // Untraced: the caller's trace id, when it sent one, still joins the log line.
            tracing::info!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                trace_id = caller.map(|c| c.trace_id()),
                "request finished"
            );
            return response;
        }
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        if let Some(value) =
            cacheme_telemetry::traceparent(&span).and_then(|v| HeaderValue::try_from(v).ok())
        {
            headers.insert(TRACEPARENT, value);
        }
        span.in_scope(|| {
            tracing::info!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "request finished"
            );
        });
        response
    }
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What the request middleware records to, and which requests it traces.
#[derive(Debug, Clone)]
pub struct RequestObserver {
    pub metrics: Arc<Metrics>,
    pub sampler: HeadSampler,
}

/// The server span of a sampled request, a child of the caller's span when it sent one.
fn server_span(request: &Request, method: &'static str, route: &str) -> tracing::Span {
    // The name is `cacheme_telemetry::REQUEST_SPAN`, the filter's marker for "a sampled
    // request starts here" (a test holds them equal).
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
    if !span.is_disabled() {
        cacheme_telemetry::continue_trace(&span, request.headers());
        if let Some(id) = cacheme_telemetry::trace_id(&span) {
            span.record("trace_id", id);
        }
    }
    span
}

#[cfg(test)]
mod tests;
