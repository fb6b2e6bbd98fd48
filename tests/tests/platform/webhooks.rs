//! Webhooks (issue 19): a coordinator registers an endpoint; deliveries
//! are signed (HMAC-SHA256 of "<timestamp>.<body>"), retried with back-off
//! until a 2xx, dead after the last attempt and replayable; another
//! organisation neither sees nor receives them; a resident's SMS
//! notification goes to the operator's gateway on assignment.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use yixin::Role;
use yixin_domain::{NurseId, Offer, OrderId, OrgId};
use yixin_e2e::{AppOptions, Reply, StatusCode, TestApp, read_request, spawn_app_with};
use yixin_platform::Settings;

const WAIT: Duration = Duration::from_secs(15);

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Post {
    json: Value,
    body: Vec<u8>,
    id: String,
    timestamp: String,
    signature: String,
    yixin_signature: String,
    answered: u16,
}

/// A local endpoint on port 0: answers each POST with the next status of
/// `script`, then `then` (which a test may change), and keeps every post.
#[derive(Clone)]
struct Receiver {
    posts: Arc<Mutex<Vec<Post>>>,
    script: Arc<Vec<u16>>,
    then: Arc<std::sync::atomic::AtomicU16>,
    count: Arc<AtomicUsize>,
    url: String,
}

impl Receiver {
    async fn start(script: Vec<u16>, then: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            posts: Arc::default(),
            script: Arc::new(script),
            then: Arc::new(std::sync::atomic::AtomicU16::new(then)),
            count: Arc::default(),
            url: format!("http://{}/hooks", listener.local_addr().unwrap()),
        };
        let keep = receiver.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    if let Some(request) = read_request(&mut socket).await {
                        let (header, body) = (|n: &str| request.header(n), request.body.clone());
                        let n = keep.count.fetch_add(1, Ordering::SeqCst);
                        let status = keep
                            .script
                            .get(n)
                            .copied()
                            .unwrap_or_else(|| keep.then.load(Ordering::SeqCst));
                        keep.posts.lock().await.push(Post {
                            json: serde_json::from_slice(&body).unwrap_or(Value::Null),
                            body,
                            id: header("yixin-webhook-id"),
                            timestamp: header("yixin-webhook-timestamp"),
                            signature: header("yixin-webhook-signature"),
                            yixin_signature: header("x-yixin-signature"),
                            answered: status,
                        });
                        let answer = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                        let _ = socket.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        receiver
    }

    async fn posts(&self) -> Vec<Post> {
        self.posts.lock().await.clone()
    }

    /// Waits until a post satisfies `want`; all posts so far.
    async fn wait_for(&self, want: impl Fn(&[Post]) -> bool) -> Vec<Post> {
        let until = Instant::now() + WAIT;
        loop {
            let posts = self.posts().await;
            if want(&posts) {
                return posts;
            }
            assert!(Instant::now() < until, "the receiver got only {posts:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a receiver does to trust a post: recompute the HMAC-SHA256 of
/// "<timestamp>.<body>" under its secret, compare, and check the time.
fn signed_by(post: &Post, secret: &str) -> bool {
    let mut signed = format!("{}.", post.timestamp).into_bytes();
    signed.extend_from_slice(&post.body);
    let expected = yixin_signin::rules::hmac_sha256(secret.as_bytes(), &signed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let fresh = post
        .timestamp
        .parse::<i64>()
        .is_ok_and(|t| (Utc::now().timestamp() - t).abs() < 60);
    fresh
        && post.signature == format!("v1={expected}")
        && post.yixin_signature == format!("t={},v1={expected}", post.timestamp)
}

fn verify(post: &Post, secret: &str) {
    assert!(signed_by(post, secret), "bad signature: {post:#?}");
}

/// Short back-off, local receivers allowed, no automatic dispatch.
async fn spawn(configure: impl FnOnce(&mut Settings) + Send + 'static) -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(move |s| {
            s.dispatch.auto = false;
            s.webhooks.allow_http = true;
            s.webhooks.allow_private = true;
            s.webhooks.backoff_base_ms = 100;
            s.webhooks.backoff_cap_ms = 400;
            s.webhooks.poll_interval_ms = 50;
            configure(s);
        }),
    })
    .await
}

/// A coordinator of `org` (created if new).
async fn coordinator(app: &TestApp, org: &str) -> String {
    app.running()
        .backends
        .store
        .ensure_organization(&OrgId::from(org), org)
        .await
        .unwrap();
    app.token("coordinator", &format!("c-{org}"), org).await
}

async fn register(app: &TestApp, token: &str, url: &str, events: &[&str]) -> Reply {
    app.post(
        "/v1/dispatch/webhooks",
        Some(token),
        &json!({"url": url, "events": events, "description": "运营系统"}),
    )
    .await
}

async fn log(app: &TestApp, token: &str, endpoint: &str) -> Vec<Value> {
    let reply = app
        .get(
            &format!("/v1/dispatch/webhooks/{endpoint}/deliveries"),
            Some(token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json.as_array().unwrap().clone()
}

/// Waits until the endpoint's log satisfies `want`.
async fn wait_log(
    app: &TestApp,
    token: &str,
    endpoint: &str,
    want: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let until = Instant::now() + WAIT;
    loop {
        let entries = log(app, token, endpoint).await;
        if want(&entries) {
            return entries;
        }
        assert!(Instant::now() < until, "the log is only {entries:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_delivery_is_signed_retried_after_failures_and_delivered_to_its_org_only() {
    let receiver = Receiver::start(vec![500, 500], 200).await;
    let other_receiver = Receiver::start(vec![], 200).await;
    let app = spawn(|_| {}).await;
    let demo = app.settings.demo.org_id.clone();
    let coord = coordinator(&app, &demo).await;
    let created = register(&app, &coord, &receiver.url, &["order.created"]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.json["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() >= 70);
    let endpoint = created.json["id"].as_str().unwrap().to_owned();
    // Another organisation registers for the same type: it hears nothing of this one's.
    let other = coordinator(&app, "other-org").await;
    let theirs = register(&app, &other, &other_receiver.url, &["order.created"]).await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.text);

    // The secret is never shown again.
    let listed = app.get("/v1/dispatch/webhooks", Some(&coord)).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&secret));
    assert!(listed.json[0].get("secret").is_none());

    let resident = app.resident_token().await;
    let placed = app.order_jaundice_test(&resident, (29.39, 106.32)).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    let order = placed.json["id"].as_str().unwrap().to_owned();

    // 500, 500, then 200: three attempts of one delivery.
    let posts = receiver
        .wait_for(|p| p.iter().any(|p| p.answered == 200))
        .await;
    assert_eq!(posts.len(), 3, "{posts:#?}");
    assert_eq!(
        posts.iter().map(|p| p.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    for p in &posts {
        verify(p, &secret);
        assert_eq!(p.id, posts[0].id, "one delivery id across attempts");
        assert_eq!(p.json["id"], p.id.as_str());
        assert_eq!(p.json["type"], "order.created");
        assert_eq!(p.json["org_id"], demo.as_str());
        assert_eq!(p.json["data"]["order_id"], order.as_str());
    }
    // A changed body or another secret does not verify.
    let mut forged = posts[2].clone();
    forged.body.extend_from_slice(b" ");
    assert!(!signed_by(&forged, &secret));
    assert!(!signed_by(&posts[2], "whsec_another"));

    let entries = wait_log(&app, &coord, &endpoint, |l| {
        l.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(entries.len(), 1);
    let d = &entries[0];
    assert_eq!(d["id"], posts[0].id.as_str());
    assert_eq!(d["type"], "order.created");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["last_status_code"], 200);
    assert!(d["delivered_at"].is_string());
    assert!(d["next_attempt_at"].is_null());

    // A ping reaches the endpoint too.
    let ping = app
        .post(
            &format!("/v1/dispatch/webhooks/{endpoint}/test"),
            Some(&coord),
            &json!({}),
        )
        .await;
    assert_eq!(ping.status, StatusCode::ACCEPTED, "{}", ping.text);
    let posts = receiver
        .wait_for(|p| p.iter().any(|p| p.json["type"] == "ping"))
        .await;
    verify(posts.last().unwrap(), &secret);

    // The other organisation's endpoint got nothing of this order.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(other_receiver.posts().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_dead_delivery_is_replayed_after_the_endpoint_is_fixed() {
    let receiver = Receiver::start(vec![], 503).await;
    let app = spawn(|s| s.webhooks.max_attempts = 2).await;
    let coord = coordinator(&app, &app.settings.demo.org_id).await;
    let created = register(&app, &coord, &receiver.url, &["order.created"]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.json["secret"].as_str().unwrap().to_owned();
    let endpoint = created.json["id"].as_str().unwrap().to_owned();
    let ping = app
        .post(
            &format!("/v1/dispatch/webhooks/{endpoint}/test"),
            Some(&coord),
            &json!({}),
        )
        .await;
    assert_eq!(ping.status, StatusCode::ACCEPTED, "{}", ping.text);
    let delivery = ping.json["id"].as_str().unwrap().to_owned();
    let entries = wait_log(&app, &coord, &endpoint, |l| {
        l.first().is_some_and(|d| d["status"] == "dead")
    })
    .await;
    assert_eq!(entries[0]["attempts"], 2);
    assert_eq!(entries[0]["last_status_code"], 503);
    assert!(entries[0]["last_error"].is_string());
    // No third attempt.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.posts().await.len(), 2);

    // The endpoint is fixed; the coordinator replays it.
    receiver.then.store(200, Ordering::SeqCst);
    let replay = format!("/v1/dispatch/webhooks/deliveries/{delivery}/replay");
    let other = coordinator(&app, "other-org").await;
    let refused = app.post(&replay, Some(&other), &json!({})).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);
    let replayed = app.post(&replay, Some(&coord), &json!({})).await;
    assert_eq!(replayed.status, StatusCode::ACCEPTED, "{}", replayed.text);
    assert_eq!(replayed.json["attempts"], 0);
    let entries = wait_log(&app, &coord, &endpoint, |l| {
        l.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(entries[0]["attempts"], 1);
    let posts = receiver.posts().await;
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[2].id, delivery, "a replay keeps the delivery's id");
    verify(&posts[2], &secret);
    // A rotated secret signs from then on.
    let rotated = app
        .post(
            &format!("/v1/dispatch/webhooks/{endpoint}/rotate-secret"),
            Some(&coord),
            &json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new_secret = rotated.json["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let again = app.post(&replay, Some(&coord), &json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
    let posts = receiver.wait_for(|p| p.len() == 4).await;
    verify(&posts[3], &new_secret);
    app.stop().await;
}

#[tokio::test]
async fn endpoints_are_the_organisations_own_and_urls_are_checked() {
    // Production rules: https only, no private targets; nothing delivered here.
    let app = spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(|s| {
            s.dispatch.auto = false;
            s.webhooks.deliver = false;
        }),
    })
    .await;
    let coord = coordinator(&app, &app.settings.demo.org_id).await;
    for (url, code) in [
        ("http://hooks.example.org/in", "invalid_url"),
        ("https://user:pw@hooks.example.org/in", "invalid_url"),
        ("https://127.0.0.1/in", "private_address"),
        ("https://10.0.0.8/in", "private_address"),
        ("https://[::1]/in", "private_address"),
        ("https://localhost/in", "private_address"),
    ] {
        let reply = register(&app, &coord, url, &["order.created"]).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(reply.error_code(), code, "{url}");
        assert_eq!(reply.json["error"]["field"], "url");
    }
    let reply = register(&app, &coord, "https://hooks.example.org/in", &["order.*"]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_code(), "unknown_event");
    assert_eq!(reply.json["error"]["field"], "events[0]");
    let reply = register(&app, &coord, "https://hooks.example.org/in", &[]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = app
        .post(
            "/v1/dispatch/webhooks",
            Some(&coord),
            &json!({"url": "https://hooks.example.org/in", "events": ["order.created"], "secret": "mine"}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(reply.json["error"]["field"], "secret");

    let created = register(
        &app,
        &coord,
        "https://hooks.example.org/in",
        &["order.assigned", "alarm.raised"],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/dispatch/webhooks/{id}");

    // A resident may not; another organisation's coordinator finds nothing.
    let resident = app.resident_token().await;
    assert_eq!(
        app.get("/v1/dispatch/webhooks", Some(&resident))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let other = coordinator(&app, "other-org").await;
    let theirs = app.get("/v1/dispatch/webhooks", Some(&other)).await;
    assert_eq!(theirs.json, json!([]));
    for reply in [
        app.get(&path, Some(&other)).await,
        app.get(&format!("{path}/deliveries"), Some(&other)).await,
        app.post(&format!("{path}/test"), Some(&other), &json!({}))
            .await,
        app.post(&format!("{path}/rotate-secret"), Some(&other), &json!({}))
            .await,
        app.send(
            app.http
                .patch(app.url(&path))
                .bearer_auth(&other)
                .json(&json!({"enabled": false})),
        )
        .await,
        app.send(app.http.delete(app.url(&path)).bearer_auth(&other))
            .await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
        assert_eq!(reply.error_code(), "not_found");
    }

    // Its own coordinator changes, reads and deletes it.
    let changed = app
        .send(
            app.http
                .patch(app.url(&path))
                .bearer_auth(&coord)
                .json(&json!({"enabled": false, "events": ["order.completed"], "description": ""})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.json["enabled"], false);
    assert_eq!(changed.json["events"], json!(["order.completed"]));
    assert!(changed.json["description"].is_null());
    let bad = app
        .get(&format!("{path}/deliveries?status=lost"), Some(&coord))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let gone = app
        .send(app.http.delete(app.url(&path)).bearer_auth(&coord))
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&path, Some(&coord)).await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

/// A nurse of the demo organisation who may do every service.
async fn nurse(app: &TestApp, name: &str, phone: &str) -> (NurseId, String) {
    let (nurse, token) = app.stored_qualified_nurse(name, phone).await;
    (nurse.id, token)
}

#[tokio::test]
async fn an_assignment_texts_the_resident_through_the_operators_gateway() {
    let gateway = Receiver::start(vec![], 200).await;
    let app = spawn(|_| {}).await;
    let coord = coordinator(&app, &app.settings.demo.org_id).await;
    let created = register(&app, &coord, &gateway.url, &["notification.sms"]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.json["secret"].as_str().unwrap().to_owned();
    let (nurse_id, nurse_token) = nurse(&app, "钱晓云", "13911112222").await;

    let resident = app.resident_token().await;
    let placed = app.order_jaundice_test(&resident, (29.39, 106.32)).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    let order: OrderId = placed.json["id"]
        .as_str()
        .unwrap()
        .parse()
        .map(OrderId)
        .unwrap();
    // The dispatcher's offer (12 minutes away), accepted on the phone.
    let offer = Offer::new(
        order,
        nurse_id,
        Utc::now(),
        TimeDelta::seconds(60),
        12,
        2_400,
    );
    app.running()
        .backends
        .store
        .make_offer(&offer, |_, _| None, Vec::new())
        .await
        .unwrap();
    let accepted = app
        .post(
            &format!("/v1/nurse/offers/{}/accept", offer.id),
            Some(&nurse_token),
            &json!({}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);

    let posts = gateway
        .wait_for(|p| p.iter().any(|p| p.json["data"]["step"] == "assigned"))
        .await;
    let sms = posts
        .iter()
        .find(|p| p.json["data"]["step"] == "assigned")
        .unwrap();
    verify(sms, &secret);
    assert_eq!(sms.json["type"], "notification.sms");
    let data = &sms.json["data"];
    assert_eq!(data["order_id"], order.to_string());
    assert_eq!(data["template_id"], "SMS_YIXIN_ASSIGNED");
    // The full number, to the gateway that sends the text…
    assert_eq!(data["phone"], "13812345678");
    // …the nurse by family name and a masked phone only.
    assert_eq!(data["params"]["nurse_name"], "钱护士");
    assert_eq!(data["params"]["nurse_phone"], "139****2222");
    assert!(!String::from_utf8_lossy(&sms.body).contains("钱晓云"));
    let eta = data["params"]["eta_min"].as_i64().unwrap();
    assert!((11..=13).contains(&eta), "eta {eta}");
    // Only what it subscribed to: no order.* events.
    assert!(posts.iter().all(|p| p.json["type"] == "notification.sms"));
    app.stop().await;
}
