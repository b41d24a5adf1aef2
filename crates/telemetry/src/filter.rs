//! The global filter that keeps spans inside sampled requests.
//!
//! The request middleware builds its server span only when the head sampler says so
//! (see [`crate::sampler`]). The handlers' spans (`#[instrument]`) do not know the
//! decision, so this filter decides for them: a span is enabled only under an enabled
//! span, or when it is the request span itself. In an unsampled request every span
//! is disabled at its callsite and costs one filter check; events (log lines) are
//! untouched.
//!
//! It is a layer, not a per-layer filter: a per-layer filter that says no at
//! `enabled` time does not disable the span for the whole subscriber (tracing-subscriber
//! 0.3 disables globally only when every one of its 64 filter slots said no), so the
//! span would still be built for the layer that then ignores it.

use tracing::{Metadata, Subscriber, level_filters::LevelFilter, subscriber::Interest};
use tracing_subscriber::{
    layer::{Context, Layer},
    registry::LookupSpan,
};

/// The name of the span the request middleware opens for a sampled request: the only
/// span allowed without an enabled parent.
pub const REQUEST_SPAN: &str = "http.request";

/// A global filter: spans exist only in sampled requests; events pass.
#[derive(Debug, Clone, Copy)]
pub struct SpansInSampledRequests {
    /// The most verbose level any layer below wants. This filter's interest overrides
    /// theirs, so it has to turn away what none of them would take, or those spans
    /// would be built for nobody.
    max_level: LevelFilter,
    /// False when no request can be sampled (no OTLP endpoint): every span callsite is
    /// then turned away once, at registration, instead of asked at each request.
    spans_possible: bool,
}

impl SpansInSampledRequests {
    /// Spans and events up to `max_level` (the widest of the layers' own filters).
    pub fn up_to(max_level: LevelFilter) -> Self {
        Self {
            max_level,
            spans_possible: true,
        }
    }

    /// The same, for a process that samples no request: no span at all.
    pub fn without_spans(self) -> Self {
        Self {
            spans_possible: false,
            ..self
        }
    }
}

impl<S> Layer<S> for SpansInSampledRequests
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if *meta.level() > self.max_level || (meta.is_span() && !self.spans_possible) {
            Interest::never()
        } else if meta.is_span() {
            // A span's answer depends on the request it is in: ask every time.
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        !meta.is_span()
            || (self.spans_possible
                && (meta.name() == REQUEST_SPAN || cx.lookup_current().is_some()))
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max_level)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use tracing_subscriber::{Layer as _, layer::SubscriberExt as _};

    use super::*;

    /// Counts the spans and events it is given.
    #[derive(Clone, Default)]
    struct Count {
        spans: Arc<AtomicUsize>,
        events: Arc<AtomicUsize>,
    }

    impl<S: tracing::Subscriber> Layer<S> for Count {
        fn on_new_span(
            &self,
            _: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: Context<'_, S>,
        ) {
            self.spans.fetch_add(1, Ordering::Relaxed);
        }

        fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
            self.events.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn spans_exist_only_under_a_request_span_and_events_always_pass() {
        let count = Count::default();
        let logs = Count::default();
        // As installed: the scope, then spans up to INFO and log lines up to WARN.
        let subscriber = tracing_subscriber::registry()
            .with(SpansInSampledRequests::up_to(LevelFilter::INFO))
            .with(count.clone().with_filter(LevelFilter::INFO))
            .with(logs.clone().with_filter(LevelFilter::WARN));
        tracing::subscriber::with_default(subscriber, || {
            // An unsampled request: the handler's spans are disabled, its log lines are not.
            let handler = tracing::info_span!("products.get");
            assert!(handler.is_disabled());
            handler.in_scope(|| {
                assert!(tracing::info_span!("db.get_product").is_disabled());
                tracing::warn!("a log line in an unsampled request");
            });
            assert_eq!(count.spans.load(Ordering::Relaxed), 0);

            // A sampled request: the request span and everything under it.
            let request = tracing::info_span!("http.request");
            assert!(!request.is_disabled());
            request.in_scope(|| {
                let handler = tracing::info_span!("products.get");
                assert!(!handler.is_disabled());
                handler.in_scope(|| assert!(!tracing::info_span!("db.get_product").is_disabled()));
                assert!(tracing::debug_span!("below the level").is_disabled());
            });
            assert_eq!(count.spans.load(Ordering::Relaxed), 3);
            assert_eq!(count.events.load(Ordering::Relaxed), 1);
            assert_eq!(logs.events.load(Ordering::Relaxed), 1);
        });
    }

    #[test]
    fn without_an_endpoint_not_even_the_request_span_exists() {
        let count = Count::default();
        let subscriber = tracing_subscriber::registry()
            .with(SpansInSampledRequests::up_to(LevelFilter::INFO).without_spans())
            .with(count.clone().with_filter(LevelFilter::INFO));
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("http.request");
            assert!(request.is_disabled());
            request.in_scope(|| tracing::info!("a log line still passes"));
            assert_eq!(count.spans.load(Ordering::Relaxed), 0);
            assert_eq!(count.events.load(Ordering::Relaxed), 1);
        });
    }
}
