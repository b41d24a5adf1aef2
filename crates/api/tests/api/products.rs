use redis::AsyncCommands;
use serde_json::Value;

use cacheme_api::RedisMode;

use crate::helpers::{spawn_app, spawn_app_with};

/// The original demo's catalogue: (id, name, category, price).
const SEED: [(i64, &str, &str, f64); 15] = [
    (1, "MacBook Pro 16\"", "Laptops", 2499.99),
    (2, "iPhone 15 Pro", "Smartphones", 999.99),
    (3, "Sony WH-1000XM5", "Audio", 399.99),
    (4, "Nintendo Switch OLED", "Gaming", 349.99),
    (5, "Samsung 65\" QLED TV", "TVs", 1299.99),
    (6, "iPad Air", "Tablets", 599.99),
    (7, "AirPods Pro", "Audio", 249.99),
    (8, "PlayStation 5", "Gaming", 499.99),
    (9, "Dell XPS 13", "Laptops", 1199.99),
    (10, "Google Pixel 8", "Smartphones", 699.99),
    (11, "Bose QuietComfort 45", "Audio", 329.99),
    (12, "LG 55\" OLED TV", "TVs", 1499.99),
    (13, "Microsoft Surface Pro 9", "Tablets", 999.99),
    (14, "Xbox Series X", "Gaming", 499.99),
    (15, "HP Spectre x360", "Laptops", 1399.99),
];

fn assert_rfc3339(value: &Value) {
    let text = value.as_str().expect("timestamp is a string");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"));
}

#[tokio::test]
async fn first_read_comes_from_the_database_then_from_the_cache() {
    let app = spawn_app().await;

    let first = app.get("/products/1").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["source"], "database");
    let second = app.get("/products/1").await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body["source"], "cache");
    assert!(first.body.get("cache_tier").is_none(), "{}", first.body);
    let tier = second.body["cache_tier"]
        .as_str()
        .expect("a cache answer names its tier");
    assert!(["memory", "redis"].contains(&tier), "{tier}");

    for answer in [&first, &second] {
        let body = &answer.body;
        assert_eq!(body["id"], 1);
        assert_eq!(body["name"], "MacBook Pro 16\"");
        assert_eq!(body["category"], "Laptops");
        assert_eq!(body["price"], 2499.99, "price must be a JSON number");
        assert!(body["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(body["fetch_time_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
        assert_rfc3339(&body["created_at"]);
        assert_rfc3339(&body["updated_at"]);
    }
    let without_lesson = |v: &Value| {
        let mut v = v.clone();
        let map = v.as_object_mut().expect("object");
        map.remove("source");
        map.remove("fetch_time_ms");
        map.remove("cache_tier");
        v
    };
    assert_eq!(without_lesson(&first.body), without_lesson(&second.body));
}

#[tokio::test]
async fn product_fields_come_in_the_original_order() {
    let app = spawn_app().await;
    let text = app
        .client
        .get(app.url("/products/2"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    let fields = [
        "id",
        "name",
        "category",
        "price",
        "description",
        "created_at",
        "updated_at",
        "source",
        "fetch_time_ms",
    ];
    let positions: Vec<usize> = fields
        .iter()
        .map(|f| {
            text.find(&format!("\"{f}\":"))
                .unwrap_or_else(|| panic!("{f} missing from {text}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[tokio::test]
async fn the_cached_value_is_the_product_without_the_lesson_fields_and_has_a_ttl() {
    let app = spawn_app_with(|c| {
        c.cache.ttl_seconds = 1000;
        c.cache.ttl_jitter_percent = 10;
        c.cache.stale_while_revalidate_seconds = 20;
        c.cache.stale_if_error_seconds = 50;
    })
    .await;
    assert_eq!(app.get("/products/3").await.body["source"], "database");

    let mut redis = app.redis().await;
    let key = app.product_key(3);
    let expected = match app.config.redis.mode {
        RedisMode::Single => ":v1:product:3",
        RedisMode::Cluster => ":v2:{b3}:product:3",
    };
    assert!(key.ends_with(expected), "{key}");
    let raw: String = redis.get(&key).await.expect("key is cached");
    let cached: Value = serde_json::from_str(&raw).expect("cached JSON");
    assert_eq!(cached["name"], "Sony WH-1000XM5");
    assert!(
        cached.get("source").is_none() && cached.get("fetch_time_ms").is_none(),
        "{cached}"
    );
    let ttl: i64 = redis.ttl(&key).await.expect("ttl");
    assert!(
        (945..=1150).contains(&ttl),
        "TTL {ttl} is outside 1000 s ± 10% plus 50 s of stale-if-error grace"
    );
}

#[tokio::test]
async fn unknown_ids_are_404_with_the_original_detail() {
    let app = spawn_app().await;
    let answer = app.get("/products/999999").await;
    assert_eq!(answer.assert_problem(404), "Product not found");
}

#[tokio::test]
async fn malformed_ids_are_422_problems_never_500() {
    let app = spawn_app().await;
    for bad in [
        "abc",
        "1.5",
        "-1",
        "0",
        "2147483648",
        "99999999999999999999999",
    ] {
        let answer = app.get(&format!("/products/{bad}")).await;
        let detail = answer.assert_problem(422);
        assert!(detail.contains("product id"), "{bad}: {detail}");
    }
}

#[tokio::test]
async fn the_seed_is_the_original_catalogue() {
    let app = spawn_app().await;
    let answer = app.get("/products?limit=100").await;
    assert_eq!(answer.status, 200);
    let list = answer.body.as_array().expect("array");
    assert_eq!(list.len(), SEED.len());
    for (row, (id, name, category, price)) in list.iter().zip(SEED) {
        assert_eq!(row["id"], id);
        assert_eq!(row["name"], name);
        assert_eq!(row["category"], category);
        assert_eq!(row["price"], price);
        assert!(
            row["description"]
                .as_str()
                .is_some_and(|d| d.ends_with('.')),
            "{row}"
        );
        assert!(row.get("source").is_none());
    }
}

#[tokio::test]
async fn listing_pages_in_id_order() {
    let app = spawn_app().await;
    let ids = |v: &Value| -> Vec<i64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|p| p["id"].as_i64().expect("id"))
            .collect()
    };

    let default = app.get("/products").await;
    assert_eq!(default.status, 200);
    assert_eq!(ids(&default.body), (1..=10).collect::<Vec<_>>());

    let page = app.get("/products?limit=3&offset=4").await;
    assert_eq!(ids(&page.body), vec![5, 6, 7]);

    let past_the_end = app.get("/products?offset=100").await;
    assert_eq!(past_the_end.status, 200);
    assert_eq!(ids(&past_the_end.body), Vec::<i64>::new());
}

#[tokio::test]
async fn bad_paging_is_422_naming_the_parameter() {
    let app = spawn_app().await;
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
    ] {
        let detail = app
            .get(&format!("/products?{query}"))
            .await
            .assert_problem(422);
        assert!(detail.starts_with(name), "{query}: {detail}");
    }
}

#[tokio::test]
async fn simulated_latency_slows_database_reads_only() {
    let app = spawn_app_with(|c| c.database.simulated_latency_ms = 120).await;
    let miss = app.get("/products/4").await;
    assert_eq!(miss.body["source"], "database");
    let miss_ms = miss.body["fetch_time_ms"].as_f64().expect("number");
    assert!(
        miss_ms >= 120.0,
        "a miss took {miss_ms} ms, less than the simulated 120 ms"
    );
    let hit = app.get("/products/4").await;
    assert_eq!(hit.body["source"], "cache");
    let hit_ms = hit.body["fetch_time_ms"].as_f64().expect("number");
    assert!(hit_ms < miss_ms, "hit {hit_ms} ms, miss {miss_ms} ms");
}

#[tokio::test]
async fn an_undecodable_cache_entry_is_replaced_from_the_database() {
    let app = spawn_app().await;
    let mut redis = app.redis().await;
    let key = app.product_key(5);
    let _: () = redis.set(&key, "{not json").await.expect("set");
    let answer = app.get("/products/5").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["source"], "database");
    assert_eq!(app.get("/products/5").await.body["source"], "cache");
}
