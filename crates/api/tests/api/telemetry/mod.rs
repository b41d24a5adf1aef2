//! Traces, through a real OTLP/HTTP receiver (Server-Timing and /metrics are in
//! `timing.rs`).

mod collector;

use std::{process::Stdio, time::Duration};

use cacheme_testsupport::free_port;

use crate::helpers::{
    TestDatabase, api_binary, eventually, http_client, stores, wait_until_listening,
};

use self::collector::*;

struct Binary {
    child: tokio::process::Child,
    base: String,
    prefix: String,
    _db: TestDatabase,
}

async fn start_binary(endpoint: &str, schedule_delay_ms: u32) -> Binary {
    start_binary_with(endpoint, schedule_delay_ms, &[]).await
}

async fn start_binary_with(endpoint: &str, schedule_delay_ms: u32, env: &[(&str, &str)]) -> Binary {
    let db = TestDatabase::create().await;
    let port = free_port().expect("port");
    let prefix = format!("otel_{port}");
    let child = api_binary(&db.url, port, &prefix)
        .envs(env.iter().copied())
        .env("L1_ENABLED", "false")
        .env("LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_SERVICE_NAME", "cacheme-api-under-test")
        .env("OTEL_BSP_SCHEDULE_DELAY", schedule_delay_ms.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawns");
    wait_until_listening(port).await;
    Binary {
        child,
        base: format!("http://127.0.0.1:{port}"),
        prefix,
        _db: db,
    }
}

impl Binary {
    async fn stop(self) -> String {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let output = tokio::time::timeout(Duration::from_secs(20), self.child.wait_with_output())
            .await
            .expect("exits after SIGTERM")
            .expect("output");
        assert!(output.status.success(), "{}", output.status);
        let redis = redis::Client::open(stores().redis_url.as_str()).expect("url");
        if let Ok(mut conn) = redis.get_multiplexed_async_connection().await {
            let _: redis::RedisResult<()> =
                redis::AsyncCommands::del(&mut conn, format!("{}:v1:product:1", self.prefix)).await;
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

fn trace_id_of(header: &str) -> String {
    header
        .split('-')
        .nth(1)
        .expect("trace id in traceparent")
        .to_owned()
}

#[tokio::test]
async fn a_quiet_log_level_does_not_switch_tracing_off() {
    let (collector, endpoint) = start_collector().await;
    let binary = start_binary_with(&endpoint, 100, &[("RUST_LOG", "warn")]).await;
    let answer = http_client()
        .get(format!("{}/products/1", binary.base))
        .send()
        .await
        .expect("sent");
    let header = answer
        .headers()
        .get("traceparent")
        .expect("a traceparent header with RUST_LOG=warn")
        .to_str()
        .expect("ascii")
        .to_owned();
    let trace = trace_id_of(&header);
    eventually("the request's spans are exported", || async {
        collector
            .spans_of_trace(&trace)
            .iter()
            .any(|s| s.name == "db.get_product")
    })
    .await;
    let logs = binary.stop().await;
    assert!(
        !logs.contains("request finished"),
        "info logs stay quiet at RUST_LOG=warn"
    );
}

#[tokio::test]
async fn a_miss_and_a_hit_are_exported_as_linked_spans() {
    let (collector, endpoint) = start_collector().await;
    let binary = start_binary(&endpoint, 100).await;
    let client = http_client();

    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let miss = client
        .get(format!("{}/products/1", binary.base))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .send()
        .await
        .expect("sent");
    let miss_header = miss.headers()["traceparent"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        trace_id_of(&miss_header),
        caller_trace,
        "the caller's trace continues"
    );
    assert_eq!(
        miss.json::<serde_json::Value>().await.expect("json")["source"],
        "database"
    );

    let hit = client
        .get(format!("{}/products/1", binary.base))
        .send()
        .await
        .expect("sent");
    let hit_trace = trace_id_of(hit.headers()["traceparent"].to_str().expect("ascii"));
    assert_ne!(hit_trace, caller_trace);
    assert_eq!(
        hit.json::<serde_json::Value>().await.expect("json")["source"],
        "cache"
    );

    eventually("the miss's spans are exported", || async {
        collector
            .spans_of_trace(caller_trace)
            .iter()
            .any(|s| s.name == "cache.redis.fill")
    })
    .await;
    eventually("the hit's spans are exported", || async {
        !collector.spans_of_trace(&hit_trace).is_empty()
    })
    .await;

    let spans = collector.spans_of_trace(caller_trace);
    let by_name = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no span {name:?} among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let server = by_name("GET /products/{id}");
    assert_eq!(
        hex(&server.parent_span_id),
        caller_span,
        "the server span's parent is the caller's span"
    );
    assert_eq!(
        attribute(server, "http.route").as_deref(),
        Some("/products/{id}")
    );
    assert_eq!(
        attribute(server, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attribute(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        hex(&server.span_id),
        miss_header.split('-').nth(2).expect("span id"),
        "the header names the server span"
    );

    let handler = by_name("products.get");
    assert_eq!(handler.parent_span_id, server.span_id);
    assert_eq!(attribute(handler, "product.id").as_deref(), Some("1"));
    for child in ["cache.redis.lookup", "db.get_product", "cache.redis.fill"] {
        assert_eq!(
            by_name(child).parent_span_id,
            handler.span_id,
            "{child} is a child of the handler span"
        );
    }
    let lookup = by_name("cache.redis.lookup");
    assert_eq!(attribute(lookup, "cache.hit").as_deref(), Some("false"));
    assert_eq!(attribute(lookup, "cache.tier").as_deref(), Some("redis"));
    let query = by_name("db.get_product");
    assert_eq!(attribute(query, "db.system").as_deref(), Some("postgresql"));
    assert_eq!(
        attribute(query, "db.statement").as_deref(),
        Some("get_product")
    );

    let hit_spans = collector.spans_of_trace(&hit_trace);
    assert!(
        hit_spans.iter().any(|s| s.name == "cache.redis.lookup"
            && attribute(s, "cache.hit").as_deref() == Some("true")),
        "the hit's lookup says cache.hit=true"
    );
    assert!(
        !hit_spans.iter().any(|s| s.name == "db.get_product"),
        "a hit does not query the database"
    );
    let service = collector
        .spans
        .lock()
        .expect("lock")
        .first()
        .map(|(s, _)| s.clone());
    assert_eq!(service.as_deref(), Some("cacheme-api-under-test"));

    let logs = binary.stop().await;
    let access_line = logs
        .lines()
        .find(|l| l.contains("request finished") && l.contains(caller_trace))
        .unwrap_or_else(|| panic!("no JSON log line with the trace id in:\n{logs}"));
    let parsed: serde_json::Value = serde_json::from_str(access_line).expect("a JSON log line");
    assert_eq!(parsed["fields"]["status"], 200);
}

#[tokio::test]
async fn spans_still_queued_at_sigterm_are_exported() {
    let (collector, endpoint) = start_collector().await;
    // A schedule delay far beyond the test: only the shutdown flush can export.
    let binary = start_binary(&endpoint, 600_000).await;
    let response = http_client()
        .get(format!("{}/products/1", binary.base))
        .send()
        .await
        .expect("sent");
    let trace = trace_id_of(response.headers()["traceparent"].to_str().expect("ascii"));
    assert!(collector.spans_of_trace(&trace).is_empty());
    binary.stop().await;
    let spans = collector.spans_of_trace(&trace);
    assert!(
        spans.iter().any(|s| s.name == "GET /products/{id}"),
        "{} spans",
        spans.len()
    );
}

#[tokio::test]
async fn a_callers_sampled_flag_forces_a_trace_only_when_parents_are_trusted() {
    let (collector, endpoint) = start_collector().await;
    let caller_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let caller = format!("00-{caller_trace}-00f067aa0ba902b7-01");
    for (sampler, traced) in [("parentbased_traceidratio", true), ("traceidratio", false)] {
        let binary = start_binary_with(
            &endpoint,
            100,
            &[
                ("OTEL_TRACES_SAMPLER", sampler),
                ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ],
        )
        .await;
        let answer = http_client()
            .get(format!("{}/products/1", binary.base))
            .header("traceparent", &caller)
            .send()
            .await
            .expect("sent");
        assert_eq!(
            answer.headers().contains_key("traceparent"),
            traced,
            "{sampler}"
        );
        // The shutdown flush exports whatever was recorded.
        let logs = binary.stop().await;
        assert_eq!(
            !collector.spans_of_trace(caller_trace).is_empty(),
            traced,
            "{sampler}"
        );
        if !traced {
            assert!(
                logs.lines()
                    .any(|l| l.contains("request finished") && l.contains(caller_trace)),
                "an untraced request's log line still names the caller's trace:\n{logs}"
            );
        }
        collector.spans.lock().expect("lock").clear();
    }
}

#[tokio::test]
async fn an_unknown_sampler_stops_the_start_with_a_clear_error() {
    let db = TestDatabase::create().await;
    let port = free_port().expect("port");
    let output = api_binary(&db.url, port, &format!("otel_{port}"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_TRACES_SAMPLER", "jaeger_remote")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OTEL_TRACES_SAMPLER=\"jaeger_remote\" is not supported"),
        "{stderr}"
    );
}
