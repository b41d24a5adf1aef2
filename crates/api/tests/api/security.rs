//! Closed by default and exact at the edges (issue: secure by default): anonymous writes,
//! the cache clear, hostile methods and input, each refused with a clear 4xx that changes
//! nothing.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestDatabase, shared_redis_url, spawn_app_with, start, test_config};

#[tokio::test]
async fn without_a_token_writes_are_refused_unless_anonymous_writes_are_chosen() {
    let app = spawn_app_with(|c| c.writes.allow_anonymous = false).await;
    for (method, path, body) in [
        (Method::POST, "/products", Some(json!({"name": "Sneaky"}))),
        (Method::PUT, "/products/1", Some(json!({"name": "Sneaky"}))),
        (
            Method::PATCH,
            "/products/2",
            Some(json!({"name": "Sneaky"})),
        ),
        (Method::DELETE, "/products/3", None),
        (Method::DELETE, "/cache/clear", None),
    ] {
        let answer = app.send(method.clone(), path, body).await;
        let detail = answer.assert_problem(403);
        assert!(detail.contains("ADMIN_TOKEN"), "{method} {path}: {detail}");
    }
    for id in 1..=3 {
        let name = &app.get(&format!("/products/{id}")).await.body["name"];
        assert_ne!(name, "Sneaky", "product {id} was changed");
    }
    assert_eq!(app.get("/products/3").await.status, 200, "not deleted");
}

#[tokio::test]
async fn the_cache_clear_needs_the_token_and_is_spaced_out() {
    let app = spawn_app_with(|c| c.writes.admin_token = Some("tok3n\n".into())).await;
    app.get("/products/1").await;
    app.delete("/cache/clear").await.assert_problem(401);
    assert_eq!(app.get("/products/1").await.body["source"], "cache");

    // The configured token is trimmed, and the scheme is case-insensitive.
    let clear = || {
        app.client
            .delete(app.url("/cache/clear"))
            .header("authorization", "bearer tok3n")
            .send()
    };
    assert_eq!(clear().await.expect("sent").status(), 200);
    let again = clear().await.expect("sent");
    assert_eq!(again.status(), 429);
    assert!(again.headers().contains_key("retry-after"));
}

/// S6 of the second consistency review: the interval held per replica, so N replicas
/// allowed N clears (each a SCAN of the whole keyspace) per interval.
#[tokio::test]
async fn the_clear_interval_holds_across_replicas() {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &shared_redis_url());
    config.cache.clear_interval_ms = 60_000;
    let a = start(config.clone(), Some(db)).await;
    let b = start(config, None).await;
    assert_eq!(a.delete("/cache/clear").await.status, 200);
    let on_b = b.delete("/cache/clear").await;
    on_b.assert_problem(429);
    let wait: u64 = on_b
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = spawn_app_with(|_| {}).await;
    for i in 0..50 {
        let method = Method::from_bytes(format!("M{i}XXXX").as_bytes()).expect("a token");
        let status = app
            .client
            .request(method, app.url("/products/1"))
            .send()
            .await
            .expect("sent")
            .status();
        assert_eq!(status, 405);
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(
        !metrics.contains("M1XXXX"),
        "a made-up method became a label"
    );
    assert!(metrics.contains("method=\"_OTHER\""));
}

#[tokio::test]
async fn text_postgresql_cannot_store_and_oversized_fields_are_422_and_change_nothing() {
    let app = spawn_app_with(|_| {}).await;
    for (body, field) in [
        (json!({"name": "a\u{0}b"}), "name"),
        (
            json!({"name": "ok", "description": "x\u{0}"}),
            "description",
        ),
        (json!({"name": "ok", "category": "\u{0}"}), "category"),
        (
            json!({"name": "ok", "description": "d".repeat(10_001)}),
            "description",
        ),
        (json!({"name": " ".repeat(3)}), "name"),
    ] {
        let created = app
            .send(Method::POST, "/products", Some(body.clone()))
            .await;
        let detail = created.assert_problem(422);
        assert!(detail.contains(field), "{body}: {detail}");
        let patched = app.send(Method::PATCH, "/products/5", Some(body)).await;
        patched.assert_problem(422);
    }
    let listed = app.get("/products?limit=100").await.body;
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(15),
        "nothing was created"
    );
    assert_ne!(app.get("/products/5").await.body["name"], "ok");

    let huge = "x".repeat(200 * 1024);
    let answer = app
        .send(Method::POST, "/products", Some(json!({"name": huge})))
        .await;
    assert_eq!(answer.status, 413, "{}", answer.body);
}

/// A1: `axum::serve` ran hyper without a timer, so a client that never finished its
/// headers (slowloris) or left a keep-alive connection idle held it for ever, and nothing
/// capped the connections: enough of them took every file descriptor. Headers and idle
/// keep-alive now have a deadline, and connections beyond the cap wait to be accepted.
#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_and_connections_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(|c| {
        c.http.header_read_timeout_ms = 500;
        c.http.max_connections = 2;
    })
    .await;
    let addr = app.address();
    let half_request = async || {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("send half the headers");
        stream
    };

    // A client that stops half-way through its headers is closed within the deadline.
    let mut slow = half_request().await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        slow.read_to_end(&mut rest),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "a client that never finished its headers was still connected after 5 s"
    );

    // Two held connections fill the cap: a third client is not served until one goes.
    let mut held = vec![half_request().await, half_request().await];
    let client = crate::helpers::http_client_with_timeout(std::time::Duration::from_millis(300));
    let url = app.url("/livez");
    assert!(
        client.get(&url).send().await.is_err(),
        "served beyond the cap of 2 connections"
    );
    // The held ones are cut off after the header deadline; then the cap lets others in.
    let mut buffer = Vec::new();
    let _ = held[0].read_to_end(&mut buffer).await;
    held.clear();
    let answer = client
        .get(&url)
        .send()
        .await
        .expect("served once a slot is free");
    assert_eq!(answer.status(), 200);
}

/// A client that connects and never sends a byte is cut off by the same deadline, and
/// its slot is given back. The protocol sniff of hyper-util's `auto` builder (HTTP/1 or
/// HTTP/2?) waited for a first byte with no deadline, so such connections held their
/// slots for ever: 2 048 of them stopped the service. (Seen failing: still connected
/// after 5 s.)
#[tokio::test]
async fn a_client_that_never_sends_a_byte_is_cut_off() {
    use tokio::io::AsyncReadExt;
    let app = crate::helpers::spawn_app_with(|c| {
        c.http.header_read_timeout_ms = 500;
        c.http.max_connections = 1;
    })
    .await;
    let addr = app.address();
    let mut silent = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        silent.read_to_end(&mut rest),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "a client that never sent a byte was still connected after 5 s ({closed:?})"
    );
    // The only slot is free again.
    let client = crate::helpers::http_client_with_timeout(std::time::Duration::from_secs(5));
    let answer = client
        .get(app.url("/livez"))
        .send()
        .await
        .expect("served once the silent client is gone");
    assert_eq!(answer.status(), 200);
}

/// The accept loop reads the protocol itself now: HTTP/2 with prior knowledge (h2c) is
/// still served, on the same port, as before with hyper-util's `auto` builder.
#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let app = crate::helpers::spawn_app().await;
    let client = crate::helpers::http_client_builder(std::time::Duration::from_secs(5))
        .http2_prior_knowledge()
        .build()
        .expect("client");
    for _ in 0..2 {
        let answer = client
            .get(app.url("/products/1"))
            .send()
            .await
            .expect("an HTTP/2 answer");
        assert_eq!(answer.version(), reqwest::Version::HTTP_2);
        assert_eq!(answer.status(), 200);
        let body: serde_json::Value = answer.json().await.expect("JSON");
        assert_eq!(body["id"], 1, "{body}");
    }
}

/// An HTTP/2 connection is told how many requests it may have in flight: with the
/// connection cap, that bounds the work queued in the API (docs/architecture.md).
/// (Seen failing with hyper's default: 200 advertised.)
#[tokio::test]
async fn an_http2_connection_may_carry_only_so_many_requests_at_once() {
    let app = crate::helpers::spawn_app().await;
    let addr = app.address();
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut client, mut connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    // The server's SETTINGS come with its first frames: one answer makes sure they were read.
    let request = http::Request::get(app.url("/livez"))
        .body(())
        .expect("request");
    let (answer, _) = client.send_request(request, true).expect("send");
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        tokio::select! {
            answer = answer => answer.expect("an answer"),
            ended = &mut connection => panic!("the connection ended first: {ended:?}"),
        }
    })
    .await
    .expect("answered within 5 s");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        connection.max_concurrent_send_streams(),
        cacheme_api::HTTP2_MAX_CONCURRENT_STREAMS as usize
    );
}

/// A client may shut its sending side once its request is out (`nc -N`, `curl
/// --http1.0`-style scripts) and still read the answer: hyper is told to allow that
/// half-close, which also spares each connection a second 8 KiB read buffer per request.
/// (Seen failing without `half_close`: the connection closed with no answer.)
#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_its_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app().await;
    let addr = app.address();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /products/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send the request");
    stream.shutdown().await.expect("half-close");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("answered within 5 s")
    .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("\"id\":1"), "{answer}");
}

/// Issue #22's target for A1: with the shipped cap (`HTTP_MAX_CONNECTIONS`, 2 048), 2 000
/// clients stuck half-way through their headers leave room for the probes: `/readyz`
/// still answers at once. (Seen failing with the cap at 1 000.)
#[tokio::test]
async fn two_thousand_half_open_connections_do_not_stop_readyz() {
    use tokio::io::AsyncWriteExt;
    let app = crate::helpers::spawn_app().await;
    let addr = app.address();
    let mut held = Vec::with_capacity(2000);
    for i in 0..2000 {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connection {i}: {e} (this test needs about 4 100 file descriptors: ulimit -n)"
                )
            });
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("send half the headers");
        held.push(stream);
    }
    let client = crate::helpers::http_client_with_timeout(std::time::Duration::from_secs(5));
    let answer = client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("/readyz answers beside 2 000 half-open connections");
    assert_eq!(answer.status(), 200);
    drop(held);
}
