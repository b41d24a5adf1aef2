use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn create_answers_201_with_location_and_the_product_is_readable() {
    let app = spawn_app().await;
    let created = app
        .send(Method::POST, "/products", Some(json!({"name": "Steam Deck OLED", "price": 549.99, "category": "Gaming", "description": "Handheld."})))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().expect("id");
    assert_eq!(id, 16, "new ids continue after the seed");
    assert_eq!(created.headers["location"], format!("/products/{id}"));
    assert_eq!(created.body["price"], 549.99);

    let read = app.get(&format!("/products/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["name"], "Steam Deck OLED");
}

#[tokio::test]
async fn creating_an_id_remembered_as_absent_makes_it_visible() {
    let app = spawn_app().await;
    // 16 becomes a gap below the highest id, so its 404 is remembered.
    sqlx::query("INSERT INTO products (id, name) VALUES (17, 'above')")
        .execute(&app.pool)
        .await
        .expect("inserted");
    app.get("/products/16").await.assert_problem(404);
    app.get("/products/16").await.assert_problem(404);
    assert_eq!(
        app.stats().await["negative_hits"],
        1,
        "the second 404 came from the cache"
    );

    let created = app
        .send(Method::POST, "/products", Some(json!({"name": "New"})))
        .await;
    assert_eq!(created.body["id"], 16);
    let read = app.get("/products/16").await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["name"], "New");
}

#[tokio::test]
async fn put_and_patch_are_read_back_at_once_after_a_cached_read() {
    let app = spawn_app().await;
    app.wait_for_memory_tier(true).await;
    app.get("/products/2").await;
    assert_eq!(app.get("/products/2").await.body["source"], "cache");

    let put = app
        .send(Method::PUT, "/products/2", Some(json!({"name": "iPhone 16 Pro", "price": 1099.0, "category": "Smartphones", "description": null})))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let read = app.get("/products/2").await;
    assert_eq!(read.body["name"], "iPhone 16 Pro");
    assert_eq!(read.body["price"], 1099.0);
    assert_eq!(read.body["description"], serde_json::Value::Null);
    assert_eq!(app.get("/products/2").await.body["source"], "cache");

    let patch = app
        .send(Method::PATCH, "/products/2", Some(json!({"price": 999.5})))
        .await;
    assert_eq!(patch.status, 200, "{}", patch.body);
    assert_eq!(patch.body["name"], "iPhone 16 Pro", "fields not named stay");
    let read = app.get("/products/2").await;
    assert_eq!(read.body["price"], 999.5);
    let created: chrono::DateTime<chrono::Utc> = read.body["created_at"]
        .as_str()
        .expect("s")
        .parse()
        .expect("time");
    let updated: chrono::DateTime<chrono::Utc> = read.body["updated_at"]
        .as_str()
        .expect("s")
        .parse()
        .expect("time");
    assert!(updated > created, "updated_at is maintained");
}

#[tokio::test]
async fn delete_removes_the_product_and_its_cache_entry() {
    let app = spawn_app().await;
    app.get("/products/3").await;
    assert_eq!(app.get("/products/3").await.body["source"], "cache");
    let deleted = app.send(Method::DELETE, "/products/3", None).await;
    assert_eq!(deleted.status, 204);
    app.get("/products/3").await.assert_problem(404);
    app.send(Method::DELETE, "/products/3", None)
        .await
        .assert_problem(404);
}

#[tokio::test]
async fn writes_to_unknown_ids_are_404_and_bad_ids_422() {
    let app = spawn_app().await;
    let body = Some(json!({"name": "x"}));
    app.send(Method::PUT, "/products/9999", body.clone())
        .await
        .assert_problem(404);
    app.send(Method::PATCH, "/products/9999", body.clone())
        .await
        .assert_problem(404);
    app.send(Method::PUT, "/products/abc", body)
        .await
        .assert_problem(422);
}

#[tokio::test]
async fn bad_bodies_are_422_naming_the_field_and_write_nothing() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(256)}), "name"),
        (json!({"name": "a", "price": -1}), "price"),
        (json!({"name": "a", "price": 1.234}), "price"),
        (
            json!({"name": "a", "category": "c".repeat(101)}),
            "category",
        ),
        (json!({"name": "a", "colour": "red"}), "colour"),
        (json!({"name": "a", "price": "cheap"}), "price"),
    ] {
        let detail = app
            .send(Method::POST, "/products", Some(body.clone()))
            .await
            .assert_problem(422);
        assert!(detail.contains(field), "{body}: {detail}");
        let detail = app
            .send(Method::PUT, "/products/1", Some(body.clone()))
            .await
            .assert_problem(422);
        assert!(detail.contains(field), "{body}: {detail}");
    }
    let detail = app
        .send(Method::PATCH, "/products/1", Some(json!({"name": null})))
        .await
        .assert_problem(422);
    assert!(detail.contains("name"), "{detail}");

    let malformed = app
        .client
        .post(app.url("/products"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("sent");
    crate::helpers::Answer::from(malformed)
        .await
        .assert_problem(422);
    let not_json = app
        .client
        .post(app.url("/products"))
        .body("name=x")
        .send()
        .await
        .expect("sent");
    crate::helpers::Answer::from(not_json)
        .await
        .assert_problem(415);

    let list = app.get("/products?limit=100").await;
    assert_eq!(
        list.body.as_array().map(Vec::len),
        Some(15),
        "nothing was written"
    );
    assert_eq!(
        app.get("/products/1").await.body["name"],
        "MacBook Pro 16\""
    );
}

#[tokio::test]
async fn an_admin_token_guards_writes_but_not_reads() {
    let app = spawn_app_with(|c| c.writes.admin_token = Some("s3cret-token".into())).await;
    let body = json!({"name": "Guarded"});

    let anonymous = app
        .send(Method::POST, "/products", Some(body.clone()))
        .await;
    anonymous.assert_problem(401);
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
    let wrong = app
        .client
        .post(app.url("/products"))
        .bearer_auth("s3cret-tokeN")
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status(), 401);
    let delete = app
        .client
        .delete(app.url("/products/1"))
        .send()
        .await
        .expect("sent");
    assert_eq!(delete.status(), 401);
    assert_eq!(
        app.get("/products/1").await.status,
        200,
        "reads need no token, and the delete did nothing"
    );

    let right = app
        .client
        .post(app.url("/products"))
        .bearer_auth("s3cret-token")
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(right.status(), 201);
}
