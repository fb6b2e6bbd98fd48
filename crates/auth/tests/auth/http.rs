//! The extractors and the dev-token route, through a real actix service.

use actix_web::{
    App, HttpResponse,
    dev::ServiceResponse,
    http::{
        StatusCode,
        header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE},
    },
    test::{self, TestRequest},
    web,
};
use serde_json::{Value, json};
use yixin_auth::{
    AgentCaller, Authenticator, Caller, CoordinatorCaller, DevTokenResponse, NurseCaller,
    ResidentCaller, Role, configure_dev_login,
};

use crate::support::*;

async fn whoami(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({"sub": caller.sub, "role": caller.role, "org": caller.org}))
}

async fn resident(caller: ResidentCaller) -> HttpResponse {
    HttpResponse::Ok().body(caller.0.sub)
}

async fn nurse(caller: NurseCaller) -> HttpResponse {
    HttpResponse::Ok().body(caller.sub.clone())
}

async fn coordinator(caller: CoordinatorCaller) -> HttpResponse {
    HttpResponse::Ok().body(caller.org.clone())
}

async fn agent(caller: AgentCaller) -> HttpResponse {
    HttpResponse::Ok().body(caller.0.sub)
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/whoami", web::get().to(whoami))
        .route("/resident", web::get().to(resident))
        .route("/nurse", web::get().to(nurse))
        .route("/coordinator", web::get().to(coordinator))
        .route("/agent", web::get().to(agent));
}

/// The test service: `routes` plus, with `dev_login`, the dev-token route.
/// (A macro: the service type names `actix_http::Request`, which is not a
/// dependency here.)
macro_rules! app {
    ($auth:expr, $dev_login:expr) => {{
        let dev_login: bool = $dev_login;
        test::init_service(
            App::new()
                .app_data(web::Data::new($auth))
                .configure(routes)
                .configure(move |cfg| {
                    if dev_login {
                        configure_dev_login(cfg);
                    }
                }),
        )
        .await
    }};
}

async fn json_body(resp: ServiceResponse) -> Value {
    let bytes = test::read_body(resp).await;
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

fn bearer(token: &str) -> (actix_web::http::header::HeaderName, String) {
    (AUTHORIZATION, format!("Bearer {token}"))
}

#[track_caller]
fn assert_unauthorized(resp: &ServiceResponse) {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
}

#[actix_web::test]
async fn no_token_is_401_with_the_error_body() {
    let app = app!(hs(), false);
    for path in ["/whoami", "/resident", "/nurse", "/coordinator"] {
        let resp = test::call_service(&app, TestRequest::get().uri(path).to_request()).await;
        assert_unauthorized(&resp);
        let body = json_body(resp).await;
        assert_eq!(body["error"]["code"], "unauthorized", "{path}: {body}");
        assert_eq!(body["error"]["message"], "missing bearer token");
    }
}

#[actix_web::test]
async fn bad_tokens_are_401() {
    let auth = hs();
    let expired = hs_token(&json!({
        "sub": "r-1", "role": "resident", "org": "demo", "iat": now() - 7200, "exp": now() - 3600
    }));
    let none = format!("{}.", signing_input(&header("none"), &good_claims()));
    let app = app!(auth, false);
    for value in [
        "Bearer not-a-jwt".to_owned(),
        format!("Bearer {expired}"),
        format!("Bearer {none}"),
        "Basic dXNlcjpwYXNz".to_owned(),
        "Bearer".to_owned(),
    ] {
        for path in ["/whoami", "/nurse"] {
            let req = TestRequest::get()
                .uri(path)
                .insert_header((AUTHORIZATION, value.as_str()))
                .to_request();
            let resp = test::call_service(&app, req).await;
            assert_unauthorized(&resp);
            let body = json_body(resp).await;
            assert_eq!(body["error"]["code"], "unauthorized", "{value:.30}: {body}");
        }
    }
}

#[actix_web::test]
async fn right_token_right_role_passes() {
    let auth = hs();
    let tokens: Vec<(Role, String)> = Role::ALL
        .into_iter()
        .map(|role| {
            (
                role,
                auth.mint(role, &format!("{role}-1"), "org-9").unwrap(),
            )
        })
        .collect();
    let app = app!(auth, false);
    for (role, token) in &tokens {
        let req = TestRequest::get()
            .uri("/whoami")
            .insert_header(bearer(token))
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = json_body(resp).await;
        assert_eq!(
            body,
            json!({"sub": format!("{role}-1"), "role": role.as_str(), "org": "org-9"})
        );

        let req = TestRequest::get()
            .uri(&format!("/{role}"))
            .insert_header(bearer(token))
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::OK, "{role}");
    }
}

#[actix_web::test]
async fn right_token_wrong_role_is_403() {
    let auth = hs();
    let tokens: Vec<(Role, String)> = Role::ALL
        .into_iter()
        .map(|role| (role, auth.mint(role, "u-1", "demo").unwrap()))
        .collect();
    let app = app!(auth, false);
    for (role, token) in &tokens {
        for path in Role::ALL.into_iter().filter(|r| r != role) {
            let req = TestRequest::get()
                .uri(&format!("/{path}"))
                .insert_header(bearer(token))
                .to_request();
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{role} on /{path}");
            assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());
            let body = json_body(resp).await;
            assert_eq!(body["error"]["code"], "forbidden");
        }
    }
}

#[actix_web::test]
async fn query_token_works() {
    let auth = hs();
    let token = auth.mint(Role::Nurse, "n-3", "demo").unwrap();
    let app = app!(auth, false);
    // Only a WebSocket upgrade may carry its token in the query.
    let req = TestRequest::get()
        .uri(&format!("/nurse?since=1&token={token}"))
        .insert_header(("upgrade", "websocket"))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(test::read_body(resp).await, "n-3");
    let req = TestRequest::get()
        .uri(&format!("/nurse?since=1&token={token}"))
        .to_request();
    assert_unauthorized(&test::call_service(&app, req).await);
    // A bad query token is a 401 like a bad header.
    let req = TestRequest::get()
        .uri("/nurse?token=x.y.z")
        .insert_header(("upgrade", "websocket"))
        .to_request();
    assert_unauthorized(&test::call_service(&app, req).await);
}

#[actix_web::test]
async fn bearer_scheme_is_case_insensitive() {
    let auth = hs();
    let token = auth.mint(Role::Coordinator, "c-1", "org-2").unwrap();
    let app = app!(auth, false);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let req = TestRequest::get()
            .uri("/coordinator")
            .insert_header((AUTHORIZATION, format!("{scheme} {token}")))
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::OK, "{scheme}");
    }
}

#[actix_web::test]
async fn missing_authenticator_is_a_500_not_a_panic() {
    let app = test::init_service(App::new().configure(routes)).await;
    let req = TestRequest::get()
        .uri("/whoami")
        .insert_header(bearer("x.y.z"))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json_body(resp).await["error"]["code"], "internal");
}

fn dev_token_request(body: &str) -> TestRequest {
    TestRequest::post()
        .uri("/v1/auth/dev-token")
        .insert_header((CONTENT_TYPE, "application/json"))
        .set_payload(body.to_owned())
}

#[actix_web::test]
async fn dev_token_mints_a_verifiable_token() {
    for settings in [hs_settings(), rs_settings(true), ed_settings(true)] {
        let verifier = Authenticator::from_settings(&settings).unwrap();
        let app = app!(Authenticator::from_settings(&settings).unwrap(), true);
        let body = json!({"role": "nurse", "sub": "nurse:7@x.y_z-1", "org": "demo"}).to_string();
        let resp = test::call_service(&app, dev_token_request(&body).to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let json = json_body(resp).await;
        let minted: DevTokenResponse = serde_json::from_value(json.clone()).unwrap();
        let claims = verifier.verify(&minted.token).unwrap();
        assert_eq!(claims.role, Role::Nurse);
        assert_eq!(claims.sub, "nurse:7@x.y_z-1");
        assert_eq!(claims.org, "demo");
        assert_eq!(minted.expires_at.timestamp(), claims.exp);
        // RFC 3339, UTC.
        let expires_at = json["expires_at"].as_str().unwrap();
        assert!(expires_at.ends_with('Z'), "{expires_at}");

        // The token opens the nurse's door, and no other.
        let req = TestRequest::get()
            .uri("/nurse")
            .insert_header(bearer(&minted.token))
            .to_request();
        assert_eq!(test::call_service(&app, req).await.status(), StatusCode::OK);
        let req = TestRequest::get()
            .uri("/coordinator")
            .insert_header(bearer(&minted.token))
            .to_request();
        assert_eq!(
            test::call_service(&app, req).await.status(),
            StatusCode::FORBIDDEN
        );
    }
}

#[actix_web::test]
async fn dev_token_rejects_invalid_fields_with_422() {
    let app = app!(hs(), true);
    let long = "x".repeat(65);
    let cases = [
        (json!({"role": "admin", "sub": "u", "org": "o"}), "role"),
        (json!({"role": "Nurse", "sub": "u", "org": "o"}), "role"),
        (json!({"role": "", "sub": "u", "org": "o"}), "role"),
        (json!({"sub": "u", "org": "o"}), "role"),
        (json!({"role": "nurse", "sub": "", "org": "o"}), "sub"),
        (json!({"role": "nurse", "org": "o"}), "sub"),
        (json!({"role": "nurse", "sub": "a b", "org": "o"}), "sub"),
        (json!({"role": "nurse", "sub": long, "org": "o"}), "sub"),
        (json!({"role": "nurse", "sub": "u", "org": ""}), "org"),
        (json!({"role": "nurse", "sub": "u", "org": "o/../p"}), "org"),
        (json!({"role": "nurse", "sub": "u", "org": "机构"}), "org"),
    ];
    for (body, field) in cases {
        let resp =
            test::call_service(&app, dev_token_request(&body.to_string()).to_request()).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let json = json_body(resp).await;
        assert_eq!(json["error"]["field"], field, "{body}: {json}");
        assert!(json["error"]["code"].is_string());
        assert!(json["error"]["message"].is_string());
    }
    // Exactly 64 characters is fine.
    let body = json!({"role": "resident", "sub": "x".repeat(64), "org": "o"}).to_string();
    let resp = test::call_service(&app, dev_token_request(&body).to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn dev_token_rejects_malformed_json_with_400() {
    let app = app!(hs(), true);
    for body in [
        "",
        "{",
        "not json",
        "[]",
        "null",
        r#"{"role": 1, "sub": "u", "org": "o"}"#,
        r#"{"role": "nurse", "sub": "u", "org": "o", "admin": true}"#,
    ] {
        let resp = test::call_service(&app, dev_token_request(body).to_request()).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let json = json_body(resp).await;
        assert_eq!(json["error"]["code"], "malformed_json", "{body}: {json}");
    }
}

#[actix_web::test]
async fn dev_token_is_404_unless_mounted() {
    let app = app!(hs(), false);
    let body = json!({"role": "nurse", "sub": "u", "org": "o"}).to_string();
    let resp = test::call_service(&app, dev_token_request(&body).to_request()).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn dev_token_on_a_verify_only_authenticator_is_a_500() {
    // A wiring mistake (the binary should check `can_mint` before mounting),
    // reported as a logged 500 rather than a panic.
    let app = app!(
        Authenticator::from_settings(&rs_settings(false)).unwrap(),
        true
    );
    let body = json!({"role": "nurse", "sub": "u", "org": "o"}).to_string();
    let resp = test::call_service(&app, dev_token_request(&body).to_request()).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json_body(resp).await["error"]["code"], "internal");
}
