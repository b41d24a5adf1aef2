//! An OTLP/HTTP trace receiver in the test process: it keeps every span it is sent, with
//! its resource's service name.

use std::sync::{Arc, Mutex};

use axum::{Router, body::Bytes, extract::State, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, any_value},
    trace::v1::Span,
};
use prost::Message as _;

/// Spans received by an in-test OTLP/HTTP collector, with their resource's service name.
#[derive(Clone, Default)]
pub(super) struct Collector {
    pub(super) spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl Collector {
    pub(super) fn spans_of_trace(&self, trace_id: &str) -> Vec<Span> {
        self.spans
            .lock()
            .map(|spans| {
                spans
                    .iter()
                    .filter(|(_, s)| hex(&s.trace_id) == trace_id)
                    .map(|(_, s)| s.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn text(value: &Option<AnyValue>) -> Option<String> {
    match value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        other => Some(format!("{other:?}")),
    }
}

pub(super) fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(&kv.value))
}

async fn receive(State(collector): State<Collector>, body: Bytes) -> &'static [u8] {
    if let Ok(request) = ExportTraceServiceRequest::decode(body) {
        let mut spans = collector.spans.lock().expect("lock");
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| text(&kv.value))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
    }
    // An empty ExportTraceServiceResponse.
    b""
}

pub(super) async fn start_collector() -> (Collector, String) {
    let collector = Collector::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(collector.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (collector, format!("http://{addr}"))
}
