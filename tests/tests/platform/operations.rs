//! Health, readiness, metrics, OpenAPI, errors and limits, as an operator
//! and a client developer meet them.

use yixin_e2e::{StatusCode, spawn_app};

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let app = spawn_app().await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json["status"], "ok");

    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.json["checks"]["database"], "ok");
    assert_eq!(ready.json["checks"]["queue"], "ok");
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_count_requests() {
    let app = spawn_app().await;
    app.get("/healthz", None).await;
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let content_type = metrics.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l.starts_with("http_requests_total{") && l.contains("route=\"/healthz\"")),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn openapi_document_describes_the_served_routes() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.json["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.json["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/catalog",
        "/v1/auth/dev-token",
    ] {
        assert!(paths.contains_key(path), "{path} not in {:?}", paths.keys());
    }
    assert!(doc.json["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let app = spawn_app().await;
    let reply = app.get("/v1/nowhere", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "not_found");
}

#[tokio::test]
async fn wrong_method_is_a_json_error() {
    let app = spawn_app().await;
    let reply = app.send(app.http.delete(app.url("/healthz"))).await;
    assert!(reply.status.is_client_error(), "{}", reply.status);
    reply.error_code();
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let big = format!(
        "{{\"role\":\"resident\",\"sub\":\"{}\",\"org\":\"demo\"}}",
        "x".repeat(app.settings.server.body_limit_bytes + 1)
    );
    let reply = app
        .post_raw("/v1/auth/dev-token", None, "application/json", big)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    assert_eq!(reply.error_code(), "payload_too_large");
}

#[tokio::test]
async fn catalogue_is_served_from_the_database() {
    let app = spawn_app().await;
    let token = app.resident_token().await;
    let reply = app.get("/v1/catalog", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let categories = reply.json["categories"].as_array().unwrap();
    assert_eq!(categories.len(), 4);
    let services: Vec<&serde_json::Value> = categories
        .iter()
        .flat_map(|c| c["services"].as_array().unwrap())
        .collect();
    assert!(services.len() >= 18, "{} services", services.len());
    let jaundice = services
        .iter()
        .find(|s| s["code"] == "infant_jaundice_test")
        .expect("the infant jaundice test is offered");
    assert_eq!(jaundice["name_zh"], "婴儿黄疸测定");
    assert!(jaundice["duration_min"].as_u64().unwrap() > 0);
    assert!(!jaundice["required_skills"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn graceful_stop_finishes_and_closes_the_port() {
    let app = spawn_app().await;
    let url = app.url("/healthz");
    let http = app.http.clone();
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    app.stop().await;
    assert!(
        http.get(&url).send().await.is_err(),
        "still serving after stop"
    );
}
