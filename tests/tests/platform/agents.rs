//! The `agent` role (family doctor, grid worker, ward nurse): orders for a
//! patient with the consent recorded, and sees only the orders it placed.

use chrono::Utc;
use serde_json::json;
use yixin_e2e::{StatusCode, spawn_app};

const HOME: (f64, f64) = (29.39, 106.32);

#[tokio::test]
async fn an_agent_orders_with_consent_and_sees_only_its_own_orders() {
    let app = spawn_app().await;
    let doctor = app.token("agent", "doctor-li", "demo").await;
    let grid = app.token("agent", "grid-wang", "demo").await;

    // No consent recorded: refused.
    let bare = app
        .order_service(&doctor, "infant_jaundice_test", HOME, json!({}))
        .await;
    assert_eq!(
        bare.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bare.text
    );
    assert_eq!(bare.error_code(), "consent_required");
    let vague = app
        .order_service(
            &doctor,
            "infant_jaundice_test",
            HOME,
            json!({"on_behalf_of": {"patient_name": "张大爷", "consent_by": " ", "relation": "self",
                   "consent_method": "in_person", "consented_at": Utc::now()}}),
        )
        .await;
    assert_eq!(
        vague.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        vague.text
    );

    let placed = app
        .order_service(
            &doctor,
            "infant_jaundice_test",
            HOME,
            json!({"on_behalf_of": {"patient_name": "张大爷", "consent_by": "张丽", "relation": "女儿",
                   "consent_method": "phone", "consented_at": Utc::now()}}),
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    let id = placed.json["id"].as_str().unwrap().to_owned();
    let order = app
        .running()
        .backends
        .store
        .get_order(id.parse().map(yixin_domain::OrderId).unwrap())
        .await
        .unwrap()
        .unwrap();
    let consent = order.clinical.on_behalf_of.expect("consent recorded");
    assert_eq!(
        (
            consent.consent_by.as_str(),
            consent.relation.as_str(),
            consent.consent_method.as_str()
        ),
        ("张丽", "女儿", "phone")
    );

    // The agent sees it; another agent and a resident do not.
    let path = format!("/v1/orders/{id}");
    assert_eq!(app.get(&path, Some(&doctor)).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&path, Some(&grid)).await.status,
        StatusCode::NOT_FOUND
    );
    let resident = app.token("resident", "doctor-li", "demo").await;
    assert_eq!(
        app.get(&path, Some(&resident)).await.status,
        StatusCode::NOT_FOUND
    );
    let mine = app.get("/v1/orders", Some(&doctor)).await;
    assert_eq!(
        mine.json["orders"].as_array().map(Vec::len),
        Some(1),
        "{}",
        mine.text
    );
    let theirs = app.get("/v1/orders", Some(&grid)).await;
    assert_eq!(
        theirs.json["orders"].as_array().map(Vec::len),
        Some(0),
        "{}",
        theirs.text
    );
    // A nurse cannot order.
    let nurse = app.token("nurse", "n-1", "demo").await;
    let refused = app
        .order_service(&nurse, "infant_jaundice_test", HOME, json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    app.stop().await;
}
