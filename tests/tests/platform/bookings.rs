//! Bookings end to end: a booked order waits `scheduled`, holds its nurse
//! only for its time (she stays free for on-demand work), is offered when
//! due (to her first), never overlaps another of her bookings, and the
//! slots a resident can pick come from planned shifts, qualifications and
//! the bookings already made.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde_json::{Value, json};
use yixin::Role;
use yixin_e2e::{AppOptions, StatusCode, TestApp, WsClient, spawn_app_with};

const WAIT: Duration = Duration::from_secs(8);
const HOME: (f64, f64) = (29.39, 106.32);
/// How far ahead the tests book: beyond the 30-minute promise.
const AHEAD_MIN: i64 = 45;
/// Seconds after booking that the booking falls due in these tests.
const DUE_AFTER_S: i64 = 10;

/// The platform with the booking lead tuned so a booking `AHEAD_MIN` ahead
/// falls due `DUE_AFTER_S` after it is made: travel counted as at most 60 s,
/// the buffer the rest.
async fn spawn() -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(|s| {
            s.dispatch.retry_secs = 1;
            s.dispatch.booking_poll_ms = 500;
            s.dispatch.booking_max_travel_secs = 60;
            s.dispatch.booking_buffer_secs = (AHEAD_MIN * 60 - 60 - DUE_AFTER_S) as u64;
        }),
    })
    .await
}

async fn coordinator(app: &TestApp) -> String {
    app.token("coordinator", "coord", "demo").await
}

/// A qualified nurse, with a planned shift from an hour ago to three hours
/// on when `planned`, connected, on shift, at `at`.
async fn nurse_at(app: &TestApp, at: (f64, f64), planned: bool) -> (String, WsClient) {
    let coord = coordinator(app).await;
    let id = app
        .qualified_nurse(
            &coord,
            &json!({"name": "周护士", "phone": "13700001111", "skills": ["neonatal", "wound_care"]}),
        )
        .await;
    if planned {
        plan_shift(app, &id).await;
    }
    let token = app.token("nurse", &id, "demo").await;
    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    ws.send_json(&json!({"type":"shift","state":"on"})).await;
    ws.expect_type("ack", WAIT).await;
    ws.send_json(&json!({"type":"location","lat":at.0,"lng":at.1,"accuracy_m":5,"ts":Utc::now()}))
        .await;
    (id, ws)
}

async fn plan_shift(app: &TestApp, nurse: &str) {
    let coord = coordinator(app).await;
    let now = Utc::now();
    let reply = app
        .post(
            &format!("/v1/dispatch/nurses/{nurse}/shifts"),
            Some(&coord),
            &json!({"start": now - TimeDelta::hours(1), "end": now + TimeDelta::hours(3)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

/// A new resident books the jaundice test at `at` for `when`.
async fn book(app: &TestApp, at: (f64, f64), when: DateTime<Utc>) -> yixin_e2e::Reply {
    let token = app.resident_token().await;
    app.order_service(
        &token,
        "infant_jaundice_test",
        at,
        json!({"scheduled_for": when}),
    )
    .await
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// Reads frames for `wait`; panics on an offer for `order`.
async fn no_offer_for(ws: &mut WsClient, order: &str, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match ws.next_json(left).await {
            Some(f) if f["type"] == "offer" && f["order_id"] == order => {
                panic!("offered before it was due: {f}")
            }
            Some(_) => continue,
            None => return,
        }
    }
}

/// The next offer on `ws`, which must be for `order`.
async fn offer_for(ws: &mut WsClient, order: &str, wait: Duration) -> Value {
    let frame = ws.expect_type("offer", wait).await;
    assert_eq!(frame["order_id"], order, "{frame}");
    frame
}

fn id_of(reply: &yixin_e2e::Reply) -> String {
    reply.json["id"].as_str().expect("order id").to_owned()
}

#[tokio::test]
async fn a_booking_waits_does_not_block_its_nurse_and_falls_back_when_she_is_busy() {
    let app = spawn().await;
    let (reserved, mut reserved_ws) = nurse_at(&app, HOME, true).await;
    // Another nurse on shift now but without a planned shift: not bookable,
    // but dispatchable when the booking is due.
    let (_other, mut other_ws) = nurse_at(&app, (29.399, 106.32), false).await;
    settle().await;
    let when = Utc::now() + TimeDelta::minutes(AHEAD_MIN);
    let booked = book(&app, HOME, when).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    assert_eq!(booked.json["status"], "scheduled", "{}", booked.json);
    let booked_id = id_of(&booked);
    let store = &app.running().backends.store;
    assert_eq!(
        store
            .booked_nurse(booked_id.parse().map(yixin_domain::OrderId).unwrap())
            .await
            .unwrap()
            .map(|n| n.to_string()),
        Some(reserved.clone()),
        "the nurse with the planned shift is reserved"
    );

    // On-demand work meanwhile: the reserved nurse is free for it.
    let resident = app.resident_token().await;
    let now_order = app.order_jaundice_test(&resident, HOME).await;
    assert_eq!(now_order.status, StatusCode::CREATED, "{}", now_order.text);
    let now_id = id_of(&now_order);
    let offer = offer_for(&mut reserved_ws, &now_id, WAIT).await;
    reserved_ws
        .send_json(&json!({"type":"accept","offer_id": offer["offer_id"]}))
        .await;
    reserved_ws.expect_type("assigned", WAIT).await;

    // Not offered to anyone before it is due.
    no_offer_for(&mut other_ws, &booked_id, Duration::from_secs(3)).await;
    let seen = app
        .get(
            &format!("/v1/dispatch/orders/{booked_id}"),
            Some(&coordinator(&app).await),
        )
        .await;
    assert_eq!(seen.json["status"], "scheduled", "{}", seen.text);

    // Due: she is busy with the on-demand visit, so the other nurse gets it.
    let offer = offer_for(&mut other_ws, &booked_id, Duration::from_secs(20)).await;
    assert!(offer["offer_id"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn a_due_booking_is_offered_to_its_reserved_nurse_first() {
    let app = spawn().await;
    // The reserved nurse is about a kilometre away; an unplanned one stands
    // at the door. Continuity puts the reserved nurse first.
    let (_reserved, mut reserved_ws) = nurse_at(&app, (29.399, 106.32), true).await;
    settle().await;
    let when = Utc::now() + TimeDelta::minutes(AHEAD_MIN);
    let booked = book(&app, HOME, when).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    let booked_id = id_of(&booked);
    let (_near, mut near_ws) = nurse_at(&app, HOME, false).await;
    settle().await;
    no_offer_for(&mut reserved_ws, &booked_id, Duration::from_secs(3)).await;
    offer_for(&mut reserved_ws, &booked_id, Duration::from_secs(20)).await;
    no_offer_for(&mut near_ws, &booked_id, Duration::from_millis(300)).await;
    app.stop().await;
}

#[tokio::test]
async fn overlapping_bookings_are_refused_even_when_concurrent() {
    let app = spawn().await;
    let (_only, _ws) = nurse_at(&app, HOME, true).await;
    let when = Utc::now() + TimeDelta::minutes(60);
    // Two residents book the same time at once: one nurse, one booking.
    let (a, b) = tokio::join!(book(&app, HOME, when), book(&app, HOME, when));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{} / {}",
        a.text,
        b.text
    );
    let refused = if a.status == StatusCode::CONFLICT {
        &a
    } else {
        &b
    };
    assert_eq!(refused.error_code(), "booking_overlaps", "{}", refused.text);
    // Overlapping by ten minutes: refused too.
    let c = book(&app, HOME, when + TimeDelta::minutes(10)).await;
    assert_eq!(c.status, StatusCode::CONFLICT, "{}", c.text);
    assert_eq!(c.error_code(), "booking_overlaps");
    // Right after the 20-minute visit, 2.4 km away: no time to travel.
    let far = (29.41, 106.33);
    let d = book(&app, far, when + TimeDelta::minutes(21)).await;
    assert_eq!(d.status, StatusCode::CONFLICT, "{}", d.text);
    // At the same address a minute after (the trip's fixed overhead): fine.
    let e = book(&app, HOME, when + TimeDelta::minutes(21)).await;
    assert_eq!(e.status, StatusCode::CREATED, "{}", e.text);
    app.stop().await;
}

/// The local (UTC+8) date of `at`.
fn local_date(at: DateTime<Utc>) -> String {
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    at.with_timezone(&tz).format("%Y-%m-%d").to_string()
}

async fn slots(app: &TestApp, token: &str, date: &str) -> Vec<Value> {
    let reply = app
        .get(
            &format!(
                "/v1/slots?service_code=infant_jaundice_test&lat={}&lng={}&date={date}",
                HOME.0, HOME.1
            ),
            Some(token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn slots_count_free_qualified_nurses_and_skip_booked_ones() {
    let app = spawn().await;
    let coord = coordinator(&app).await;
    let (_a, _wa) = nurse_at(&app, HOME, true).await;
    let (_b, _wb) = nurse_at(&app, HOME, true).await;
    // Planned but never credentialed: never counted.
    let reply = app
        .post(
            "/v1/dispatch/nurses",
            Some(&coord),
            &json!({"name": "新护士", "phone": "13700002222", "skills": ["neonatal"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    plan_shift(&app, reply.json["id"].as_str().unwrap()).await;

    let resident = app.resident_token().await;
    let now = Utc::now();
    // The shifts end 3 h from now; take a slot 90 minutes on.
    let target = now + TimeDelta::minutes(90);
    let date = local_date(target);
    let before = slots(&app, &resident, &date).await;
    let pick = before
        .iter()
        .find(|s| {
            s["start"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .is_some_and(|t| t >= target)
        })
        .cloned()
        .expect("a slot 90 minutes on");
    assert_eq!(pick["nurses"], 2, "two qualified nurses: {pick}");
    assert!(
        before.iter().all(|s| s["nurses"].as_u64().unwrap() <= 2),
        "the unqualified nurse is never counted"
    );
    assert!(
        before.iter().all(|s| s.get("nurse_id").is_none()),
        "never who"
    );
    // Nothing sooner than the promise.
    assert!(before.iter().all(|s| {
        s["start"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
            > now + TimeDelta::minutes(30)
    }));

    let start: DateTime<Utc> = pick["start"].as_str().unwrap().parse().unwrap();
    let booked = book(&app, HOME, start).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    let after = slots(&app, &resident, &date).await;
    let same = after.iter().find(|s| s["start"] == pick["start"]).cloned();
    assert_eq!(
        same.map(|s| s["nurses"].clone()),
        Some(json!(1)),
        "one nurse left at that time"
    );
    // Both booked: the time is gone.
    let again = book(&app, HOME, start).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    let full = slots(&app, &resident, &date).await;
    assert!(full.iter().all(|s| s["start"] != pick["start"]), "{full:?}");
    let third = book(&app, HOME, start).await;
    assert_eq!(third.status, StatusCode::CONFLICT, "{}", third.text);

    // A day beyond the horizon is refused.
    let far = local_date(now + TimeDelta::days(30));
    let reply = app
        .get(
            &format!(
                "/v1/slots?service_code=infant_jaundice_test&lat={}&lng={}&date={far}",
                HOME.0, HOME.1
            ),
            Some(&resident),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    app.stop().await;
}

#[tokio::test]
async fn the_catalogue_serves_the_one_booking_horizon() {
    let app = spawn().await;
    let token = app.resident_token().await;
    let reply = app.get("/v1/catalog", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json["booking_horizon_days"],
        json!(yixin_domain::MAX_BOOKING_AHEAD_DAYS)
    );
    app.stop().await;
}

/// A qualified rehab nurse with planned shifts of two hours around each of
/// `times`, not connected (booking needs no phone).
async fn rehab_nurse(app: &TestApp, times: &[DateTime<Utc>]) -> String {
    let coord = coordinator(app).await;
    let id = app
        .qualified_nurse(
            &coord,
            &json!({"name": "康护士", "phone": "13700003333", "skills": ["rehab"]}),
        )
        .await;
    for at in times {
        plan_shift_at(app, &id, *at).await;
    }
    id
}

async fn plan_shift_at(app: &TestApp, nurse: &str, at: DateTime<Utc>) {
    let coord = coordinator(app).await;
    let reply = app
        .post(
            &format!("/v1/dispatch/nurses/{nurse}/shifts"),
            Some(&coord),
            &json!({"start": at - TimeDelta::hours(1), "end": at + TimeDelta::hours(2)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

#[tokio::test]
async fn a_course_books_its_visits_with_the_same_nurse_when_she_is_free() {
    let app = spawn().await;
    let store = &app.running().backends.store;
    // 颈椎套餐: a course of 3 visits, 2 days apart.
    let first = Utc::now() + TimeDelta::hours(2);
    let times = [
        first,
        first + TimeDelta::days(2),
        first + TimeDelta::days(4),
    ];
    let regular = rehab_nurse(&app, &times).await;
    // She is already booked at the second visit's time (the only nurse
    // planned then, so the booking is hers)…
    let token = app.resident_token().await;
    let busy = app
        .order_service(
            &token,
            "frozen_shoulder_package",
            HOME,
            json!({"scheduled_for": times[1] + TimeDelta::minutes(30)}),
        )
        .await;
    assert_eq!(busy.status, StatusCode::CREATED, "{}", busy.text);
    // …so another nurse, planned only then, gets that visit.
    let stand_in = rehab_nurse(&app, &[times[1]]).await;

    let token = app.resident_token().await;
    let course = app
        .order_service(
            &token,
            "cervical_package",
            HOME,
            json!({"scheduled_for": first}),
        )
        .await;
    assert_eq!(course.status, StatusCode::CREATED, "{}", course.text);
    let visits = course.json["course"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(visits.len(), 3, "{}", course.json);
    let mut nurses = Vec::new();
    for v in &visits {
        let id: yixin_domain::OrderId = v["order_id"]
            .as_str()
            .unwrap()
            .parse()
            .map(yixin_domain::OrderId)
            .unwrap();
        let order = store.get_order(id).await.unwrap().unwrap();
        assert_eq!(order.status, yixin_domain::OrderStatus::Scheduled);
        nurses.push(store.booked_nurse(id).await.unwrap().unwrap().to_string());
    }
    assert_eq!(nurses, vec![regular.clone(), stand_in, regular]);

    // All or nothing: a course whose first visit a third nurse could take
    // but whose second nobody can books nothing.
    rehab_nurse(&app, &[first]).await;
    let org = yixin_domain::OrgId::from("demo");
    let window = (first - TimeDelta::days(1), first + TimeDelta::days(6));
    let before = store
        .bookings_between(&org, window.0, window.1)
        .await
        .unwrap()
        .len();
    let token = app.resident_token().await;
    let refused = app
        .order_service(
            &token,
            "cervical_package",
            HOME,
            json!({"scheduled_for": first}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.error_code(), "booking_overlaps");
    let after = store
        .bookings_between(&org, window.0, window.1)
        .await
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing stays reserved");
    let reply = app.get("/v1/orders", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json["orders"].as_array().map(Vec::len),
        Some(0),
        "{}",
        reply.text
    );
    app.stop().await;
}
