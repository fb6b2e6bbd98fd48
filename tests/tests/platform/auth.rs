//! Tokens as the contract describes them: dev login, and every way a token
//! can be wrong.

use yixin_e2e::{AppOptions, StatusCode, spawn_app, spawn_app_with};

#[tokio::test]
async fn dev_login_mints_a_token_the_platform_accepts() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/v1/auth/dev-token",
            None,
            &serde_json::json!({"role": "coordinator", "sub": "c-1", "org": "demo"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let token = reply.json["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3);
    let catalog = app.get("/v1/catalog", Some(token)).await;
    assert_eq!(catalog.status, StatusCode::OK);
}

#[tokio::test]
async fn dev_login_refuses_bad_requests() {
    let app = spawn_app().await;
    let unknown_role = app
        .post(
            "/v1/auth/dev-token",
            None,
            &serde_json::json!({"role": "admin", "sub": "x", "org": "demo"}),
        )
        .await;
    assert!(unknown_role.status.is_client_error());
    unknown_role.error_code();
    let malformed = app
        .post_raw("/v1/auth/dev-token", None, "application/json", "{\"role\":")
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.error_code(), "malformed_json");
}

#[tokio::test]
async fn dev_login_is_404_when_off() {
    let app = spawn_app_with(AppOptions {
        configure: Box::new(|s| s.auth.dev_login = Some(false)),
        ..AppOptions::default()
    })
    .await;
    let reply = app
        .post(
            "/v1/auth/dev-token",
            None,
            &serde_json::json!({"role": "resident", "sub": "r", "org": "demo"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    reply.error_code();
}

#[tokio::test]
async fn missing_forged_and_unsigned_tokens_are_401() {
    let app = spawn_app().await;
    let good = app.resident_token().await;

    let none = app.get("/v1/catalog", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.error_code(), "unauthorized");

    // Same header and claims, signature of another key.
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_sig = "c2lnbmF0dXJlLW9mLWFub3RoZXIta2V5LWVudGlyZWx5";
    parts[2] = forged_sig;
    let forged = parts.join(".");
    assert_eq!(
        app.get("/v1/catalog", Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // `alg: none` with the good token's claims and no signature.
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    assert_eq!(
        app.get("/v1/catalog", Some(&unsigned)).await.status,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        app.get("/v1/catalog", Some("not-a-jwt")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_token_from_another_deployment_is_401() {
    let app = spawn_app().await;
    let other = spawn_app().await;
    let foreign = other.resident_token().await;
    let reply = app.get("/v1/catalog", Some(&foreign)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
}
