use crate::helpers::spawn_app;

#[tokio::test]
async fn openapi_documents_every_endpoint_and_its_errors() {
    let app = spawn_app().await;
    let answer = app.get("/openapi.json").await;
    assert_eq!(answer.status, 200);
    let doc = &answer.body;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/", "get"),
        ("/products/{id}", "get"),
        ("/products", "get"),
        ("/cache/stats", "get"),
        ("/cache/clear", "delete"),
        ("/health", "get"),
        ("/livez", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} undocumented"
        );
    }
    let product = &paths["/products/{id}"]["get"]["responses"];
    for status in ["200", "404", "422", "503"] {
        assert!(
            product.get(status).is_some(),
            "GET /products/{{id}} does not document {status}"
        );
    }
    assert!(
        product["404"]["content"]
            .get("application/problem+json")
            .is_some()
    );

    // S3: the write operations referred to a `bearer` scheme nobody declared (an invalid
    // document, and Swagger UI could not send the token), and offered anonymous access.
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{}", doc["components"]);
    assert_eq!(scheme["scheme"], "bearer");
    for (path, method) in [
        ("/products", "post"),
        ("/products/{id}", "put"),
        ("/products/{id}", "patch"),
        ("/products/{id}", "delete"),
        ("/cache/clear", "delete"),
    ] {
        assert_eq!(
            paths[path][method]["security"],
            serde_json::json!([{ "bearer": [] }]),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn the_docs_page_and_its_assets_are_served_locally() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.url("/docs/"))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("body");
    assert!(html.contains("swagger-ui"), "not the Swagger UI page");
    assert!(
        !html.contains("https://"),
        "the page loads something from the network"
    );
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let response = app.client.get(app.url(asset)).send().await.expect("sent");
        assert_eq!(response.status(), 200, "{asset}");
    }
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    assert!(
        init.contains("/openapi.json"),
        "the docs page does not load our document"
    );
}
