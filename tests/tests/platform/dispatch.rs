//! Automatic dispatch end to end: an order placed by a resident reaches the
//! nearest qualified nurse's phone as an offer; declines and lapses go to
//! the next nurse; no double booking across instances; escalation.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use yixin::Role;
use yixin_domain::{OfferStatus, OrderId, OrderStatus};
use yixin_e2e::{AppOptions, Backend, StatusCode, TestApp, WsClient, spawn_app_with};
use yixin_platform::Settings;

pub(crate) const WAIT: Duration = Duration::from_secs(8);
pub(crate) const HOME: (f64, f64) = (29.39, 106.32);

async fn spawn(configure: impl FnOnce(&mut Settings) + Send + 'static) -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(move |s| {
            s.dispatch.retry_secs = 1;
            configure(s);
        }),
    })
    .await
}

/// A nurse added through the roster API, connected, on shift, at `at`.
pub(crate) async fn nurse_at(app: &TestApp, at: (f64, f64)) -> (String, WsClient) {
    let coordinator = app.token("coordinator", "coord", "demo").await;
    let id = app.qualified_nurse(&coordinator, &json!({"name": "周护士", "phone": "13700001111", "skills": ["neonatal", "wound_care"]})).await;
    let token = app.token("nurse", &id, "demo").await;
    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    ws.send_json(&json!({"type":"shift","state":"on"})).await;
    ws.expect_type("ack", WAIT).await;
    ws.send_json(&json!({"type":"location","lat":at.0,"lng":at.1,"accuracy_m":5,"ts":Utc::now()}))
        .await;
    (id, ws)
}

pub(crate) async fn place(app: &TestApp) -> (OrderId, String) {
    let token = app.resident_token().await;
    let reply = app.order_jaundice_test(&token, HOME).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    (
        reply.json["id"]
            .as_str()
            .unwrap()
            .parse()
            .map(OrderId)
            .unwrap(),
        token,
    )
}

/// Waits until the dispatcher's fleet has had time to hear of the nurses.
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

pub(crate) async fn offer_for(ws: &mut WsClient, order: OrderId) -> Value {
    let frame = ws.expect_type("offer", WAIT).await;
    assert_eq!(frame["order_id"], order.to_string());
    frame
}

#[tokio::test]
async fn an_order_is_offered_to_the_nearest_qualified_nurse_who_accepts() {
    let app = spawn(|_| {}).await;
    let (near, mut near_ws) = nurse_at(&app, (29.392, 106.321)).await;
    let (_far, mut far_ws) = nurse_at(&app, (29.41, 106.33)).await;
    settle().await;
    let (order, resident) = place(&app).await;
    let offer = offer_for(&mut near_ws, order).await;
    assert!(offer["eta_min"].as_u64().unwrap() <= 5, "{offer}");
    assert!(
        far_ws.next_json(Duration::from_millis(500)).await.is_none(),
        "one offer at a time"
    );
    near_ws
        .send_json(&json!({"type":"accept","offer_id": offer["offer_id"]}))
        .await;
    near_ws.expect_type("assigned", WAIT).await;
    let seen = app
        .get(&format!("/v1/orders/{order}"), Some(&resident))
        .await;
    assert_eq!(seen.json["status"], "assigned");
    assert_eq!(seen.json["nurse"]["id"], near);
    assert!(
        seen.json["eta"].is_string(),
        "the resident sees an ETA: {}",
        seen.json
    );
    app.stop().await;
}

#[tokio::test]
async fn a_decline_goes_to_the_next_nurse() {
    let app = spawn(|_| {}).await;
    let (_, mut first) = nurse_at(&app, (29.391, 106.3205)).await;
    let (second_id, mut second) = nurse_at(&app, (29.40, 106.33)).await;
    settle().await;
    let (order, _) = place(&app).await;
    let offer = offer_for(&mut first, order).await;
    first
        .send_json(&json!({"type":"decline","offer_id": offer["offer_id"],"reason":"在忙"}))
        .await;
    first.expect_type("ack", WAIT).await;
    let next = offer_for(&mut second, order).await;
    assert_ne!(next["offer_id"], offer["offer_id"]);
    let offers = app
        .running()
        .backends
        .store
        .offers_for_order(order)
        .await
        .unwrap();
    assert_eq!(offers.len(), 2);
    assert_eq!(offers[0].status, OfferStatus::Declined);
    assert_eq!(offers[1].nurse_id.to_string(), second_id);
    app.stop().await;
}

#[tokio::test]
async fn a_lapsed_offer_goes_to_the_next_nurse() {
    let app = spawn(|s| s.dispatch.offer_ttl_secs = 1).await;
    let (_, mut first) = nurse_at(&app, (29.391, 106.3205)).await;
    let (_, mut second) = nurse_at(&app, (29.40, 106.33)).await;
    settle().await;
    let (order, _) = place(&app).await;
    let offer = offer_for(&mut first, order).await;
    assert_eq!(
        first.expect_type("offer_closed", WAIT).await["reason"],
        "expired"
    );
    offer_for(&mut second, order).await;
    let offers = app
        .running()
        .backends
        .store
        .offers_for_order(order)
        .await
        .unwrap();
    assert_eq!(
        offers[0].id.to_string(),
        offer["offer_id"].as_str().unwrap()
    );
    assert_eq!(offers[0].status, OfferStatus::Expired);
    app.stop().await;
}

#[tokio::test]
async fn an_order_no_one_can_reach_in_time_is_escalated_and_still_offered() {
    let app = spawn(|s| s.dispatch.escalate_after_secs = 0).await;
    // About 15 km away: more than 30 minutes at the default speed.
    let (_, mut far) = nurse_at(&app, (29.30, 106.20)).await;
    settle().await;
    let (order, resident) = place(&app).await;
    let offer = offer_for(&mut far, order).await;
    assert!(offer["eta_min"].as_u64().unwrap() > 30, "{offer}");
    let seen = app
        .get(&format!("/v1/orders/{order}"), Some(&resident))
        .await;
    let timeline: Vec<&str> = seen.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert!(timeline.contains(&"escalated"), "{timeline:?}");
    let eta = chrono::DateTime::parse_from_rfc3339(seen.json["eta"].as_str().unwrap()).unwrap();
    let promised =
        chrono::DateTime::parse_from_rfc3339(seen.json["promised_by"].as_str().unwrap()).unwrap();
    assert!(eta > promised, "the honest ETA is past the promise");
    app.stop().await;
}

#[tokio::test]
async fn two_dispatchers_on_one_stream_offer_every_order_once() {
    let first = spawn(|_| {}).await;
    if first.backend != Backend::Postgres {
        eprintln!("skipped on the embedded backend: needs a shared database and Redis");
        return;
    }
    let shared = first.settings.clone();
    let second = spawn(move |s| {
        s.database.url = shared.database.url.clone();
        s.redis.key_prefix = shared.redis.key_prefix.clone();
        s.auth.jwt_secret = shared.auth.jwt_secret.clone();
    })
    .await;
    let mut phones = Vec::new();
    for i in 0..6 {
        // Phones on both instances.
        let app = if i % 2 == 0 { &first } else { &second };
        phones.push(nurse_at(app, (29.38 + 0.004 * f64::from(i), 106.31)).await);
    }
    settle().await;
    let mut orders = Vec::new();
    for i in 0..6 {
        let app = if i % 2 == 0 { &first } else { &second };
        orders.push(place(app).await.0);
    }
    let store = first.running().backends.store.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut offered = 0;
        for o in &orders {
            let offers = store.offers_for_order(*o).await.unwrap();
            assert!(
                offers.len() <= 1,
                "order {o} offered {} times",
                offers.len()
            );
            offered += offers.len();
        }
        if offered == orders.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {offered} of {} orders offered",
            orders.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And no nurse holds two.
    let mut nurses = std::collections::HashSet::new();
    for o in &orders {
        let offers = store.offers_for_order(*o).await.unwrap();
        assert!(nurses.insert(offers[0].nurse_id), "a nurse got two offers");
    }
    drop(phones);
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn a_dispatcher_killed_with_an_offer_out_still_gets_the_order_done() {
    let mut first = spawn(|_| {}).await;
    if first.backend != Backend::Postgres {
        eprintln!("skipped on the embedded backend: needs a shared database and Redis");
        return;
    }
    let shared = first.settings.clone();
    let (nurse, mut ws) = nurse_at(&first, HOME).await;
    settle().await;
    let (order, resident) = place(&first).await;
    let offer = offer_for(&mut ws, order).await;
    // The instance that made the offer goes away (its socket with it).
    first.stop_platform().await;
    let second = spawn(move |s| {
        s.database.url = shared.database.url.clone();
        s.redis.key_prefix = shared.redis.key_prefix.clone();
        s.auth.jwt_secret = shared.auth.jwt_secret.clone();
    })
    .await;
    let token = second.token("nurse", &nurse, "demo").await;
    let mut ws = second.ws("/v1/nurse/ws", &token).await;
    // The reconnecting phone gets its live offer again and accepts it.
    assert_eq!(
        ws.expect_type("offer", WAIT).await["offer_id"],
        offer["offer_id"]
    );
    ws.send_json(&json!({"type":"accept","offer_id": offer["offer_id"]}))
        .await;
    ws.expect_type("assigned", WAIT).await;
    for step in ["en_route", "arrived", "started", "completed"] {
        if step == "completed" {
            let reply = second
                .submit_jaundice_record(&token, &order.to_string())
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        }
        ws.send_json(&yixin_e2e::progress_frame(&order.to_string(), step))
            .await;
        ws.expect_type("ack", WAIT).await;
    }
    let seen = second
        .get(&format!("/v1/orders/{order}"), Some(&resident))
        .await;
    assert_eq!(seen.json["status"], OrderStatus::Completed.as_str());
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn the_batch_policy_offers_each_window() {
    offers_each_window("batch").await;
}

/// `dispatch.policy = "risk"`: the batch flow with the risk objective.
#[tokio::test]
async fn the_risk_policy_offers_each_window() {
    offers_each_window("risk").await;
}

async fn offers_each_window(policy: &'static str) {
    let app = spawn(|s| {
        s.dispatch.policy = policy.to_owned();
        s.dispatch.batch_window_ms = 300;
    })
    .await;
    let (a, mut a_ws) = nurse_at(&app, (29.391, 106.3205)).await;
    let (b, mut b_ws) = nurse_at(&app, (29.40, 106.33)).await;
    settle().await;
    let (first, _) = place(&app).await;
    let (second, _) = place(&app).await;
    // Two orders at the same door, two nurses: one offer each.
    let got_a = a_ws.expect_type("offer", WAIT).await;
    let got_b = b_ws.expect_type("offer", WAIT).await;
    let mut orders = vec![
        got_a["order_id"].as_str().unwrap().to_owned(),
        got_b["order_id"].as_str().unwrap().to_owned(),
    ];
    orders.sort();
    let mut expected = vec![first.to_string(), second.to_string()];
    expected.sort();
    assert_eq!(orders, expected);
    assert_ne!(a, b);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_dispatch_setting_stops_start_up() {
    let mut settings = Settings::default();
    settings.dispatch.policy = "fastest".to_owned();
    settings.database.data_dir = tempfile::tempdir().unwrap().keep();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = match yixin::Yixin::start(settings, Role::All, listener).await {
        Ok(_) => panic!("started with dispatch.policy = fastest"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("dispatch.policy"), "{error}");
}
