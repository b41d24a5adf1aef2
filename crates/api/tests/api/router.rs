//! The router in process, driven with `oneshot` (no socket, no server): the pure HTTP
//! concerns every route shares. The app is built as the binary builds it, on a database of
//! its own; only the listener is left unused.

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Method, Request, StatusCode, header},
};
use cacheme_api::App;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::helpers::{TestDatabase, shared_redis_url, test_config};

/// The router, and what must outlive it: the app (its background tasks keep L1 trusted)
/// and its database.
async fn router() -> (Router, App, TestDatabase) {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &shared_redis_url());
    config.writes.admin_token = Some("secret".into());
    let app = App::build(&config).await.expect("app builds");
    (app.router(), app, db)
}

/// One request: status, `Content-Type`, whether `Server-Timing` was set, and the body.
async fn send(router: &Router, request: Request<Body>) -> (StatusCode, String, bool, Value) {
    let response = router.clone().oneshot(request).await.expect("answered");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let timed = response.headers().contains_key("server-timing");
    let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, content_type, timed, json)
}

fn request(method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri)
}

#[tokio::test]
async fn every_failure_is_a_problem_with_server_timing() {
    let (router, _app, _db) = router().await;
    let token = "Bearer secret";
    let too_large = format!(r#"{{"name":"{}"}}"#, "x".repeat(200 * 1024));
    let cases = [
        (
            request(Method::GET, "/no/such/route").body(Body::empty()),
            404,
            "not-found",
        ),
        (
            request(Method::PUT, "/health").body(Body::empty()),
            405,
            "method-not-allowed",
        ),
        (
            request(Method::GET, "/products/0").body(Body::empty()),
            422,
            "validation",
        ),
        (
            request(Method::GET, "/products?limit=0").body(Body::empty()),
            422,
            "validation",
        ),
        (
            request(Method::POST, "/products")
                .header(header::AUTHORIZATION, token)
                .body(Body::from("{}")),
            415,
            "unsupported-media-type",
        ),
        (
            request(Method::POST, "/products")
                .header(header::AUTHORIZATION, token)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(too_large)),
            413,
            "payload-too-large",
        ),
        (
            request(Method::POST, "/products")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}")),
            401,
            "unauthorized",
        ),
    ];
    for (request, status, slug) in cases {
        let request = request.expect("request");
        let what = format!("{} {}", request.method(), request.uri());
        let (got, content_type, timed, body) = send(&router, request).await;
        assert_eq!(got.as_u16(), status, "{what}: {body}");
        assert_eq!(content_type, "application/problem+json", "{what}");
        assert_eq!(
            body["type"],
            format!("https://cacheme.dev/problems/{slug}"),
            "{what}"
        );
        assert_eq!(body["status"], status, "{what}");
        assert!(timed, "{what}: no Server-Timing");
    }
}

#[tokio::test]
async fn a_product_is_answered_in_process_first_from_the_database_then_from_memory() {
    let (router, _app, _db) = router().await;
    let get = || {
        request(Method::GET, "/products/1")
            .body(Body::empty())
            .expect("request")
    };
    let (status, content_type, timed, first) = send(&router, get()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert!(timed);
    assert_eq!(first["source"], "database", "{first}");
    // The load fills the tiers in a task of its own, which may finish just after the
    // answer: the next reads come from a cache, and soon from memory.
    let mut tiers = Vec::new();
    for _ in 0..20 {
        let (_, _, _, again) = send(&router, get()).await;
        assert_eq!(again["source"], "cache", "{again}");
        tiers.push(again["cache_tier"].as_str().unwrap_or_default().to_owned());
        if tiers.last().is_some_and(|t| t == "memory") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("never answered from memory: {tiers:?}");
}
