//! The nurse's side: the phone socket, fixes and presence, offers and their
//! atomic claim, visit steps, and the HTTP equivalents.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use yixin::Role;
use yixin_domain::{GeoPoint, Nurse, NurseId, Offer, OrderId, OrderStatus};
use yixin_e2e::{AppOptions, Backend, StatusCode, TestApp, WsClient, spawn_app_with};
use yixin_store::OrderTransition;

const WAIT: Duration = Duration::from_secs(5);

/// The platform with automatic dispatch off: these tests make the offers
/// themselves, as the dispatcher would.
async fn spawn() -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(|s| s.dispatch.auto = false),
    })
    .await
}
const HERE: (f64, f64) = (29.39, 106.32);

/// A nurse on the demo roster holding every skill the catalogue asks for
/// jaundice tests; returns the nurse and a token for them.
async fn rostered_nurse(app: &TestApp) -> (Nurse, String) {
    app.stored_qualified_nurse("李护士", "13900001111").await
}

async fn place_order(app: &TestApp) -> (OrderId, String) {
    let token = app.resident_token().await;
    let reply = app.order_jaundice_test(&token, HERE).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.json["id"]
        .as_str()
        .unwrap()
        .parse()
        .map(OrderId)
        .unwrap();
    (id, token)
}

/// What the dispatcher does: records an offer of the order to the nurse
/// (order `pending` → `offered`) and pushes it to the nurse's phone.
async fn offer(app: &TestApp, order: OrderId, nurse: NurseId, ttl: TimeDelta) -> Offer {
    let store = &app.running().backends.store;
    let now = Utc::now();
    let offer = Offer::new(order, nurse, now, ttl, 12, 2_400);
    store
        .transition_order(OrderTransition::new(
            order,
            vec![OrderStatus::Pending],
            OrderStatus::Offered,
            now,
        ))
        .await
        .unwrap();
    store.insert_offer(&offer).await.unwrap();
    let placed = store.get_order(order).await.unwrap().unwrap();
    let details = yixin_contracts::offer_details(
        &store.catalog().await.unwrap(),
        &store.service_areas(&placed.org_id).await.unwrap(),
        &placed,
    );
    let push = yixin_contracts::offer_to_nurse(&offer, &placed, &details);
    app.running()
        .backends
        .queue
        .broadcast(&push.channel, &push.payload)
        .await
        .unwrap();
    offer
}

async fn on_shift(app: &TestApp, token: &str) -> WsClient {
    let mut ws = app.ws("/v1/nurse/ws", token).await;
    ws.send_json(&json!({"type": "shift", "state": "on"})).await;
    let ack = ws.expect_type("ack", WAIT).await;
    assert_eq!(ack["status"], "on");
    ws
}

fn fix(lat: f64, lng: f64, ago_ms: i64) -> Value {
    let ts = Utc::now() - TimeDelta::milliseconds(ago_ms);
    json!({"type": "location", "lat": lat, "lng": lng, "accuracy_m": 8.0, "ts": ts})
}

async fn eventually<F: Fn() -> bool>(what: &str, check: F) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 5 s");
}

fn candidates(app: &TestApp, at: (f64, f64)) -> Vec<NurseId> {
    let fleet = app.running().tracking.fleet();
    let fleet = fleet.read().unwrap();
    fleet
        .candidates(
            GeoPoint::new(at.0, at.1).unwrap(),
            10,
            10_000.0,
            // No skill; the gate as the pilot rules set it (the nurses here
            // have verified, qualifying credentials).
            &yixin_dispatch_core::Need {
                skills: Vec::new(),
                requirements: Default::default(),
                day: yixin_dispatch_core::visit_day(Utc::now()),
            },
            &Default::default(),
        )
        .into_iter()
        .map(|n| n.key)
        .collect()
}

#[tokio::test]
async fn only_rostered_nurses_connect() {
    let app = spawn().await;
    let resident = app.resident_token().await;
    assert_eq!(app.try_ws("/v1/nurse/ws", &resident).await.err(), Some(403));
    let stranger = app
        .token("nurse", &uuid::Uuid::new_v4().to_string(), "demo")
        .await;
    assert_eq!(app.try_ws("/v1/nurse/ws", &stranger).await.err(), Some(403));
    let reply = app.get("/v1/nurse/offers", Some(&stranger)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "forbidden");
    // A rostered nurse of another organisation is not this one's.
    let (nurse, _) = rostered_nurse(&app).await;
    let other_org = app
        .token("nurse", &nurse.id.to_string(), "other-hospital")
        .await;
    assert_eq!(
        app.try_ws("/v1/nurse/ws", &other_org).await.err(),
        Some(403)
    );
    assert_eq!(
        app.get("/v1/nurse/jobs", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn fixes_reach_the_index_the_shared_board_and_the_trail() {
    let app = spawn().await;
    let (nurse, token) = rostered_nurse(&app).await;
    let mut ws = on_shift(&app, &token).await;
    ws.send_json(&fix(29.391, 106.321, 100)).await;
    eventually("indexed", || candidates(&app, HERE) == vec![nurse.id]).await;

    // An older fix is ignored: the position stays.
    ws.send_json(&fix(29.30, 106.20, 60_000)).await;
    // A fix from more than a minute in the future is refused, naming the field.
    let ahead = Utc::now() + TimeDelta::seconds(120);
    ws.send_json(&json!({"type":"location","lat":29.39,"lng":106.32,"accuracy_m":5,"ts":ahead}))
        .await;
    let error = ws.expect_type("error", WAIT).await;
    assert_eq!(error["code"], "invalid_fix");
    assert_eq!(error["field"], "ts");
    {
        let fleet = app.running().tracking.fleet();
        let fleet = fleet.read().unwrap();
        let last = fleet.get(&nurse.id).unwrap().last_fix.unwrap();
        assert!((last.point.lat() - 29.391).abs() < 1e-9);
    }

    // Latest position shared (Redis in production), with its H3 cell.
    let positions = app.running().backends.positions.clone();
    let id = nurse.id.to_string();
    let mut shared = None;
    for _ in 0..50 {
        shared = positions
            .latest(std::slice::from_ref(&id))
            .await
            .unwrap()
            .remove(0);
        if shared.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shared = shared.expect("latest position shared");
    assert!((shared.lat - 29.391).abs() < 1e-9);
    assert_eq!(
        positions.nurses_in_cell(shared.cell).await.unwrap(),
        vec![id.clone()]
    );
    assert!(
        positions
            .trail(10)
            .await
            .unwrap()
            .iter()
            .any(|r| r.nurse_id == id)
    );

    // The trail reaches the database in batches.
    let store = app.running().backends.store.clone();
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = store
            .locations(nurse.id, Utc::now() - TimeDelta::hours(1), 10)
            .await
            .unwrap();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows.len(), 1, "one sampled fix so far");
    assert!((rows[0].location.lat() - 29.391).abs() < 1e-9);

    // Off shift: no longer a candidate, and gone from the shared board.
    ws.send_json(&json!({"type":"shift","state":"off"})).await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "off");
    assert!(candidates(&app, HERE).is_empty());
    assert!(positions.latest(&[id]).await.unwrap()[0].is_none());
    app.stop().await;
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_socket_stays_open() {
    let app = spawn().await;
    let (_, token) = rostered_nurse(&app).await;
    let mut ws = on_shift(&app, &token).await;
    for (text, code) in [
        ("{not json", "bad_frame"),
        ("[1,2,3]", "bad_frame"),
        (r#"{"type":"teleport","to":"mars"}"#, "unknown_frame"),
        (r#"{"type":"shift","state":"maybe"}"#, "invalid_frame"),
        (r#"{"type":"accept"}"#, "invalid_frame"),
        (r#"{"type":"accept","offer_id":"not-a-uuid"}"#, "invalid_id"),
        (
            r#"{"type":"location","lat":95,"lng":106.3,"accuracy_m":5,"ts":"2026-01-01T00:00:00Z"}"#,
            "invalid_fix",
        ),
        (
            r#"{"type":"progress","order_id":"00000000-0000-0000-0000-000000000000","step":"arrived"}"#,
            "job_not_found",
        ),
    ] {
        assert!(ws.send_text(text).await);
        let error = ws.expect_type("error", WAIT).await;
        assert_eq!(error["code"], code, "{text}");
    }
    assert!(ws.send_binary(vec![0, 159, 146, 150]).await);
    assert_eq!(ws.expect_type("error", WAIT).await["code"], "bad_frame");
    // Still open and working.
    ws.send_json(&json!({"type":"shift","state":"on"})).await;
    assert_eq!(ws.expect_type("ack", WAIT).await["request"], "shift");
    app.stop().await;
}

#[tokio::test]
async fn an_oversize_frame_closes_with_1009_and_a_flood_with_1008() {
    let app = spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(|s| {
            s.dispatch.auto = false;
            s.tracking.frames_per_second = 5;
            s.tracking.frames_burst = 10;
        }),
    })
    .await;
    let (_, token) = rostered_nurse(&app).await;
    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    let huge = format!(
        r#"{{"type":"decline","offer_id":"x","reason":"{}"}}"#,
        "a".repeat(40_000)
    );
    ws.send_text(&huge).await;
    assert_eq!(ws.close_code(WAIT).await, Some(1009));

    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    for _ in 0..40 {
        if !ws.send_text(&fix(29.39, 106.32, 0).to_string()).await {
            break;
        }
    }
    assert_eq!(ws.close_code(WAIT).await, Some(1008));
    // The service is fine: another connection works.
    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    ws.send_json(&json!({"type":"shift","state":"on"})).await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "on");
    app.stop().await;
}

#[tokio::test]
async fn the_newest_connection_wins() {
    let app = spawn().await;
    let (_, token) = rostered_nurse(&app).await;
    let mut first = app.ws("/v1/nurse/ws", &token).await;
    let mut second = app.ws("/v1/nurse/ws", &token).await;
    assert_eq!(first.close_code(WAIT).await, Some(4001));
    second
        .send_json(&json!({"type":"shift","state":"on"}))
        .await;
    assert_eq!(second.expect_type("ack", WAIT).await["status"], "on");
    app.stop().await;
}

#[tokio::test]
async fn an_offer_shows_no_address_and_the_winner_gets_it() {
    let app = spawn().await;
    let (nurse, token) = rostered_nurse(&app).await;
    let mut ws = on_shift(&app, &token).await;
    ws.send_json(&fix(29.391, 106.321, 0)).await;
    let (order, resident) = place_order(&app).await;
    let made = offer(&app, order, nurse.id, TimeDelta::seconds(30)).await;

    let frame = ws.expect_type("offer", WAIT).await;
    assert_eq!(frame["offer_id"], made.id.to_string());
    assert_eq!(frame["order_id"], order.to_string());
    assert_eq!(frame["service_code"], "infant_jaundice_test");
    assert_eq!(frame["distance_m"], 2_400);
    assert_eq!(frame["eta_min"], 12);
    let text = frame.to_string();
    assert!(
        !text.contains("福城大道")
            && !text.contains("13812345678")
            && frame.get("location").is_none()
    );
    let area: h3o::CellIndex = frame["area"].as_str().unwrap().parse().unwrap();
    assert_eq!(area.resolution(), h3o::Resolution::Seven);
    // The service in words and the area's name, for people.
    let catalog = app.running().backends.store.catalog().await.unwrap();
    let service = catalog.service("infant_jaundice_test").unwrap();
    assert_eq!(frame["service"]["code"], "infant_jaundice_test");
    assert_eq!(frame["service"]["name_zh"], service.name_zh.as_str());
    assert_eq!(frame["service"]["name_en"], service.name_en.as_str());
    assert_eq!(frame["place"], "双福街道 Shuangfu");
    let listed = app.get("/v1/nurse/offers", Some(&token)).await;
    assert_eq!(listed.json[0]["service"], frame["service"]);
    assert_eq!(listed.json[0]["place"], frame["place"]);
    // While it is live the nurse is not a candidate for anything else.
    assert!(candidates(&app, HERE).is_empty());

    ws.send_json(&json!({"type":"accept","offer_id": made.id.to_string()}))
        .await;
    let assigned = ws.expect_type("assigned", WAIT).await;
    assert_eq!(assigned["order_id"], order.to_string());
    assert_eq!(assigned["address"]["text"], "双福街道 福城大道 88 号");
    assert_eq!(assigned["contact"]["phone"], "13812345678");
    assert_eq!(assigned["location"]["lat"], HERE.0);

    let seen = app
        .get(&format!("/v1/orders/{order}"), Some(&resident))
        .await;
    assert_eq!(seen.json["status"], "assigned");
    assert_eq!(seen.json["nurse"]["id"], nurse.id.to_string());
    // Accepting again is answered the same (a phone may retry).
    let again = app
        .post(
            &format!("/v1/nurse/offers/{}/accept", made.id),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    // The accept is recorded for the dispatcher.
    let offer_row = app
        .running()
        .backends
        .store
        .get_offer(made.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offer_row.status, yixin_domain::OfferStatus::Accepted);
    app.stop().await;
}

#[tokio::test]
async fn accepting_after_the_deadline_is_offer_closed_expired() {
    let app = spawn().await;
    let (nurse, token) = rostered_nurse(&app).await;
    let mut ws = on_shift(&app, &token).await;
    let (order, _) = place_order(&app).await;
    let made = offer(&app, order, nurse.id, TimeDelta::milliseconds(800)).await;
    assert_eq!(
        ws.expect_type("offer", WAIT).await["offer_id"],
        made.id.to_string()
    );
    // The phone is told when the deadline passes…
    let closed = ws.expect_type("offer_closed", WAIT).await;
    assert_eq!(closed["reason"], "expired");
    // …and an accept after it loses.
    ws.send_json(&json!({"type":"accept","offer_id": made.id.to_string()}))
        .await;
    let closed = ws.expect_type("offer_closed", WAIT).await;
    assert_eq!(closed["offer_id"], made.id.to_string());
    assert_eq!(closed["reason"], "expired");
    let reply = app
        .post(
            &format!("/v1/nurse/offers/{}/accept", made.id),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.error_code(), "offer_expired");
    let order_now = app
        .running()
        .backends
        .store
        .get_order(order)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order_now.status, OrderStatus::Offered);
    assert_eq!(order_now.nurse_id, None);
    app.stop().await;
}

#[tokio::test]
async fn a_second_claimant_gets_taken() {
    let app = spawn().await;
    let (first, first_token) = rostered_nurse(&app).await;
    let (second, _) = rostered_nurse(&app).await;
    let mut ws = on_shift(&app, &first_token).await;
    let (order, _) = place_order(&app).await;
    let made = offer(&app, order, first.id, TimeDelta::seconds(30)).await;
    ws.expect_type("offer", WAIT).await;
    // A coordinator assigns the order to someone else meanwhile.
    let store = &app.running().backends.store;
    let (assigned, withdrawn) = store
        .assign_order(order, second.id, Utc::now(), None, false, |o, from| {
            Some(yixin_contracts::status_changed(o, from, Utc::now()))
        })
        .await
        .unwrap();
    assert_eq!(assigned.nurse_id, Some(second.id));
    assert_eq!(withdrawn.map(|o| o.id), Some(made.id));
    // The first nurse's phone hears of it (through the order's channel)…
    let closed = ws.expect_type("offer_closed", WAIT).await;
    assert_eq!(closed["reason"], "taken");
    // …and a late accept loses with `taken`.
    ws.send_json(&json!({"type":"accept","offer_id": made.id.to_string()}))
        .await;
    let closed = ws.expect_type("offer_closed", WAIT).await;
    assert_eq!(closed["reason"], "taken");
    let now = store.get_order(order).await.unwrap().unwrap();
    assert_eq!(now.nurse_id, Some(second.id));
    app.stop().await;
}

#[tokio::test]
async fn racing_accepts_and_a_manual_assignment_have_one_winner_every_time() {
    let app = spawn().await;
    let (a, a_token) = rostered_nurse(&app).await;
    let (b, b_token) = rostered_nurse(&app).await;
    let (c, _) = rostered_nurse(&app).await;
    let store = app.running().backends.store.clone();
    let mut wins = [0u32; 3];
    for round in 0..100 {
        let (order, _) = place_order(&app).await;
        // B was offered the order first and let it lapse; A holds it now.
        let lapsed = Offer::new(order, b.id, Utc::now(), TimeDelta::seconds(30), 9, 1_800);
        store
            .make_offer(&lapsed, |_, _| None, vec![])
            .await
            .unwrap();
        store
            .close_offer(
                lapsed.id,
                yixin_domain::OfferStatus::Expired,
                Utc::now(),
                None,
                vec![],
            )
            .await
            .unwrap();
        let live = Offer::new(order, a.id, Utc::now(), TimeDelta::seconds(30), 9, 1_800);
        store.make_offer(&live, |_, _| None, vec![]).await.unwrap();

        let accept = |offer: yixin_domain::OfferId, token: String| {
            let url = app.url(&format!("/v1/nurse/offers/{offer}/accept"));
            let http = app.http.clone();
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        };
        let by_a = accept(live.id, a_token.clone());
        let by_b = accept(lapsed.id, b_token.clone());
        let store2 = store.clone();
        let by_c = tokio::spawn(async move {
            store2
                .assign_order(order, c.id, Utc::now(), None, false, |_, _| None)
                .await
                .is_ok()
        });
        let won = [
            by_a.await.unwrap() == StatusCode::OK,
            by_b.await.unwrap() == StatusCode::OK,
            by_c.await.unwrap(),
        ];
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {won:?}"
        );
        let winner = won.iter().position(|w| *w).unwrap();
        wins[winner] += 1;
        let o = store.get_order(order).await.unwrap().unwrap();
        assert_eq!(
            o.nurse_id,
            Some([a.id, b.id, c.id][winner]),
            "round {round}"
        );
        // Free the winner for the next round.
        store
            .transition_order(OrderTransition::new(
                order,
                vec![OrderStatus::Assigned],
                OrderStatus::Cancelled,
                Utc::now(),
            ))
            .await
            .unwrap();
    }
    // B's lapsed offer can never win.
    assert_eq!(wins[1], 0, "{wins:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_reconnecting_phone_gets_its_offer_and_job_again() {
    let app = spawn().await;
    let (nurse, token) = rostered_nurse(&app).await;
    let (order, _) = place_order(&app).await;
    let made = offer(&app, order, nurse.id, TimeDelta::seconds(30)).await;
    // Offered while disconnected: the phone gets it on connect.
    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    assert_eq!(
        ws.expect_type("offer", WAIT).await["offer_id"],
        made.id.to_string()
    );
    ws.send_json(&json!({"type":"accept","offer_id": made.id.to_string()}))
        .await;
    ws.expect_type("assigned", WAIT).await;
    ws.close().await;
    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    let job = ws.expect_type("assigned", WAIT).await;
    assert_eq!(job["order_id"], order.to_string());
    app.stop().await;
}

#[tokio::test]
async fn steps_follow_the_state_machine_only_for_the_nurses_own_job() {
    let app = spawn().await;
    let (nurse, token) = rostered_nurse(&app).await;
    let (_, other_token) = rostered_nurse(&app).await;
    let mut ws = on_shift(&app, &token).await;
    ws.send_json(&fix(29.391, 106.321, 0)).await;
    let (order, resident) = place_order(&app).await;
    let made = offer(&app, order, nurse.id, TimeDelta::seconds(30)).await;
    ws.expect_type("offer", WAIT).await;
    ws.send_json(&json!({"type":"accept","offer_id": made.id.to_string()}))
        .await;
    ws.expect_type("assigned", WAIT).await;
    let mut live = app.ws(&format!("/v1/orders/{order}/live"), &resident).await;
    live.expect_type("order", WAIT).await;

    let step = |s: &str| json!({"type":"progress","order_id": order.to_string(),"step": s});
    ws.send_json(&step("arrived")).await;
    let error = ws.expect_type("error", WAIT).await;
    assert_eq!(error["code"], "step_out_of_order");
    // Another nurse cannot move this job.
    let reply = app
        .post(
            &format!("/v1/nurse/orders/{order}/progress"),
            Some(&other_token),
            &json!({"step":"en_route"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // Off shift during a job is refused.
    ws.send_json(&json!({"type":"shift","state":"off"})).await;
    assert_eq!(ws.expect_type("error", WAIT).await["code"], "active_job");

    ws.send_json(&step("en_route")).await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "en_route");
    // While en route the resident sees the nurse move.
    ws.send_json(&fix(29.3905, 106.3205, 0)).await;
    let position = live.expect_type("nurse_location", WAIT).await;
    // The latest position the feed had (the earlier fix if the first flush
    // after `en_route` still held it; positions are throttled per nurse).
    let lat = position["location"]["lat"].as_f64().unwrap();
    assert!(
        [29.3905, 29.391].iter().any(|l| (lat - l).abs() < 1e-9),
        "{position}"
    );
    ws.send_json(&step("arrived")).await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "arrived");
    // Consent on site first: `started` without who consented is refused.
    ws.send_json(&step("started")).await;
    let error = ws.expect_type("error", WAIT).await;
    assert_eq!(error["code"], "consent_required");
    assert_eq!(error["field"], "consent_by");
    ws.send_json(&yixin_e2e::progress_frame(&order.to_string(), "started"))
        .await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "in_service");
    // No visit record, no completion.
    ws.send_json(&step("completed")).await;
    let error = ws.expect_type("error", WAIT).await;
    assert_eq!(error["code"], "record_required");
    let reply = app.submit_jaundice_record(&token, &order.to_string()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    ws.send_json(&step("completed")).await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "completed");
    let seen = app
        .get(&format!("/v1/orders/{order}"), Some(&resident))
        .await;
    assert_eq!(seen.json["status"], "completed");
    // Free again: a candidate, and no job.
    assert!(
        app.get("/v1/nurse/jobs", Some(&token))
            .await
            .json
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(candidates(&app, HERE), vec![nurse.id]);
    app.stop().await;
}

#[tokio::test]
async fn cancelling_tells_the_nurse() {
    let app = spawn().await;
    let (nurse, token) = rostered_nurse(&app).await;
    let mut ws = on_shift(&app, &token).await;
    let (order, resident) = place_order(&app).await;
    let made = offer(&app, order, nurse.id, TimeDelta::seconds(30)).await;
    ws.expect_type("offer", WAIT).await;
    let reply = app
        .post(
            &format!("/v1/orders/{order}/cancel"),
            Some(&resident),
            &json!({"reason":"不需要了"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let closed = ws.expect_type("offer_closed", WAIT).await;
    assert_eq!(closed["offer_id"], made.id.to_string());
    assert_eq!(closed["reason"], "cancelled");

    // Assigned, then cancelled: `order_cancelled`.
    let (order, resident) = place_order(&app).await;
    let made = offer(&app, order, nurse.id, TimeDelta::seconds(30)).await;
    ws.expect_type("offer", WAIT).await;
    ws.send_json(&json!({"type":"accept","offer_id": made.id.to_string()}))
        .await;
    ws.expect_type("assigned", WAIT).await;
    app.post(
        &format!("/v1/orders/{order}/cancel"),
        Some(&resident),
        &json!({"reason":"x"}),
    )
    .await;
    let cancelled = ws.expect_type("order_cancelled", WAIT).await;
    assert_eq!(cancelled["order_id"], order.to_string());
    app.stop().await;
}

#[tokio::test]
async fn the_http_equivalents_work_for_weak_connections() {
    let app = spawn().await;
    let (nurse, token) = rostered_nurse(&app).await;
    let reply = app
        .post("/v1/nurse/shift", Some(&token), &json!({"state":"on"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let now = Utc::now();
    let fixes = json!({"fixes": [
        {"lat": 29.3911, "lng": 106.3211, "accuracy_m": 6.0, "ts": now - TimeDelta::seconds(3)},
        {"lat": 29.3912, "lng": 106.3212, "accuracy_m": 6.0, "ts": now - TimeDelta::seconds(1)},
        {"lat": 99.0, "lng": 106.3212, "accuracy_m": 6.0, "ts": now},
    ]});
    let reply = app.post("/v1/nurse/locations", Some(&token), &fixes).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["accepted"], 2);
    assert_eq!(reply.json["refused"][0]["index"], 2);
    assert_eq!(reply.json["refused"][0]["field"], "fixes[2].lat");
    // All refused: a 422 naming the field.
    let reply = app
        .post(
            "/v1/nurse/locations",
            Some(&token),
            &json!({"fixes":[{"lat":1,"lng":2,"accuracy_m":-1,"ts":now}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json["error"]["field"], "fixes[0].accuracy_m");
    let reply = app
        .post(
            "/v1/nurse/locations",
            Some(&token),
            &json!({"fixes": "many"}),
        )
        .await;
    assert!(reply.status.is_client_error());
    assert!(candidates(&app, HERE).contains(&nurse.id));

    let (order, _) = place_order(&app).await;
    let made = offer(&app, order, nurse.id, TimeDelta::seconds(30)).await;
    let offers = app.get("/v1/nurse/offers", Some(&token)).await;
    assert_eq!(offers.json[0]["offer_id"], made.id.to_string());
    assert!(offers.json[0].get("address").is_none());
    let reply = app
        .post(
            &format!("/v1/nurse/offers/{}/decline", made.id),
            Some(&token),
            &json!({"reason":"太远了"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let declined = app
        .running()
        .backends
        .store
        .get_offer(made.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(declined.status, yixin_domain::OfferStatus::Declined);
    assert_eq!(declined.decline_reason.as_deref(), Some("太远了"));
    // Declining twice: the offer is closed.
    let reply = app
        .post(
            &format!("/v1/nurse/offers/{}/decline", made.id),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    // Someone else's or a made-up offer: 404.
    let reply = app
        .post(
            &format!("/v1/nurse/offers/{}/accept", uuid::Uuid::new_v4()),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "not_found");

    let jobs = app.get("/v1/nurse/jobs", Some(&token)).await;
    assert_eq!(jobs.status, StatusCode::OK);
    assert!(jobs.json.as_array().unwrap().is_empty());
    let reply = app
        .post("/v1/nurse/shift", Some(&token), &json!({"state":"off"}))
        .await;
    assert_eq!(reply.json["state"], "off");
    app.stop().await;
}

#[tokio::test]
async fn an_offer_reaches_the_nurse_on_whichever_instance_holds_the_socket() {
    let first = spawn().await;
    if first.backend != Backend::Postgres {
        eprintln!("skipped on the embedded backend: needs a shared database and Redis");
        return;
    }
    let shared = first.settings.clone();
    let second = spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(move |s| {
            s.database.url = shared.database.url.clone();
            s.redis.key_prefix = shared.redis.key_prefix.clone();
            s.auth.jwt_secret = shared.auth.jwt_secret.clone();
            s.dispatch.auto = false;
        }),
    })
    .await;
    let (nurse, token) = rostered_nurse(&first).await;
    // The socket is on the second instance; the offer is made on the first.
    let mut ws = on_shift(&second, &token).await;
    let (order, _) = place_order(&first).await;
    let made = offer(&first, order, nurse.id, TimeDelta::seconds(30)).await;
    assert_eq!(
        ws.expect_type("offer", WAIT).await["offer_id"],
        made.id.to_string()
    );
    // A newer connection on the first instance replaces the one on the second.
    let mut newer = first.ws("/v1/nurse/ws", &token).await;
    assert_eq!(ws.close_code(WAIT).await, Some(4001));
    assert_eq!(
        newer.expect_type("offer", WAIT).await["offer_id"],
        made.id.to_string()
    );
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn junk_from_a_phone_never_breaks_the_socket_or_touches_another_nurse() {
    let app = spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(|s| {
            s.dispatch.auto = false;
            // Room for the whole barrage without tripping the flood guard.
            s.tracking.frames_burst = 1_000;
        }),
    })
    .await;
    let (victim, victim_token) = rostered_nurse(&app).await;
    let (_, token) = rostered_nurse(&app).await;
    let mut victim_ws = on_shift(&app, &victim_token).await;
    victim_ws.send_json(&fix(29.391, 106.321, 0)).await;
    let (order, _) = place_order(&app).await;
    let victims_offer = offer(&app, order, victim.id, TimeDelta::seconds(60)).await;
    victim_ws.expect_type("offer", WAIT).await;

    let mut ws = on_shift(&app, &token).await;
    let valid = [
        json!({"type":"location","lat":29.39,"lng":106.32,"accuracy_m":5,"ts":Utc::now()}),
        json!({"type":"accept","offer_id": victims_offer.id.to_string()}),
        json!({"type":"decline","offer_id": victims_offer.id.to_string(),"reason":"x"}),
        json!({"type":"progress","order_id": order.to_string(),"step":"completed"}),
        json!({"type":"locations","fixes":[{"lat":29.39,"lng":106.32,"accuracy_m":5,"ts":Utc::now()}]}),
        json!({"type":"shift","state":"on"}),
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let junk_values = [
        json!(null),
        json!(-1),
        json!(1e308),
        json!("🙂"),
        json!([]),
        json!({}),
        json!("x".repeat(300)),
        json!(f64::MAX),
        json!(true),
        json!({"type":"location"}),
        json!(i64::MIN),
    ];
    for _ in 0..300 {
        let mut frame = valid[(next() % valid.len() as u64) as usize].clone();
        match next() % 4 {
            // Replace a field with junk.
            0 | 1 => {
                let keys: Vec<String> = frame.as_object().unwrap().keys().cloned().collect();
                let key = &keys[(next() % keys.len() as u64) as usize];
                frame[key] = junk_values[(next() % junk_values.len() as u64) as usize].clone();
                ws.send_text(&frame.to_string()).await;
            }
            // Cut the text anywhere.
            2 => {
                let text = frame.to_string();
                let cut = (next() % text.len() as u64) as usize;
                let cut = (0..=cut)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                ws.send_text(&text[..cut]).await;
            }
            // Raw bytes as text.
            _ => {
                let bytes: Vec<u8> = (0..(next() % 64)).map(|_| (next() % 128) as u8).collect();
                ws.send_text(&String::from_utf8_lossy(&bytes)).await;
            }
        }
    }
    // Still open and answering.
    ws.send_json(&json!({"type":"shift","state":"on"})).await;
    assert_eq!(
        ws.expect_type("ack", Duration::from_secs(10)).await["status"],
        "on"
    );
    // The other nurse's offer and order are untouched.
    let store = &app.running().backends.store;
    let offer_now = store.get_offer(victims_offer.id).await.unwrap().unwrap();
    assert_eq!(offer_now.status, yixin_domain::OfferStatus::Open);
    assert_eq!(
        store.get_order(order).await.unwrap().unwrap().status,
        OrderStatus::Offered
    );
    victim_ws
        .send_json(&json!({"type":"accept","offer_id": victims_offer.id.to_string()}))
        .await;
    victim_ws.expect_type("assigned", WAIT).await;
    app.stop().await;
}

#[tokio::test]
async fn a_nurse_token_may_name_the_nurse_by_the_rosters_external_id() {
    let app = spawn().await;
    let org = app.settings.demo.org_id.clone();
    let coordinator = app.token("coordinator", "c-ext", &org).await;
    let add = |name: &'static str, external: &'static str| json!({"name": name, "phone": "13900002222", "skills": ["wound_care"], "external_id": external});
    let added = app
        .post(
            "/v1/dispatch/nurses",
            Some(&coordinator),
            &add("周护士", " idp:417 "),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.json["external_id"], "idp:417", "trimmed");
    let id = added.json["id"].as_str().unwrap().to_owned();
    let again = app
        .post(
            "/v1/dispatch/nurses",
            Some(&coordinator),
            &add("吴护士", "idp:417"),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.json["error"]["code"], "external_id_taken");
    let bad = app
        .post(
            "/v1/dispatch/nurses",
            Some(&coordinator),
            &add("吴护士", "a b"),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert_eq!(bad.json["error"]["field"], "external_id");

    // The identity provider's subject acts as the roster nurse: HTTP and socket.
    let token = app.token("nurse", "idp:417", &org).await;
    let me = app.get("/v1/nurse/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.json["id"], id.as_str());
    assert_eq!(me.json["name"], "周护士");
    assert_eq!(me.json["shift"], "off");
    let mut ws = on_shift(&app, &token).await;
    ws.send_json(&fix(29.391, 106.321, 0)).await;
    let roster = app.get("/v1/dispatch/nurses", Some(&coordinator)).await;
    let entry = roster
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["shift"], "on");
    assert_eq!(entry["external_id"], "idp:417");
    let today = app.get("/v1/nurse/jobs/today", Some(&token)).await;
    assert_eq!(today.status, StatusCode::OK, "{}", today.text);
    assert_eq!(today.json, json!([]));
    ws.close().await;

    // Another organisation's token with the same subject is nobody.
    let elsewhere = app.token("nurse", "idp:417", "other-org").await;
    let me = app.get("/v1/nurse/me", Some(&elsewhere)).await;
    assert_eq!(me.status, StatusCode::FORBIDDEN, "{}", me.text);
    // Removed from the roster entry: the subject no longer signs in.
    let cleared = app
        .send(
            app.http
                .patch(format!("{}/v1/dispatch/nurses/{id}", app.base_url))
                .bearer_auth(&coordinator)
                .json(&json!({"external_id": ""})),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    assert_eq!(cleared.json["external_id"], Value::Null);
    let me = app.get("/v1/nurse/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::FORBIDDEN, "{}", me.text);
    app.stop().await;
}

#[tokio::test]
async fn todays_jobs_list_the_nurses_work_with_the_service_in_words() {
    let app = spawn().await;
    let (nurse, token) = rostered_nurse(&app).await;
    let mut ws = on_shift(&app, &token).await;
    ws.send_json(&fix(29.391, 106.321, 0)).await;
    let (order, _) = place_order(&app).await;
    let made = offer(&app, order, nurse.id, TimeDelta::seconds(30)).await;
    let accepted = app
        .post(
            &format!("/v1/nurse/offers/{}/accept", made.id),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    let today = app.get("/v1/nurse/jobs/today", Some(&token)).await;
    assert_eq!(today.status, StatusCode::OK, "{}", today.text);
    let jobs = today.json.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{}", today.text);
    assert_eq!(jobs[0]["order_id"], order.to_string());
    assert_eq!(jobs[0]["status"], "assigned");
    assert_eq!(jobs[0]["service"]["code"], "infant_jaundice_test");
    assert_ne!(jobs[0]["service"]["name_zh"], "infant_jaundice_test");
    // Another nurse's day does not show it.
    let (_, other) = rostered_nurse(&app).await;
    let theirs = app.get("/v1/nurse/jobs/today", Some(&other)).await;
    assert_eq!(theirs.json, json!([]));
    ws.close().await;
    app.stop().await;
}
