//! Tracing and OpenTelemetry setup shared by the CacheMe binaries.
//!
//! [`init`] (the operator) and [`init_for_requests`] (the API) install one global
//! subscriber:
//! - structured logs: JSON lines when `LOG_FORMAT=json`, human-readable otherwise,
//!   filtered by `RUST_LOG` (default `info`);
//! - spans filtered by `TRACES_FILTER` (default `info`), apart from the logs, so a quiet
//!   log level does not switch tracing off;
//! - an OpenTelemetry layer; spans are exported over OTLP/HTTP only when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The standard `OTEL_SERVICE_NAME`,
//!   `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, `OTEL_RESOURCE_ATTRIBUTES` and
//!   `OTEL_BSP_*` variables are honoured;
//! - the W3C trace-context propagator, so a caller's trace continues.
//!
//! For the API, [`init_for_requests`] adds a head sampler ([`sampler`]) that decides
//! per request before any span exists, and a filter ([`filter`]) that keeps spans
//! inside sampled requests: an unsampled request, and every request when no endpoint
//! is set, builds no span at all.
//!
//! The returned [`TelemetryGuard`] flushes pending spans when shut down or dropped, so
//! a process stopped by SIGTERM still exports its last spans.

use opentelemetry::{
    Context, KeyValue,
    propagation::{Extractor, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::LevelFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt,
};

pub mod filter;
pub mod sampler;

pub use filter::{REQUEST_SPAN, SpansInSampledRequests};
pub use sampler::{HeadSampler, RemoteParent, installed_sampler};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

impl LogFormat {
    /// Reads `LOG_FORMAT` (`json` or anything else for pretty).
    pub fn from_env() -> Self {
        Self::parse(std::env::var("LOG_FORMAT").ok().as_deref())
    }

    /// Pure parser behind [`LogFormat::from_env`].
    pub fn parse(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Pretty,
        }
    }
}

/// Errors while installing telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(String),
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("invalid trace sampler: {0}")]
    Sampler(String),
}

/// The log filter from `RUST_LOG`, `info` when unset.
pub fn env_filter() -> Result<EnvFilter, TelemetryError> {
    filter_from("RUST_LOG")
}

/// The span filter from `TRACES_FILTER` (`RUST_LOG` syntax), `info` when unset: which spans
/// are traced and exported, whatever the log level, so `RUST_LOG=warn` quiets the logs
/// without turning tracing off.
pub fn traces_filter() -> Result<EnvFilter, TelemetryError> {
    filter_from("TRACES_FILTER")
}

fn filter_from(variable: &str) -> Result<EnvFilter, TelemetryError> {
    match std::env::var(variable) {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v)
            .map_err(|e| TelemetryError::Filter(format!("{variable}={v:?}: {e}"))),
        _ => Ok(EnvFilter::new("info")),
    }
}

/// Whether spans leave the process (`OTEL_EXPORTER_OTLP_ENDPOINT` or the traces-specific one is set).
pub fn otlp_enabled() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
}

/// The service name: `OTEL_SERVICE_NAME` when set, else `default`.
pub fn service_name(default: &str) -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Flushes and stops the tracer provider when shut down or dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports every finished span that is still queued, then stops exporting.
    pub fn shutdown(mut self) {
        self.flush_and_stop();
    }

    fn flush_and_stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.force_flush() {
                eprintln!("telemetry: flushing spans failed: {e}");
            }
            if let Err(e) = provider.shutdown() {
                eprintln!("telemetry: stopping the tracer provider failed: {e}");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.flush_and_stop();
    }
}

/// The tracer provider: with a batch OTLP/HTTP exporter when an endpoint is configured,
/// and the given sampler (else the SDK's, from `OTEL_TRACES_SAMPLER`).
pub fn tracer_provider(
    service: &str,
    version: &str,
    sampler: Option<Sampler>,
) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(service_name(service))
        .with_attribute(KeyValue::new("service.version", version.to_owned()))
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(sampler) = sampler {
        builder = builder.with_sampler(sampler);
    }
    if otlp_enabled() {
        // reqwest is built without a default TLS provider; building any client needs one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// Installs the global subscriber and propagator for a binary whose spans are all
/// worth having (the operator: a reconcile is rare and each one matters). Call once,
/// early in `main`, and keep the guard until the process ends.
pub fn init(service: &str, version: &str) -> Result<TelemetryGuard, TelemetryError> {
    let provider = tracer_provider(service, version, None)?;
    install(provider, None, traces_filter()?, env_filter()?)
}

/// Installs telemetry for a request-serving binary (the API): the head sampler decides
/// per request, before any span exists, and spans exist only inside sampled requests.
/// With no OTLP endpoint nothing is sampled, so no span is ever built; log lines are
/// unaffected. See [`sampler`] and [`filter`].
pub fn init_for_requests(service: &str, version: &str) -> Result<TelemetryGuard, TelemetryError> {
    let head = if otlp_enabled() {
        HeadSampler::from_env().map_err(|e| TelemetryError::Sampler(e.to_string()))?
    } else {
        HeadSampler::NEVER
    };
    sampler::install(head);
    // The decision is made before the span exists; the SDK records what it is given.
    let provider = tracer_provider(service, version, Some(Sampler::AlwaysOn))?;
    let (spans, logs) = (traces_filter()?, env_filter()?);
    // No hint means "could be anything".
    let widest = match (spans.max_level_hint(), logs.max_level_hint()) {
        (Some(a), Some(b)) => a.max(b),
        _ => LevelFilter::TRACE,
    };
    let scope = SpansInSampledRequests::up_to(widest);
    let scope = if head.samples_anything() {
        scope
    } else {
        scope.without_spans()
    };
    let guard = install(provider, Some(scope), spans, logs)?;
    tracing::debug!(sampler = %head, "head sampler installed");
    Ok(guard)
}

/// The global subscriber: the OpenTelemetry layer (spans by `span_filter`) and the log
/// lines (by `log_filter`), each layer with its own filter so a quiet log level does
/// not switch tracing off.
fn install(
    provider: SdkTracerProvider,
    scope: Option<SpansInSampledRequests>,
    span_filter: EnvFilter,
    log_filter: EnvFilter,
) -> Result<TelemetryGuard, TelemetryError> {
    let tracer = provider.tracer("cacheme");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(span_filter);
    let registry = tracing_subscriber::registry().with(scope).with(otel);
    let result = match LogFormat::from_env() {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_filter(log_filter),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_target(true).with_filter(log_filter))
            .try_init(),
    };
    result.map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    tracing::debug!(otlp = otlp_enabled(), "telemetry initialised");
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The caller's trace context from `traceparent`/`tracestate`, if any.
pub fn extract_context(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Makes `span` a child of the caller's trace, when the request carried one.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = extract_context(headers);
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled (filtered out); nothing to continue then.
        let _ = span.set_parent(parent);
    }
}

/// `traceparent` value for `span` (W3C trace context), when it has a trace.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_ref = context.span();
    let sc = span_ref.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// The trace id of `span`, when it has a trace.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_ref = context.span();
    let sc = span_ref.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_is_json_only_when_asked() {
        assert_eq!(LogFormat::parse(Some("json")), LogFormat::Json);
        assert_eq!(LogFormat::parse(Some(" JSON ")), LogFormat::Json);
        assert_eq!(LogFormat::parse(Some("pretty")), LogFormat::Pretty);
        assert_eq!(LogFormat::parse(None), LogFormat::Pretty);
    }

    #[test]
    fn a_traceparent_header_is_extracted() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let context = extract_context(&headers);
        let span = context.span();
        let sc = span.span_context();
        assert!(sc.is_valid());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_remote());
        assert!(
            !extract_context(&http::HeaderMap::new())
                .span()
                .span_context()
                .is_valid()
        );
    }

    #[test]
    fn spans_continue_the_callers_trace() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "traceparent",
                http::HeaderValue::from_static(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            );
            let span = tracing::info_span!("request");
            continue_trace(&span, &headers);
            assert_eq!(
                trace_id(&span).as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
            let header = traceparent(&span).expect("has a trace");
            assert!(
                header.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{header}"
            );
            assert!(
                !header.contains("00f067aa0ba902b7"),
                "the span has its own id: {header}"
            );

            let fresh = tracing::info_span!("other");
            assert!(trace_id(&fresh).is_some_and(|id| id != "4bf92f3577b34da6a3ce929d0e0e4736"));
        });
    }
}
