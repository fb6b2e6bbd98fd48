//! The coordinator's dashboard API: service areas, orders with their
//! dispatch detail, manual assignment, cancellation, the live KPIs and the
//! live feed; and a coordinator of another organisation sees none of it.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveTime, TimeDelta, Utc};
use serde_json::{Value, json};
use yixin::Role;
use yixin_domain::{
    Address, Contact, GeoPoint, NewOrder, Nurse, NurseId, Offer, Order, OrderId, OrderStatus,
    OrgId, PhoneNumber, ResidentId, SHUANGFU_DEMO_AREA_ID, ShiftState, Skill,
};
use yixin_e2e::{AppOptions, StatusCode, TestApp, WsClient, spawn_app_with};
use yixin_platform::Settings;
use yixin_store::{NewOutboxMessage, OrderTransition};

const WAIT: Duration = Duration::from_secs(8);
const HOME: (f64, f64) = (29.39, 106.32);
const OTHER_ORG: &str = "other-hospital";

/// The platform; automatic dispatch off unless `configure` turns it on, so
/// the tests make offers themselves, as the dispatcher would.
async fn spawn_with(configure: impl FnOnce(&mut Settings) + Send + 'static) -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(move |s| {
            s.dispatch.auto = false;
            s.dispatch.retry_secs = 1;
            configure(s);
        }),
    })
    .await
}

async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

async fn coordinator(app: &TestApp, org: &str) -> String {
    let sub = format!("coord-{}", uuid::Uuid::new_v4().simple());
    app.token("coordinator", &sub, org).await
}

/// Every skill the catalogue asks for, so a nurse can take any order.
async fn all_skills(app: &TestApp) -> Vec<String> {
    let catalog = app.running().backends.store.catalog().await.unwrap();
    let mut skills: Vec<String> = catalog
        .services
        .iter()
        .flat_map(|s| s.required_skills.iter().map(|k| k.as_str().to_owned()))
        .collect();
    skills.sort();
    skills.dedup();
    skills
}

/// A demo nurse added through the roster API: their id and a token.
async fn add_nurse(app: &TestApp, coordinator: &str) -> (String, String) {
    let id = app
        .qualified_nurse(
            coordinator,
            &json!({"name": "周护士", "phone": "13700001111", "skills": all_skills(app).await}),
        )
        .await;
    let token = app.token("nurse", &id, "demo").await;
    (id, token)
}

/// The nurse's phone, connected and on shift.
async fn on_shift(app: &TestApp, token: &str) -> WsClient {
    let mut ws = app.ws("/v1/nurse/ws", token).await;
    ws.send_json(&json!({"type": "shift", "state": "on"})).await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "on");
    ws
}

fn fix(at: (f64, f64)) -> Value {
    json!({"type": "location", "lat": at.0, "lng": at.1, "accuracy_m": 6.0, "ts": Utc::now()})
}

/// A demo resident orders a jaundice test at `at`.
async fn order_at(app: &TestApp, at: (f64, f64)) -> yixin_e2e::Reply {
    let token = app.resident_token().await;
    app.order_jaundice_test(&token, at).await
}

async fn place(app: &TestApp) -> OrderId {
    let reply = order_at(app, HOME).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json["id"]
        .as_str()
        .unwrap()
        .parse()
        .map(OrderId)
        .unwrap()
}

/// What the dispatcher does: records an offer of the order to the nurse
/// (the order goes to `offered`) and pushes it to the nurse's phone.
async fn offer(app: &TestApp, order: OrderId, nurse: &str) -> Offer {
    let store = &app.running().backends.store;
    let nurse = NurseId(nurse.parse().unwrap());
    let offer = Offer::new(order, nurse, Utc::now(), TimeDelta::seconds(60), 12, 2_400);
    let placed = store
        .make_offer(&offer, |_, _| None, Vec::new())
        .await
        .unwrap();
    let push = yixin_contracts::offer_to_nurse(&offer, &placed, &Default::default());
    app.running()
        .backends
        .queue
        .broadcast(&push.channel, &push.payload)
        .await
        .unwrap();
    offer
}

async fn assign(app: &TestApp, coordinator: &str, order: OrderId, nurse: &str) -> yixin_e2e::Reply {
    app.post(
        &format!("/v1/dispatch/orders/{order}/assign"),
        Some(coordinator),
        &json!({"nurse_id": nurse}),
    )
    .await
}

async fn cancel(app: &TestApp, coordinator: &str, order: OrderId) -> yixin_e2e::Reply {
    app.post(
        &format!("/v1/dispatch/orders/{order}/cancel"),
        Some(coordinator),
        &json!({"reason": "家属来电取消"}),
    )
    .await
}

fn statuses(timeline: &Value) -> Vec<String> {
    timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .collect()
}

/// A square GeoJSON polygon of `side` degrees with its south-west corner at `(lng, lat)`.
fn square(lng: f64, lat: f64, side: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[
        [lng, lat], [lng + side, lat], [lng + side, lat + side], [lng, lat + side], [lng, lat]
    ]]})
}

#[tokio::test]
async fn areas_are_validated_scoped_and_used_by_order_creation() {
    let app = spawn().await;
    let demo = coordinator(&app, "demo").await;
    let reply = app.get("/v1/dispatch/areas", Some(&demo)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let ids: Vec<&str> = reply
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [SHUANGFU_DEMO_AREA_ID.to_string().as_str()]);
    assert_eq!(reply.json[0]["polygon"]["type"], "Polygon");

    // Jiangjin old town, outside Shuangfu: a new area makes it orderable.
    let old_town = (29.29, 106.25);
    let reply = app
        .post(
            "/v1/dispatch/areas",
            Some(&demo),
            &json!({"name": " 几江街道 ", "polygon": square(106.23, 29.27, 0.04)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["name"], "几江街道");
    assert_eq!(
        reply.json["polygon"]["coordinates"][0]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let area_id = reply.json["id"].as_str().unwrap().to_owned();
    let placed = order_at(&app, old_town).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    let outside = order_at(&app, (29.56, 106.55)).await;
    assert_eq!(outside.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(outside.error_code(), "outside_service_area");

    // Bad polygons are refused, naming the field.
    let bowtie = json!({"type": "Polygon", "coordinates": [[
        [106.20, 29.20], [106.21, 29.21], [106.21, 29.20], [106.20, 29.21], [106.20, 29.20]
    ]]});
    let cases = [
        ("bow-tie", bowtie),
        (
            "not a polygon",
            json!({"type": "Point", "coordinates": [106.3, 29.3]}),
        ),
        (
            "a multipolygon",
            json!({"type": "MultiPolygon", "coordinates": [[[106.2, 29.2], [106.3, 29.2], [106.3, 29.3], [106.2, 29.2]]]}),
        ),
        (
            "unclosed",
            json!({"type": "Polygon", "coordinates": [[[106.2, 29.2], [106.3, 29.2], [106.3, 29.3], [106.2, 29.3]]]}),
        ),
        (
            "three positions",
            json!({"type": "Polygon", "coordinates": [[[106.2, 29.2], [106.3, 29.2], [106.2, 29.2]]]}),
        ),
        (
            "latitude out of range",
            json!({"type": "Polygon", "coordinates": [[[106.2, 29.2], [106.3, 95.0], [106.3, 29.3], [106.2, 29.2]]]}),
        ),
        (
            "NaN as text",
            json!({"type": "Polygon", "coordinates": [[[106.2, "NaN"], [106.3, 29.2], [106.3, 29.3], [106.2, 29.2]]]}),
        ),
        ("no rings", json!({"type": "Polygon", "coordinates": []})),
        ("a string", json!("POLYGON((106.2 29.2, 106.3 29.2))")),
    ];
    for (what, polygon) in cases {
        let reply = app
            .post(
                "/v1/dispatch/areas",
                Some(&demo),
                &json!({"name": "坏区域", "polygon": polygon}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "invalid_polygon", "{what}");
        assert_eq!(reply.json["error"]["field"], "polygon", "{what}");
    }
    let reply = app
        .post("/v1/dispatch/areas", Some(&demo), &json!({"name": "x"}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json["error"]["field"], "polygon");
    let reply = app
        .post(
            "/v1/dispatch/areas",
            Some(&demo),
            &json!({"name": "  ", "polygon": square(106.0, 29.0, 0.1)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json["error"]["field"], "name");

    // Replacing one's own area by id.
    let reply = app
        .post(
            "/v1/dispatch/areas",
            Some(&demo),
            &json!({"id": area_id, "name": "几江", "polygon": square(106.22, 29.26, 0.06)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["id"], area_id.as_str());
    let listed = app.get("/v1/dispatch/areas", Some(&demo)).await;
    assert_eq!(listed.json.as_array().unwrap().len(), 2);
    assert!(
        listed
            .json
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == area_id.as_str() && a["name"] == "几江")
    );

    // Another organisation: its own areas only; ours are not found.
    let stranger = coordinator(&app, OTHER_ORG).await;
    let theirs = app.get("/v1/dispatch/areas", Some(&stranger)).await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert_eq!(theirs.json, json!([]));
    let reply = app
        .post(
            "/v1/dispatch/areas",
            Some(&stranger),
            &json!({"id": area_id, "name": "抢占", "polygon": square(106.0, 29.0, 0.1)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    let reply = app
        .post(
            "/v1/dispatch/areas",
            Some(&stranger),
            &json!({"name": "他们的区域", "polygon": square(106.0, 29.0, 0.1)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let theirs = app.get("/v1/dispatch/areas", Some(&stranger)).await;
    assert_eq!(theirs.json.as_array().unwrap().len(), 1);
    let ours = app.get("/v1/dispatch/areas", Some(&demo)).await;
    assert_eq!(ours.json.as_array().unwrap().len(), 2, "unchanged by them");
    assert!(
        ours.json
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == area_id.as_str() && a["name"] == "几江")
    );

    let resident = app.resident_token().await;
    assert_eq!(
        app.get("/v1/dispatch/areas", Some(&resident)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/v1/dispatch/areas", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn orders_show_offers_declines_and_timeline_to_their_organisation_only() {
    let app = spawn().await;
    let demo = coordinator(&app, "demo").await;
    let (x, x_token) = add_nurse(&app, &demo).await;
    let (y, _) = add_nurse(&app, &demo).await;
    let order = place(&app).await;
    let first = offer(&app, order, &x).await;
    let reply = app
        .post(
            &format!("/v1/nurse/offers/{}/decline", first.id),
            Some(&x_token),
            &json!({"reason": "太远了"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let second = offer(&app, order, &y).await;
    let newer = place(&app).await;
    // Newest first.
    let reply = app.get("/v1/dispatch/orders", Some(&demo)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let list = reply.json.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], newer.to_string());
    let seen = &list[1];
    assert_eq!(seen["id"], order.to_string());
    assert_eq!(seen["status"], "offered");
    assert_eq!(seen["service_code"], "infant_jaundice_test");
    assert_eq!(seen["address"]["text"], "双福街道 福城大道 88 号");
    assert_eq!(seen["contact"]["phone"], "13812345678", "unmasked");
    assert_eq!(seen["location"]["lat"], HOME.0);
    assert!(seen["nurse_id"].is_null());
    assert!(seen["eta"].is_string(), "the offer's prediction: {seen}");
    let left = seen["minutes_left"].as_i64().unwrap();
    assert!((28..=30).contains(&left), "{left}");
    assert_eq!(seen["at_risk"], false);
    let offers = seen["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 2);
    assert_eq!(offers[0]["id"], first.id.to_string());
    assert_eq!(offers[0]["nurse_id"], x.as_str());
    assert_eq!(offers[0]["status"], "declined");
    assert_eq!(offers[0]["decline_reason"], "太远了");
    assert!(offers[0]["answered_at"].is_string());
    assert_eq!(offers[1]["id"], second.id.to_string());
    assert_eq!(offers[1]["status"], "open");
    assert_eq!(offers[1]["eta_min"], 12);
    assert_eq!(offers[1]["distance_m"], 2_400);
    assert_eq!(seen["declined_by"], json!([x]));
    let steps = statuses(&seen["timeline"]);
    assert_eq!(steps.first().map(String::as_str), Some("pending"));
    assert!(steps.iter().any(|s| s == "offered"), "{steps:?}");

    let one = app
        .get(&format!("/v1/dispatch/orders/{order}"), Some(&demo))
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["offers"], seen["offers"]);
    assert_eq!(one.json["declined_by"], seen["declined_by"]);

    // Filters and limits.
    let offered = app
        .get("/v1/dispatch/orders?status=offered", Some(&demo))
        .await;
    assert_eq!(
        offered
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [order.to_string()]
    );
    let both = app
        .get(
            "/v1/dispatch/orders?status=pending,offered&limit=1",
            Some(&demo),
        )
        .await;
    assert_eq!(both.json.as_array().unwrap().len(), 1);
    let none = app
        .get(
            "/v1/dispatch/orders?status=completed,cancelled",
            Some(&demo),
        )
        .await;
    assert_eq!(none.json, json!([]));
    for query in ["status=lost", "limit=0", "limit=501", "limit=x"] {
        let reply = app
            .get(&format!("/v1/dispatch/orders?{query}"), Some(&demo))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        reply.error_code();
    }

    // Another organisation's coordinator sees nothing of it.
    let stranger = coordinator(&app, OTHER_ORG).await;
    let theirs = app.get("/v1/dispatch/orders", Some(&stranger)).await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert_eq!(theirs.json, json!([]));
    for path in [
        format!("/v1/dispatch/orders/{order}"),
        format!("/v1/dispatch/orders/{}", uuid::Uuid::new_v4()),
    ] {
        let reply = app.get(&path, Some(&stranger)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error_code(), "not_found");
    }
    let reply = app.get("/v1/dispatch/orders/not-an-id", Some(&demo)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let resident = app.resident_token().await;
    assert_eq!(
        app.get("/v1/dispatch/orders", Some(&resident)).await.status,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

#[tokio::test]
async fn a_manual_assignment_takes_the_order_from_the_offer_holder() {
    let app = spawn().await;
    let demo = coordinator(&app, "demo").await;
    let (y, y_token) = add_nurse(&app, &demo).await;
    let (z, z_token) = add_nurse(&app, &demo).await;
    let (off_duty, _) = add_nurse(&app, &demo).await;
    let mut y_ws = on_shift(&app, &y_token).await;
    let mut z_ws = on_shift(&app, &z_token).await;
    let order = place(&app).await;
    let held = offer(&app, order, &y).await;
    assert_eq!(
        y_ws.expect_type("offer", WAIT).await["offer_id"],
        held.id.to_string()
    );

    // Z is a few steps from the door; the order's ETA was Y's 12 minutes.
    z_ws.send_json(&fix((29.3905, 106.3205))).await;
    let mut z_eta_min = None;
    for _ in 0..100 {
        let reply = app
            .get(
                &format!("/v1/dispatch/orders/{order}/candidates"),
                Some(&demo),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        z_eta_min = reply.json["candidates"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["nurse_id"] == z.as_str()))
            .and_then(|c| c["eta_min"].as_u64());
        if z_eta_min.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let z_eta_min = z_eta_min.expect("Z's fix reached the position board") as f64;
    assert!(z_eta_min < 12.0, "{z_eta_min}");

    let reply = assign(&app, &demo, order, &z).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["status"], "assigned");
    assert_eq!(reply.json["nurse_id"], z.as_str());
    // The order now predicts Z's arrival, not the withdrawn offer's.
    let eta: DateTime<Utc> = reply.json["eta"].as_str().unwrap().parse().unwrap();
    let minutes = (eta - Utc::now()).num_milliseconds() as f64 / 60_000.0;
    assert!(
        minutes <= z_eta_min && minutes > z_eta_min - 2.0,
        "ETA in {minutes:.2} min, Z's estimate {z_eta_min} min"
    );
    assert_eq!(reply.json["offers"][0]["status"], "withdrawn");
    assert!(statuses(&reply.json["timeline"]).ends_with(&["assigned".to_owned()]));
    // The new nurse's phone gets the job with the address; the offer
    // holder's phone learns the offer is gone.
    let assigned = z_ws.expect_type("assigned", WAIT).await;
    assert_eq!(assigned["order_id"], order.to_string());
    assert_eq!(assigned["address"]["text"], "双福街道 福城大道 88 号");
    let closed = y_ws.expect_type("offer_closed", WAIT).await;
    assert_eq!(closed["offer_id"], held.id.to_string());
    assert_eq!(closed["reason"], "taken");

    // No double booking, and only orders still waiting.
    let second = place(&app).await;
    let reply = assign(&app, &demo, second, &z).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.error_code(), "nurse_busy");
    let reply = assign(&app, &demo, order, &y).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.error_code(), "not_assignable");
    // A nurse weighing another order's offer is busy too.
    let third = place(&app).await;
    offer(&app, third, &y).await;
    let reply = assign(&app, &demo, second, &y).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.error_code(), "nurse_busy");
    let reply = assign(&app, &demo, second, &off_duty).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.error_code(), "nurse_off_shift");

    // Nurses that are not the organisation's are refused, naming the field.
    let store = &app.running().backends.store;
    let other = OrgId::from(OTHER_ORG);
    store.ensure_organization(&other, "Other").await.unwrap();
    let mut foreign = Nurse::new(
        other.clone(),
        "外院护士",
        PhoneNumber::new("13900002222").unwrap(),
        vec![Skill::new("neonatal").unwrap()],
        Utc::now(),
    )
    .unwrap();
    foreign.shift = ShiftState::On;
    store.insert_nurse(&foreign).await.unwrap();
    for nurse in [
        foreign.id.to_string(),
        uuid::Uuid::new_v4().to_string(),
        "not-an-id".to_owned(),
    ] {
        let reply = assign(&app, &demo, second, &nurse).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{nurse}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "unknown_nurse");
        assert_eq!(reply.json["error"]["field"], "nurse_id");
    }
    // A deactivated nurse is refused too.
    let reply = app
        .send(
            app.http
                .patch(app.url(&format!("/v1/dispatch/nurses/{off_duty}")))
                .bearer_auth(&demo)
                .json(&json!({"active": false})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = assign(&app, &demo, second, &off_duty).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_code(), "nurse_inactive");

    // A nurse without the skills the service requires is refused.
    let catalog = store.catalog().await.unwrap();
    let required = &catalog
        .services
        .iter()
        .find(|s| s.code == "infant_jaundice_test")
        .unwrap()
        .required_skills;
    let other_skill = catalog
        .services
        .iter()
        .flat_map(|s| s.required_skills.iter())
        .find(|k| !required.contains(k))
        .unwrap();
    let unskilled = app
        .qualified_nurse(
            &demo,
            &json!({"name": "吴护士", "phone": "13700002222", "skills": [other_skill.as_str()]}),
        )
        .await;
    store
        .set_shift(
            &OrgId::from("demo"),
            NurseId(unskilled.parse().unwrap()),
            ShiftState::On,
        )
        .await
        .unwrap();
    let reply = assign(&app, &demo, second, &unskilled).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(reply.error_code(), "missing_skills");
    assert_eq!(reply.json["error"]["field"], "nurse_id");

    // Another organisation's coordinator cannot touch our orders, even with their nurse.
    let stranger = coordinator(&app, OTHER_ORG).await;
    let reply = assign(&app, &stranger, second, &foreign.id.to_string()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);

    // The resident sees the new nurse.
    let order_row = store.get_order(order).await.unwrap().unwrap();
    assert_eq!(order_row.status, OrderStatus::Assigned);
    assert_eq!(order_row.nurse_id.map(|n| n.to_string()), Some(z.clone()));
    let held_row = store.get_offer(held.id).await.unwrap().unwrap();
    assert_eq!(held_row.status, yixin_domain::OfferStatus::Withdrawn);
    y_ws.close().await;
    z_ws.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_coordinator_cancels_on_the_residents_behalf_until_the_visit_starts() {
    let app = spawn().await;
    let demo = coordinator(&app, "demo").await;
    let (y, y_token) = add_nurse(&app, &demo).await;
    let (z, z_token) = add_nurse(&app, &demo).await;
    let mut y_ws = on_shift(&app, &y_token).await;
    let mut z_ws = on_shift(&app, &z_token).await;

    // An offered order: the offer is withdrawn and its nurse told.
    let offered = place(&app).await;
    let held = offer(&app, offered, &y).await;
    y_ws.expect_type("offer", WAIT).await;
    let stranger = coordinator(&app, OTHER_ORG).await;
    assert_eq!(
        cancel(&app, &stranger, offered).await.status,
        StatusCode::NOT_FOUND
    );
    let reply = cancel(&app, &demo, offered).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["status"], "cancelled");
    assert_eq!(reply.json["cancel_reason"], "家属来电取消");
    assert_eq!(reply.json["offers"][0]["status"], "withdrawn");
    assert!(reply.json["minutes_left"].is_null());
    let closed = y_ws.expect_type("offer_closed", WAIT).await;
    assert_eq!(closed["offer_id"], held.id.to_string());
    assert_eq!(closed["reason"], "cancelled");
    let again = cancel(&app, &demo, offered).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "not_cancellable");

    // An assigned order: the nurse's phone learns through the order's channel.
    let assigned = place(&app).await;
    assert_eq!(
        assign(&app, &demo, assigned, &z).await.status,
        StatusCode::OK
    );
    z_ws.expect_type("assigned", WAIT).await;
    let reply = cancel(&app, &demo, assigned).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.json["nurse_id"].is_null());
    let frame = z_ws.expect_type("order_cancelled", WAIT).await;
    assert_eq!(frame["order_id"], assigned.to_string());
    // The nurse is free again: another order can be given to them.
    let next = place(&app).await;
    assert_eq!(assign(&app, &demo, next, &z).await.status, StatusCode::OK);

    // Once the visit has started it is too late.
    let store = &app.running().backends.store;
    for (from, to) in [
        (OrderStatus::Assigned, OrderStatus::EnRoute),
        (OrderStatus::EnRoute, OrderStatus::Arrived),
        (OrderStatus::Arrived, OrderStatus::InService),
    ] {
        store
            .transition_order(OrderTransition::new(next, vec![from], to, Utc::now()))
            .await
            .unwrap();
    }
    let reply = cancel(&app, &demo, next).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.error_code(), "not_cancellable");
    let reply = app
        .post(
            &format!("/v1/dispatch/orders/{}/cancel", uuid::Uuid::new_v4()),
            Some(&demo),
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    y_ws.close().await;
    z_ws.close().await;
    app.stop().await;
}

/// An order of `org` placed `ago` before now, straight into the store.
async fn order_placed_ago(app: &TestApp, org: &str, ago: TimeDelta) -> Order {
    let store = &app.running().backends.store;
    let order = Order::place(
        NewOrder {
            org_id: OrgId::from(org),
            resident_id: ResidentId::from("r-script"),
            service_code: "infant_jaundice_test".to_owned(),
            location: GeoPoint::new(HOME.0, HOME.1).unwrap(),
            address: Address::new("双福街道 福城大道 88 号", None).unwrap(),
            contact: Contact::new("王女士", "13812345678").unwrap(),
            notes: None,
            scheduled_for: None,
        },
        Utc::now() - ago,
    );
    store
        .create_order(
            &order,
            NewOutboxMessage {
                topic: "scripted".to_owned(),
                payload: Vec::new(),
            },
            None,
        )
        .await
        .unwrap();
    order
}

async fn steps(app: &TestApp, order: &Order, nurse: NurseId, path: &[(OrderStatus, i64)]) {
    let store = &app.running().backends.store;
    let mut from = order.status;
    for &(to, minutes_after_creation) in path {
        let mut change = OrderTransition::new(
            order.id,
            vec![from],
            to,
            order.created_at + TimeDelta::minutes(minutes_after_creation),
        );
        if to == OrderStatus::Assigned {
            change.nurse_id = Some(Some(nurse));
        }
        store.transition_order(change).await.unwrap();
        from = to;
    }
}

#[tokio::test]
async fn the_overview_of_a_scripted_day() {
    // The scripted orders reach 40 minutes back; just after local midnight
    // (Asia/Shanghai) some would fall on yesterday.
    let local = Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
    if local.time() < NaiveTime::from_hms_opt(0, 45, 0).unwrap() {
        eprintln!("skipped: too close to local midnight for a scripted day");
        return;
    }
    let app = spawn().await;
    let demo = coordinator(&app, "demo").await;
    let (n1, n1_token) = add_nurse(&app, &demo).await;
    let (n2, _) = add_nurse(&app, &demo).await;
    let (_n3, _) = add_nurse(&app, &demo).await; // stays off shift
    let n1 = NurseId(n1.parse().unwrap());
    let n2 = NurseId(n2.parse().unwrap());
    let minutes = TimeDelta::minutes;
    use OrderStatus::*;

    // A: reached after 20 of its 30 minutes, then served: in time.
    let a = order_placed_ago(&app, "demo", minutes(40)).await;
    steps(
        &app,
        &a,
        n1,
        &[
            (Assigned, 2),
            (EnRoute, 3),
            (Arrived, 20),
            (InService, 21),
            (Completed, 35),
        ],
    )
    .await;
    // B: reached after 33 minutes: late; the nurse is still there.
    let b = order_placed_ago(&app, "demo", minutes(35)).await;
    steps(&app, &b, n2, &[(Assigned, 4), (EnRoute, 5), (Arrived, 33)]).await;
    // C: nobody yet and past its promise: missed, and at risk.
    let c = order_placed_ago(&app, "demo", minutes(32)).await;
    // D: placed 5 minutes ago: not due yet, not at risk.
    let d = order_placed_ago(&app, "demo", minutes(5)).await;
    // E: cancelled: left out of the share.
    let e = order_placed_ago(&app, "demo", minutes(20)).await;
    steps(&app, &e, n1, &[(Cancelled, 1)]).await;
    // Another organisation's order counts nowhere here.
    let store = &app.running().backends.store;
    store
        .ensure_organization(&OrgId::from(OTHER_ORG), "Other")
        .await
        .unwrap();
    order_placed_ago(&app, OTHER_ORG, minutes(31)).await;

    // n1 is free with a position; n2 is on shift but busy with B.
    let mut n1_ws = on_shift(&app, &n1_token).await;
    n1_ws.send_json(&fix((29.3905, 106.3205))).await;
    store
        .set_shift(&OrgId::from("demo"), n2, ShiftState::On)
        .await
        .unwrap();

    let mut overview = json!(null);
    for _ in 0..100 {
        let reply = app.get("/v1/dispatch/overview", Some(&demo)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        overview = reply.json;
        if overview["nurses"]["free_with_position"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(overview["org"], "demo");
    assert_eq!(
        overview["open_orders"],
        json!({"pending": 2, "offered": 0, "assigned": 0, "en_route": 0, "arrived": 1,
               "in_service": 0, "escalated": 0, "awaiting_review": 0, "scheduled": 0, "total": 3})
    );
    assert_eq!(
        overview["nurses"],
        json!({"on_shift": 2, "free": 1, "free_with_position": 1, "stale": 0})
    );
    let today = &overview["today"];
    assert_eq!(today["orders"], 5, "{today}");
    assert_eq!(today["cancelled"], 1);
    assert_eq!(today["due"], 3, "A, B and C");
    assert_eq!(today["reached_in_time"], 1, "A only");
    let share = today["reached_in_time_share"].as_f64().unwrap();
    assert!((share - 1.0 / 3.0).abs() < 1e-9, "{share}");
    assert_eq!(today["median_minutes_to_accept"], 3.0, "2 and 4 minutes");
    assert_eq!(today["median_minutes_to_arrive"], 26.5, "20 and 33 minutes");
    let since: DateTime<Utc> = today["since"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        since
            .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
            .time(),
        NaiveTime::MIN
    );
    assert_eq!(
        overview["at_risk"],
        json!({"count": 1, "order_ids": [c.id.to_string()]})
    );
    let cells = overview["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1, "{cells:?}");
    let home_cell = h3o::LatLng::new(HOME.0, HOME.1)
        .unwrap()
        .to_cell(h3o::Resolution::Seven)
        .to_string();
    assert_eq!(
        cells[0],
        json!({"cell": home_cell, "free_nurses": 1, "open_orders": 3, "waiting_orders": 2})
    );
    let _ = (a, b, d);

    // The other organisation's coordinator sees only theirs.
    let stranger = coordinator(&app, OTHER_ORG).await;
    let theirs = app.get("/v1/dispatch/overview", Some(&stranger)).await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert_eq!(theirs.json["open_orders"]["pending"], 1);
    assert_eq!(theirs.json["nurses"]["on_shift"], 0);
    assert_eq!(theirs.json["today"]["orders"], 1);
    assert_eq!(theirs.json["cells"].as_array().unwrap().len(), 1);
    assert_eq!(theirs.json["cells"][0]["free_nurses"], 0);
    n1_ws.close().await;
    app.stop().await;
}

/// The next frame of `kind` on the feed that concerns `order`.
async fn frame_for(ws: &mut WsClient, kind: &str, order: OrderId) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = ws
            .next_json(left)
            .await
            .unwrap_or_else(|| panic!("no `{kind}` frame for {order}"));
        let about = if kind == "order" {
            &frame["id"]
        } else {
            &frame["order_id"]
        };
        if frame["type"] == kind && *about == order.to_string() {
            return frame;
        }
    }
}

#[tokio::test]
async fn the_live_feed_carries_the_organisations_dispatch_and_nothing_else() {
    // A nurse too far to make it in 30 minutes: the order is escalated at
    // once and still offered to them.
    let app = spawn_with(|s| {
        s.dispatch.auto = true;
        s.dispatch.escalate_after_secs = 0;
    })
    .await;
    let demo = coordinator(&app, "demo").await;
    let stranger = coordinator(&app, OTHER_ORG).await;
    let mut feed = app.ws("/v1/dispatch/live", &demo).await;
    let hello = feed.expect_type("hello", WAIT).await;
    assert_eq!(hello["org"], "demo");
    assert_eq!(hello["overview"]["open_orders"]["total"], 0);
    let mut theirs = app.ws("/v1/dispatch/live", &stranger).await;
    assert_eq!(theirs.expect_type("hello", WAIT).await["org"], OTHER_ORG);
    let resident = app.resident_token().await;
    assert_eq!(
        app.try_ws("/v1/dispatch/live", &resident).await.err(),
        Some(403)
    );

    // The nurse goes on shift and moves: the feed shows both.
    let (far, far_token) = add_nurse(&app, &demo).await;
    let mut far_ws = on_shift(&app, &far_token).await;
    let shift = feed.expect_type("nurse_shift", WAIT).await;
    assert_eq!(
        (shift["nurse_id"].as_str(), shift["on"].as_bool()),
        (Some(far.as_str()), Some(true))
    );
    far_ws.send_json(&fix((29.30, 106.20))).await;
    let moved = feed.expect_type("nurse_location", WAIT).await;
    assert_eq!(moved["nurse_id"], far.as_str());
    assert_eq!(moved["location"]["lat"], 29.30);
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Escalated (an alert), offered to the far nurse.
    let order = place(&app).await;
    let alert = frame_for(&mut feed, "alert", order).await;
    assert_eq!(alert["kind"], "escalated");
    assert!(alert["promised_by"].is_string());
    let offered = frame_for(&mut feed, "offer", order).await;
    assert_eq!(offered["nurse_id"], far.as_str());
    assert_eq!(offered["status"], "open");
    far_ws.expect_type("offer", WAIT).await;

    // The coordinator gives it to them by hand: the feed shows the order assigned.
    let reply = assign(&app, &demo, order, &far).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let mut frame = frame_for(&mut feed, "order", order).await;
    while frame["status"] != "assigned" {
        frame = frame_for(&mut feed, "order", order).await;
    }
    assert_eq!(frame["nurse_id"], far.as_str());
    assert_eq!(frame["address"]["text"], "双福街道 福城大道 88 号");
    // …and cancelled.
    assert_eq!(cancel(&app, &demo, order).await.status, StatusCode::OK);
    let mut frame = frame_for(&mut feed, "order", order).await;
    while frame["status"] != "cancelled" {
        frame = frame_for(&mut feed, "order", order).await;
    }

    // The other organisation's feed heard none of it.
    assert_eq!(
        theirs.next_json(Duration::from_millis(1_000)).await,
        None,
        "no frames for another organisation"
    );
    feed.close().await;
    theirs.close().await;
    far_ws.close().await;
    app.stop().await;
}

/// The resident's cancel and the coordinator's are one store operation
/// with the same effects: the open offer withdrawn with the order, the
/// nurse told (`offer_closed` `cancelled`), and the coordinators' feed
/// shows both the closed offer and the cancelled order.
#[tokio::test]
async fn a_residents_cancel_tells_the_nurse_and_the_coordinators_like_a_coordinators() {
    let app = spawn().await;
    let demo = coordinator(&app, "demo").await;
    let (y, y_token) = add_nurse(&app, &demo).await;
    let mut y_ws = on_shift(&app, &y_token).await;
    let mut feed = app.ws("/v1/dispatch/live", &demo).await;
    feed.expect_type("hello", WAIT).await;

    let resident = app.resident_token().await;
    let reply = app.order_jaundice_test(&resident, HOME).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let order: OrderId = reply.json["id"]
        .as_str()
        .unwrap()
        .parse()
        .map(OrderId)
        .unwrap();
    let held = offer(&app, order, &y).await;
    y_ws.expect_type("offer", WAIT).await;

    let reply = app
        .post(
            &format!("/v1/orders/{order}/cancel"),
            Some(&resident),
            &json!({"reason":"不需要了"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["status"], "cancelled");
    let closed = y_ws.expect_type("offer_closed", WAIT).await;
    assert_eq!(closed["offer_id"], held.id.to_string());
    assert_eq!(closed["reason"], "cancelled");

    // Both reach the feed, in whichever order.
    let (mut withdrawn, mut cancelled) = (None, None);
    let deadline = tokio::time::Instant::now() + WAIT;
    while withdrawn.is_none() || cancelled.is_none() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = feed
            .next_json(left)
            .await
            .unwrap_or_else(|| panic!("withdrawn {withdrawn:?}, cancelled {cancelled:?}"));
        if frame["type"] == "offer"
            && frame["order_id"] == order.to_string()
            && frame["status"] == "withdrawn"
        {
            withdrawn = Some(frame);
        } else if frame["type"] == "order"
            && frame["id"] == order.to_string()
            && frame["status"] == "cancelled"
        {
            cancelled = Some(frame);
        }
    }
    assert_eq!(withdrawn.unwrap()["reason"], "cancelled");
    let detail = app
        .get(&format!("/v1/dispatch/orders/{order}"), Some(&demo))
        .await;
    assert_eq!(detail.json["offers"][0]["status"], "withdrawn");
    feed.close().await;
    y_ws.close().await;
    app.stop().await;
}

/// Needs the outbox relay to broadcast `OrderCreated` (and every
/// `OrderStatusChanged`) on `dispatch_channel(org)` as well as on
/// `order:{id}`.
#[tokio::test]
async fn a_placed_order_reaches_the_live_feed_of_its_organisation_only() {
    let app = spawn().await;
    let demo = coordinator(&app, "demo").await;
    let stranger = coordinator(&app, OTHER_ORG).await;
    let mut feed = app.ws("/v1/dispatch/live", &demo).await;
    feed.expect_type("hello", WAIT).await;
    let mut theirs = app.ws("/v1/dispatch/live", &stranger).await;
    theirs.expect_type("hello", WAIT).await;

    let order = place(&app).await;
    let frame = frame_for(&mut feed, "order", order).await;
    assert_eq!(frame["status"], "pending");
    assert_eq!(frame["contact"]["phone"], "13812345678");
    assert_eq!(statuses(&frame["timeline"]), ["pending"]);
    assert_eq!(theirs.next_json(Duration::from_millis(1_000)).await, None);
    feed.close().await;
    theirs.close().await;
    app.stop().await;
}

/// Every `$ref` inside `value`, followed through the components they name.
fn refs_resolve(doc: &Value, value: &Value, seen: &mut std::collections::HashSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("unexpected $ref {r}"));
                let schema = &doc["components"]["schemas"][name];
                assert!(schema.is_object(), "{r} does not resolve");
                if seen.insert(name.to_owned()) {
                    refs_resolve(doc, schema, seen);
                }
            }
            for v in map.values() {
                refs_resolve(doc, v, seen);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs_resolve(doc, v, seen)),
        _ => {}
    }
}

#[tokio::test]
async fn the_coordinator_api_is_described_in_the_openapi_document() {
    let app = spawn().await;
    let doc = app.get("/openapi.json", None).await.json;
    for (path, method) in [
        ("/v1/dispatch/areas", "get"),
        ("/v1/dispatch/areas", "post"),
        ("/v1/dispatch/orders", "get"),
        ("/v1/dispatch/orders/{id}", "get"),
        ("/v1/dispatch/orders/{id}/assign", "post"),
        ("/v1/dispatch/orders/{id}/cancel", "post"),
        ("/v1/dispatch/overview", "get"),
        ("/v1/dispatch/live", "get"),
    ] {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} not described");
        assert_eq!(operation["tags"][0], "coordinator", "{method} {path}");
        refs_resolve(&doc, operation, &mut Default::default());
    }
    let params = doc["paths"]["/v1/dispatch/orders"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(params.iter().any(|p| p["name"] == "status"));
    assert!(params.iter().any(|p| p["name"] == "limit"));
    app.stop().await;
}

/// The overview's nurse counts and the nurse's roster entry, read together.
async fn nurse_counts_and_entry(app: &TestApp, coord: &str, id: &str) -> (Value, Value) {
    let overview = app.get("/v1/dispatch/overview", Some(coord)).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.text);
    let roster = app.get("/v1/dispatch/nurses", Some(coord)).await;
    let me = roster
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .cloned()
        .unwrap();
    (overview.json["nurses"].clone(), me)
}

#[tokio::test]
async fn a_nurse_without_a_fresh_fix_is_stale_on_the_roster_and_not_free_in_the_kpis() {
    let app = spawn_with(|s| s.tracking.stale_after_secs = 2).await;
    let coord = coordinator(&app, "demo").await;
    let (id, token) = add_nurse(&app, &coord).await;
    let mut ws = on_shift(&app, &token).await;
    ws.send_json(&fix(HOME)).await;

    // Both read the same rule at the same moment: free and fresh, then
    // (no fix for over 2 s) stale and not free.
    let until = std::time::Instant::now() + WAIT;
    loop {
        let (counts, me) = nurse_counts_and_entry(&app, &coord, &id).await;
        if counts["free"] == 1 {
            assert_eq!(counts["stale"], 0, "{counts}");
            assert_eq!(me["stale"], false, "{me}");
            break;
        }
        assert!(std::time::Instant::now() < until, "never free: {counts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let until = std::time::Instant::now() + WAIT;
    loop {
        let (counts, me) = nurse_counts_and_entry(&app, &coord, &id).await;
        if counts["free"] == 0 {
            assert_eq!(counts["on_shift"], 1, "{counts}");
            assert_eq!(counts["stale"], 1, "{counts}");
            assert_eq!(counts["free_with_position"], 0, "{counts}");
            assert_eq!(me["stale"], true, "the roster says stale too: {me}");
            break;
        }
        assert!(std::time::Instant::now() < until, "never stale: {counts}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A new fix makes her free again.
    ws.send_json(&fix(HOME)).await;
    let until = std::time::Instant::now() + WAIT;
    while nurse_counts_and_entry(&app, &coord, &id).await.0["free"] != 1 {
        assert!(
            std::time::Instant::now() < until,
            "not free after a new fix"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ws.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_coordinator_sees_the_residents_rating_and_the_days_average() {
    let local = Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
    if local.time() < NaiveTime::from_hms_opt(0, 45, 0).unwrap() {
        eprintln!("skipped: too close to local midnight for today's orders");
        return;
    }
    let app = spawn().await;
    let coord = coordinator(&app, "demo").await;
    let (nurse, _) = add_nurse(&app, &coord).await;
    let nurse = NurseId(nurse.parse().unwrap());
    let resident = app.token("resident", "r-script", "demo").await;
    let mut rated = Vec::new();
    for (stars, comment) in [(5, Some("准时，很专业")), (4, None)] {
        let order = order_placed_ago(&app, "demo", TimeDelta::minutes(40)).await;
        steps(
            &app,
            &order,
            nurse,
            &[
                (OrderStatus::Assigned, 1),
                (OrderStatus::EnRoute, 2),
                (OrderStatus::Arrived, 15),
                (OrderStatus::InService, 16),
                (OrderStatus::Completed, 35),
            ],
        )
        .await;
        // Not rated yet: nothing to show.
        let seen = app
            .get(&format!("/v1/dispatch/orders/{}", order.id), Some(&coord))
            .await;
        assert_eq!(seen.json["rating"], Value::Null, "{}", seen.text);
        let before = Utc::now();
        let reply = app
            .post(
                &format!("/v1/orders/{}/rating", order.id),
                Some(&resident),
                &json!({"stars": stars, "comment": comment}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        rated.push((order.id, stars, comment, before));
    }
    for (id, stars, comment, before) in &rated {
        let seen = app
            .get(&format!("/v1/dispatch/orders/{id}"), Some(&coord))
            .await;
        assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
        let rating = &seen.json["rating"];
        assert_eq!(rating["stars"], *stars, "{rating}");
        assert_eq!(rating["comment"], json!(comment), "{rating}");
        let at: DateTime<Utc> = rating["rated_at"].as_str().unwrap().parse().unwrap();
        assert!(
            at >= *before - TimeDelta::seconds(1),
            "rated just now: {at}"
        );
        // The list carries it too.
        let list = app
            .get("/v1/dispatch/orders?status=completed", Some(&coord))
            .await;
        let listed = list
            .json
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id.to_string())
            .cloned()
            .unwrap();
        assert_eq!(listed["rating"]["stars"], *stars);
    }
    let overview = app.get("/v1/dispatch/overview", Some(&coord)).await;
    assert_eq!(overview.json["today"]["ratings"], 2, "{}", overview.text);
    assert_eq!(
        overview.json["today"]["average_rating"], 4.5,
        "{}",
        overview.text
    );
    // Another organisation's coordinator sees none of it.
    app.running()
        .backends
        .store
        .ensure_organization(&OrgId::from(OTHER_ORG), "Other")
        .await
        .unwrap();
    let other = coordinator(&app, OTHER_ORG).await;
    let overview = app.get("/v1/dispatch/overview", Some(&other)).await;
    assert_eq!(overview.json["today"]["ratings"], 0, "{}", overview.text);
    assert_eq!(overview.json["today"]["average_rating"], Value::Null);
    app.stop().await;
}
