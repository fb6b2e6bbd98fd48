//! Demand forecast and repositioning end to end: the organisation's order
//! history in one area → an idle nurse elsewhere gets a `suggestion` frame
//! toward it, a busy nurse none; the coordinator's forecast shows the cell
//! and the suggestion, another organisation's coordinator sees nothing of
//! it; the suggestion is cleared when she gets work. Skill-aware: a
//! rehab-only nurse is sent where the rehab orders are left uncovered, not
//! where nurses who cannot take them already wait.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::json;
use yixin::Role;
use yixin_contracts::NewOutboxMessage;
use yixin_dispatch_core::reposition::{IdleNurse, RepositionSettings, suggest};
use yixin_domain::NurseId;
use yixin_domain::{Address, Contact, GeoPoint, NewOrder, Order, OrgId, OrgTimeZone, ResidentId};
use yixin_e2e::{AppOptions, StatusCode, TestApp, WsClient, spawn_app_with};

use crate::dispatch::{WAIT, nurse_at, settle};

/// Where the busy nurse works (and the order that keeps her busy), in the
/// south-west of the demo area.
const HOME: (f64, f64) = (29.37, 106.30);
/// Where the history's orders were placed, in its north-east (5.5 km away).
const DEMAND: (f64, f64) = (29.42, 106.35);

async fn spawn() -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(|s| {
            s.dispatch.retry_secs = 1;
            s.dispatch.reposition_every_s = 1;
            s.dispatch.reposition_relearn_s = 1;
            // Ten minutes' reach (about 2.7 km straight line at 25 km/h and
            // a 1.4 detour), so a nurse 3.5 km away gains by moving.
            s.dispatch.reposition_reach_s = 600;
        }),
    })
    .await
}

/// Two orders an hour at `DEMAND` over the two complete local days before
/// today (cancelled at once, so dispatch never works on them; a cancelled
/// order was demand all the same).
async fn history(app: &TestApp) {
    history_of(
        app,
        &[
            (DEMAND, "infant_jaundice_test"),
            (DEMAND, "infant_jaundice_test"),
        ],
    )
    .await;
}

/// Each of `orders` (a place and a service) once an hour over the two
/// complete local days before today, cancelled at once.
async fn history_of(app: &TestApp, orders: &[((f64, f64), &str)]) {
    let store = &app.running().backends.store;
    let today = OrgTimeZone::CHINA.start_of_day(Utc::now());
    for hour in 1..=48 {
        for &(place, service) in orders {
            let at = today - TimeDelta::hours(hour) + TimeDelta::minutes(10);
            let order = Order::place(
                NewOrder {
                    org_id: OrgId::from("demo"),
                    resident_id: ResidentId::from("history"),
                    service_code: service.to_owned(),
                    location: GeoPoint::new(place.0, place.1).unwrap(),
                    address: Address::new("双福街道 历史订单", None).unwrap(),
                    contact: Contact::new("王芳", "13800138000").unwrap(),
                    notes: None,
                    scheduled_for: None,
                },
                at,
            );
            // A stream no service reads: these orders are history only.
            let quiet = || NewOutboxMessage {
                topic: "test-history".to_owned(),
                payload: Vec::new(),
            };
            store.create_order(&order, quiet(), None).await.unwrap();
            store
                .cancel_order(order.id, Some("history"), at, |_, _| quiet())
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn an_idle_nurse_is_suggested_a_spot_near_the_expected_demand_and_a_busy_one_is_not() {
    let app = spawn().await;
    history(&app).await;
    let coordinator = app.token("coordinator", "coord", "demo").await;
    let forecast = app.get("/v1/dispatch/forecast", Some(&coordinator)).await;
    assert_eq!(forecast.status, StatusCode::OK, "{}", forecast.text);
    assert_eq!(forecast.json["days_learnt"], 2, "{}", forecast.json);
    let cells = forecast.json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1, "one cell of demand: {}", forecast.json);
    let cell = &cells[0];
    let expected = cell["expected_orders"].as_f64().unwrap();
    assert!((expected - 2.0).abs() < 1e-9, "two orders an hour: {cell}");
    assert_eq!(cell["boundary"].as_array().unwrap().len(), 6);
    let centre = (
        cell["center"]["lat"].as_f64().unwrap(),
        cell["center"]["lng"].as_f64().unwrap(),
    );

    // The busy nurse: at HOME, with a job there.
    let (busy, mut busy_ws) = nurse_at(&app, HOME).await;
    settle().await;
    let resident = app.resident_token().await;
    let order = app.order_jaundice_test(&resident, HOME).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    let offer = busy_ws.expect_type("offer", WAIT).await;
    busy_ws
        .send_json(&json!({"type":"accept","offer_id": offer["offer_id"]}))
        .await;
    busy_ws.expect_type("assigned", WAIT).await;

    // The idle nurse: 3.5 km west of the demand's cell, out of its reach.
    let idle_at = (centre.0, centre.1 - 0.0361);
    let (idle, mut idle_ws) = nurse_at(&app, idle_at).await;
    let suggestion = idle_ws.expect_type("suggestion", WAIT).await;
    assert_eq!(suggestion["cell"], cell["cell"], "{suggestion}");
    assert_eq!(suggestion["reason"], "next_hour_demand");
    let to = &suggestion["location"];
    assert!(
        (to["lat"].as_f64().unwrap() - centre.0).abs() < 1e-9,
        "{suggestion}"
    );
    assert!(
        (to["lng"].as_f64().unwrap() - centre.1).abs() < 1e-9,
        "{suggestion}"
    );
    let distance = suggestion["distance_m"].as_u64().unwrap();
    assert!((3_300..=3_700).contains(&distance), "{suggestion}");
    assert!((suggestion["expected_orders"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    let until: chrono::DateTime<Utc> = suggestion["until"].as_str().unwrap().parse().unwrap();
    assert!(until > Utc::now() + TimeDelta::minutes(25), "{suggestion}");
    // Not sent again every round while it holds.
    assert!(
        idle_ws
            .next_json(Duration::from_millis(2_500))
            .await
            .is_none_or(|f| f["type"] != "suggestion"),
        "the same spot is not sent again"
    );
    // The busy nurse gets none.
    while let Some(frame) = busy_ws.next_json(Duration::from_millis(500)).await {
        assert_ne!(
            frame["type"], "suggestion",
            "a busy nurse is not moved: {frame}"
        );
    }

    // The coordinator sees the cell and the suggestion.
    let forecast = app.get("/v1/dispatch/forecast", Some(&coordinator)).await;
    let suggestions = forecast.json["suggestions"].as_array().unwrap();
    assert_eq!(suggestions.len(), 1, "{}", forecast.json);
    assert_eq!(suggestions[0]["nurse_id"], idle);
    assert_ne!(suggestions[0]["nurse_id"], busy);
    assert_eq!(suggestions[0]["cell"], cell["cell"]);
    // Another organisation's coordinator sees nothing of it.
    let other = app.token("coordinator", "coord-2", "other-hospital").await;
    let theirs = app.get("/v1/dispatch/forecast", Some(&other)).await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.text);
    assert_eq!(theirs.json["cells"], json!([]), "{}", theirs.json);
    assert_eq!(theirs.json["suggestions"], json!([]), "{}", theirs.json);
    assert_eq!(theirs.json["days_learnt"], 0);
    // Residents and nurses may not read it.
    let nurse = app.token("nurse", &idle, "demo").await;
    let refused = app.get("/v1/dispatch/forecast", Some(&nurse)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // She gets work: the suggestion is cleared.
    let near_her = app.order_jaundice_test(&resident, idle_at).await;
    assert_eq!(near_her.status, StatusCode::CREATED, "{}", near_her.text);
    let offer = idle_ws.expect_type("offer", WAIT).await;
    let cleared = idle_ws.expect_type("suggestion_cleared", WAIT).await;
    assert_eq!(cleared["reason"], "engaged", "{cleared}");
    idle_ws
        .send_json(&json!({"type":"decline","offer_id": offer["offer_id"]}))
        .await;
    let forecast = app.get("/v1/dispatch/forecast", Some(&coordinator)).await;
    assert!(
        forecast.json["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["nurse_id"] != idle),
        "{}",
        forecast.json
    );
    app.stop().await;
}

#[tokio::test]
async fn without_history_no_cell_is_forecast_and_no_one_is_moved() {
    let app = spawn().await;
    let (_, mut ws) = nurse_at(&app, HOME).await;
    while let Some(frame) = ws.next_json(Duration::from_millis(2_500)).await {
        assert_ne!(frame["type"], "suggestion", "{frame}");
    }
    let coordinator = app.token("coordinator", "coord", "demo").await;
    let forecast = app.get("/v1/dispatch/forecast", Some(&coordinator)).await;
    assert_eq!(forecast.status, StatusCode::OK);
    assert_eq!(forecast.json["cells"], json!([]));
    assert_eq!(forecast.json["expected_orders"], 0.0);
    assert_eq!(forecast.json["suggestions"], json!([]));
    app.stop().await;
}

/// A nurse of the demo roster holding only `skills`, connected, on shift,
/// at `at`.
async fn nurse_with(app: &TestApp, skills: &[&str], at: (f64, f64)) -> (String, WsClient) {
    let coordinator = app.token("coordinator", "coord", "demo").await;
    let id = app
        .qualified_nurse(
            &coordinator,
            &json!({"name": "吴护士", "phone": "13700002222", "skills": skills}),
        )
        .await;
    let token = app.token("nurse", &id, "demo").await;
    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    ws.send_json(&json!({"type":"shift","state":"on"})).await;
    ws.expect_type("ack", WAIT).await;
    ws.send_json(&json!({"type":"location","lat":at.0,"lng":at.1,"accuracy_m":5,"ts":Utc::now()}))
        .await;
    (id, ws)
}

/// Two towns 7 km apart, each hour's orders: in the quiet town one rehab
/// and one wound-care order, in the busy town one rehab and two wound-care
/// orders (rehab 40 % of the orders). Three wound-care-only nurses wait in
/// the busy town. Counting orders alone, they cover it and a nurse halfway
/// between is sent to the quiet town, where nobody is; but they cannot take
/// its rehab orders, so a rehab-only nurse halfway is sent to the busy
/// town, where more rehab orders are expected and none is covered.
#[tokio::test]
async fn a_rehab_nurse_is_sent_where_the_rehab_orders_are_uncovered() {
    let quiet = (29.40, 106.28);
    let busy = (29.40, 106.352);
    let app = spawn().await;
    history_of(
        &app,
        &[
            (quiet, "knee_joint_package"),
            (quiet, "wound_care"),
            (busy, "knee_joint_package"),
            (busy, "wound_care"),
            (busy, "wound_care"),
        ],
    )
    .await;
    let coordinator = app.token("coordinator", "coord", "demo").await;
    let forecast = app.get("/v1/dispatch/forecast", Some(&coordinator)).await;
    let cells = forecast.json["cells"].as_array().unwrap().clone();
    assert_eq!(cells.len(), 2, "{}", forecast.json);
    // Most first: the busy town's cell, then the quiet one's.
    let centre = |c: &serde_json::Value| {
        (
            c["center"]["lat"].as_f64().unwrap(),
            c["center"]["lng"].as_f64().unwrap(),
        )
    };
    let (busy_c, quiet_c) = (centre(&cells[0]), centre(&cells[1]));
    assert!((cells[0]["expected_orders"].as_f64().unwrap() - 3.0).abs() < 1e-9);
    assert!((cells[1]["expected_orders"].as_f64().unwrap() - 2.0).abs() < 1e-9);

    let mut wound = Vec::new();
    for _ in 0..3 {
        wound.push(nurse_with(&app, &["wound_care"], busy_c).await);
    }
    settle().await;
    // Halfway: out of reach of both towns, within a move of each.
    let halfway = ((busy_c.0 + quiet_c.0) / 2.0, (busy_c.1 + quiet_c.1) / 2.0);
    let (_rehab, mut rehab_ws) = nurse_with(&app, &["rehab"], halfway).await;
    let suggestion = rehab_ws.expect_type("suggestion", WAIT).await;
    assert_eq!(
        suggestion["cell"], cells[0]["cell"],
        "the rehab nurse goes to the busy town: {suggestion}"
    );
    assert!((suggestion["expected_orders"].as_f64().unwrap() - 3.0).abs() < 1e-9);
    // The single-kind model (the worker before kinds) would have sent her
    // to the quiet town.
    let point = |p: (f64, f64)| GeoPoint::new(p.0, p.1).unwrap();
    let cell = |c: &serde_json::Value| {
        c["cell"]
            .as_str()
            .unwrap()
            .parse::<h3o::CellIndex>()
            .unwrap()
    };
    let idle: Vec<IdleNurse> = (0..4u128)
        .map(|i| IdleNurse {
            nurse_id: NurseId::from(uuid::Uuid::from_u128(i + 1)),
            at: point(if i < 3 { busy_c } else { halfway }),
        })
        .collect();
    let demand = [(cell(&cells[0]), 3.0), (cell(&cells[1]), 2.0)];
    let settings = RepositionSettings {
        reach_s: 600,
        ..RepositionSettings::default()
    };
    let single = suggest(&idle, &[], &demand, &settings);
    let hers = single
        .iter()
        .find(|x| x.nurse_id == idle[3].nurse_id)
        .unwrap();
    assert_eq!(hers.cell, cell(&cells[1]), "{single:?}");
    drop(wound);
    app.stop().await;
}
