//! Sign-in by phone and one-time code: the code reaches the SMS gateway
//! (a signed webhook to a gateway stub here), is stored only as a keyed
//! hash, expires, allows five tries, is rate-limited per phone and per
//! client address, and gives residents and rostered nurses their token.

use std::{sync::Arc, time::Duration};

use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::Mutex,
};
use yixin_e2e::{AppOptions, StatusCode, TestApp, spawn_app_with};
use yixin_platform::Settings;

const GATEWAY_SECRET: &str = "the gateway's shared secret, 32+ bytes";

/// One message the gateway received: its JSON body, its signature header
/// and the raw body the signature covers.
type Delivery = (Value, String, Vec<u8>);

/// A stand-in SMS gateway: keeps every posted message with its signature header.
#[derive(Clone, Default)]
struct Gateway {
    received: Arc<Mutex<Vec<Delivery>>>,
}

impl Gateway {
    async fn start() -> (Self, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sms", listener.local_addr().unwrap());
        let gateway = Gateway::default();
        let keep = gateway.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let mut raw = Vec::new();
                    let mut buf = [0u8; 4096];
                    // Headers, then as much body as Content-Length says.
                    loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        raw.extend_from_slice(&buf[..n]);
                        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&raw[..end]).to_string();
                        let header = |name: &str| {
                            head.lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.trim()
                                        .eq_ignore_ascii_case(name)
                                        .then(|| v.trim().to_owned())
                                })
                                .unwrap_or_default()
                        };
                        let length: usize = header("content-length").parse().unwrap_or(0);
                        if raw.len() < end + 4 + length {
                            continue;
                        }
                        let body = raw[end + 4..end + 4 + length].to_vec();
                        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        keep.received
                            .lock()
                            .await
                            .push((json, header("x-yixin-signature"), body));
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                });
            }
        });
        (gateway, url)
    }

    /// The code of the last message to `phone`.
    async fn last_code(&self, phone: &str) -> String {
        let received = self.received.lock().await;
        let (message, _, _) = received
            .iter()
            .rev()
            .find(|(m, _, _)| m["phone"] == phone)
            .unwrap_or_else(|| panic!("no message to {phone}"));
        message["params"]["code"].as_str().unwrap().to_owned()
    }
}

async fn app_with(configure: impl FnOnce(&mut Settings) + Send + 'static) -> (TestApp, Gateway) {
    let (gateway, url) = Gateway::start().await;
    let app = spawn_app_with(AppOptions {
        configure: Box::new(move |s: &mut Settings| {
            s.signin.sender = "webhook".to_owned();
            s.signin.webhook_url = Some(url);
            s.signin.webhook_secret = Some(SecretString::from(GATEWAY_SECRET.to_owned()));
            configure(s);
        }),
        ..AppOptions::default()
    })
    .await;
    (app, gateway)
}

async fn ask(app: &TestApp, phone: &str, role: &str) -> yixin_e2e::Reply {
    app.post(
        "/v1/auth/otp",
        None,
        &json!({"phone": phone, "role": role, "org": "demo"}),
    )
    .await
}

async fn verify(app: &TestApp, phone: &str, role: &str, code: &str) -> yixin_e2e::Reply {
    app.post(
        "/v1/auth/otp/verify",
        None,
        &json!({"phone": phone, "code": code, "role": role, "org": "demo"}),
    )
    .await
}

/// A code that is not `code`.
fn other_than(code: &str) -> String {
    if code == "000000" { "000001" } else { "000000" }.to_owned()
}

#[tokio::test]
async fn a_resident_signs_in_with_the_texted_code_once() {
    let (app, gateway) = app_with(|s| s.signin.resend_after_secs = 1).await;
    let reply = ask(&app, "+86 138-0000-1111", "resident").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.json["expires_in"], 300);

    // The gateway got the normalised phone, the template and the code,
    // signed with the shared secret over time and body.
    let (message, signature, body) = gateway.received.lock().await.last().cloned().unwrap();
    assert_eq!(message["phone"], "13800001111");
    assert_eq!(message["template"], "SMS_LOGIN_CODE");
    assert_eq!(message["params"]["minutes"], 5);
    let code = message["params"]["code"].as_str().unwrap().to_owned();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - t).abs() < 60);
    assert_eq!(
        signature,
        yixin_signin::sender::sign(GATEWAY_SECRET.as_bytes(), t, &body)
    );

    // Stored as a keyed hash only.
    let stored = app
        .running()
        .backends
        .store
        .otp_code("demo", "resident", "13800001111")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.code_hash.len(), 64);
    assert!(!stored.code_hash.contains(&code));

    let wrong = verify(&app, "13800001111", "resident", &other_than(&code)).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    assert_eq!(wrong.error_code(), "invalid_code");

    let signed_in = verify(&app, "13800001111", "resident", &code).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.text);
    assert_eq!(signed_in.json["role"], "resident");
    let token = signed_in.json["token"].as_str().unwrap().to_owned();
    let sub = signed_in.json["sub"].as_str().unwrap().to_owned();
    let orders = app.get("/v1/orders", Some(&token)).await;
    assert_eq!(orders.status, StatusCode::OK, "{}", orders.text);

    // A code signs in once.
    let again = verify(&app, "13800001111", "resident", &code).await;
    assert_eq!(again.error_code(), "invalid_code");

    // The same phone later is the same resident (after the resend wait,
    // 1 s here: until then a 429 with Retry-After).
    let mut refused = 0;
    loop {
        let reply = ask(&app, "13800001111", "resident").await;
        if reply.status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            reply.text
        );
        assert!(reply.headers.contains_key("retry-after"));
        refused += 1;
        assert!(refused < 3, "still refused after the wait");
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let code = gateway.last_code("13800001111").await;
    let second = verify(&app, "13800001111", "resident", &code).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(second.json["sub"], sub.as_str());
    app.stop().await;
}

#[tokio::test]
async fn five_wrong_tries_void_the_code_and_a_new_code_replaces_the_old() {
    let (app, gateway) = app_with(|s| s.signin.resend_after_secs = 0).await;
    assert_eq!(
        ask(&app, "13800002222", "resident").await.status,
        StatusCode::ACCEPTED
    );
    let code = gateway.last_code("13800002222").await;
    for _ in 0..5 {
        let reply = verify(&app, "13800002222", "resident", &other_than(&code)).await;
        assert_eq!(reply.error_code(), "invalid_code");
    }
    let reply = verify(&app, "13800002222", "resident", &code).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "the right code after 5 wrong tries"
    );

    // A new code; the one before it no longer works.
    assert_eq!(
        ask(&app, "13800002222", "resident").await.status,
        StatusCode::ACCEPTED
    );
    let first = gateway.last_code("13800002222").await;
    assert_eq!(
        ask(&app, "13800002222", "resident").await.status,
        StatusCode::ACCEPTED
    );
    let second = gateway.last_code("13800002222").await;
    if first != second {
        assert_eq!(
            verify(&app, "13800002222", "resident", &first)
                .await
                .error_code(),
            "invalid_code"
        );
    }
    assert_eq!(
        verify(&app, "13800002222", "resident", &second)
            .await
            .status,
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn a_code_expires() {
    let (app, gateway) = app_with(|s| s.signin.code_ttl_secs = 1).await;
    assert_eq!(
        ask(&app, "13800003333", "resident").await.status,
        StatusCode::ACCEPTED
    );
    let code = gateway.last_code("13800003333").await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let reply = verify(&app, "13800003333", "resident", &code).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "invalid_code");
    app.stop().await;
}

#[tokio::test]
async fn sending_is_limited_per_phone_and_per_client_address() {
    let (app, _gateway) = app_with(|s| {
        s.signin.resend_after_secs = 60;
        s.signin.per_address_per_hour = 3;
    })
    .await;
    assert_eq!(
        ask(&app, "13800004444", "resident").await.status,
        StatusCode::ACCEPTED
    );
    // The same phone again at once.
    let reply = ask(&app, "13800004444", "resident").await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    let wait: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Other phones from the same address: 3 an hour in all.
    assert_eq!(
        ask(&app, "13800005555", "resident").await.status,
        StatusCode::ACCEPTED
    );
    let reply = ask(&app, "13800006666", "resident").await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    assert!(reply.headers.contains_key("retry-after"));
    app.stop().await;
}

#[tokio::test]
async fn a_nurse_signs_in_only_with_a_phone_on_the_roster() {
    let (app, gateway) = app_with(|_| {}).await;
    let reply = ask(&app, "13700009999", "nurse").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.error_code(), "not_on_roster");
    assert!(
        gateway.received.lock().await.is_empty(),
        "no text to a stranger"
    );

    let coordinator = app.token("coordinator", "coord-1", "demo").await;
    let added = app
        .post(
            "/v1/dispatch/nurses",
            Some(&coordinator),
            &json!({"name": "周护士", "phone": "13700009999", "skills": ["wound_care"]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let id = added.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        ask(&app, "13700009999", "nurse").await.status,
        StatusCode::ACCEPTED
    );
    let code = gateway.last_code("13700009999").await;
    let signed_in = verify(&app, "13700009999", "nurse", &code).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.text);
    assert_eq!(signed_in.json["sub"], id.as_str());
    let token = signed_in.json["token"].as_str().unwrap();
    let offers = app.get("/v1/nurse/offers", Some(token)).await;
    assert_eq!(offers.status, StatusCode::OK, "{}", offers.text);
    app.stop().await;
}

/// An agent signs in only with a phone on the organisation's agent list,
/// and only while active: once deactivated she gets no code, and the token
/// she already holds no longer places or reads orders.
#[tokio::test]
async fn an_agent_signs_in_only_while_on_the_agent_list() {
    // No pause between codes: the second ask must meet the list, not the pause.
    let (app, gateway) = app_with(|s| s.signin.resend_after_secs = 0).await;
    let reply = ask(&app, "13600008888", "agent").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.error_code(), "not_on_roster");
    assert!(
        gateway.received.lock().await.is_empty(),
        "no text to a stranger"
    );

    let coordinator = app.token("coordinator", "coord-1", "demo").await;
    let added = app
        .post(
            "/v1/dispatch/agents",
            Some(&coordinator),
            &json!({"name": "李医生", "phone": "13600008888", "kind": "family_doctor"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let id = added.json["id"].as_str().unwrap().to_owned();
    // A nurse's sign-in is not an agent's: the roster is another list.
    assert_eq!(
        ask(&app, "13600008888", "nurse").await.error_code(),
        "not_on_roster"
    );
    assert_eq!(
        ask(&app, "13600008888", "agent").await.status,
        StatusCode::ACCEPTED
    );
    let code = gateway.last_code("13600008888").await;
    let signed_in = verify(&app, "13600008888", "agent", &code).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.text);
    assert_eq!(signed_in.json["sub"], id.as_str());
    assert_eq!(signed_in.json["role"], "agent");
    let token = signed_in.json["token"].as_str().unwrap().to_owned();
    let patients = app.get("/v1/agent/patients", Some(&token)).await;
    assert_eq!(patients.status, StatusCode::OK, "{}", patients.text);
    assert_eq!(
        app.get("/v1/orders", Some(&token)).await.status,
        StatusCode::OK
    );

    // Deactivated: no new code, and her token stops working on its next use.
    let path = format!("/v1/dispatch/agents/{id}");
    let off = app
        .send(
            app.http
                .patch(app.url(&path))
                .bearer_auth(&coordinator)
                .json(&json!({"active": false})),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    assert_eq!(off.json["active"], false);
    let listed = app.get("/v1/dispatch/agents", Some(&coordinator)).await;
    assert_eq!(listed.json[0]["id"], id.as_str(), "{}", listed.text);
    assert_eq!(listed.json[0]["active"], false, "{}", listed.text);
    let again = ask(&app, "13600008888", "agent").await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.text);
    assert_eq!(again.error_code(), "not_on_roster");
    for path in ["/v1/agent/patients", "/v1/orders"] {
        let refused = app.get(path, Some(&token)).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            refused.text
        );
        assert_eq!(refused.error_code(), "agent_not_listed");
    }
    let order = app
        .order_service(&token, "infant_jaundice_test", (29.39, 106.32), json!({}))
        .await;
    assert_eq!(order.status, StatusCode::FORBIDDEN, "{}", order.text);
    assert_eq!(order.error_code(), "agent_not_listed");
    app.stop().await;
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let (app, _gateway) = app_with(|_| {}).await;
    for (body, field) in [
        (
            json!({"phone": "12345", "role": "resident", "org": "demo"}),
            "phone",
        ),
        (
            json!({"phone": "13800001111", "role": "coordinator", "org": "demo"}),
            "role",
        ),
        (
            json!({"phone": "13800001111", "role": "resident", "org": "no such org"}),
            "org",
        ),
        (
            json!({"phone": "13800001111", "role": "resident", "org": "nowhere"}),
            "org",
        ),
    ] {
        let reply = app.post("/v1/auth/otp", None, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(reply.json["error"]["field"], field, "{}", reply.text);
    }
    let reply = verify(&app, "13800001111", "resident", "12ab").await;
    assert_eq!(reply.json["error"]["field"], "code", "{}", reply.text);
    app.stop().await;
}
