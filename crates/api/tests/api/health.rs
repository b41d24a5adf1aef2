use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn health_is_healthy_when_both_stores_answer() {
    let app = spawn_app().await;
    let answer = app.get("/health").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "healthy");
    assert_eq!(answer.body["database"], "connected");
    assert_eq!(answer.body["redis"], "connected");
    assert!(
        chrono::DateTime::parse_from_rfc3339(answer.body["timestamp"].as_str().expect("string"))
            .is_ok()
    );
}

#[tokio::test]
async fn probes_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/livez").await.status, 200);
    assert_eq!(app.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn root_describes_the_api() {
    let app = spawn_app().await;
    let answer = app.get("/").await;
    assert_eq!(answer.status, 200);
    assert!(answer.body["message"].is_string());
    assert_eq!(answer.body["version"], env!("CARGO_PKG_VERSION"));
    let endpoints = answer.body["endpoints"]
        .as_object()
        .expect("endpoints object");
    for name in [
        "product",
        "products",
        "cache_stats",
        "clear_cache",
        "health",
        "docs",
    ] {
        assert!(endpoints.contains_key(name), "{name} missing");
    }
}

#[tokio::test]
async fn cors_lets_the_original_page_call_the_api_when_its_origin_is_listed() {
    let app = spawn_app_with(|c| {
        c.http.cors_allowed_origins =
            cacheme_api::CorsOrigins::List(vec![axum::http::HeaderValue::from_static(
                "http://localhost:3000",
            )]);
    })
    .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/cache/clear"))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "DELETE")
        .send()
        .await
        .expect("sent");
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let methods = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(methods.contains("DELETE"), "{methods}");

    let simple = app
        .client
        .get(app.url("/products/1"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .expect("sent");
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for header in ["server-timing", "traceparent", "retry-after"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
}

#[tokio::test]
async fn by_default_no_other_origin_may_call_the_api() {
    let app = spawn_app().await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/products/1"))
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "PATCH")
        .send()
        .await
        .expect("sent");
    assert!(
        !preflight
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        preflight.headers()
    );
}

#[tokio::test]
async fn cors_allows_only_configured_origins_when_set() {
    let app = spawn_app_with(|c| {
        c.http.cors_allowed_origins =
            cacheme_api::CorsOrigins::List(vec![axum::http::HeaderValue::from_static(
                "http://localhost:3000",
            )]);
    })
    .await;
    let ask = |origin: &'static str| {
        app.client
            .get(app.url("/health"))
            .header("Origin", origin)
            .send()
    };
    let allowed = ask("http://localhost:3000").await.expect("sent");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let other = ask("http://evil.example").await.expect("sent");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn static_dir_serves_the_page_to_browsers_and_json_to_clients() {
    let dir = std::env::temp_dir().join(format!("cacheme-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("assets")).expect("mkdir");
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>CacheMe page</title>",
    )
    .expect("write");
    std::fs::write(dir.join("assets/app.css"), "body{}").expect("write");
    let app = spawn_app_with(|c| c.http.static_dir = Some(dir.clone())).await;

    let page = app
        .client
        .get(app.url("/"))
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    // S10 of the second consistency review: the page holds the admin token in a field.
    let csp = |r: &reqwest::Response| {
        r.headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default()
    };
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            csp(&page).contains(directive),
            "{directive} in {:?}",
            csp(&page)
        );
    }
    assert!(page.text().await.expect("body").contains("CacheMe page"));
    let json = app.get("/").await;
    assert!(json.body["endpoints"].is_object(), "{}", json.body);
    let css = app
        .client
        .get(app.url("/assets/app.css"))
        .send()
        .await
        .expect("sent");
    assert_eq!(css.status(), 200);
    assert!(csp(&css).contains("default-src 'self'"));
    assert!(
        css.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/css")
    );
    app.get("/assets/missing.js").await.assert_problem(404);
    let _ = std::fs::remove_dir_all(&dir);
}
