//! Nurse safety and visit checks (issue 17): SOS reaches every coordinator
//! at once and escalates to the organisation's webhook when nobody
//! acknowledges; acknowledge-then-resolve; the lone-worker timer (missed
//! check-in, silent phone); the arrival geofence and its override; the
//! short-visit flag.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use yixin::Role;
use yixin_domain::{NurseId, OrderId, OrderStatus, OrgId};
use yixin_e2e::{
    AppOptions, CONSENT_BY, StatusCode, TestApp, WsClient, read_request, spawn_app_with,
};
use yixin_platform::Settings;
use yixin_platform::config::EscalationWebhook;
use yixin_store::OrderTransition;

const WAIT: Duration = Duration::from_secs(8);
const DOOR: (f64, f64) = (29.39, 106.32);
const ESCALATION_SECRET: &str = "the escalation webhook's secret, 32+ bytes";

/// `m` metres north of the door (1° of latitude ≈ 111.2 km).
fn north_of_door(m: f64) -> Value {
    json!({"lat": DOOR.0 + m / 111_195.0, "lng": DOOR.1, "accuracy_m": 10.0})
}

/// Automatic dispatch off (the tests give jobs themselves), safety settings as given.
async fn spawn(configure: impl FnOnce(&mut Settings) + Send + 'static) -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(move |s| {
            s.dispatch.auto = false;
            s.safety.scan_interval_ms = 200;
            configure(s);
        }),
    })
    .await
}

/// A qualified nurse of the demo organisation with every skill, and her token.
async fn nurse(app: &TestApp, phone: &str) -> (NurseId, String) {
    let (nurse, token) = app.stored_qualified_nurse("孙护士", phone).await;
    (nurse.id, token)
}

async fn coordinator(app: &TestApp, sub: &str) -> String {
    app.token("coordinator", sub, &app.settings.demo.org_id)
        .await
}

/// An order at the door, given to the nurse and en route.
async fn job_en_route(app: &TestApp, nurse: NurseId, token: &str) -> OrderId {
    let resident = app.resident_token().await;
    let placed = app.order_jaundice_test(&resident, DOOR).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    let order: OrderId = placed.json["id"]
        .as_str()
        .unwrap()
        .parse()
        .map(OrderId)
        .unwrap();
    app.running()
        .backends
        .store
        .transition_order(OrderTransition {
            nurse_id: Some(Some(nurse)),
            ..OrderTransition::new(
                order,
                vec![OrderStatus::Pending],
                OrderStatus::Assigned,
                Utc::now(),
            )
        })
        .await
        .unwrap();
    let reply = step(app, token, order, json!({"step": "en_route"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    order
}

async fn step(app: &TestApp, token: &str, order: OrderId, body: Value) -> yixin_e2e::Reply {
    app.post(
        &format!("/v1/nurse/orders/{order}/progress"),
        Some(token),
        &body,
    )
    .await
}

/// The coordinator's feed, past its `hello`.
async fn feed(app: &TestApp, token: &str) -> WsClient {
    let mut live = app.ws("/v1/dispatch/live", token).await;
    live.expect_type("hello", WAIT).await;
    live
}

/// The next `alarm` frame on a feed that satisfies `want`.
async fn alarm_frame(live: &mut WsClient, want: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + WAIT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let frame = live.expect_type("alarm", left).await;
        if want(&frame) {
            return frame;
        }
    }
}

/// One post the endpoint kept: its JSON body, signature header and raw body.
type Delivery = (Value, String, Vec<u8>);

/// A stand-in escalation endpoint: answers 503 to the first post (so the
/// sender must retry), 200 after; keeps each post's body and signature.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Delivery>>>,
    posts: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    async fn start() -> (Self, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/alarms", listener.local_addr().unwrap());
        let receiver = Receiver::default();
        let keep = receiver.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    if let Some(request) = read_request(&mut socket).await {
                        let (header, body) = (|n: &str| request.header(n), request.body.clone());
                        let n = keep.posts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let answer: &[u8] = if n == 0 {
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        } else {
                            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            keep.received.lock().await.push((
                                json,
                                header("x-yixin-signature"),
                                body,
                            ));
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        };
                        let _ = socket.write_all(answer).await;
                    }
                });
            }
        });
        (receiver, url)
    }
}

#[tokio::test]
async fn sos_reaches_every_coordinator_within_a_second_and_escalates_unacknowledged() {
    let (receiver, url) = Receiver::start().await;
    let app = spawn(move |s| {
        s.safety.escalate_after_secs = 1;
        s.safety.escalation_retry_ms = 100;
        s.safety.escalation_webhooks = vec![EscalationWebhook {
            org_id: s.demo.org_id.clone(),
            url,
        }];
        s.safety.escalation_secret = Some(SecretString::from(ESCALATION_SECRET));
    })
    .await;
    let (nurse_id, token) = nurse(&app, "13900003301").await;
    // Two coordinators of the organisation, and one of another.
    let mut first = feed(&app, &coordinator(&app, "coord-a").await).await;
    let mut second = feed(&app, &coordinator(&app, "coord-b").await).await;
    let other = app.token("coordinator", "coord-x", "other-org").await;
    let mut elsewhere = feed(&app, &other).await;

    let pressed = Instant::now();
    let raised = app
        .post(
            "/v1/nurse/sos",
            Some(&token),
            &json!({"location": {"lat": DOOR.0, "lng": DOOR.1, "accuracy_m": 12.0}, "note": "有人闹事"}),
        )
        .await;
    assert_eq!(raised.status, StatusCode::CREATED, "{}", raised.text);
    let id = raised.json["id"].as_str().unwrap().to_owned();
    for live in [&mut first, &mut second] {
        let frame = alarm_frame(live, |f| f["id"] == id.as_str()).await;
        let took = pressed.elapsed();
        assert!(took < Duration::from_secs(1), "the alarm took {took:?}");
        eprintln!("SOS on a coordinator's feed after {took:?}");
        assert_eq!(frame["kind"], "sos");
        assert_eq!(frame["state"], "open");
        assert_eq!(frame["nurse_id"], nurse_id.to_string());
        assert_eq!(frame["location"]["lat"], DOOR.0);
        assert_eq!(frame["note"], "有人闹事");
    }
    // Another organisation hears nothing of it.
    assert!(
        elsewhere
            .next_json(Duration::from_millis(500))
            .await
            .is_none_or(|f| f["type"] != "alarm")
    );
    // Pressing again while it is open answers the same alarm.
    let again = app.post("/v1/nurse/sos", Some(&token), &json!({})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json["id"], id.as_str());

    // Nobody acknowledges: after a second it goes to the webhook, signed,
    // retried past the receiver's first refusal.
    let until = Instant::now() + WAIT;
    let (body, signature, raw) = loop {
        if let Some(d) = receiver.received.lock().await.first().cloned() {
            break d;
        }
        assert!(Instant::now() < until, "no escalation arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["type"], "alarm_escalated");
    assert_eq!(body["alarm"]["id"], id.as_str());
    assert_eq!(body["nurse_name"], "孙护士");
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        signature,
        yixin_signin::sender::sign(ESCALATION_SECRET.as_bytes(), t, &raw)
    );
    // Recorded on the alarm (and told to the feed).
    let escalated = alarm_frame(&mut first, |f| f["escalation"] == "delivered").await;
    assert_eq!(escalated["id"], id.as_str());
    let list = app
        .get(
            "/v1/dispatch/alarms",
            Some(&coordinator(&app, "coord-a").await),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let mine = list.json.as_array().unwrap();
    assert_eq!(mine.len(), 1, "{}", list.text);
    assert_eq!(mine[0]["escalation"], "delivered");
    // Sent once, though the scan runs every 200 ms (one retry included).
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.posts.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(
        app.get("/v1/dispatch/alarms", Some(&other)).await.json,
        json!([])
    );
    app.stop().await;
}

/// An instance that claimed an alarm's escalation and died mid-delivery
/// left a claim with no outcome: once the claim's lease has run out, a
/// running instance claims the alarm again and escalates it. A claim still
/// within its lease is left to its holder.
#[tokio::test]
async fn an_escalation_abandoned_mid_delivery_is_sent_once_its_lease_runs_out() {
    use yixin_domain::safety::{Alarm, AlarmKind};

    let (receiver, url) = Receiver::start().await;
    let app = spawn(move |s| {
        s.safety.escalate_after_secs = 1;
        s.safety.escalation_retry_ms = 100;
        s.safety.escalation_webhooks = vec![EscalationWebhook {
            org_id: s.demo.org_id.clone(),
            url,
        }];
        s.safety.escalation_secret = Some(SecretString::from(ESCALATION_SECRET));
    })
    .await;
    let store = &app.running().backends.store;
    let (nurse_a, _) = nurse(&app, "13900003311").await;
    let (nurse_b, _) = nurse(&app, "13900003312").await;
    let org = OrgId::from(app.settings.demo.org_id.as_str());
    let now = Utc::now();
    let raise = |nurse: NurseId| {
        Alarm::raise(
            org.clone(),
            nurse,
            None,
            AlarmKind::Sos,
            None,
            None,
            None,
            now - chrono::TimeDelta::minutes(5),
        )
        .unwrap()
    };
    // Claimed two minutes ago by an instance that is gone (far past the
    // lease of one delivery), and one claimed just now by a live holder.
    let abandoned = raise(nurse_a);
    let held = raise(nurse_b);
    for (alarm, claimed_at) in [
        (&abandoned, now - chrono::TimeDelta::minutes(2)),
        (&held, now),
    ] {
        store.insert_alarm(alarm).await.unwrap();
        assert!(
            store
                .claim_alarm_escalation(
                    alarm.id,
                    claimed_at,
                    claimed_at - chrono::TimeDelta::hours(1)
                )
                .await
                .unwrap()
        );
    }

    let until = Instant::now() + WAIT;
    let body = loop {
        if let Some((body, _, _)) = receiver.received.lock().await.first().cloned() {
            break body;
        }
        assert!(
            Instant::now() < until,
            "the abandoned alarm was never escalated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["alarm"]["id"], abandoned.id.to_string());
    let until = Instant::now() + WAIT;
    loop {
        let current = store.org_alarm(&org, abandoned.id).await.unwrap().unwrap();
        if current.escalation.as_deref() == Some("delivered") {
            break;
        }
        assert!(Instant::now() < until, "the outcome was never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The held claim is its holder's while the lease runs (29 s by
    // default); the abandoned one went out once (its first post refused, retried).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let received = receiver.received.lock().await.clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(receiver.posts.load(std::sync::atomic::Ordering::SeqCst), 2);
    let held_now = store.org_alarm(&org, held.id).await.unwrap().unwrap();
    assert_eq!(held_now.escalation, None);
    app.stop().await;
}

#[tokio::test]
async fn an_alarm_is_acknowledged_then_resolved_with_a_note() {
    let app = spawn(|_| {}).await;
    let (_, token) = nurse(&app, "13900003302").await;
    let coord = coordinator(&app, "coord-a").await;
    let mut live = feed(&app, &coord).await;
    // SOS from the socket, off any job.
    let mut phone = app.ws("/v1/nurse/ws", &token).await;
    phone
        .send_json(&json!({"type": "sos", "lat": DOOR.0, "lng": DOOR.1}))
        .await;
    let ack = phone.expect_type("ack", WAIT).await;
    assert_eq!(ack["request"], "sos");
    assert_eq!(ack["status"], "open");
    let id = ack["id"].as_str().unwrap().to_owned();
    let told = phone.expect_type("alarm", WAIT).await;
    assert_eq!(told["alarm_id"], id.as_str());
    assert_eq!(told["state"], "open");
    alarm_frame(&mut live, |f| f["id"] == id.as_str()).await;

    let resolve = format!("/v1/dispatch/alarms/{id}/resolve");
    let ack_path = format!("/v1/dispatch/alarms/{id}/ack");
    // Not before it is acknowledged.
    let early = app
        .post(&resolve, Some(&coord), &json!({"note": "fine"}))
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.text);
    assert_eq!(early.error_code(), "alarm_not_acknowledged");

    let acked = app.post(&ack_path, Some(&coord), &json!({})).await;
    assert_eq!(acked.status, StatusCode::OK, "{}", acked.text);
    assert_eq!(acked.json["state"], "acknowledged");
    assert_eq!(acked.json["acknowledged_by"], "coord-a");
    let told = phone.expect_type("alarm", WAIT).await;
    assert_eq!(told["state"], "acknowledged");
    alarm_frame(&mut live, |f| f["state"] == "acknowledged").await;
    // A second coordinator's acknowledgement changes nothing.
    let other_coord = coordinator(&app, "coord-b").await;
    let twice = app.post(&ack_path, Some(&other_coord), &json!({})).await;
    assert_eq!(twice.status, StatusCode::OK, "{}", twice.text);
    assert_eq!(twice.json["acknowledged_by"], "coord-a");

    // A note is required.
    for body in [json!({}), json!({"note": "  "})] {
        let reply = app.post(&resolve, Some(&coord), &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(reply.json["error"]["field"], "note");
    }
    let done = app
        .post(
            &resolve,
            Some(&coord),
            &json!({"note": "电话联系，护士安全"}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.json["state"], "resolved");
    assert_eq!(done.json["resolution_note"], "电话联系，护士安全");
    assert_eq!(phone.expect_type("alarm", WAIT).await["state"], "resolved");
    let again = app
        .post(&resolve, Some(&coord), &json!({"note": "again"}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.error_code(), "alarm_resolved");
    // No longer open; still in the full list.
    let open = app.get("/v1/dispatch/alarms", Some(&coord)).await;
    assert_eq!(open.json, json!([]));
    let all = app.get("/v1/dispatch/alarms?state=all", Some(&coord)).await;
    assert_eq!(all.json.as_array().unwrap().len(), 1);
    // Another organisation's coordinator cannot touch it; a nurse neither.
    let outsider = app.token("coordinator", "coord-x", "other-org").await;
    let hidden = app.post(&ack_path, Some(&outsider), &json!({})).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let nurse_try = app.post(&ack_path, Some(&token), &json!({})).await;
    assert_eq!(nurse_try.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn arrived_500_m_away_is_refused_100_m_accepted_and_an_override_lets_it_through() {
    let app = spawn(|_| {}).await;
    let (nurse_id, token) = nurse(&app, "13900003303").await;
    let order = job_en_route(&app, nurse_id, &token).await;

    // No position sent and no fix known: refused.
    let blind = step(&app, &token, order, json!({"step": "arrived"})).await;
    assert_eq!(
        blind.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        blind.text
    );
    assert_eq!(blind.error_code(), "position_unknown");

    let far = step(
        &app,
        &token,
        order,
        json!({"step": "arrived", "location": north_of_door(500.0)}),
    )
    .await;
    assert_eq!(far.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", far.text);
    assert_eq!(far.error_code(), "too_far_from_address");
    assert_eq!(far.json["error"]["field"], "location");
    let message = far.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("500 m"), "{message}");
    // The latest fix counts when no position comes with the step.
    let mut phone = app.ws("/v1/nurse/ws", &token).await;
    phone.expect_type("assigned", WAIT).await;
    let at_500 = north_of_door(500.0);
    phone
        .send_json(
            &json!({"type": "location", "lat": at_500["lat"], "lng": at_500["lng"],
            "accuracy_m": 10.0, "ts": Utc::now()}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let by_fix = step(&app, &token, order, json!({"step": "arrived"})).await;
    assert_eq!(
        by_fix.error_code(),
        "too_far_from_address",
        "{}",
        by_fix.text
    );

    let near = step(
        &app,
        &token,
        order,
        json!({"step": "arrived", "location": north_of_door(100.0)}),
    )
    .await;
    assert_eq!(near.status, StatusCode::OK, "{}", near.text);
    assert_eq!(near.json["status"], "arrived");

    // A second job: the coordinator lets the arrival through from 500 m.
    let (second_nurse, second_token) = nurse(&app, "13900003304").await;
    let second = job_en_route(&app, second_nurse, &second_token).await;
    let refused = step(
        &app,
        &second_token,
        second,
        json!({"step": "arrived", "location": north_of_door(500.0)}),
    )
    .await;
    assert_eq!(refused.error_code(), "too_far_from_address");
    let coord = coordinator(&app, "coord-a").await;
    let overridden = app
        .post(
            &format!("/v1/dispatch/orders/{second}/arrival-override"),
            Some(&coord),
            &json!({"note": "小区门牌定位偏差"}),
        )
        .await;
    assert_eq!(overridden.status, StatusCode::OK, "{}", overridden.text);
    let through = step(
        &app,
        &second_token,
        second,
        json!({"step": "arrived", "location": north_of_door(500.0)}),
    )
    .await;
    assert_eq!(through.status, StatusCode::OK, "{}", through.text);
    // Audited.
    let trail = app
        .get(
            &format!("/v1/dispatch/audit?subject={second}"),
            Some(&coord),
        )
        .await;
    assert!(trail.text.contains("arrival_overridden"), "{}", trail.text);
    // Only a job on its way can be overridden.
    let late = app
        .post(
            &format!("/v1/dispatch/orders/{second}/arrival-override"),
            Some(&coord),
            &json!({}),
        )
        .await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.text);
    app.stop().await;
}

#[tokio::test]
async fn a_missed_check_in_raises_an_alarm() {
    let app = spawn(|s| {
        s.safety.check_in_grace_secs = 1;
        s.safety.check_in_answer_secs = 1;
    })
    .await;
    let (nurse_id, token) = nurse(&app, "13900003305").await;
    let coord = coordinator(&app, "coord-a").await;
    let mut live = feed(&app, &coord).await;
    let order = job_en_route(&app, nurse_id, &token).await;
    let mut phone = app.ws("/v1/nurse/ws", &token).await;
    phone.expect_type("assigned", WAIT).await;
    let arrived = step(
        &app,
        &token,
        order,
        json!({"step": "arrived", "location": north_of_door(20.0)}),
    )
    .await;
    assert_eq!(arrived.status, StatusCode::OK, "{}", arrived.text);
    // Checking in re-arms the timer: due a second later (the grace).
    phone
        .send_json(&json!({"type": "check_in", "order_id": order.to_string()}))
        .await;
    let ack = phone.expect_type("ack", WAIT).await;
    assert_eq!(ack["request"], "check_in");
    // The phone is asked…
    let due = phone.expect_type("check_in_due", WAIT).await;
    assert_eq!(due["order_id"], order.to_string());
    // …does not answer: an alarm, once.
    let frame = alarm_frame(&mut live, |f| f["kind"] == "missed_check_in").await;
    assert_eq!(frame["order_id"], order.to_string());
    assert_eq!(frame["nurse_id"], nurse_id.to_string());
    assert_eq!(
        phone.expect_type("alarm", WAIT).await["kind"],
        "missed_check_in"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let open = app.get("/v1/dispatch/alarms", Some(&coord)).await;
    let missed = open
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "missed_check_in")
        .count();
    assert_eq!(missed, 1, "{}", open.text);
    // The HTTP check-in works too, for the nurse's own visit only.
    let http = app
        .post(
            &format!("/v1/nurse/orders/{order}/check-in"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(http.status, StatusCode::OK, "{}", http.text);
    assert!(http.json["next_check_in_due"].is_string());
    let (_, stranger) = nurse(&app, "13900003306").await;
    let theirs = app
        .post(
            &format!("/v1/nurse/orders/{order}/check-in"),
            Some(&stranger),
            &json!({}),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_silent_phone_during_a_visit_raises_an_alarm() {
    let app = spawn(|s| {
        s.safety.silent_after_secs = 1;
    })
    .await;
    let (nurse_id, token) = nurse(&app, "13900003307").await;
    let coord = coordinator(&app, "coord-a").await;
    let mut live = feed(&app, &coord).await;
    let order = job_en_route(&app, nurse_id, &token).await;
    let arrived = step(
        &app,
        &token,
        order,
        json!({"step": "arrived", "location": north_of_door(20.0)}),
    )
    .await;
    assert_eq!(arrived.status, StatusCode::OK, "{}", arrived.text);
    let started = Instant::now();
    // No fix, no check-in from here on.
    let frame = alarm_frame(&mut live, |f| f["kind"] == "silent_phone").await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(frame["order_id"], order.to_string());
    assert_eq!(frame["state"], "open");
    app.stop().await;
}

#[tokio::test]
async fn a_visit_under_half_the_services_duration_is_flagged_for_review() {
    let app = spawn(|_| {}).await;
    let (nurse_id, token) = nurse(&app, "13900003308").await;
    let coord = coordinator(&app, "coord-a").await;
    let order = job_en_route(&app, nurse_id, &token).await;
    for body in [
        json!({"step": "arrived", "location": north_of_door(20.0)}),
        json!({"step": "started", "consent_by": CONSENT_BY}),
    ] {
        let reply = step(&app, &token, order, body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let record = app.submit_jaundice_record(&token, &order.to_string()).await;
    assert_eq!(record.status, StatusCode::CREATED, "{}", record.text);
    let done = step(&app, &token, order, json!({"step": "completed"})).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);

    let flags = app.get("/v1/dispatch/visit-flags", Some(&coord)).await;
    assert_eq!(flags.status, StatusCode::OK, "{}", flags.text);
    let list = flags.json.as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", flags.text);
    assert_eq!(list[0]["order_id"], order.to_string());
    assert_eq!(list[0]["flag"], "short_visit");
    assert_eq!(list[0]["visit_minutes"], 0);

    let clear = format!("/v1/dispatch/orders/{order}/clear-flag");
    let bare = app.post(&clear, Some(&coord), &json!({})).await;
    assert_eq!(
        bare.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bare.text
    );
    assert_eq!(bare.json["error"]["field"], "note");
    let cleared = app
        .post(
            &clear,
            Some(&coord),
            &json!({"note": "家属确认服务完整，仪器读数快"}),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT, "{}", cleared.text);
    let after = app.get("/v1/dispatch/visit-flags", Some(&coord)).await;
    assert_eq!(after.json, json!([]));
    let twice = app
        .post(&clear, Some(&coord), &json!({"note": "again"}))
        .await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND);
    app.stop().await;
}
