//! The `agent` role (family doctor, grid worker, ward nurse): on the
//! organisation's agent list, keeps her own registered patients (who may
//! have no phone), orders for one of them with the consent recorded, and
//! sees only the orders she placed. (Sign-in by SMS code: `signin.rs`.)

use chrono::Utc;
use serde_json::{Value, json};
use yixin_e2e::{StatusCode, TestApp, spawn_app};

const HOME: (f64, f64) = (29.39, 106.32);

/// Adds an agent to the list as the coordinator; her token (sub = her id).
async fn listed_agent(
    app: &TestApp,
    coordinator: &str,
    name: &str,
    phone: &str,
) -> (String, String) {
    let added = app
        .post(
            "/v1/dispatch/agents",
            Some(coordinator),
            &json!({"name": name, "phone": phone, "kind": "grid_worker"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let id = added.json["id"].as_str().unwrap().to_owned();
    let token = app.token("agent", &id, "demo").await;
    (id, token)
}

fn patient_body() -> Value {
    json!({"name": "张大爷", "sex": "male", "birth_year": 1941,
           "address": {"text": "双福街道 福城大道 88 号", "detail": "3 栋 1 单元 201"},
           "location": {"lat": HOME.0, "lng": HOME.1},
           "notes": "独居，钥匙在邻居 302 家"})
}

fn consent() -> Value {
    json!({"consent_by": "张丽", "relation": "女儿", "consent_method": "phone",
           "consented_at": Utc::now()})
}

#[tokio::test]
async fn the_agent_list_is_the_coordinators_and_checks_its_input() {
    let app = spawn_app().await;
    let coordinator = app.token("coordinator", "coord-1", "demo").await;
    let (_, _) = listed_agent(&app, &coordinator, "王网格员", "13600001111").await;
    // One agent per phone; a bad kind or phone names its field.
    let twice = app
        .post(
            "/v1/dispatch/agents",
            Some(&coordinator),
            &json!({"name": "又一个", "phone": "13600001111", "kind": "ward_nurse"}),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.text);
    assert_eq!(twice.error_code(), "phone_taken");
    for (body, field) in [
        (
            json!({"name": "甲", "phone": "13600002222", "kind": "doctor"}),
            "kind",
        ),
        (
            json!({"name": "甲", "phone": "123", "kind": "ward_nurse"}),
            "phone",
        ),
        (
            json!({"name": " ", "phone": "13600002222", "kind": "ward_nurse"}),
            "name",
        ),
    ] {
        let bad = app
            .post("/v1/dispatch/agents", Some(&coordinator), &body)
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
        assert_eq!(bad.json["error"]["field"], field, "{}", bad.text);
    }
    // Only coordinators manage it; another organisation does not see it.
    let resident = app.token("resident", "r-1", "demo").await;
    assert_eq!(
        app.get("/v1/dispatch/agents", Some(&resident)).await.status,
        StatusCode::FORBIDDEN
    );
    let elsewhere = app.token("coordinator", "coord-9", "other").await;
    let theirs = app.get("/v1/dispatch/agents", Some(&elsewhere)).await;
    assert_eq!(
        theirs.json.as_array().map(Vec::len),
        Some(0),
        "{}",
        theirs.text
    );
    // A token whose sub is on no list is refused.
    let stranger = app.token("agent", "doctor-li", "demo").await;
    let refused = app.get("/v1/agent/patients", Some(&stranger)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.error_code(), "agent_not_listed");
    app.stop().await;
}

#[tokio::test]
async fn an_agent_keeps_her_own_patients() {
    let app = spawn_app().await;
    let coordinator = app.token("coordinator", "coord-1", "demo").await;
    let (_, li) = listed_agent(&app, &coordinator, "李医生", "13600003333").await;
    let (_, wang) = listed_agent(&app, &coordinator, "王网格员", "13600004444").await;

    let added = app
        .post("/v1/agent/patients", Some(&li), &patient_body())
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let id = added.json["id"].as_str().unwrap().to_owned();
    assert_eq!(added.json["phone"], Value::Null, "no phone needed");
    assert_eq!(added.json["notes"], "独居，钥匙在邻居 302 家");
    let bad = app
        .post(
            "/v1/agent/patients",
            Some(&li),
            &json!({"name": "甲", "sex": "male", "birth_year": 1941,
                    "address": {"text": " "}, "location": {"lat": HOME.0, "lng": HOME.1}}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert_eq!(bad.json["error"]["field"], "address.text");

    let path = format!("/v1/agent/patients/{id}");
    let changed = app
        .send(
            app.http
                .patch(app.url(&path))
                .bearer_auth(&li)
                .json(&json!({"phone": "13812340000", "conditions": "高血压"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.json["phone"], "13812340000");
    assert_eq!(changed.json["name"], "张大爷");
    let mine = app.get("/v1/agent/patients", Some(&li)).await;
    assert_eq!(
        mine.json["patients"].as_array().map(Vec::len),
        Some(1),
        "{}",
        mine.text
    );
    assert_eq!(mine.json["patients"][0]["conditions"], "高血压");
    assert_eq!(
        mine.json["patients"][0]["address"]["detail"],
        "3 栋 1 单元 201"
    );

    // Another agent neither sees nor changes nor deletes her patient.
    let theirs = app.get("/v1/agent/patients", Some(&wang)).await;
    assert_eq!(
        theirs.json["patients"].as_array().map(Vec::len),
        Some(0),
        "{}",
        theirs.text
    );
    let patch = app
        .send(
            app.http
                .patch(app.url(&path))
                .bearer_auth(&wang)
                .json(&json!({"name": "改名"})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND, "{}", patch.text);
    let delete = app
        .send(app.http.delete(app.url(&path)).bearer_auth(&wang))
        .await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND, "{}", delete.text);
    // Nor does a resident see it among her household.
    let resident = app.token("resident", "r-1", "demo").await;
    let household = app.get("/v1/me/patients", Some(&resident)).await;
    assert_eq!(household.json["patients"].as_array().map(Vec::len), Some(0));

    let delete = app
        .send(app.http.delete(app.url(&path)).bearer_auth(&li))
        .await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT, "{}", delete.text);
    let mine = app.get("/v1/agent/patients", Some(&li)).await;
    assert_eq!(
        mine.json["patients"].as_array().map(Vec::len),
        Some(0),
        "{}",
        mine.text
    );
    app.stop().await;
}

#[tokio::test]
async fn an_agent_orders_for_her_patient_with_consent_and_sees_only_her_own_orders() {
    let app = spawn_app().await;
    let coordinator = app.token("coordinator", "coord-1", "demo").await;
    let (_, doctor) = listed_agent(&app, &coordinator, "李医生", "13600005555").await;
    let (_, grid) = listed_agent(&app, &coordinator, "王网格员", "13600006666").await;
    let added = app
        .post("/v1/agent/patients", Some(&doctor), &patient_body())
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let patient = added.json["id"].as_str().unwrap().to_owned();

    // No consent recorded: refused; a vague consent too.
    let bare = app
        .order_service(
            &doctor,
            "infant_jaundice_test",
            HOME,
            json!({"patient_id": patient}),
        )
        .await;
    assert_eq!(
        bare.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bare.text
    );
    assert_eq!(bare.error_code(), "consent_required");
    let mut vague = consent();
    vague["consent_by"] = json!(" ");
    let vague = app
        .order_service(
            &doctor,
            "infant_jaundice_test",
            HOME,
            json!({"patient_id": patient, "on_behalf_of": vague}),
        )
        .await;
    assert_eq!(
        vague.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        vague.text
    );
    assert_eq!(vague.error_code(), "consent_required");
    // No registered patient named: refused; another agent's patient too.
    let nobody = app
        .order_service(
            &doctor,
            "infant_jaundice_test",
            HOME,
            json!({"on_behalf_of": consent()}),
        )
        .await;
    assert_eq!(
        nobody.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        nobody.text
    );
    assert_eq!(nobody.error_code(), "patient_required");
    let not_hers = app
        .order_service(
            &grid,
            "infant_jaundice_test",
            HOME,
            json!({"patient_id": patient, "on_behalf_of": consent()}),
        )
        .await;
    assert_eq!(
        not_hers.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        not_hers.text
    );
    assert_eq!(not_hers.json["error"]["field"], "patient_id");

    let placed = app
        .order_service(
            &doctor,
            "infant_jaundice_test",
            HOME,
            json!({"patient_id": patient, "on_behalf_of": consent()}),
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    assert_eq!(
        placed.json["patient"]["id"],
        patient.as_str(),
        "{}",
        placed.text
    );
    assert_eq!(placed.json["patient"]["name"], "张大爷");
    let id = placed.json["id"].as_str().unwrap().to_owned();
    let order = app
        .running()
        .backends
        .store
        .get_order(id.parse().map(yixin_domain::OrderId).unwrap())
        .await
        .unwrap()
        .unwrap();
    let recorded = order.clinical.on_behalf_of.expect("consent recorded");
    assert_eq!(
        (
            recorded.patient_name.as_str(),
            recorded.patient_phone.as_deref(),
            recorded.consent_by.as_str(),
            recorded.relation.as_str(),
            recorded.consent_method.as_str()
        ),
        ("张大爷", None, "张丽", "女儿", "phone")
    );

    // The agent sees it; another agent and a resident do not.
    let path = format!("/v1/orders/{id}");
    let seen = app.get(&path, Some(&doctor)).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    assert_eq!(seen.json["patient"]["name"], "张大爷");
    assert_eq!(
        app.get(&path, Some(&grid)).await.status,
        StatusCode::NOT_FOUND
    );
    let resident = app.token("resident", "r-1", "demo").await;
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
    let residents = app.get("/v1/orders", Some(&resident)).await;
    assert_eq!(
        residents.json["orders"].as_array().map(Vec::len),
        Some(0),
        "{}",
        residents.text
    );
    // A nurse cannot order.
    let nurse = app.token("nurse", "n-1", "demo").await;
    let refused = app
        .order_service(&nurse, "infant_jaundice_test", HOME, json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    app.stop().await;
}
