//! `Server-Timing` on every answer, and `/metrics` counting exactly the requests made.

use crate::helpers::spawn_app;

#[tokio::test]
async fn responses_carry_server_timing() {
    let app = spawn_app().await;
    let timing = |answer: &crate::helpers::Answer| {
        answer.headers["server-timing"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    let miss = timing(&app.get("/products/1").await);
    assert!(
        miss.contains("cache;dur=") && miss.contains("db;dur=") && miss.contains("total;dur="),
        "{miss}"
    );
    let hit = timing(&app.get("/products/1").await);
    assert!(
        hit.contains("cache;dur=") && !hit.contains("db;dur="),
        "{hit}"
    );
    let list = timing(&app.get("/products").await);
    assert!(list.contains("db;dur="), "{list}");
    assert!(timing(&app.get("/no-such-route").await).starts_with("total;dur="));
}

/// `name{labels} value` → value, for one exact series.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

#[tokio::test]
async fn metrics_move_by_exactly_the_requests_made() {
    let app = spawn_app().await;
    let scrape = || async {
        let response = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("sent");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("application/openmetrics-text")
        );
        response.text().await.expect("body")
    };
    let before = scrape().await;
    for id in [1, 1, 1, 2] {
        app.get(&format!("/products/{id}")).await;
    }
    app.get("/products/abc").await;
    let after = scrape().await;

    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    let route = r#"route="/products/{id}",method="GET""#;
    assert_eq!(
        delta(&format!(
            r#"cacheme_http_request_duration_seconds_count{{{route},status="200"}}"#
        )),
        4.0
    );
    assert_eq!(
        delta(&format!(
            r#"cacheme_http_request_duration_seconds_count{{{route},status="422"}}"#
        )),
        1.0
    );
    assert_eq!(
        delta(r#"cacheme_db_queries_total{operation="get_product"}"#),
        2.0
    );
    assert_eq!(
        delta(r#"cacheme_db_query_duration_seconds_count{operation="get_product"}"#),
        2.0
    );
    let hits = delta(r#"cacheme_cache_lookups_total{tier="memory",outcome="hit"}"#)
        + delta(r#"cacheme_cache_lookups_total{tier="redis",outcome="hit"}"#);
    assert_eq!(hits, 2.0);
    assert_eq!(
        delta(r#"cacheme_cache_lookups_total{tier="redis",outcome="miss"}"#),
        2.0
    );
    // OpenMetrics names a counter family without its `_total` sample suffix.
    for family in [
        "cacheme_cache_coalesced_requests counter",
        "cacheme_redis_errors counter",
        "cacheme_l1_entries gauge",
    ] {
        assert!(
            after.contains(&format!("# TYPE {family}\n")),
            "{family} missing"
        );
    }
    assert!(after.ends_with("# EOF\n"));
}
