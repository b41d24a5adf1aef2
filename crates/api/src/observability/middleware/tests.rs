//! The request layer against a router of its own, driven with `oneshot`: which spans an
//! unsampled and a sampled request build, the deadline, the method labels.

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
        let (built, handler_disabled, traceparent) = one_request(sampler, caller.as_deref()).await;
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
        .layer(RequestLayer::new(
            observer,
            Duration::from_millis(50),
            || StatusCode::IM_A_TEAPOT.into_response(),
        ));
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
