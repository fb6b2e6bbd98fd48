//! Clinical governance, part 1, end to end: nurses' credentials (enter,
//! validate, verify, reject), the dispatch gate (an expired certificate,
//! three years of practice, unverified credentials: never offered, by the
//! greedy or the batch policy, and refused by manual assignment), the
//! expiring-certificates list, and the audit trail of address reads and
//! credentials changes.

use std::time::Duration;

use chrono::{Months, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};
use yixin::Role;
use yixin_domain::OrderId;
use yixin_e2e::{
    AppOptions, StatusCode, TestApp, WsClient, qualifying_credentials, spawn_app_with,
};

const WAIT: Duration = Duration::from_secs(8);
const HOME: (f64, f64) = (29.39, 106.32);

async fn spawn(policy: &'static str) -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(move |s| {
            s.dispatch.retry_secs = 1;
            s.dispatch.policy = policy.to_owned();
            s.dispatch.batch_window_ms = 300;
        }),
    })
    .await
}

async fn coordinator(app: &TestApp, org: &str) -> String {
    let sub = format!("coord-{}", uuid::Uuid::new_v4().simple());
    app.token("coordinator", &sub, org).await
}

/// China's day, as the gate judges it.
fn today() -> NaiveDate {
    (Utc::now() + TimeDelta::hours(8)).date_naive()
}

/// A nurse with the jaundice test's skill (`neonatal`), not yet qualified.
async fn add(app: &TestApp, coord: &str, name: &str) -> String {
    let reply = app
        .post(
            "/v1/dispatch/nurses",
            Some(coord),
            &json!({"name": name, "phone": "13700001111", "skills": ["neonatal"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json["id"].as_str().unwrap().to_owned()
}

async fn put_credentials(app: &TestApp, coord: &str, id: &str, body: &Value) -> yixin_e2e::Reply {
    app.put(
        &format!("/v1/dispatch/nurses/{id}/credentials"),
        Some(coord),
        body,
    )
    .await
}

async fn verify(app: &TestApp, coord: &str, id: &str) -> yixin_e2e::Reply {
    app.post(
        &format!("/v1/dispatch/nurses/{id}/credentials/verify"),
        Some(coord),
        &json!({}),
    )
    .await
}

/// Connected, on shift, at `at`.
async fn on_shift(app: &TestApp, id: &str, at: (f64, f64)) -> WsClient {
    let token = app.token("nurse", id, "demo").await;
    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    ws.send_json(&json!({"type":"shift","state":"on"})).await;
    ws.expect_type("ack", WAIT).await;
    ws.send_json(&json!({"type":"location","lat":at.0,"lng":at.1,"accuracy_m":5,"ts":Utc::now()}))
        .await;
    ws
}

/// No `offer` frame within `wait`.
async fn no_offer(ws: &mut WsClient, wait: Duration, who: &str) {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match ws.next_json(left).await {
            Some(f) if f["type"] == "offer" => panic!("{who} was offered work: {f}"),
            Some(_) => continue,
            None => return,
        }
    }
}

/// Three nurses right at the door who must never be offered, and a
/// qualified one farther away who must.
struct Cast {
    expired: String,
    junior: String,
    unverified: String,
    qualified: String,
}

async fn cast(app: &TestApp, coord: &str) -> (Cast, Vec<WsClient>, WsClient) {
    let day = today();
    // An expired maternal & infant certificate (the jaundice test needs one).
    let expired = add(app, coord, "过期证").await;
    let mut body = qualifying_credentials();
    for c in body["certificates"].as_array_mut().unwrap() {
        if c["code"] == "maternal_infant" {
            c["issued_on"] = json!("2020-01-01");
            c["expires_on"] = json!((day - TimeDelta::days(1)).to_string());
        }
    }
    assert_eq!(
        put_credentials(app, coord, &expired, &body).await.status,
        StatusCode::OK
    );
    assert_eq!(verify(app, coord, &expired).await.status, StatusCode::OK);
    // Three years of practice.
    let junior = add(app, coord, "三年资").await;
    let mut body = qualifying_credentials();
    body["first_registered_on"] = json!((day - Months::new(36) - TimeDelta::days(10)).to_string());
    assert_eq!(
        put_credentials(app, coord, &junior, &body).await.status,
        StatusCode::OK
    );
    assert_eq!(verify(app, coord, &junior).await.status, StatusCode::OK);
    // Qualifying on paper, never verified.
    let unverified = add(app, coord, "未审核").await;
    let reply = put_credentials(app, coord, &unverified, &qualifying_credentials()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["verification"], "pending");
    // Qualified, 2 km away.
    let qualified = add(app, coord, "合格者").await;
    app.qualify(coord, &qualified).await;

    let mut near = Vec::new();
    for (i, id) in [&expired, &junior, &unverified].into_iter().enumerate() {
        near.push(on_shift(app, id, (HOME.0 + 0.0005 * (i as f64 + 1.0), HOME.1)).await);
    }
    let far = on_shift(app, &qualified, (HOME.0 + 0.018, HOME.1)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    (
        Cast {
            expired,
            junior,
            unverified,
            qualified,
        },
        near,
        far,
    )
}

async fn place(app: &TestApp) -> OrderId {
    let token = app.resident_token().await;
    let reply = app.order_jaundice_test(&token, HOME).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json["id"]
        .as_str()
        .unwrap()
        .parse()
        .map(OrderId)
        .unwrap()
}

async fn the_gate_holds(policy: &'static str) {
    let app = spawn(policy).await;
    let coord = coordinator(&app, "demo").await;
    let (cast, mut near, mut far) = cast(&app, &coord).await;
    let order = place(&app).await;
    let offer = far.expect_type("offer", WAIT).await;
    assert_eq!(offer["order_id"], order.to_string());
    for (ws, who) in near.iter_mut().zip(["expired", "junior", "unverified"]) {
        no_offer(ws, Duration::from_millis(300), who).await;
    }
    // The offer records which credentials qualified her.
    let offers = app
        .running()
        .backends
        .store
        .offers_for_order(order)
        .await
        .unwrap();
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].nurse_id.to_string(), cast.qualified);
    let q = offers[0]
        .qualified_by
        .as_ref()
        .expect("qualified_by recorded");
    assert_eq!(q.licence_no, "201211000001");
    assert!(q.practice_years >= 14, "{q:?}");
    assert_eq!(q.certificates, ["maternal_infant:T-maternal_infant"]);

    // The far nurse declines: the order is never offered to the others.
    far.send_json(&json!({"type":"decline","offer_id": offer["offer_id"]}))
        .await;
    for (ws, who) in near.iter_mut().zip(["expired", "junior", "unverified"]) {
        no_offer(ws, Duration::from_millis(1_500), who).await;
    }

    // A manual assignment of any of them is refused, naming why.
    for (id, why) in [
        (&cast.expired, "maternal_infant certificate is not valid"),
        (&cast.junior, "3 years of practice"),
        (&cast.unverified, "pending, not verified"),
    ] {
        let reply = app
            .post(
                &format!("/v1/dispatch/orders/{order}/assign"),
                Some(&coord),
                &json!({"nurse_id": id}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(reply.error_code(), "not_qualified");
        assert_eq!(reply.json["error"]["field"], "nurse_id");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{message}");
    }
    // The candidates list says the same.
    let list = app
        .get(
            &format!("/v1/dispatch/orders/{order}/candidates"),
            Some(&coord),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    for c in list.json["candidates"].as_array().unwrap() {
        let id = c["nurse_id"].as_str().unwrap();
        if id == cast.qualified {
            assert!(c["shortfalls"].as_array().unwrap().is_empty(), "{c}");
        } else {
            assert_eq!(c["reason"], "not_qualified", "{c}");
            assert!(!c["shortfalls"].as_array().unwrap().is_empty(), "{c}");
        }
    }
    // Verified now: the unverified nurse is offered the order at once.
    assert_eq!(
        verify(&app, &coord, &cast.unverified).await.status,
        StatusCode::OK
    );
    let offer = near[2].expect_type("offer", WAIT).await;
    assert_eq!(offer["order_id"], order.to_string());
    app.stop().await;
}

#[tokio::test]
async fn greedy_never_offers_an_unqualified_nurse() {
    the_gate_holds("greedy").await;
}

#[tokio::test]
async fn batch_never_offers_an_unqualified_nurse() {
    the_gate_holds("batch").await;
}

#[tokio::test]
async fn credentials_are_validated_verified_rejected_and_changes_need_verifying_again() {
    let app = spawn("greedy").await;
    let coord = app.token("coordinator", "coord-verify", "demo").await;
    let id = add(&app, &coord, "校验").await;
    let path = format!("/v1/dispatch/nurses/{id}/credentials");

    // Nothing entered yet.
    assert_eq!(
        app.get(&path, Some(&coord)).await.status,
        StatusCode::NOT_FOUND
    );
    let roster = app.get("/v1/dispatch/nurses", Some(&coord)).await;
    let me = roster
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap()
        .clone();
    assert!(me["verification"].is_null(), "{me}");

    let good = qualifying_credentials();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let tomorrow = (today() + TimeDelta::days(1)).to_string();
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&|b| b["licence_no"] = json!("12\u{0}34")),
            "licence_no",
        ),
        (
            with(&|b| b["licence_no"] = json!("9".repeat(41))),
            "licence_no",
        ),
        (with(&|b| b["licence_no"] = json!("   ")), "licence_no"),
        (with(&|b| b["title"] = json!("护师")), "title"),
        (
            with(&|b| b["first_registered_on"] = json!(tomorrow)),
            "first_registered_on",
        ),
        (
            with(&|b| b["first_registered_on"] = json!("2015-02-30")),
            "first_registered_on",
        ),
        (
            with(&|b| b["certificates"][1]["expires_on"] = json!("2019-01-01")),
            "certificates[1].expires_on",
        ),
        (
            with(&|b| b["certificates"][0]["code"] = json!("astrology")),
            "certificates[0].code",
        ),
        (
            with(&|b| b["certificates"][2]["number"] = json!("x".repeat(41))),
            "certificates[2].number",
        ),
        (
            with(&|b| b["certificates"][2]["number"] = json!("a\u{0}b")),
            "certificates[2].number",
        ),
        (
            with(&|b| b["certificates"][1]["code"] = json!("picc")),
            "certificates[1].code",
        ),
    ];
    for (body, field) in cases {
        let reply = put_credentials(&app, &coord, &id, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.text
        );
        assert_eq!(
            reply.json["error"]["field"], field,
            "{body}: {}",
            reply.text
        );
    }
    // Unknown fields are refused, not ignored.
    let reply = put_credentials(&app, &coord, &id, &with(&|b| b["colour"] = json!("red"))).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{}",
        reply.text
    );
    let reply = put_credentials(
        &app,
        &coord,
        &id,
        &with(&|b| b["certificates"][0]["colour"] = json!("red")),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert!(
        reply.json["error"]["field"]
            .as_str()
            .unwrap_or_default()
            .starts_with("certificates[0]"),
        "{}",
        reply.text
    );
    // Verifying or rejecting what is not there.
    assert_eq!(
        verify(&app, &coord, &id).await.status,
        StatusCode::NOT_FOUND
    );

    // Entered: pending; verified: who and when.
    let reply = put_credentials(&app, &coord, &id, &good).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["verification"], "pending");
    assert_eq!(reply.json["title_zh"], "主管护师");
    assert!(reply.json["practice_years"].as_u64().unwrap() >= 14);
    let reply = verify(&app, &coord, &id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["verification"], "verified");
    assert_eq!(reply.json["reviewed_by"], "coord-verify");
    assert!(reply.json["reviewed_at"].is_string());

    // A change needs verifying again.
    let reply = put_credentials(
        &app,
        &coord,
        &id,
        &with(&|b| b["title"] = json!("chief_nurse")),
    )
    .await;
    assert_eq!(reply.json["verification"], "pending");
    assert!(reply.json["reviewed_by"].is_null());

    // Rejected, with a reason (required, bounded, printable).
    let reject = format!("{path}/reject");
    for (reason, code) in [
        (json!(""), "required"),
        (json!("x".repeat(501)), "too_long"),
        (json!("a\u{0}"), "control_character"),
    ] {
        let reply = app
            .post(&reject, Some(&coord), &json!({"reason": reason}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(
            (reply.error_code(), reply.json["error"]["field"].as_str()),
            (code, Some("reason"))
        );
    }
    let reply = app
        .post(
            &reject,
            Some(&coord),
            &json!({"reason": "执业证书未在国家注册系统中找到"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["verification"], "rejected");
    assert_eq!(
        reply.json["reject_reason"],
        "执业证书未在国家注册系统中找到"
    );

    // Another organisation's coordinator does not see her; a nurse may not ask.
    let other = coordinator(&app, "other-org").await;
    assert_eq!(
        app.get(&path, Some(&other)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        put_credentials(&app, &other, &id, &good).await.status,
        StatusCode::NOT_FOUND
    );
    let nurse = app.token("nurse", &id, "demo").await;
    assert_eq!(
        app.get(&path, Some(&nurse)).await.status,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

#[tokio::test]
async fn certificates_expiring_within_30_days_are_listed() {
    let app = spawn("greedy").await;
    let coord = coordinator(&app, "demo").await;
    let id = add(&app, &coord, "将到期").await;
    let mut body = qualifying_credentials();
    body["certificates"][0]["expires_on"] = json!((today() + TimeDelta::days(12)).to_string());
    body["certificates"][1]["expires_on"] = json!((today() + TimeDelta::days(45)).to_string());
    assert_eq!(
        put_credentials(&app, &coord, &id, &body).await.status,
        StatusCode::OK
    );
    let reply = app
        .get("/v1/dispatch/credentials/expiring", Some(&coord))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let mine: Vec<&Value> = reply
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["nurse_id"] == id)
        .collect();
    assert_eq!(mine.len(), 1, "{}", reply.text);
    assert_eq!(mine[0]["days_left"], 12);
    let reply = app
        .get("/v1/dispatch/credentials/expiring?days=60", Some(&coord))
        .await;
    assert_eq!(
        reply
            .json
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["nurse_id"] == id)
            .count(),
        2
    );
    let reply = app
        .get("/v1/dispatch/credentials/expiring?days=0", Some(&coord))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let other = coordinator(&app, "other-org").await;
    let reply = app
        .get("/v1/dispatch/credentials/expiring", Some(&other))
        .await;
    assert!(
        reply
            .json
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["nurse_id"] != id)
    );
    app.stop().await;
}

#[tokio::test]
async fn every_read_of_an_address_and_every_credentials_change_is_audited() {
    let app = spawn("greedy").await;
    let coord = coordinator(&app, "demo").await;
    let id = add(&app, &coord, "审计").await;
    app.qualify(&coord, &id).await;
    let token = app.token("nurse", &id, "demo").await;
    // On shift over HTTP, then the order is offered and accepted over HTTP.
    let reply = app
        .post("/v1/nurse/shift", Some(&token), &json!({"state": "on"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app
        .post(
            "/v1/nurse/locations",
            Some(&token),
            &json!({"fixes": [{"lat": HOME.0, "lng": HOME.1, "accuracy_m": 5, "ts": Utc::now()}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let order = place(&app).await;
    let offer_id = {
        let until = std::time::Instant::now() + WAIT;
        loop {
            let offers = app.get("/v1/nurse/offers", Some(&token)).await;
            if let Some(o) = offers.json.as_array().and_then(|a| a.first()) {
                break o["offer_id"].as_str().unwrap().to_owned();
            }
            assert!(std::time::Instant::now() < until, "no offer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let reply = app
        .post(
            &format!("/v1/nurse/offers/{offer_id}/accept"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app.get("/v1/nurse/jobs", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // A phone that connects gets the job (with the address) in an `assigned` frame.
    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    let frame = ws.expect_type("assigned", WAIT).await;
    assert_eq!(frame["order_id"], order.to_string());
    // The coordinator reads the order's detail and the list.
    let reply = app
        .get(&format!("/v1/dispatch/orders/{order}"), Some(&coord))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app.get("/v1/dispatch/orders", Some(&coord)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let trail = app
        .get(&format!("/v1/dispatch/audit?subject={order}"), Some(&coord))
        .await;
    assert_eq!(trail.status, StatusCode::OK, "{}", trail.text);
    let rows = trail.json["items"].as_array().unwrap();
    let vias: Vec<String> = rows
        .iter()
        .filter(|r| r["actor_role"] == "nurse")
        .map(|r| {
            assert_eq!(r["action"], "read_address");
            assert_eq!(r["actor_sub"], id.as_str());
            assert!(
                r["client_addr"].as_str().unwrap().contains("127.0.0.1"),
                "{r}"
            );
            r["detail"]
                .as_str()
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    for via in ["http_accept", "http_jobs", "ws"] {
        assert!(vias.iter().any(|v| v == via), "{via} not audited: {vias:?}");
    }
    let coordinator_reads = rows
        .iter()
        .filter(|r| r["actor_role"] == "coordinator" && r["action"] == "read_address")
        .count();
    assert_eq!(coordinator_reads, 2, "{}", trail.text);
    // Newest first.
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    // The credentials' change and verification, by whom.
    let trail = app
        .get(&format!("/v1/dispatch/audit?subject={id}"), Some(&coord))
        .await;
    let actions: Vec<&str> = trail.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["credentials_verified", "credentials_changed"]);

    // Paged; the period filter works; bad paging is a 400.
    let page = app.get("/v1/dispatch/audit?limit=1", Some(&coord)).await;
    assert_eq!(page.json["items"].as_array().unwrap().len(), 1);
    let before = page.json["next_before"].as_i64().unwrap();
    let next = app
        .get(
            &format!("/v1/dispatch/audit?limit=1&before={before}"),
            Some(&coord),
        )
        .await;
    assert!(next.json["items"][0]["id"].as_i64().unwrap() < before);
    let future = (Utc::now() + TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let none = app
        .get(&format!("/v1/dispatch/audit?from={future}"), Some(&coord))
        .await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.text);
    assert!(none.json["items"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get("/v1/dispatch/audit?limit=0", Some(&coord))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Own organisation only; coordinators only.
    let other = coordinator(&app, "other-org").await;
    let theirs = app
        .get(&format!("/v1/dispatch/audit?subject={order}"), Some(&other))
        .await;
    assert!(theirs.json["items"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get("/v1/dispatch/audit", Some(&token)).await.status,
        StatusCode::FORBIDDEN
    );

    // Append-only: the database itself refuses to change or remove a row.
    use sea_orm::ConnectionTrait;
    let db = app.running().backends.store.connection();
    for sql in [
        "UPDATE audit_log SET action = 'nothing'",
        "DELETE FROM audit_log",
    ] {
        assert!(
            db.execute_unprepared(sql).await.is_err(),
            "{sql} went through"
        );
    }
    let still = app
        .get(&format!("/v1/dispatch/audit?subject={order}"), Some(&coord))
        .await;
    assert_eq!(still.json["items"].as_array().unwrap().len(), rows.len());
    ws.close().await;
    app.stop().await;
}
