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
        // The service polled ready is the one that serves; a clone waits for the next.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let started = Started::begin(&self.layer.observer, &request);
        let RequestLayer {
            observer,
            deadline,
            on_deadline,
        } = self.layer.clone();
        Box::pin(async move {
            let work = tokio::time::timeout(deadline, inner.call(request))
                .instrument(started.span.clone());
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
        let server_timing = timing::server_timing(timings.cache(), timings.db(), elapsed);
        if let Ok(value) = HeaderValue::try_from(server_timing) {
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
mod tests {
    use std::sync::Mutex;

    use axum::{Router, body::Body, http::StatusCode, routing::get};
    use opentelemetry::trace::TracerProvider as _;
    use tower::ServiceExt as _;
    use tracing_subscriber::{Layer as _, filter::LevelFilter, layer::SubscriberExt as _};

    use super::*;

    const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// The names of the spans built, in order.
    #[derive(Clone, Default)]
    struct SpanNames(Arc<Mutex<Vec<&'static str>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanNames {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if let Ok(mut names) = self.0.lock() {
                names.push(attrs.metadata().name());
            }
        }
    }

    /// One request through the middleware, under the subscriber the API installs
    /// (scope filter, OpenTelemetry layer, spans and logs at `info`). Returns the
    /// spans built, whether the handler's own span was disabled, and `traceparent`.
    async fn one_request(
        sampler: HeadSampler,
        caller: Option<&str>,
    ) -> (Vec<&'static str>, bool, Option<String>) {
        let names = SpanNames::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(cacheme_telemetry::SpansInSampledRequests::up_to(
                LevelFilter::INFO,
            ))
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("test"))
                    .with_filter(LevelFilter::INFO),
            )
            .with(names.clone().with_filter(LevelFilter::INFO));
        let _default = tracing::subscriber::set_default(subscriber);

        let (metrics, _) = Metrics::new();
        let observer = RequestObserver {
            metrics: Arc::new(metrics),
            sampler,
        };
        let app = Router::new()
            .route(
                "/products/{id}",
                get(|| async {
                    let span = tracing::info_span!("products.get");
                    span.is_disabled().to_string()
                }),
            )
            .layer(RequestLayer::new(observer, Duration::from_secs(5), || {
                StatusCode::IM_A_TEAPOT.into_response()
            }));
        let mut request = Request::builder().uri("/products/1");
        if let Some(caller) = caller {
            request = request.header("traceparent", caller);
        }
        let response = app
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("answered");
        assert!(response.headers().contains_key("server-timing"));
        let traceparent = response
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        let built = names.0.lock().map(|n| n.clone()).unwrap_or_default();
        (built, body.as_ref() == b"true", traceparent)
    }

    fn caller(flags: &str) -> String {
        format!("00-{CALLER_TRACE}-00f067aa0ba902b7-{flags}")
    }

    #[tokio::test]
    async fn an_unsampled_request_builds_no_span() {
        for (sampler, caller) in [
            // No OTLP endpoint: nothing is sampled, whatever the caller asks.
            (HeadSampler::NEVER, None),
            (HeadSampler::NEVER, Some(caller("01"))),
            // Parent-based at 0 %: a caller that did not sample is followed.
            (
                HeadSampler::parse(Some("parentbased_traceidratio"), Some("0")).expect("ok"),
                Some(caller("00")),
            ),
            // At the edge, a caller's sampled flag does not force a trace.
            (
                HeadSampler::parse(Some("traceidratio"), Some("0")).expect("ok"),
                Some(caller("01")),
            ),
        ] {
            let (built, handler_disabled, traceparent) =
                one_request(sampler, caller.as_deref()).await;
            assert_eq!(built, Vec::<&str>::new(), "{sampler} {caller:?}");
            assert!(handler_disabled, "{sampler} {caller:?}");
            assert_eq!(traceparent, None, "{sampler} {caller:?}");
        }
    }

    #[tokio::test]
    async fn a_sampled_request_is_traced_under_the_callers_trace() {
        let (built, handler_disabled, traceparent) =
            one_request(HeadSampler::DEFAULT, Some(&caller("01"))).await;
        assert_eq!(built, [cacheme_telemetry::REQUEST_SPAN, "products.get"]);
        assert!(!handler_disabled);
        let traceparent = traceparent.expect("a traced response names its trace");
        assert!(
            traceparent.starts_with(&format!("00-{CALLER_TRACE}-")),
            "{traceparent}"
        );

        let (built, _, traceparent) = one_request(HeadSampler::DEFAULT, None).await;
        assert_eq!(built.len(), 2, "{built:?}");
        assert!(traceparent.is_some_and(|t| !t.contains(CALLER_TRACE)));
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_is_answered_timed_and_counted() {
        let (metrics, _) = Metrics::new();
        let metrics = Arc::new(metrics);
        let observer = RequestObserver {
            metrics: metrics.clone(),
            sampler: HeadSampler::NEVER,
        };
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "too late"
                }),
            )
            .layer(RequestLayer::new(observer, Duration::from_millis(50), || {
                StatusCode::IM_A_TEAPOT.into_response()
            }));
        let request = Request::builder().uri("/slow").body(Body::empty());
        let response = app
            .oneshot(request.expect("request"))
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        assert!(response.headers().contains_key("server-timing"));
        let text = metrics.render(super::super::metrics::Gauges {
            memory_entries: 0,
            breaker_open: false,
            pending_invalidations: 0,
        });
        assert!(
            text.contains(r#"cacheme_http_request_duration_seconds_count{route="/slow",method="GET",status="418"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for raw in ["M1XXXX", "get", "BREW"] {
            let method = Method::from_bytes(raw.as_bytes()).expect("a token");
            assert_eq!(method_label(&method), "_OTHER", "{raw}");
        }
    }
}
