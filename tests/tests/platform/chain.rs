//! Chained offers end to end: a nurse finishing a visit gets an offer for
//! an order nearby, counted from the visit's predicted end; won, it is her
//! next job (`next`), shown with its address, and becomes her current job
//! when the visit is completed. An overrun that puts the next promise at
//! risk takes the job back and offers it to another nurse.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use yixin::Role;
use yixin_domain::{OrderId, OrderStatus};
use yixin_e2e::{AppOptions, StatusCode, TestApp, WsClient, progress_frame, spawn_app_with};
use yixin_store::entity::{order, visit_check};

use crate::dispatch::{HOME, nurse_at, place};

/// Longer than a round of the chain loop (5 s) plus a dispatch retry.
const CHAIN_WAIT: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(8);

async fn spawn() -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(|s| {
            s.dispatch.retry_secs = 1;
            // Any visit under way is within the horizon; the test moves the
            // start of the visit to say when it ends.
            s.dispatch.chain_horizon_s = 1_200;
        }),
    })
    .await
}

fn fix(at: (f64, f64)) -> Value {
    json!({"type":"location","lat":at.0,"lng":at.1,"accuracy_m":5,"ts":Utc::now()})
}

/// Takes the offer of `order` on `ws` and works the visit until it is in
/// service; then says it started `started_ago` before now (the service's
/// duration decides when it is predicted to end).
async fn in_service(app: &TestApp, ws: &mut WsClient, order: OrderId, started_ago: TimeDelta) {
    let offer = ws.expect_type("offer", WAIT).await;
    assert_eq!(offer["order_id"], order.to_string());
    assert_eq!(offer["chained"], false, "{offer}");
    ws.send_json(&json!({"type":"accept","offer_id": offer["offer_id"]}))
        .await;
    ws.expect_type("assigned", WAIT).await;
    let id = order.to_string();
    ws.send_json(&progress_frame(&id, "en_route")).await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "en_route");
    ws.send_json(&fix(HOME)).await;
    ws.send_json(&progress_frame(&id, "arrived")).await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "arrived");
    ws.send_json(&progress_frame(&id, "started")).await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "in_service");
    let db = app.running().backends.store.connection().clone();
    visit_check::Entity::update_many()
        .col_expr(
            visit_check::Column::StartedAt,
            Expr::value(Utc::now() - started_ago),
        )
        .filter(visit_check::Column::OrderId.eq(order.0))
        .exec(&db)
        .await
        .unwrap();
}

/// The jaundice test's duration, from the catalogue.
async fn duration(app: &TestApp) -> TimeDelta {
    let catalog = app.running().backends.store.catalog().await.unwrap();
    let service = catalog
        .services
        .iter()
        .find(|s| s.code == "infant_jaundice_test")
        .unwrap();
    TimeDelta::minutes(i64::from(service.duration_min))
}

#[tokio::test]
async fn a_nurse_finishing_a_visit_wins_her_next_job_and_gets_it_when_done() {
    let app = spawn().await;
    let (nurse, mut ws) = nurse_at(&app, (29.391, 106.3205)).await;
    let token = app.token("nurse", &nurse, "demo").await;
    crate::dispatch::settle().await;
    let (first, _) = place(&app).await;
    // Five minutes left of her visit.
    in_service(
        &app,
        &mut ws,
        first,
        duration(&app).await - TimeDelta::minutes(5),
    )
    .await;

    let (second, resident) = place(&app).await;
    let offer = ws.expect_type("offer", CHAIN_WAIT).await;
    assert_eq!(offer["order_id"], second.to_string());
    assert_eq!(offer["chained"], true, "{offer}");
    let free_at: chrono::DateTime<Utc> = offer["free_at"].as_str().unwrap().parse().unwrap();
    let left = free_at - Utc::now();
    assert!(
        left > TimeDelta::minutes(4) && left <= TimeDelta::minutes(5),
        "free in {left}"
    );
    assert!(offer.get("address").is_none(), "no address before winning");
    ws.send_json(&json!({"type":"accept","offer_id": offer["offer_id"]}))
        .await;
    let next = ws.expect_type("assigned", WAIT).await;
    assert_eq!(next["order_id"], second.to_string());
    assert_eq!(next["next"], true, "{next}");
    assert!(
        next["address"]["text"].is_string(),
        "the winner sees the address"
    );

    // Her jobs: the current one, then the next.
    let jobs = app.get("/v1/nurse/jobs", Some(&token)).await;
    let jobs = jobs.json.as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(jobs[0]["order_id"], first.to_string());
    assert_eq!(jobs[0]["next"], false);
    assert_eq!(jobs[1]["order_id"], second.to_string());
    assert_eq!(jobs[1]["next"], true);

    // The resident's ETA counts from the end of the current visit.
    let seen = app
        .get(&format!("/v1/orders/{second}"), Some(&resident))
        .await;
    assert_eq!(seen.json["status"], "assigned");
    assert_eq!(seen.json["nurse"]["id"], nurse);
    let eta: chrono::DateTime<Utc> = seen.json["eta"].as_str().unwrap().parse().unwrap();
    assert!(eta > free_at, "eta {eta} after the visit ends at {free_at}");

    // The next job waits: no visit step yet.
    ws.send_json(&progress_frame(&second.to_string(), "en_route"))
        .await;
    assert_eq!(
        ws.expect_type("error", WAIT).await["code"],
        "step_out_of_order"
    );

    // The visit ends: the next job is her current job, pushed to the phone.
    let reply = app.submit_jaundice_record(&token, &first.to_string()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    ws.send_json(&progress_frame(&first.to_string(), "completed"))
        .await;
    let now_current = ws.expect_type("assigned", WAIT).await;
    assert_eq!(now_current["order_id"], second.to_string());
    assert_eq!(now_current["next"], false, "{now_current}");
    assert!(now_current["address"]["text"].is_string());
    let jobs = app.get("/v1/nurse/jobs", Some(&token)).await;
    assert_eq!(jobs.json.as_array().unwrap().len(), 1, "{}", jobs.json);
    ws.send_json(&progress_frame(&second.to_string(), "en_route"))
        .await;
    assert_eq!(ws.expect_type("ack", WAIT).await["status"], "en_route");
    app.stop().await;
}

#[tokio::test]
async fn an_overrun_takes_the_next_job_back_and_offers_it_to_another_nurse() {
    let app = spawn().await;
    let (busy, mut busy_ws) = nurse_at(&app, (29.391, 106.3205)).await;
    crate::dispatch::settle().await;
    let (first, _) = place(&app).await;
    in_service(
        &app,
        &mut busy_ws,
        first,
        duration(&app).await - TimeDelta::minutes(3),
    )
    .await;
    // The engine reads visits every 5 s: let one round see her visit.
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Nobody else is on shift: the busy one, free in 3 minutes next door,
    // is offered the order as her next job (under every policy).
    let (second, _) = place(&app).await;
    let offer = busy_ws.expect_type("offer", CHAIN_WAIT).await;
    assert_eq!(offer["order_id"], second.to_string());
    assert_eq!(offer["chained"], true, "{offer}");
    busy_ws
        .send_json(&json!({"type":"accept","offer_id": offer["offer_id"]}))
        .await;
    assert_eq!(busy_ws.expect_type("assigned", WAIT).await["next"], true);
    // Another nurse comes on shift, farther away.
    let (other, mut other_ws) = nurse_at(&app, (29.405, 106.335)).await;
    crate::dispatch::settle().await;

    // Time passes on the visit: the next order's promise is now behind the
    // predicted arrival (its promise moved into the past stands for the
    // minutes a long overrun would take).
    let store = app.running().backends.store.clone();
    order::Entity::update_many()
        .col_expr(
            order::Column::PromisedBy,
            Expr::value(Utc::now() - TimeDelta::minutes(1)),
        )
        .col_expr(
            order::Column::Eta,
            Expr::value(Utc::now() - TimeDelta::minutes(2)),
        )
        .filter(order::Column::Id.eq(second.0))
        .exec(store.connection())
        .await
        .unwrap();
    let told = busy_ws.expect_type("order_reassigned", CHAIN_WAIT).await;
    assert_eq!(told["order_id"], second.to_string());
    let offered = other_ws.expect_type("offer", CHAIN_WAIT).await;
    assert_eq!(offered["order_id"], second.to_string());
    assert_eq!(offered["chained"], false);
    let timeline = store.timeline(second).await.unwrap();
    assert!(
        timeline
            .windows(2)
            .any(|w| w[0].status == OrderStatus::Assigned && w[1].status == OrderStatus::Pending),
        "the timeline records the take-back: {timeline:?}"
    );
    // No double booking: the busy nurse holds her current job only.
    let (current, next) = store
        .jobs_for_nurse(busy.parse().map(yixin_domain::NurseId).unwrap())
        .await
        .unwrap();
    assert_eq!(current.map(|o| o.id), Some(first));
    assert!(next.is_none());
    other_ws
        .send_json(&json!({"type":"accept","offer_id": offered["offer_id"]}))
        .await;
    other_ws.expect_type("assigned", WAIT).await;
    let o = store.get_order(second).await.unwrap().unwrap();
    assert_eq!(o.nurse_id.map(|n| n.to_string()), Some(other));
    assert_eq!(o.chained_after, None);
    app.stop().await;
}
